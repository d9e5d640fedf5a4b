use super::*;

#[test]
fn batches_round_trip_and_damage_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.tlb");
    let batches: Vec<SignedBatch> = (0..3u8)
        .map(|i| SignedBatch {
            header: vec![i; 10],
            records: vec![i; 1000],
            signature: vec![i; 64],
            producer_certificate: vec![],
        })
        .collect();
    let mut w = BatchWriter::create(&path).unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    assert_eq!(read_batches(&path).unwrap(), batches);

    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    assert!(
        read_batches(&path)
            .unwrap_err()
            .to_string()
            .contains("batch 2 is cut short")
    );
    std::fs::write(&path, b"hello").unwrap();
    assert!(
        read_batches(&path)
            .unwrap_err()
            .to_string()
            .contains("not a Tierlink batch file")
    );
}
