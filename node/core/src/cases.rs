//! Cases that move between tiers: residents' requests (民情流水线) and grid-management cases,
//! raised at the unit where they arrive, escalated, dispatched, reported on, verified, closed,
//! reopened and answered, each move signed by the unit that makes it.
//!
//! # Layout
//! - [`state`]: a case's state, the actions, and the tier rules every move follows.
//! - [`chain`]: signing moves, linking them by hash, checking a chain, sealing deliveries.
//! - [`figures`]: the supervision figures (received, on time, overdue, closed, reopened) computed
//!   from chains.

pub mod chain;
pub mod figures;
pub mod state;

pub use figures::{Dimension, FiguresRow, figures};
pub use state::{Action, Case, Status, apply, parent_of, tier_of};

/// Why a case or a move is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    /// The move is malformed or incomplete: the message says what to give.
    #[error("{0}")]
    Invalid(String),
    /// The tier rules refuse the move: wrong unit, wrong state, wrong department.
    #[error("refused: {0}")]
    Refused(String),
    /// A signature, a link or a seal does not check out: the chain was altered or forged.
    #[error("forged or altered: {0}")]
    Forged(String),
}

#[cfg(test)]
mod tests;
