//! The `node.toml` reference, generated from [`NodeConfig`]'s own types: their doc comments,
//! types and defaults, read through their JSON Schema (draft 2020-12, as `schemars` derives it),
//! so the reference an operator reads is the code a node loads. `tierlink config reference`
//! prints it; `ops/config-reference.md` is a copy a test keeps equal to it.

use std::fmt::Write;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::NodeConfig;

/// The reference as Markdown: one table per section (`[server]`, `[limits]`, …, `[[peer]]`), in
/// alphabetical order, each key with its type, its default (or "required") and its documentation.
pub fn reference() -> String {
    let schema =
        serde_json::to_value(schemars::schema_for!(NodeConfig)).expect("a derived schema is JSON");
    let schema = Schema {
        defs: schema
            .get("$defs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        root: schema,
    };
    let mut out = String::from(
        "# `node.toml` reference\n\n\
         Generated from the code by `tierlink config reference`; do not edit by hand. A node \
         refuses a key it does not know, naming it. Paths are relative to the node directory; \
         durations are in the unit their name ends with (`_ms`: milliseconds). Sections and keys are in alphabetical order.\n",
    );
    schema.section(&mut out, &[], &schema.root, None, false);
    out
}

/// The derived schema and its definitions, which `$ref`s point into.
struct Schema {
    root: Value,
    defs: Map<String, Value>,
}

impl Schema {
    /// `node` with its `$ref` followed, and an optional value's `null` alternative dropped.
    fn resolve<'a>(&'a self, node: &'a Value) -> &'a Value {
        if let Some(name) = node
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
        {
            return self.resolve(&self.defs[name]);
        }
        for alternatives in ["anyOf", "oneOf"] {
            if let Some(Value::Array(options)) = node.get(alternatives) {
                let mut some = options
                    .iter()
                    .filter(|o| o.get("type") != Some(&"null".into()));
                if let (Some(one), None) = (some.next(), some.next()) {
                    return self.resolve(one);
                }
            }
        }
        node
    }

    /// Writes the table of the object `node` at `path`, then its subsections; `defaults` is the
    /// section's own default, for keys that are required only once the section is written.
    fn section(
        &self,
        out: &mut String,
        path: &[&str],
        node: &Value,
        defaults: Option<&Value>,
        array: bool,
    ) {
        let node = self.resolve(node);
        let Some(properties) = node.get("properties").and_then(Value::as_object) else {
            return;
        };
        let required: Vec<&str> = node
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut keys = Vec::new();
        let mut subsections = Vec::new();
        for (key, property) in properties {
            match self.table_of(property) {
                Some((table, is_array)) => subsections.push((key, table, is_array, property)),
                None => keys.push((key, property)),
            }
        }
        if !path.is_empty() {
            let name = path.join(".");
            let (open, close) = if array { ("[[", "]]") } else { ("[", "]") };
            let _ = write!(out, "\n## `{open}{name}{close}`\n\n");
            if let Some(text) = description(node) {
                let _ = writeln!(out, "{text}\n");
            }
        }
        if !keys.is_empty() {
            out.push_str("| key | type | default | meaning |\n|---|---|---|---|\n");
            for (key, property) in keys {
                let default = match property
                    .get("default")
                    .or_else(|| defaults?.get(key.as_str()))
                {
                    Some(value) => format!("`{}`", toml_value(value)),
                    None if required.contains(&key.as_str()) => "required".into(),
                    None => "none".into(),
                };
                let _ = writeln!(
                    out,
                    "| `{key}` | {} | {default} | {} |",
                    self.type_of(property),
                    description(property)
                        .unwrap_or_default()
                        .replace('|', "\\|"),
                );
            }
        }
        for (key, table, is_array, property) in subsections {
            let mut inner = path.to_vec();
            inner.push(key);
            // A section's own documentation is its field's, when the field has one.
            let mut documented = table.clone();
            if let Some(text) = description(property) {
                documented["description"] = text.into();
            }
            let defaults = property
                .get("default")
                .or_else(|| defaults?.get(key.as_str()));
            self.section(out, &inner, &documented, defaults, is_array);
        }
    }

    /// The table a property holds, and whether it is an array of tables; `None` for a value.
    fn table_of(&self, property: &Value) -> Option<(Value, bool)> {
        let resolved = self.resolve(property);
        if resolved.get("properties").is_some() {
            return Some((resolved.clone(), false));
        }
        let items = self.resolve(resolved.get("items")?);
        items
            .get("properties")
            .is_some()
            .then(|| (items.clone(), true))
    }

    /// A value's type in words: `integer`, `string`, `array of integers`, `` `warn` or `escalate` ``.
    fn type_of(&self, property: &Value) -> String {
        let node = self.resolve(property);
        if let Some(values) = enumerated(node) {
            return values.join(" or ");
        }
        let kind = match node.get("type") {
            Some(Value::String(kind)) => kind.clone(),
            Some(Value::Array(kinds)) => kinds
                .iter()
                .filter_map(Value::as_str)
                .find(|k| *k != "null")
                .unwrap_or("any")
                .to_owned(),
            _ => "any".to_owned(),
        };
        match (kind.as_str(), node.get("items")) {
            ("array", Some(items)) => format!("array of {}s", self.type_of(items)),
            _ => kind,
        }
    }
}

/// The values an enumeration takes, quoted, from `enum` or from `oneOf` constants.
fn enumerated(node: &Value) -> Option<Vec<String>> {
    let quote = |v: &Value| v.as_str().map(|s| format!("`{s}`"));
    if let Some(Value::Array(values)) = node.get("enum") {
        return values.iter().map(quote).collect();
    }
    let Some(Value::Array(options)) = node.get("oneOf") else {
        return None;
    };
    options
        .iter()
        .map(|o| {
            o.get("const")
                .or_else(|| o.get("enum")?.get(0))
                .and_then(quote)
        })
        .collect()
}

/// A schema's documentation on one line, its intra-doc links as plain code.
fn description(node: &Value) -> Option<String> {
    static LINK: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\[(`[^`\]]+`)\](\([^)\s]*\))?").expect("a valid pattern"));
    let text = node.get("description")?.as_str()?;
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(LINK.replace_all(&text, "$1").into_owned())
}

/// A default as it is written in `node.toml`.
fn toml_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_value).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Null => "none".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_reference_is_the_one_the_code_generates() {
        let committed = include_str!("../../../../ops/config-reference.md");
        assert!(
            committed == reference(),
            "ops/config-reference.md differs from the code's: run \
             `cargo run -p tierlink -- config reference > ops/config-reference.md`"
        );
    }

    #[test]
    fn every_section_and_key_of_a_full_configuration_is_in_the_reference() {
        let reference = reference();
        // Every optional section present, so every key is written.
        let mut config: NodeConfig =
            toml::from_str(include_str!("../../../../ops/hosts/city.toml")).unwrap();
        config.gateway = Some(super::super::GatewaySettings::on(
            "127.0.0.1:8443".parse().unwrap(),
        ));
        config.webhooks.ca = Some("receivers.pem".into());
        config.webhooks.receivers = vec!["https://erp.example.gov.cn/hooks/".into()];
        config.cases.calendar = Some("calendar".into());
        config.cases.check_ms += 1;
        config.store.cache_mb += 1;
        let full = toml::to_string(&config).unwrap();
        let table: toml::Table = toml::from_str(&full).unwrap();
        let mut named = Vec::new();
        collect_keys(&table, "", &mut named);
        assert!(named.len() > 40, "{named:?}");
        for (section, key) in named {
            let header = if section == "peer" {
                "## `[[peer]]`".to_owned()
            } else {
                format!("## `[{section}]`")
            };
            let at = reference
                .find(&format!("{header}\n"))
                .unwrap_or_else(|| panic!("no section {header}"));
            let body = &reference[at + header.len()..];
            let body = &body[..body.find("\n## ").unwrap_or(body.len())];
            assert!(body.contains(&format!("| `{key}` |")), "{section}.{key}");
        }
    }

    /// Every (section, key) of a configuration written as TOML.
    fn collect_keys(table: &toml::Table, section: &str, out: &mut Vec<(String, String)>) {
        for (key, value) in table {
            let inner = if section.is_empty() {
                key.clone()
            } else {
                format!("{section}.{key}")
            };
            match value {
                toml::Value::Table(t) => collect_keys(t, &inner, out),
                toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
                    for item in items {
                        collect_keys(item.as_table().unwrap(), &inner, out);
                    }
                }
                _ => out.push((section.to_owned(), key.clone())),
            }
        }
    }
}
