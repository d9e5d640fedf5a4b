//! Reading catalog entries from JSON and the rules every entry must meet. Errors name the
//! source, the entry and the field, so a publisher can fix a file without guessing.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

#[cfg(test)]
use super::model::InformationItem;
use super::model::{Catalog, DataType, ResourceKind, SharingType};

static RESOURCE_CODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[1-3][0-9]{2}(?:[0-9]{3}(?:[0-9]{3})?)?/[0-9]{6}$").unwrap());
static ITEM_CODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9_]{0,62}$").unwrap());

/// A catalog entry that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: entry {entry}: {field}: {problem}")]
pub struct CatalogError {
    /// File name, or where else the entry came from.
    pub file: String,
    /// The entry's resource code, or its position when it has none.
    pub entry: String,
    /// Path of the offending field, e.g. `items[3].type`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

/// Parses one catalog entry or an array of entries and validates each.
pub fn parse_catalogs(text: &str, source: &str) -> Result<Vec<Catalog>, CatalogError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| CatalogError {
        file: source.into(),
        entry: "-".into(),
        field: "-".into(),
        problem: format!("not valid JSON: {e}"),
    })?;
    let (values, single) = match value {
        serde_json::Value::Array(values) => (values, false),
        other => (vec![other], true),
    };
    values
        .into_iter()
        .enumerate()
        .map(|(n, value)| {
            let entry = value
                .get("code")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| if single { "#0".into() } else { format!("#{n}") });
            let catalog: Catalog = serde_path_to_error::deserialize(value).map_err(|e| {
                let path = e.path().to_string();
                let problem = e.into_inner().to_string();
                // serde reports a missing field at its parent; name the field itself.
                let missing = problem
                    .strip_prefix("missing field `")
                    .and_then(|r| r.split('`').next());
                let field = match (missing, path.as_str()) {
                    (Some(name), ".") => name.to_owned(),
                    (Some(name), parent) => format!("{parent}.{name}"),
                    (None, _) => path,
                };
                CatalogError {
                    file: source.into(),
                    entry: entry.clone(),
                    field,
                    problem,
                }
            })?;
            catalog.validate().map_err(|mut e| {
                e.file = source.into();
                e
            })?;
            Ok(catalog)
        })
        .collect()
}

/// How restrictive a sharing type is, for "an item is never more open than its resource".
fn openness(s: SharingType) -> u8 {
    match s {
        SharingType::Unconditional => 2,
        SharingType::Conditional => 1,
        SharingType::NotShared => 0,
    }
}

