//! Reading catalog entries from JSON and the rules every entry must meet. Errors name the
//! source, the entry and the field, so a publisher can fix a file without guessing.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use super::model::{
    Catalog, DataType, InformationItem, PartAs, ResourceKind, SharingType, ValueCheck,
};
use crate::limits::{MAX_RECORD_BYTES, human_bytes, thousands};

/// Bounds on a catalog entry, the same in `schema/catalog.schema.json`: generous for real
/// national catalogs (the shipped examples come closest with a provider's name of 72
/// characters), tight enough that an entry travels in one message and every record of it fits
/// in one batch. Text is counted in characters (Unicode scalar values), as JSON Schema's
/// `maxLength` counts them.
pub mod bounds {
    /// Characters of a name: the resource's, the provider's, an item's, a code-table label.
    pub const NAME_CHARS: usize = 200;
    /// Characters of a summary or a statement of sharing conditions.
    pub const TEXT_CHARS: usize = 2_000;
    /// Characters of a provider's code or a code-table code (a unified social credit code has 18).
    pub const CODE_CHARS: usize = 64;
    /// Characters of an item code (also stated by its pattern).
    pub const ITEM_CODE_CHARS: usize = 63;
    /// Characters of an item's pattern.
    pub const PATTERN_CHARS: usize = 1_000;
    /// Related resources of one entry.
    pub const RELATED: usize = 100;
    /// Information items of one entry (the essays' richest base catalog has 150).
    pub const ITEMS: usize = 1_000;
    /// Entries of one item's code table (China's county-level divisions number under 3,000).
    pub const CODE_TABLE: usize = 10_000;
    /// An item's length: a string of that many characters can take 16 MB, about the most a
    /// record may hold ([`crate::limits::MAX_RECORD_BYTES`]).
    pub const LENGTH: u32 = 4_000_000;
    /// Embedded parts of one item (GB 11643 has five).
    pub const PARTS: usize = 64;
    /// Bytes of an entry written as compact JSON: entries travel whole in directory changes.
    pub const ENTRY_BYTES: usize = 1 << 20;
}

static RESOURCE_CODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[1-3][0-9]{2}(?:[0-9]{3}(?:[0-9]{3})?)?/[0-9]{6}$").unwrap());
/// Whether `code` has the form of a resource code (GB/T 21063.4's classification, a slash and a
/// 6-digit sequence, e.g. `101001001/000001`).
pub fn is_resource_code(code: &str) -> bool {
    RESOURCE_CODE.is_match(code)
}

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

