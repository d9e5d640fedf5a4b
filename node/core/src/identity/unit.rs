//! Administrative units and their division codes (GB/T 2260): 6 digits for the city and its
//! districts, 9 for street offices, each code extending its parent's.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A node's identity in the federation: the division code of the unit it serves.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeCode(String);

/// The administrative tier a node serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// 市: the city, at the top of the federation.
    City,
    /// 区: a district of the city.
    District,
    /// 街道办事处: a street office of a district.
    Street,
}

/// A unit as configured on its node: code, tier, parent and display name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Unit {
    /// Division code.
    #[schemars(with = "String")]
    pub code: NodeCode,
    /// Tier of the unit.
    pub tier: Tier,
    /// Code of the unit above; absent only for the city.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub parent: Option<NodeCode>,
    /// Display name, e.g. "Xihu Street Office".
    pub name: String,
}

/// Why a division code or a unit's place in the tiers is not valid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnitError {
    /// Not 6 or 9 ASCII digits.
    #[error(
        "division code {0:?} is not valid: use 6 digits for a city or district (e.g. 420500, 420502) or 9 for a street office (e.g. 420502001)"
    )]
    BadCode(String),
    /// The code's length or shape does not fit the tier.
    #[error("{code} cannot be a {tier} code: {why}")]
    WrongTier {
        /// The code given.
        code: String,
        /// The tier claimed.
        tier: Tier,
        /// What a code of that tier looks like.
        why: &'static str,
    },
    /// The parent is missing, present for the city, or of the wrong tier.
    #[error("{0}")]
    Parent(String),
}

impl NodeCode {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The leading digits that every code below this one starts with.
    fn significant_prefix(&self) -> &str {
        let mut s = self.0.as_str();
        while s.len() > 2 && s.ends_with("00") {
            s = &s[..s.len() - 2];
        }
        s
    }

    /// True when `child` lies under this unit.
    pub fn is_ancestor_of(&self, child: &NodeCode) -> bool {
        child != self && child.0.starts_with(self.significant_prefix())
    }
}

impl FromStr for NodeCode {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        if (s.len() == 6 || s.len() == 9) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(NodeCode(s.to_owned()))
        } else {
            Err(UnitError::BadCode(s.to_owned()))
        }
    }
}

impl TryFrom<String> for NodeCode {
    type Error = UnitError;
    fn try_from(s: String) -> Result<Self, UnitError> {
        s.parse()
    }
}

impl From<NodeCode> for String {
    fn from(c: NodeCode) -> String {
        c.0
    }
}

impl fmt::Display for NodeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Tier {
    /// The tier directly above, if any.
    pub fn parent(self) -> Option<Tier> {
        match self {
            Tier::City => None,
            Tier::District => Some(Tier::City),
            Tier::Street => Some(Tier::District),
        }
    }

    /// Lower-case name as used in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::City => "city",
            Tier::District => "district",
            Tier::Street => "street",
        }
    }

    fn check_code(self, code: &NodeCode) -> Result<(), UnitError> {
        let s = code.as_str();
        let why = match self {
            Tier::City if s.len() != 6 || !s.ends_with("00") => {
                "a city code has 6 digits ending in 00 (e.g. 420500)"
            }
            Tier::District if s.len() != 6 || s.ends_with("00") => {
                "a district code has 6 digits not ending in 00 (e.g. 420502)"
            }
            Tier::Street if s.len() != 9 || s.ends_with("000") => {
                "a street code has 9 digits: its district's 6 and a 3-digit number from 001 (e.g. 420502001)"
            }
            _ => return Ok(()),
        };
        Err(UnitError::WrongTier {
            code: s.to_owned(),
            tier: self,
            why,
        })
    }
}

impl FromStr for Tier {
    type Err = String;

    /// `city`, `district` or `street`, as [`Tier::as_str`] writes them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Tier::City, Tier::District, Tier::Street]
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a tier: use city, district or street"))
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Unit {
    /// Checks that the code fits the tier and that the parent is one tier up and a prefix of it.
    pub fn validate(&self) -> Result<(), UnitError> {
        self.tier.check_code(&self.code)?;
        match (self.tier.parent(), &self.parent) {
            (None, None) => Ok(()),
            (None, Some(p)) => Err(UnitError::Parent(format!(
                "the city {} has no parent, but parent {p} was given: leave it out",
                self.code
            ))),
            (Some(pt), None) => Err(UnitError::Parent(format!(
                "a {} needs its parent {pt}'s code (--parent)",
                self.tier
            ))),
            (Some(pt), Some(p)) => {
                pt.check_code(p)
                    .map_err(|e| UnitError::Parent(format!("parent of {}: {e}", self.code)))?;
                if p.is_ancestor_of(&self.code) {
                    Ok(())
                } else {
                    Err(UnitError::Parent(format!(
                        "{} does not extend its parent's code {p}: a {} code starts with {:?}",
                        self.code,
                        self.tier,
                        p.significant_prefix()
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
