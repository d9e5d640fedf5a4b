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

#[test]
fn a_message_repeating_a_long_value_is_clipped_at_a_character_and_says_how_much_more() {
    assert_eq!(clip("短", 5), "短");
    assert_eq!(clip("一二三四五六", 4), "一二三四… (2 more characters)");
    let long = "x".repeat(60_000);
    let clipped = clip(&long, MAX_MESSAGE_CHARS);
    assert!(
        clipped.ends_with("… (55,904 more characters)"),
        "{}",
        &clipped[4090..]
    );
}
