//! What "now" is for expiry. Every store that keeps expiry times itself
//! (memory; SQL compares with the time Keyway sends) reads it through a
//! [`Clock`]: the system's wall clock in production, or, in tests, the wall
//! clock plus an amount the test moves forward ([`Clock::adjustable`],
//! [`Clock::advance`]), so that a TTL runs out without the test waiting
//! for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Expiry, Item, Ttl};

/// Milliseconds since the unix epoch by the system's wall clock, the unit of
/// every expiry in Keyway.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A clock expiry is read by. Cloning shares it: a test advances the clock
/// its store holds.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// How far a test has moved this clock ahead of the wall clock; `None`
    /// for the system clock (one less load on every read).
    ahead_ms: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system's wall clock: what every configured store reads.
    pub const fn system() -> Self {
        Self { ahead_ms: None }
    }

    /// The wall clock, plus whatever [`Clock::advance`] adds.
    pub fn adjustable() -> Self {
        Self {
            ahead_ms: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    /// Moves an adjustable clock forward. The system clock cannot be moved:
    /// calling this on it is a bug in the test, and panics.
    pub fn advance(&self, by: Duration) {
        let ahead = self
            .ahead_ms
            .as_ref()
            .expect("only a Clock::adjustable() can be advanced");
        ahead.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn now_ms(&self) -> u64 {
        match &self.ahead_ms {
            None => now_ms(),
            Some(ahead) => now_ms().saturating_add(ahead.load(Ordering::Relaxed)),
        }
    }

    /// Whether `expiry` has passed by this clock.
    pub fn has_passed(&self, expiry: Expiry) -> bool {
        expiry.is_expired_at(self.now_ms())
    }

    /// The TTL of a live item (or of none) by this clock.
    pub fn ttl_of(&self, item: Option<&Item>) -> Ttl {
        match item.map(|item| item.expiry) {
            None => Ttl::Missing,
            Some(Expiry::Never) => Ttl::Persistent,
            Some(Expiry::At(at)) => Ttl::Millis(at.saturating_sub(self.now_ms())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_when_told_and_the_system_one_does_not() {
        let clock = Clock::adjustable();
        let shared = clock.clone();
        let soon = Expiry::At(clock.now_ms() + 60_000);
        assert!(!clock.has_passed(soon));
        shared.advance(Duration::from_secs(61));
        assert!(clock.has_passed(soon));
        let item = Item {
            value: bytes::Bytes::new(),
            flags: 0,
            cas: 0,
            expiry: Expiry::At(clock.now_ms() + 5_000),
        };
        assert!(matches!(clock.ttl_of(Some(&item)), Ttl::Millis(ms) if ms <= 5_000 && ms > 4_000));
        assert!(!Clock::system().has_passed(soon));
        let moved = std::panic::catch_unwind(|| Clock::system().advance(Duration::from_secs(1)));
        assert!(moved.is_err());
    }
}
