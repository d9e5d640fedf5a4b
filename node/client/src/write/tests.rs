use tierlink_proto::v1::Row;

use super::*;

fn rows(sizes: &[usize]) -> Vec<Vec<String>> {
    sizes
        .iter()
        .map(|&n| vec!["k".into(), "备".repeat(n / 3)])
        .collect()
}

#[test]
fn a_row_adds_what_prost_encodes() {
    let rows = rows(&[0, 30, 300, 120_000]);
    let request = PutRecordsRequest {
        catalog: "103001001/000099".into(),
        columns: vec!["building_code".into(), "notes".into()],
        rows: rows.iter().map(|v| Row { values: v.clone() }).collect(),
        ..PutRecordsRequest::default()
    };
    let empty = PutRecordsRequest {
        rows: Vec::new(),
        ..request.clone()
    };
    assert_eq!(
        empty.encoded_len() + rows.iter().map(|r| row_bytes(r)).sum::<usize>(),
        request.encoded_len()
    );
}

#[test]
fn requests_are_cut_by_records_and_by_bytes() {
    // Many small rows: by count.
    let small = rows(&[300; 12_001]);
    let cuts = cut(&small, 50, Batching::Cut(5000)).unwrap();
    assert_eq!(cuts, [0..5000, 5000..10_000, 10_000..12_001]);

    // 120 kB rows: by bytes, each request under the budget, none lost or repeated.
    let large = rows(&[120_000; 1000]);
    let cuts = cut(&large, 50, Batching::Cut(5000)).unwrap();
    assert_eq!(cuts[0], 0..34);
    assert_eq!(
        cuts.iter().cloned().flatten().collect::<Vec<_>>(),
        (0..1000).collect::<Vec<_>>()
    );
    for c in &cuts {
        let bytes: usize = 50 + large[c.clone()].iter().map(|r| row_bytes(r)).sum::<usize>();
        assert!(bytes <= DEFAULT_BATCH_BYTES, "{c:?}: {bytes}");
    }

    // A row over the budget goes alone.
    let mixed = rows(&[300, 5_000_000, 300, 300]);
    let cuts = cut(&mixed, 50, Batching::Cut(5000)).unwrap();
    assert_eq!(cuts, [0..1, 1..2, 2..4]);

    assert!(cut(&[], 50, Batching::Cut(10)).unwrap().is_empty());
}

#[test]
fn a_record_count_that_cannot_fit_is_refused_with_one_that_can() {
    let large = rows(&[120_000; 1000]);
    assert_eq!(
        cut(&large, 50, Batching::Exactly(400)).unwrap(),
        [0..400, 400..800, 800..1000]
    );
    let err = cut(&large, 50, Batching::Exactly(1000)).unwrap_err();
    assert_eq!(err.records, 0..1000);
    assert_eq!(err.fits, 559);
    assert_eq!(
        cut(&large, 50, Batching::Exactly(err.fits)).unwrap().len(),
        2
    );
    assert!(cut(&large, 50, Batching::Exactly(err.fits + 1)).is_err());
    let text = err.to_string();
    assert!(
        text.starts_with("records 1–1000 make a request of 120.0 MB (")
            && text.ends_with(
                "over the 64 MiB a message may carry: write at most 559 records a batch"
            ),
        "{text}"
    );
}
