use super::*;

#[test]
fn byte_counts_read_as_people_write_them() {
    assert_eq!(human_bytes(512), "512 bytes");
    assert_eq!(human_bytes(120_094), "120.1 kB");
    assert_eq!(human_bytes(120_094_899), "120.1 MB");
    assert_eq!(human_bytes(MAX_MESSAGE_BYTES as u64), "64 MiB");
    assert_eq!(thousands(7), "7");
    assert_eq!(thousands(20_000), "20,000");
    assert_eq!(thousands(120_094_899), "120,094,899");
}