/// What a citizen ID number (`check: gb11643`) must declare, and how.
fn gb11643_parts_missing(item: &InformationItem) -> String {
    format!(
        "{} is a GB 11643 citizen ID number: declare length 18 and its parts in \"embeds\": {{\"part\": \"region\", \"from\": 1, \"to\": 6}}, {{\"part\": \"birth date\", \"from\": 7, \"to\": 14, \"as\": \"date\"}} (with \"holds\": the catalog's birth-date item, if it has one), {{\"part\": \"sequence\", \"from\": 15, \"to\": 17}}, {{\"part\": \"sex\", \"from\": 17, \"to\": 17, \"as\": \"parity\"}} (with \"holds\": its sex item, if any) and {{\"part\": \"check digit\", \"from\": 18, \"to\": 18, \"as\": \"check\"}}",
        item.code
    )
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
        let too_long = |field: &str, value: &str, max: usize| {
            let chars = value.chars().count();
            (chars > max).then(|| {
                fail(
                    field,
                    format!(
                        "is {} characters long, over the {} allowed",
                        thousands(chars as u64),
                        thousands(max as u64)
                    ),
                )
            })
        };
        for (field, value, max) in [
            ("name", &self.name, bounds::NAME_CHARS),
            ("summary", &self.summary, bounds::TEXT_CHARS),
            ("provider.name", &self.provider.name, bounds::NAME_CHARS),
            ("provider.code", &self.provider.code, bounds::CODE_CHARS),
        ] {
            if value.trim().is_empty() {
                return Err(fail(field, "must not be empty".into()));
            }
            if let Some(e) = too_long(field, value, max) {
                return Err(e);
            }
        }
        if let Some(e) = self
            .sharing
            .conditions
            .as_deref()
            .and_then(|c| too_long("sharing.conditions", c, bounds::TEXT_CHARS))
        {
            return Err(e);
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
        if self.related.len() > bounds::RELATED {
            return Err(fail(
                "related",
                format!(
                    "lists {} resources, over the {} an entry may relate to",
                    self.related.len(),
                    bounds::RELATED
                ),
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
        if self.items.len() > bounds::ITEMS {
            return Err(fail(
                "items",
                format!(
                    "has {} information items, over the {} an entry may have: split the resource",
                    thousands(self.items.len() as u64),
                    thousands(bounds::ITEMS as u64)
                ),
            ));
        }
        let mut codes = HashSet::new();
        let mut names = HashSet::new();
        for (n, item) in self.items.iter().enumerate() {
            let at = |field: &str| format!("items[{n}].{field}");
            for (field, value, max) in [
                ("name", item.name.as_str(), bounds::NAME_CHARS),
                (
                    "pattern",
                    item.pattern.as_deref().unwrap_or(""),
                    bounds::PATTERN_CHARS,
                ),
            ] {
                if let Some(e) = too_long(&at(field), value, max) {
                    return Err(e);
                }
            }
            if !ITEM_CODE.is_match(&item.code) {
                return Err(fail(
                    &at("code"),
                    format!(
                        "{:?} is not an item code: use lower-case letters, digits and _, starting with a letter, at most {} in all",
                        item.code,
                        bounds::ITEM_CODE_CHARS
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
            if let Some(length) = item.length.filter(|l| *l > bounds::LENGTH) {
                return Err(fail(
                    &at("length"),
                    format!(
                        "{} is over the longest an item may be, {}",
                        thousands(length.into()),
                        thousands(bounds::LENGTH.into())
                    ),
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
            if let Some(pattern) = &item.pattern
                && let Err(e) = regex_syntax::Parser::new().parse(pattern)
            {
                return Err(fail(
                    &at("pattern"),
                    format!("not a valid regular expression: {e}"),
                ));
            }
            if let Some(table) = &item.code_table {
                let mut seen = HashSet::new();
                if table.is_empty() || !table.iter().all(|e| seen.insert(e.code.as_str())) {
                    return Err(fail(
                        &at("code_table"),
                        "must list at least one code, each once".into(),
                    ));
                }
                if table.len() > bounds::CODE_TABLE {
                    return Err(fail(
                        &at("code_table"),
                        format!(
                            "lists {} codes, over the {} a code table may list",
                            thousands(table.len() as u64),
                            thousands(bounds::CODE_TABLE as u64)
                        ),
                    ));
                }
                for (k, entry) in table.iter().enumerate() {
                    let field = |f: &str| at(&format!("code_table[{k}].{f}"));
                    if let Some(e) = too_long(&field("code"), &entry.code, bounds::CODE_CHARS)
                        .or_else(|| too_long(&field("label"), &entry.label, bounds::NAME_CHARS))
                    {
                        return Err(e);
                    }
                }
            }
            if item.check.is_some() && item.data_type != DataType::String {
                return Err(fail(
                    &at("check"),
                    "checks apply to string items only".into(),
                ));
            }
        }
        self.check_parts()
            .map_err(|(field, problem)| fail(&field, problem))?;
        if !self.items.iter().any(|i| i.primary_key) {
            return Err(fail(
                "items",
                "mark at least one item primary_key: records are stored and queried by key".into(),
            ));
        }
        let record = self.max_record_bytes();
        if record > MAX_RECORD_BYTES {
            let longest = self
                .items
                .iter()
                .max_by_key(|i| i.max_value_bytes())
                .expect("at least one item");
            return Err(fail(
                "items",
                format!(
                    "a record of this catalog can take {} (every item at its length, text at up to 4 bytes a character), over the {} a record may take so that it always fits in one message: shorten the longest items (the longest, {}, takes up to {})",
                    human_bytes(record),
                    human_bytes(MAX_RECORD_BYTES),
                    longest.code,
                    human_bytes(longest.max_value_bytes())
                ),
            ));
        }
        let json = serde_json::to_vec(self).map_or(0, |j| j.len());
        if json > bounds::ENTRY_BYTES {
            return Err(fail(
                "-",
                format!(
                    "the entry takes {} as JSON, over the {} an entry may take: shorten its code tables or split the resource",
                    human_bytes(json as u64),
                    human_bytes(bounds::ENTRY_BYTES as u64)
                ),
            ));
        }
        Ok(())
    }

    /// The rules of embedded parts (`items[n].embeds`): each lies within its item's declared
    /// length, holds another item of the catalog in a form that fits it, and a citizen ID number
    /// declares GB 11643's parts. Errors are `(field, problem)`.
    fn check_parts(&self) -> Result<(), (String, String)> {
        for (n, item) in self.items.iter().enumerate() {
            let at = |field: &str| format!("items[{n}].{field}");
            if item.embeds.is_empty() {
                if item.check == Some(ValueCheck::Gb11643) {
                    return Err((at("embeds"), gb11643_parts_missing(item)));
                }
                continue;
            }
            if item.embeds.len() > bounds::PARTS {
                return Err((
                    at("embeds"),
                    format!(
                        "declares {} parts, over the {} an item may have",
                        item.embeds.len(),
                        bounds::PARTS
                    ),
                ));
            }
            let Some(length) = item.length.filter(|_| item.data_type == DataType::String) else {
                return Err((
                    at("embeds"),
                    format!(
                        "{} has parts, so it is a fixed-width code: make it a string item and declare its length (every value is exactly that long)",
                        item.code
                    ),
                ));
            };
            for (k, part) in item.embeds.iter().enumerate() {
                let at = |field: &str| at(&format!("embeds[{k}].{field}"));
                if part.part.trim().is_empty() || part.part.chars().count() > bounds::NAME_CHARS {
                    return Err((
                        at("part"),
                        format!("name the part in 1 to {} characters", bounds::NAME_CHARS),
                    ));
                }
                if part.from == 0 || part.from > part.to || part.to > length {
                    return Err((
                        at("from"),
                        format!(
                            "part {:?} runs from character {} to {}: parts count from 1 and lie within {}'s length of {length}",
                            part.part, part.from, part.to, item.code
                        ),
                    ));
                }
                let one = || {
                    (
                        at("to"),
                        format!(
                            "part {:?} is {} ({}): it is one character, from = to",
                            part.part,
                            part.carries.as_str(),
                            if part.carries == PartAs::Check {
                                "a check character"
                            } else {
                                "a character's parity"
                            }
                        ),
                    )
                };
                match part.carries {
                    PartAs::Same => {}
                    PartAs::Date if part.chars() != 8 => {
                        return Err((
                            at("to"),
                            format!("part {:?} is a date, YYYYMMDD: 8 characters", part.part),
                        ));
                    }
                    PartAs::Date => {}
                    PartAs::Parity | PartAs::Check if part.chars() != 1 => return Err(one()),
                    PartAs::Parity => {}
                    PartAs::Check => {
                        if part.holds.is_some() {
                            return Err((
                                at("holds"),
                                format!(
                                    "part {:?} is a check character: it holds no item",
                                    part.part
                                ),
                            ));
                        }
                    }
                }
                let Some(code) = &part.holds else { continue };
                let held = self
                    .items
                    .iter()
                    .find(|i| &i.code == code && i.code != item.code)
                    .ok_or_else(|| {
                        (
                            at("holds"),
                            format!("{code:?} is not another item of this catalog"),
                        )
                    })?;
                let fits = match part.carries {
                    PartAs::Same => (held.data_type == DataType::String
                        && held.length == Some(part.chars()))
                    .then_some(())
                    .ok_or_else(|| {
                        format!(
                            "part {:?} is {} characters, so {code} must be a string item of length {} to be carried as the same characters (or say how with \"as\")",
                            part.part,
                            part.chars(),
                            part.chars()
                        )
                    }),
                    PartAs::Date => (held.data_type == DataType::Date).then_some(()).ok_or_else(|| {
                        format!("part {:?} carries a date, but {code} is not a date item", part.part)
                    }),
                    PartAs::Parity | PartAs::Check => Ok(()),
                };
                fits.map_err(|problem| (at("holds"), problem))?;
                if held.sharing == SharingType::NotShared && item.sharing != SharingType::NotShared
                {
                    return Err((
                        at("holds"),
                        format!(
                            "{code} is not shared, but {} carries it and is shared: the value would leave the node inside {}; make {} not shared too, or drop the part",
                            item.code, item.code, item.code
                        ),
                    ));
                }
            }
            if item.check == Some(ValueCheck::Gb11643) {
                let has = |from, to, carries| {
                    item.embeds
                        .iter()
                        .any(|p| p.from == from && p.to == to && p.carries == carries)
                };
                let complete = has(1, 6, PartAs::Same)
                    && has(7, 14, PartAs::Date)
                    && has(15, 17, PartAs::Same)
                    && has(17, 17, PartAs::Parity)
                    && has(18, 18, PartAs::Check);
                if !complete || length != 18 {
                    return Err((at("embeds"), gb11643_parts_missing(item)));
                }
            }
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
