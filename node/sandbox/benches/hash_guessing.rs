//! How fast a member can undo a keyed hash by hashing every candidate value: the figure behind
//! `tierlink_core::policy::GUESSABLE_BELOW`. Every member holds the federation's hash key, so
//! it can run `Redactor::apply(Hash, ..)` itself; this is that loop, on one core, over the
//! candidates of a 10-character value (a date), of an 11-digit phone number and of an
//! 18-character ID number: hashing alone, and hashing and looking each up among the hashes
//! received.
//!
//! Run: `cargo bench -p tierlink-sandbox --bench hash_guessing` (prints a table; no criterion:
//! the figure is a rate over many millions of hashes, as the attacker's loop runs them).

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Instant;

use tierlink_core::policy::{Action, HashKey, Redactor};

/// Candidates hashed per measurement.
const CANDIDATES: u64 = 20_000_000;

fn main() {
    let redactor = Redactor::new(Some(HashKey::generate().expect("a key")));
    // The hashes a reader received, to look each candidate's up among.
    let received: HashSet<Vec<u8>> = (0..1000u64)
        .map(|n| {
            let date = format!("1990-01-{:02}", n % 28 + 1);
            redactor.apply_str(Action::Hash, &date).into_bytes()
        })
        .collect();
    println!(
        "| candidate values | `Redactor::apply(Hash, ..)` alone (one core) | and looked up among the hashes received | 2^32 candidates take |"
    );
    println!("|---|---|---|---|");
    for (what, width, prefix) in [
        ("dates, YYYY-MM-DD", 10, ""),
        ("phone numbers, 11 digits", 11, "13"),
        ("ID numbers, 18 characters", 18, "420502"),
    ] {
        let hashed = rate(width, prefix, |candidate, out| {
            redactor.apply(Action::Hash, black_box(candidate), out);
            black_box(&out);
        });
        let looked_up = rate(width, prefix, |candidate, out| {
            redactor.apply(Action::Hash, black_box(candidate), out);
            black_box(received.contains(out.as_slice()));
        });
        println!(
            "| {what} | {:.1} million/s | {:.1} million/s | {:.0} s ({:.0} s looked up) |",
            hashed / 1e6,
            looked_up / 1e6,
            4_294_967_296.0 / hashed,
            4_294_967_296.0 / looked_up
        );
    }
}

/// Candidates a second through `step`, over [`CANDIDATES`] values of `width` characters
/// starting with `prefix`, in order: an odometer of digits, so the next one costs an increment,
/// not a formatting.
fn rate(width: usize, prefix: &str, mut step: impl FnMut(&[u8], &mut Vec<u8>)) -> f64 {
    let mut candidate = prefix.as_bytes().to_vec();
    candidate.resize(width, b'0');
    let mut out = Vec::with_capacity(16);
    let start = Instant::now();
    for _ in 0..CANDIDATES {
        out.clear();
        step(&candidate, &mut out);
        for digit in candidate[prefix.len()..].iter_mut().rev() {
            if *digit == b'9' {
                *digit = b'0';
            } else {
                *digit += 1;
                break;
            }
        }
    }
    CANDIDATES as f64 / start.elapsed().as_secs_f64()
}
