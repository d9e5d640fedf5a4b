//! The fault harness as CI runs it: `tierlink sim faults` for a bounded time — six node
//! processes under load while the nemesis kills, pauses, partitions and skews them — must end
//! with nothing acknowledged lost, linearizable directory reads, and every store reopened with
//! its audit chain intact. The seed changes with every run (printed, to replay a failure with
//! `tierlink sim faults --seed S`); `TIERLINK_FAULT_SECONDS` and `TIERLINK_FAULT_SEED` override
//! the length and the seed.

mod util;

use util::*;

#[test]
fn nothing_acknowledged_is_lost_under_kills_pauses_partitions_and_clock_skew() {
    let dir = tempfile::tempdir().unwrap();
    let seconds = std::env::var("TIERLINK_FAULT_SECONDS").unwrap_or_else(|_| "120".into());
    let seed = std::env::var("TIERLINK_FAULT_SEED").unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string()
    });
    let root = dir.path().join("run");
    let out = tierlink(&[
        "sim",
        "faults",
        "--seconds",
        &seconds,
        "--seed",
        &seed,
        "--dir",
        root.to_str().unwrap(),
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    if !out.status.success() {
        // The nodes' logs say what each did; kept in the test's output, as the directory goes.
        for log in std::fs::read_dir(&root).unwrap().flatten() {
            let path = log.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                println!("--- {} (last lines)", path.display());
                for line in tail.into_iter().rev() {
                    println!("{line}");
                }
            }
        }
        panic!("the fault harness failed (seed {seed})");
    }
    assert!(text.contains("lost = 0"), "{text}");
    assert!(text.contains("linearizable = yes"), "{text}");
    assert!(text.contains("violations: none"), "{text}");
    for fault in ["kills", "pauses", "partitions"] {
        let count: u64 = text
            .split(&format!("{fault} "))
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(count > 0, "no {fault} in {seconds} s:\n{text}");
    }
}
