//! Wrong tokens per source address: a guesser gets a few tries a minute, and then waits.
//!
//! Each source has a bucket of `per_minute` failures, refilled at one every `60 s / per_minute`
//! (GCRA, from the governor crate). A caller asks [`Guesses::check`] before it checks a token and
//! reports [`Guesses::failed`] after a token is refused; a correct token costs nothing. Once a
//! source's bucket is empty it is refused for one refill interval, so after its first
//! `per_minute` failures it can fail at most once an interval. IPv6 sources count by their /64,
//! the block one host is given, so that a host cannot step through its own addresses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// Failures between two sweeps of sources whose buckets are full again, which bounds the memory
/// of addresses seen once.
const SWEEP_EVERY: u64 = 1024;

/// A source refused for now, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "too many wrong tokens from this address: try again in {} s",
    self.seconds()
)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds to wait, rounded up: the value of an HTTP `Retry-After` header (RFC 9110).
    pub fn seconds(&self) -> u64 {
        self.0.as_nanos().div_ceil(1_000_000_000) as u64
    }
}

type Limiter<C> =
    RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, C, StateInformationMiddleware>;

/// Failed token guesses per source address, on clock `C` (the system's monotonic clock unless a
/// test gives another).
pub struct Guesses<C: Clock = DefaultClock> {
    failures: Limiter<C>,
    clock: C,
    /// Sources whose bucket is empty, until when.
    refused: Mutex<HashMap<IpAddr, C::Instant>>,
    /// How long one failure takes to come back.
    refill: Duration,
    reported: AtomicU64,
}

impl Guesses {
    /// `per_minute` failures a minute per source (node.toml `[limits] token_guesses_per_minute`;
    /// 0, which the configuration refuses, counts as 1).
    pub fn new(per_minute: u32) -> Self {
        Self::with_clock(per_minute, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Guesses<C> {
    /// As [`Guesses::new`], on `clock`.
    pub fn with_clock(per_minute: u32, clock: C) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute);
        Self {
            failures: RateLimiter::dashmap_with_clock(quota, clock.clone())
                .with_middleware::<StateInformationMiddleware>(),
            clock,
            refused: Mutex::default(),
            refill: quota.replenish_interval(),
            reported: AtomicU64::new(0),
        }
    }

    /// Whether `ip` may present a token now; if not, how long it must wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let source = source(ip);
        let now = self.clock.now();
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        match refused.get(&source) {
            Some(&until) if until > now => Err(RetryAfter(Duration::from_nanos(
                until.duration_since(now).into(),
            ))),
            Some(_) => {
                refused.remove(&source);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a refused token from `ip`; the failure that empties its bucket refuses it for one
    /// refill interval.
    pub fn failed(&self, ip: IpAddr) {
        let source = source(ip);
        let now = self.clock.now();
        let spent = match self.failures.check_key(&source) {
            Ok(state) => state.remaining_burst_capacity() == 0,
            // Only failures that raced past check() find the bucket already empty.
            Err(_) => true,
        };
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if spent {
            refused.insert(source, now + self.refill.into());
        }
        if self.reported.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            refused.retain(|_, until| *until > now);
            self.failures.retain_recent();
            self.failures.shrink_to_fit();
        }
    }
}

/// The address a source is counted by: IPv4 as it is (also when mapped into IPv6), IPv6 by its
/// /64.
pub(super) fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

#[cfg(test)]
mod tests;
