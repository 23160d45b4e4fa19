//! One exponential backoff for every retry loop (agent: Envoy restarts and
//! certificate fetches; injector: the webhook caBundle; the local mesh
//! runner: container restarts). Deterministic, no jitter: delays are
//! `initial × factorⁿ`, capped at `max`, so tests can assert them exactly.
//!
//! ```
//! # use std::time::Duration;
//! # use rudder_model::backoff::Backoff;
//! let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
//! let delays: Vec<u64> = (0..4).map(|_| b.next_delay().as_secs()).collect();
//! assert_eq!(delays, [1, 2, 4, 5]);
//! b.reset(); // after a success
//! assert_eq!(b.next_delay(), Duration::from_secs(1));
//! ```

use std::time::Duration;

/// Exponential backoff: the policy (`initial`, `max`, `factor`) and how many
/// failures in a row it has counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: u32,
    failures: u32,
}

impl Backoff {
    /// Doubling from `initial`, never more than `max`.
    pub const fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            factor: 2,
            failures: 0,
        }
    }

    /// The same, growing by `factor` (at least 1) instead of 2.
    pub const fn with_factor(mut self, factor: u32) -> Backoff {
        self.factor = if factor == 0 { 1 } else { factor };
        self
    }

    /// The delay before retry `n` (0-based): `initial × factorⁿ`, at most `max`.
    pub fn delay(&self, n: u32) -> Duration {
        let mut d = self.initial;
        for _ in 0..n {
            if d >= self.max {
                break;
            }
            d = d.saturating_mul(self.factor);
        }
        d.min(self.max)
    }

    /// The delay the next failure waits, without counting it.
    pub fn current(&self) -> Duration {
        self.delay(self.failures)
    }

    /// Counts a failure and returns how long to wait before retrying.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.current();
        self.failures = self.failures.saturating_add(1);
        d
    }

    /// Failures counted since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// After a success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let got: Vec<u128> = (0..9).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(
            got,
            [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        assert_eq!(b.failures(), 9);
        assert_eq!(b.current(), Duration::from_secs(10));
        b.reset();
        assert_eq!(b.current(), Duration::from_millis(200));
        assert_eq!(b.next_delay(), Duration::from_millis(200));
    }

    #[test]
    fn pure_delays_factor_and_edges() {
        let b = Backoff::new(S, 30 * S);
        let secs: Vec<u64> = (0..8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        let t = Backoff::new(S, 100 * S).with_factor(3);
        assert_eq!(t.delay(2), 9 * S);
        // A cap below the first delay wins; huge counts neither overflow nor hang.
        assert_eq!(Backoff::new(5 * S, 2 * S).delay(0), 2 * S);
        assert_eq!(b.delay(u32::MAX), 30 * S);
        assert_eq!(Backoff::new(S, Duration::MAX).delay(200), Duration::MAX);
        assert_eq!(Backoff::new(S, 10 * S).with_factor(0).delay(5), S);
    }
}