impl Catalog {
    /// Checks the rules of the catalog model. The error's `file` is left empty for the caller.
    pub fn validate(&self) -> Result<(), CatalogError> {
        let fail = |field: &str, problem: String| CatalogError {
            file: String::new(),
            entry: self.code.clone(),
            field: field.into(),
            problem,
        };
        if !RESOURCE_CODE.is_match(&self.code) {
            return Err(fail(
                "code",
                format!(
                    "{:?} is not a resource code: write the classification (1 digit for base/theme/department, 2 for 项, optionally 3 for 目 and 3 for 细目), a slash and a 6-digit sequence, e.g. 101001001/000001",
                    self.code
                ),
            ));
        }
        let class = match self.kind {
            ResourceKind::Base => '1',
            ResourceKind::Theme => '2',
            ResourceKind::Department => '3',
        };
        if !self.code.starts_with(class) {
            return Err(fail(
                "kind",
                format!("a {:?} resource's code starts with {class}", self.kind),
            ));
        }
        for (field, value) in [
            ("name", &self.name),
            ("summary", &self.summary),
            ("provider.name", &self.provider.name),
            ("provider.code", &self.provider.code),
        ] {
            if value.trim().is_empty() {
                return Err(fail(field, "must not be empty".into()));
            }
        }
        if self.sharing.kind == SharingType::Conditional
            && self
                .sharing
                .conditions
                .as_deref()
                .is_none_or(|c| c.trim().is_empty())
        {
            return Err(fail(
                "sharing.conditions",
                "a conditional resource must state its conditions".into(),
            ));
        }
        if chrono::NaiveDate::parse_from_str(&self.published, "%Y-%m-%d").is_err() {
            return Err(fail(
                "published",
                format!("{:?} is not a date: write YYYY-MM-DD", self.published),
            ));
        }
        for (n, related) in self.related.iter().enumerate() {
            if !RESOURCE_CODE.is_match(related) || *related == self.code {
                return Err(fail(
                    &format!("related[{n}]"),
                    format!("{related:?} is not another resource's code"),
                ));
            }
        }
        if self.items.is_empty() {
            return Err(fail(
                "items",
                "a catalog needs at least one information item".into(),
            ));
        }
        let mut codes = HashSet::new();
        let mut names = HashSet::new();
        for (n, item) in self.items.iter().enumerate() {
            let at = |field: &str| format!("items[{n}].{field}");
            if !ITEM_CODE.is_match(&item.code) {
                return Err(fail(
                    &at("code"),
                    format!(
                        "{:?} is not an item code: use lower-case letters, digits and _, starting with a letter",
                        item.code
                    ),
                ));
            }
            if !codes.insert(item.code.as_str()) {
                return Err(fail(&at("code"), format!("{} appears twice", item.code)));
            }
            if item.name.trim().is_empty() || !names.insert(item.name.as_str()) {
                return Err(fail(
                    &at("name"),
                    format!("{:?} is empty or appears twice", item.name),
                ));
            }
            if item.length == Some(0) {
                return Err(fail(
                    &at("length"),
                    "must be at least 1, or left out".into(),
                ));
            }
            if openness(item.sharing) > openness(self.sharing.kind) {
                return Err(fail(
                    &at("sharing"),
                    format!(
                        "{} is shared {}, more openly than its resource ({}): an item cannot be more open than its resource",
                        item.code,
                        item.sharing.as_str(),
                        self.sharing.kind.as_str()
                    ),
                ));
            }
            if (item.sensitive_personal || item.grade == super::SensitivityGrade::Core)
                && item.sharing == SharingType::Unconditional
            {
                return Err(fail(
                    &at("sharing"),
                    format!(
                        "{} is core or sensitive personal information: share it conditionally or not at all",
                        item.code
                    ),
                ));
            }
            let unfit_key = !item.required
                || item.sharing == SharingType::NotShared
                || item.data_type == DataType::Binary;
            if item.primary_key && unfit_key {
                return Err(fail(
                    &at("primary_key"),
                    format!(
                        "key item {} must be required, shared and not binary: keys travel with every record",
                        item.code
                    ),
                ));
            }
            // Parsing checks the syntax at a fraction of a compile's cost: every directory
            // replica validates each catalog it applies.
            if let Some(pattern) = &item.pattern {
                if let Err(e) = regex_syntax::Parser::new().parse(pattern) {
                    return Err(fail(
                        &at("pattern"),
                        format!("not a valid regular expression: {e}"),
                    ));
                }
            }
            if let Some(table) = &item.code_table {
                let mut seen = HashSet::new();
                if table.is_empty() || !table.iter().all(|e| seen.insert(e.code.as_str())) {
                    return Err(fail(
                        &at("code_table"),
                        "must list at least one code, each once".into(),
                    ));
                }
            }
            if item.check.is_some() && item.data_type != DataType::String {
                return Err(fail(
                    &at("check"),
                    "checks apply to string items only".into(),
                ));
            }
        }
        if !self.items.iter().any(|i| i.primary_key) {
            return Err(fail(
                "items",
                "mark at least one item primary_key: records are stored and queried by key".into(),
            ));
        }
        Ok(())
    }

    /// Checks that replacing `old` with `self` keeps stored records readable: existing items stay
    /// in place with their codes and types, new items are appended.
    pub fn check_replaces(&self, old: &Catalog) -> Result<(), CatalogError> {
        for (n, before) in old.items.iter().enumerate() {
            match self.items.get(n) {
                Some(after)
                    if after.code == before.code
                        && after.data_type == before.data_type
                        && after.primary_key == before.primary_key => {}
                _ => {
                    return Err(CatalogError {
                        file: String::new(),
                        entry: self.code.clone(),
                        field: format!("items[{n}]"),
                        problem: format!(
                            "records are stored under this catalog, so item {} must stay at position {n} with its type and key flag; append new items at the end",
                            before.code
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.name)
    }
}

#[cfg(test)]
mod tests;
