//! Cross-check runs as a node keeps them, in its store's `crosscheck` keyspace:
//!
//! ```text
//! r/RUN    the run (JSON): its terms, who it was for, its counts, this node's records by key
//!          and the other node's mismatched records by reference
//! k/PAIR   this node's reference key for a pair of catalogs and a join item (32 bytes)
//! ```
//!
//! A reference key is made at the pair's first run and kept: the same record then has the same
//! reference in every run of the pair, so a later run tells whether a mismatch still stands.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tierlink_core::crosscheck::{Mismatch, Outcome, Role, Terms};
use tierlink_store::{Keyspace, StoreError};

/// One run, as one side keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// `cc_` and 16 hex digits.
    pub id: String,
    /// What was compared.
    pub terms: Terms,
    /// Whether this node started it.
    pub initiated: bool,
    /// This node's role: collector or holder.
    pub role: Role,
    /// The principal it was for, `NAME@UNIT`, its role, purpose, and the grant that decided here.
    pub principal: String,
    /// The principal's role, `UNIT/NAME`.
    pub principal_role: String,
    /// The purpose stated.
    pub purpose: String,
    /// The grant that decided on this node.
    pub grant: String,
    /// When it ended, microseconds since the Unix epoch.
    pub at_micros: i64,
    /// What this node learned.
    pub outcome: Outcome,
}

impl Run {
    /// This node's catalog, `NODE:CODE`.
    pub fn here(&self) -> &str {
        if self.initiated {
            &self.terms.initiator
        } else {
            &self.terms.counterpart
        }
    }

    /// The other node's catalog, `NODE:CODE`.
    pub fn there(&self) -> &str {
        if self.initiated {
            &self.terms.counterpart
        } else {
            &self.terms.initiator
        }
    }

    /// The run's mismatches as this node describes them: its own records by key, the other
    /// node's by reference.
    pub fn mismatches(&self) -> Vec<Mismatch> {
        self.outcome.mismatches(&self.id, self.role)
    }
}

/// The pair of catalogs and join item `terms` compare, the same whichever side starts.
pub fn pair(terms: &Terms) -> String {
    let mut sides = [terms.initiator.as_str(), terms.counterpart.as_str()];
    sides.sort_unstable();
    format!("{} ~ {} on {}", sides[0], sides[1], terms.join)
}

/// A question about kept runs that has no answer.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No such run on this node.
    #[error(
        "node has no cross-check run {0}: give a run id `tierlink crosscheck run` printed on this node or its counterpart"
    )]
    NotFound(String),
    /// The later run compares another pair.
    #[error(
        "run {later} compares {later_pair}, not {pair} as run {run} did: ask about a later run of the same pair"
    )]
    OtherPair {
        /// The mismatch's run.
        run: String,
        /// Its pair.
        pair: String,
        /// The run asked about.
        later: String,
        /// Its pair.
        later_pair: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The `crosscheck` keyspace: every run this node took part in.
pub struct CrossChecks {
    space: Keyspace,
    /// Held while a pair's reference key is looked up and made.
    making_key: Mutex<()>,
}

fn parse<T: for<'a> Deserialize<'a>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("crosscheck: {e}")))
}

impl CrossChecks {
    /// Runs kept in `space`.
    pub fn new(space: Keyspace) -> Self {
        Self {
            space,
            making_key: Mutex::new(()),
        }
    }

    /// Keeps `run`, and waits until it is on disk.
    pub async fn keep(&self, run: &Run) -> Result<(), StoreError> {
        let json = serde_json::to_vec(run).expect("a run serializes");
        self.space
            .apply([(format!("r/{}", run.id).into_bytes(), Some(json))])?;
        self.space.flush().await
    }

    /// The run `id`, if this node took part in it.
    pub fn get(&self, id: &str) -> Result<Option<Run>, StoreError> {
        self.space
            .get(format!("r/{id}").as_bytes())?
            .map(|v| parse(&v))
            .transpose()
    }

    /// This node's reference key for `pair` ([`pair`]), made at its first run.
    pub fn reference_key(&self, pair: &str) -> Result<[u8; 32], StoreError> {
        let _making = self.making_key.lock().unwrap_or_else(|p| p.into_inner());
        let at = format!("k/{pair}").into_bytes();
        if let Some(key) = self.space.get(&at)? {
            return key.try_into().map_err(|_| {
                StoreError::Corrupt(format!("crosscheck: the reference key of {pair}"))
            });
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| StoreError::Engine(format!("no randomness for a reference key: {e}")))?;
        self.space.apply([(at, Some(key.to_vec()))])?;
        self.space.flush_blocking()?;
        Ok(key)
    }

    /// The mismatches of run `id` as this node describes them (see [`Mismatch`]): what the cases
    /// code sends back to the collector.
    pub fn mismatches(&self, id: &str) -> Result<Vec<Mismatch>, RunError> {
        Ok(self.run(id)?.mismatches())
    }

    /// This node's key for `reference` in run `id`: what a mismatch the other node describes by
    /// reference is, here. None when no record of this node has that reference in the run.
    pub fn resolve(&self, id: &str, reference: &str) -> Result<Option<String>, RunError> {
        Ok(self
            .run(id)?
            .outcome
            .own
            .into_iter()
            .find(|r| r.reference == reference)
            .map(|r| r.key))
    }

    /// Whether `mismatch`, of an earlier run, still stands in run `later` of the same pair of
    /// catalogs: false once the record matches (a correction went through) or, for a record only
    /// one side held, once the other holds it too.
    pub fn still_stands(&self, mismatch: &Mismatch, later: &str) -> Result<bool, RunError> {
        let earlier = self.run(&mismatch.run)?;
        let later_run = self.run(later)?;
        let (p, later_pair) = (pair(&earlier.terms), pair(&later_run.terms));
        if p != later_pair {
            return Err(RunError::OtherPair {
                run: earlier.id,
                pair: p,
                later: later.to_owned(),
                later_pair,
            });
        }
        Ok(later_run.outcome.still_stands(mismatch))
    }

    fn run(&self, id: &str) -> Result<Run, RunError> {
        self.get(id)?
            .ok_or_else(|| RunError::NotFound(id.to_owned()))
    }
}
