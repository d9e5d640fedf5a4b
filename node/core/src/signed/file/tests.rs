use super::*;

fn batches() -> Vec<SignedBatch> {
    (0..3u8)
        .map(|i| SignedBatch {
            header: vec![i; 10],
            records: vec![i; 1000],
            signature: vec![i; 64],
            producer_certificate: vec![],
        })
        .collect()
}

fn write(path: &Path, batches: &[SignedBatch]) {
    let mut w = BatchWriter::create(path).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn batches_round_trip_and_damage_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.tlb");
    write(&path, &batches());
    assert_eq!(read_batches(&path).unwrap(), batches());

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

#[test]
fn a_length_no_batch_could_have_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.tlb");
    write(&path, &batches()[..1]);
    let mut bytes = std::fs::read(&path).unwrap();
    // A length prefix of 4 GiB, as a flipped bit could make it.
    let mut prefix = Vec::new();
    prost::encoding::encode_varint(4 << 30, &mut prefix);
    bytes.extend_from_slice(&prefix);
    std::fs::write(&path, &bytes).unwrap();
    let err = read_batches(&path).unwrap_err().to_string();
    assert!(
        err.contains("batch 1 claims 4,294,967,296 bytes, more than a batch can hold (64 MiB)"),
        "{err}"
    );
}

#[test]
fn an_unfinished_file_leaves_nothing_behind_and_an_older_file_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.tlb");
    write(&path, &batches()[..1]);
    let mut w = BatchWriter::create(&path).unwrap();
    w.write(&batches()[1]).unwrap();
    drop(w);
    assert_eq!(read_batches(&path).unwrap(), batches()[..1]);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["b.tlb"]);

    let fresh = dir.path().join("fresh.tlb");
    drop(BatchWriter::create(&fresh).unwrap());
    assert!(!fresh.exists());
}
