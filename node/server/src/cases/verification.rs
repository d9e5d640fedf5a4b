//! Cross-check mismatches sent back to the collector as verification cases (核查件, class 6),
//! and settled on a later run of the same pair (Yichang's 对比核查: what grid staff collect is
//! compared with what the departments hold; mismatches go back to the collector to verify).
//!
//! The holder raises one case per mismatch and dispatches it to the collecting unit, naming the
//! run and the mismatch's reference (`RUN#REFERENCE`, which the collector resolves to its own
//! record with `tierlink crosscheck show RUN`), never a key or a value: the holder's keys may be
//! the very ID numbers the collector lacks. The collector corrects its record
//! through the normal write path, or confirms it, and reports. A later run settles each reported
//! case: verified and closed where the mismatch no longer stands, sent back where it does.

use std::collections::HashSet;

use tierlink_core::cases::{Action, Case, CaseError, Status, state::VERIFICATION};
use tierlink_core::crosscheck::{Mismatch, MismatchKind};
use tierlink_core::identity::NodeCode;
use tierlink_proto::v1::{CaseMove, Credential};

use super::{Cases, CasesError};
use crate::crosscheck::store::{CrossChecks, Run};

/// What sending back a run's mismatches did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SentBack {
    /// Verification cases raised and dispatched to the collector.
    pub raised: Vec<String>,
    /// Earlier cases closed: their mismatch no longer stands.
    pub closed: Vec<String>,
    /// Earlier cases sent back to the collector: their mismatch still stands.
    pub returned: Vec<String>,
}

/// The most verification cases one run sends back: more mismatches than this say the terms are
/// wrong (another catalog, another join item) more often than the records are.
pub const MAX_SENT_BACK: usize = 500;

/// The mismatch a verification case names: `RUN#REFERENCE`.
fn reference(mismatch: &Mismatch) -> String {
    format!("{}#{}", mismatch.run, mismatch.reference)
}

fn subject(m: &Mismatch, holder: &str) -> String {
    match &m.kind {
        MismatchKind::Differing { items } => format!(
            "核查 verify a record you collected: it differs from {holder} in {}",
            items.join(", ")
        ),
        MismatchKind::OnlyAtCollector => {
            format!("核查 verify a record you collected: {holder} holds no record that matches it")
        }
        MismatchKind::OnlyAtHolder => {
            format!(
                "核查 {holder} holds a record you have not collected: find and record it, or say why not"
            )
        }
    }
}

impl Cases {
    /// Sends back the mismatches of `run`, which this node (the holder) started against the
    /// collector, as verification cases by `credential`'s principal, dispatched to the
    /// collector's `department`; first settles the open verification cases of earlier runs of
    /// the same pair. A mismatch already open in an earlier case is not raised again.
    pub async fn send_back(
        &self,
        credential: &Credential,
        runs: &CrossChecks,
        run: &Run,
        department: &str,
    ) -> Result<SentBack, CasesError> {
        let collector: NodeCode = run
            .there()
            .split_once(':')
            .and_then(|(node, _)| node.parse().ok())
            .ok_or_else(|| CasesError::Store(format!("run {} names no collector", run.id)))?;
        let new = run.mismatches().len();
        if new > MAX_SENT_BACK {
            return Err(CaseError::Refused(format!(
                "run {} found {new} mismatches, more than the {MAX_SENT_BACK} one run sends back: check the catalogs, the join item and the compared items; the run is kept (`tierlink crosscheck show {}`)",
                run.id, run.id
            ))
            .into());
        }
        let mut done = SentBack::default();
        let mut open: HashSet<String> = HashSet::new();
        for case in self.cases()? {
            let Some((earlier, mismatch)) = self.verification_of(&case, runs, run)? else {
                continue;
            };
            if case.status == Status::Reported {
                let stands = runs
                    .still_stands(&mismatch, &run.id)
                    .map_err(|e| CasesError::Store(e.to_string()))?;
                let verify = CaseMove {
                    case_id: case.id.clone(),
                    action: Action::Verify.as_str().into(),
                    passed: !stands,
                    note: if stands {
                        format!(
                            "run {} still finds it: correct the record, or report it confirmed with the evidence",
                            run.id
                        )
                    } else {
                        format!("run {} no longer finds it", run.id)
                    },
                    ..CaseMove::default()
                };
                self.act(credential, verify, "").await?;
                if stands {
                    done.returned.push(case.id.clone());
                } else {
                    let close = CaseMove {
                        case_id: case.id.clone(),
                        action: Action::Close.as_str().into(),
                        ..CaseMove::default()
                    };
                    self.act(credential, close, "").await?;
                    done.closed.push(case.id.clone());
                    continue;
                }
            }
            if !case.status.is_closed() {
                open.insert(earlier);
            }
        }
        for mismatch in run.mismatches() {
            let named = reference(&mismatch);
            let same = |r: &String| r.split_once('#').map(|(_, x)| x) == Some(&mismatch.reference);
            if open.iter().any(same) {
                continue;
            }
            let raised = self
                .act(
                    credential,
                    CaseMove {
                        action: Action::Raise.as_str().into(),
                        channel: "4".into(),
                        class: VERIFICATION.into(),
                        subject: subject(&mismatch, run.here()),
                        crosscheck: named,
                        ..CaseMove::default()
                    },
                    "",
                )
                .await?;
            let id = raised
                .summary
                .map(|s| s.case_id)
                .ok_or_else(|| CasesError::Store("a raised case without a summary".into()))?;
            let dispatch = CaseMove {
                case_id: id.clone(),
                action: Action::Dispatch.as_str().into(),
                to: collector.to_string(),
                to_department: department.into(),
                route: 1,
                ..CaseMove::default()
            };
            self.act(credential, dispatch, "").await?;
            done.raised.push(id);
        }
        Ok(done)
    }

    /// For a verification case this node raised from a run of the same pair as `run`, the
    /// reference it names and its mismatch.
    fn verification_of(
        &self,
        case: &Case,
        runs: &CrossChecks,
        run: &Run,
    ) -> Result<Option<(String, Mismatch)>, CasesError> {
        if case.class != VERIFICATION || case.raised_by != self.me || case.crosscheck.is_empty() {
            return Ok(None);
        }
        let Some((earlier, reference)) = case.crosscheck.split_once('#') else {
            return Ok(None);
        };
        let Some(kept) = runs.get(earlier)? else {
            return Ok(None);
        };
        if crate::crosscheck::store::pair(&kept.terms) != crate::crosscheck::store::pair(&run.terms)
        {
            return Ok(None);
        }
        Ok(kept
            .mismatches()
            .into_iter()
            .find(|m| m.reference == reference)
            .map(|m| (case.crosscheck.clone(), m)))
    }
}
