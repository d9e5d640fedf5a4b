use tierlink_client::{ClientError, Oversized, Written};

use super::*;

/// A failed request of records `failed` (positions from 0) after `written` were stored, the node
/// answering with `status`.
fn stopped(written: usize, failed: Range<usize>, status: tonic::Status) -> WriteError {
    let source = ClientError::Status(status);
    WriteError::Stopped {
        written: Written {
            records: written,
            created: written as u64,
            ..Default::default()
        },
        failed,
        maybe_stored: !source.not_carried_out(),
        source,
    }
}

#[test]
fn a_failed_import_says_what_is_stored_and_where_to_resume() {
    // Records on every other line, as a file with blank lines between them.
    let lines: Vec<usize> = (0..100).map(|n| 2 * n + 1).collect();
    let import = Writing::Import(None);
    let refused = tonic::Status::invalid_argument("catalog 103001001/000099: refused");

    let first = write_failure(
        "f.jsonl",
        &lines,
        import,
        stopped(0, 0..34, refused.clone()),
    );
    assert_eq!(
        first,
        "f.jsonl: writing records 1–34 (lines 1–67) failed: invalid request: catalog 103001001/000099: refused\n  none of them is stored; nothing before them was written\n  resume by importing the same file again: a record already stored as it is stores no new version (the failed batch starts on line 1)"
    );

    let later = write_failure("f.jsonl", &lines, import, stopped(34, 34..68, refused));
    assert!(
        later.contains("none of them is stored; records 1–34 (lines 1–67) are stored")
            && later.ends_with("(the failed batch starts on line 69)"),
        "{later}"
    );

    // The connection failed in flight: the node may have stored them.
    let lost = tonic::Status::unavailable("connection reset");
    let lost = write_failure("f.jsonl", &lines, import, stopped(1, 1..2, lost));
    assert!(
        lost.contains("writing record 2 (line 3) failed")
            && lost.contains("may have stored some or all of them; record 1 (line 1) is stored")
            && lost.ends_with("(the failed batch starts on line 3)"),
        "{lost}"
    );
}

#[test]
fn a_put_too_large_for_a_message_points_to_import() {
    let lines: Vec<usize> = (1..=600).collect();
    let oversized = Oversized {
        records: 0..600,
        bytes: 72_056_400,
        fits: 558,
    };
    let put = write_failure("record", &lines, Writing::Put, oversized.clone().into());
    assert!(
        put.contains("the 600 records take 72.1 MB together, over the 64 MiB a message may carry")
            && put.contains("`tierlink records import`"),
        "{put}"
    );
    let import = write_failure(
        "f.jsonl",
        &lines,
        Writing::Import(Some(600)),
        oversized.into(),
    );
    assert!(
        import.ends_with(
            "use --batch-size 558 or less, or leave --batch-size out to cut batches by size"
        ),
        "{import}"
    );
}
