//! What the load did, as a history of operations with their invocation and completion times,
//! and the checks run on it after the faults are healed.
//!
//! Directory registers are checked for linearizability with the algorithm of Wing & Gong
//! ("Testing and verifying concurrent objects", J. Parallel Distrib. Comput. 17, 1993) as Lowe
//! improved it ("Testing for linearizability", 2017: a cache of visited configurations), one key
//! at a time, which P-compositionality makes sound (Horn & Kroening, "Faster linearizability
//! checking via P-compositionality", FORTE 2015) — the algorithm of Porcupine, which etcd's
//! robustness tests use. An operation whose outcome is unknown (the call failed in flight) may
//! take effect at any time after its invocation, or never: its completion is at infinity, as in
//! Jepsen's Knossos and in Porcupine.

use std::collections::HashSet;

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: it took effect.
    Ok,
    /// Known not to have taken effect (refused, or never sent).
    Failed,
    /// Unknown: the call failed in flight, so it may have taken effect.
    Indeterminate,
}

/// One operation on a register (a directory role's post, keyed by the role's id).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    /// Sets the value.
    Write(String),
    /// Read the value: `None` while the role is not defined.
    Read(Option<String>),
}

/// An operation of the history on one register.
#[derive(Clone, Debug)]
pub struct Timed {
    /// What it did.
    pub op: RegisterOp,
    /// When it was invoked, µs since the run started.
    pub call: u64,
    /// When it completed, µs since the run started; `None` when its outcome is unknown.
    pub ret: Option<u64>,
}

/// Why a register's history is not linearizable.
#[derive(Debug, thiserror::Error)]
#[error("no linearization of {operations} operations; the first that none can explain: {first:?}")]
pub struct NotLinearizable {
    /// Operations in the history.
    pub operations: usize,
    /// The operation the longest partial linearization could not take next: it returned
    /// before any order of the operations so far could include it.
    pub first: Timed,
}

/// Checks that `history` (operations on one register that starts undefined) is linearizable.
///
/// # Errors
/// [`NotLinearizable`] naming the first operation no order of the history can explain.
pub fn check_register(history: &[Timed]) -> Result<(), NotLinearizable> {
    // Events in time order, each operation's call before its return; a call at the same time
    // as a return goes first (the two count as concurrent).
    #[derive(Clone, Copy)]
    struct Event {
        op: usize,
        call: bool,
    }
    let mut events: Vec<(u64, bool, Event)> = Vec::with_capacity(history.len() * 2);
    for (i, t) in history.iter().enumerate() {
        events.push((t.call, false, Event { op: i, call: true }));
        events.push((
            t.ret.unwrap_or(u64::MAX),
            true,
            Event { op: i, call: false },
        ));
    }
    events.sort_by_key(|(at, is_return, _)| (*at, *is_return));
    // A doubly linked list over the events, slot 0 its head.
    let n = events.len();
    let mut next: Vec<usize> = (1..=n + 1).collect();
    let mut prev: Vec<usize> = (0..=n).map(|i| i.saturating_sub(1)).collect();
    next.truncate(n + 1);
    next[n] = usize::MAX;
    let event = |slot: usize| events[slot - 1].2;
    let mut return_slot = vec![0; history.len()];
    for (slot, (_, _, e)) in events.iter().enumerate() {
        if !e.call {
            return_slot[e.op] = slot + 1;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, slot: usize| {
        let (p, nx) = (prev[slot], next[slot]);
        next[p] = nx;
        if nx != usize::MAX {
            prev[nx] = p;
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, slot: usize| {
        let (p, nx) = (prev[slot], next[slot]);
        next[p] = slot;
        if nx != usize::MAX {
            prev[nx] = slot;
        }
    };
    let words = history.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut state: Option<String> = None;
    let mut seen: HashSet<(Vec<u64>, Option<String>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<String>)> = Vec::new();
    // The operation blocking the deepest partial linearization, and that depth.
    let mut blocking = (0, 0);
    let mut slot = next[0];
    while next[0] != usize::MAX {
        let e = event(slot);
        if e.call {
            let after = match &history[e.op].op {
                RegisterOp::Write(v) => Some(Some(v.clone())),
                RegisterOp::Read(v) if *v == state => Some(state.clone()),
                RegisterOp::Read(_) => None,
            };
            if let Some(after) = after {
                linearized[e.op / 64] |= 1 << (e.op % 64);
                if seen.insert((linearized.clone(), after.clone())) {
                    stack.push((slot, std::mem::replace(&mut state, after)));
                    unlink(&mut next, &mut prev, slot);
                    unlink(&mut next, &mut prev, return_slot[e.op]);
                    slot = next[0];
                    continue;
                }
                linearized[e.op / 64] &= !(1 << (e.op % 64));
            }
            slot = next[slot];
        } else {
            // An operation returned before any order could take it: undo the last choice.
            if stack.len() >= blocking.0 {
                blocking = (stack.len(), e.op);
            }
            let Some((call_slot, before)) = stack.pop() else {
                return Err(NotLinearizable {
                    operations: history.len(),
                    first: history[blocking.1].clone(),
                });
            };
            let op = event(call_slot).op;
            state = before;
            linearized[op / 64] &= !(1 << (op % 64));
            relink(&mut next, &mut prev, return_slot[op]);
            relink(&mut next, &mut prev, call_slot);
            slot = next[call_slot];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: &str, call: u64, ret: Option<u64>) -> Timed {
        Timed {
            op: RegisterOp::Write(v.into()),
            call,
            ret,
        }
    }

    fn r(v: Option<&str>, call: u64, ret: u64) -> Timed {
        Timed {
            op: RegisterOp::Read(v.map(Into::into)),
            call,
            ret: Some(ret),
        }
    }

    #[test]
    fn concurrent_reads_may_see_either_side_of_a_write() {
        let history = [
            w("a", 0, Some(10)),
            w("b", 20, Some(40)),
            r(Some("a"), 21, 22),
            r(Some("b"), 23, 24),
            r(Some("b"), 41, 42),
        ];
        check_register(&history).unwrap();
    }

    #[test]
    fn a_stale_read_after_a_write_completed_is_not_linearizable() {
        let history = [
            w("a", 0, Some(10)),
            w("b", 20, Some(30)),
            r(Some("a"), 31, 32),
        ];
        let e = check_register(&history).unwrap_err();
        assert_eq!(e.first.op, RegisterOp::Read(Some("a".into())));
    }

    #[test]
    fn a_read_cannot_go_back_once_another_saw_the_newer_value() {
        let history = [
            w("a", 0, Some(10)),
            w("b", 20, Some(100)),
            r(Some("b"), 30, 40),
            r(Some("a"), 50, 60),
        ];
        check_register(&history).unwrap_err();
    }

    #[test]
    fn an_unknown_write_may_take_effect_late_or_never() {
        let late = [w("a", 0, None), r(None, 5, 6), r(Some("a"), 100, 101)];
        check_register(&late).unwrap();
        let never = [w("a", 0, None), r(None, 100, 101)];
        check_register(&never).unwrap();
        // But not before it was invoked.
        let early = [r(Some("a"), 0, 1), w("a", 5, None)];
        check_register(&early).unwrap_err();
    }

    #[test]
    fn a_value_never_written_is_not_linearizable() {
        let history = [w("a", 0, Some(1)), r(Some("z"), 2, 3)];
        check_register(&history).unwrap_err();
    }
}
