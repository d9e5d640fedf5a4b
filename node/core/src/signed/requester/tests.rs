use super::*;

const MINUTE: i64 = 60 * 1_000_000;

#[test]
fn a_request_is_served_once_while_its_requester_could_still_be_accepted() {
    let seen = SeenRequests::default();
    let node: NodeCode = "420502".parse().unwrap();
    let other: NodeCode = "420503".parse().unwrap();
    seen.first_use(&node, "r-1", 0).unwrap();
    let again = seen.first_use(&node, "r-1", 9 * MINUTE).unwrap_err();
    assert!(again.contains("already served"), "{again}");
    seen.first_use(&other, "r-1", 9 * MINUTE).unwrap();
    // Ten minutes on, a requester signed for r-1 is refused as too old anyway: forgotten.
    seen.first_use(&node, "r-2", 10 * MINUTE + 1).unwrap();
    assert_eq!(seen.len(), 2, "r-1 of 420502 forgotten, the others kept");
    seen.first_use(&node, "r-1", 10 * MINUTE + 2).unwrap();
}

#[test]
fn the_oldest_requests_are_forgotten_as_time_passes() {
    let seen = SeenRequests::default();
    let node: NodeCode = "420502".parse().unwrap();
    for n in 0..5_000 {
        seen.first_use(&node, &format!("r-{n}"), n * 1_000).unwrap();
    }
    assert_eq!(seen.len(), 5_000, "none is ten minutes old yet");
    seen.first_use(&node, "late", 10 * MINUTE + 2_500_000)
        .unwrap();
    // Those used more than ten minutes before: r-0 to r-2499.
    assert_eq!(seen.len(), 2_500 + 1);
    assert!(
        seen.first_use(&node, "r-2500", 10 * MINUTE + 2_500_000)
            .is_err()
    );
    seen.first_use(&node, "r-2499", 10 * MINUTE + 2_500_000)
        .unwrap();
}
