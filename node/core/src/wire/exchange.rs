//! `tierlink.v1.Exchange` messages.

use tierlink_proto::v1::{CatalogSummary, ItemRedaction};

use crate::catalog::Catalog;
use crate::policy::ItemDecision;

/// A catalog's line in a listing, counting every item and no records: set `item_count` to the
/// items the reader sees and `record_count` where the records are known.
impl From<&Catalog> for CatalogSummary {
    fn from(c: &Catalog) -> Self {
        CatalogSummary {
            code: c.code.clone(),
            name: c.name.clone(),
            provider_name: c.provider.name.clone(),
            provider_code: c.provider.code.clone(),
            kind: serde_plain(&c.kind),
            sharing_type: c.sharing.kind.as_str().to_owned(),
            update_cycle: serde_plain(&c.update_cycle),
            item_count: c.items.len() as u32,
            record_count: 0,
        }
    }
}

/// One line of a redaction manifest: the item, its action as written in grants, the rule.
impl From<&ItemDecision> for ItemRedaction {
    fn from(d: &ItemDecision) -> Self {
        ItemRedaction {
            item: d.item.clone(),
            action: d.action.to_string(),
            rule: d.rule.as_str().to_owned(),
        }
    }
}

/// A unit enum's serde name, e.g. `"data"` for `ResourceKind::Data`.
fn serde_plain<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
