use std::time::Duration;

use governor::clock::FakeRelativeClock;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_source_fails_its_quota_then_waits_one_refill_while_other_sources_go_on() {
    let clock = FakeRelativeClock::default();
    let guesses = Guesses::with_clock(10, clock.clone());
    let (guesser, other) = (ip("192.0.2.7"), ip("198.51.100.1"));
    for _ in 0..10 {
        guesses.check(guesser).unwrap();
        guesses.failed(guesser);
    }
    // Ten a minute: one comes back every 6 s.
    let refused = guesses.check(guesser).unwrap_err();
    assert_eq!(refused, RetryAfter(Duration::from_secs(6)));
    assert_eq!(
        refused.to_string(),
        "too many wrong tokens from this address: try again in 6 s"
    );
    guesses.check(other).unwrap();

    clock.advance(Duration::from_secs(5));
    assert_eq!(
        guesses.check(guesser),
        Err(RetryAfter(Duration::from_secs(1)))
    );
    clock.advance(Duration::from_secs(1));
    guesses.check(guesser).unwrap();
    // Then one failure per refill, no more.
    guesses.failed(guesser);
    assert_eq!(
        guesses.check(guesser),
        Err(RetryAfter(Duration::from_secs(6)))
    );

    // A minute without failures fills the bucket again.
    clock.advance(Duration::from_secs(60));
    for _ in 0..10 {
        guesses.check(guesser).unwrap();
        guesses.failed(guesser);
    }
    assert!(guesses.check(guesser).is_err());
}

#[test]
fn a_source_that_presents_good_tokens_is_never_held_up() {
    let guesses = Guesses::with_clock(1, FakeRelativeClock::default());
    for _ in 0..1000 {
        guesses.check(ip("192.0.2.7")).unwrap();
    }
}

#[test]
fn ipv6_sources_count_by_their_64_and_ipv4_mapped_addresses_as_ipv4() {
    let guesses = Guesses::with_clock(2, FakeRelativeClock::default());
    guesses.failed(ip("2001:db8:0:1::1"));
    guesses.failed(ip("2001:db8:0:1::2"));
    assert!(guesses.check(ip("2001:db8:0:1:ffff::9")).is_err());
    guesses.check(ip("2001:db8:0:2::1")).unwrap();

    guesses.failed(ip("::ffff:192.0.2.1"));
    guesses.failed(ip("192.0.2.1"));
    assert!(guesses.check(ip("192.0.2.1")).is_err());
    assert!(guesses.check(ip("::ffff:192.0.2.1")).is_err());
}

#[test]
fn the_wait_is_told_in_whole_seconds_rounded_up() {
    assert_eq!(RetryAfter(Duration::from_millis(1500)).seconds(), 2);
    assert_eq!(RetryAfter(Duration::from_secs(6)).seconds(), 6);
    assert_eq!(RetryAfter(Duration::from_nanos(1)).seconds(), 1);
}
