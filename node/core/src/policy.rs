//! Field-level secrecy: who may see which information items of which catalog, and how.
//!
//! The model ([`Role`], [`Grant`], [`AccessRequest`]) lives in the federation directory as
//! [`Policies`]; its rules ([`Policies::apply`]) are checked identically on every replica. A
//! producer asks [`Policies::decide`] once per request and gets a [`Decision`]: an [`Action`] per
//! item (clear, mask, hash, generalise or withhold), the grant and rule behind each, and a row
//! scope. [`Reveal`] works out what all of it together gives away, and refuses a grant, or a
//! read, that lets its reader rebuild or guess what it hides. [`Redactor`] carries the decision
//! out on values.

mod decide;
mod model;
mod redact;
mod reveal;
mod rules;

pub use decide::{Asker, Decision, ItemDecision, Refusal, Rule};
pub use model::{
    AccessRequest, AccessStatus, Action, Generalisation, Grant, Grantee, Policies, PolicyCommand,
    Role, RowScope, item_action,
};
pub use redact::{HASH_CHARS, HASH_KEY_BYTES, HashKey, Redactor};
pub use reveal::{GUESSABLE_BELOW, Leaks, Reveal};
pub use rules::PolicyContext;

#[cfg(test)]
mod tests;
