//! The engine's notion of "now".
//!
//! A clock is a time source plus a **correction**: on a shared store (PostgreSQL) the
//! engine sets the correction to the difference between the database server's clock and
//! this machine's ([`Clock::align`]), so that every process of a cluster writes and
//! compares lease deadlines, heartbeats and peer liveness on one clock, however skewed
//! their machines are. On SQLite the correction stays 0: one process, one clock.
//!
//! The source is the wall clock in production; in tests, a wall clock with an offset the
//! test moves ([`Clock::adjustable`]) to play a skewed machine or a process that stalled
//! past its lease, so lease expiry, rescue and peer liveness are driven deterministically
//! without waiting them out. (tokio's paused time does not fit here: the store's I/O
//! runs on threads tokio cannot see, so a paused clock would jump while a query runs.)

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use baton_core::Timestamp;

#[derive(Clone)]
pub struct Clock {
    source: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    /// Milliseconds added to the source (see [`Clock::align`]).
    correction: Arc<AtomicI64>,
}

impl Clock {
    fn from_source(source: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        Clock {
            source: Arc::new(source),
            correction: Arc::new(AtomicI64::new(0)),
        }
    }

    pub fn system() -> Self {
        Clock::from_source(Timestamp::now)
    }

    /// The wall clock shifted by an offset that [`ClockControl`] changes: a skewed
    /// machine (a constant offset) or a process that stalled (a jump), in tests.
    pub fn adjustable() -> (Self, ClockControl) {
        let offset = Arc::new(AtomicI64::new(0));
        let read = offset.clone();
        let clock = Clock::from_source(move || {
            let now = Timestamp::now().as_millis();
            Timestamp::from_millis(now.saturating_add(read.load(Ordering::Relaxed)))
        });
        (clock, ClockControl(offset))
    }

    pub fn now(&self) -> Timestamp {
        let t = (self.source)().as_millis();
        Timestamp::from_millis(t.saturating_add(self.correction.load(Ordering::Relaxed)))
    }

    /// Aligns this clock with a reference clock read between two readings of the source
    /// (`before`, `reference`, `after`, all in milliseconds of their own clocks): the
    /// reference is taken to be read half-way. Returns the correction now in force.
    pub fn align(&self, before: Timestamp, reference: Timestamp, after: Timestamp) -> Duration {
        let mid = (before.as_millis() + after.as_millis()) / 2;
        let correction = reference.as_millis() - mid;
        self.correction.store(correction, Ordering::Relaxed);
        Duration::from_millis(correction.unsigned_abs())
    }

    /// The source's reading, without the correction (what [`Clock::align`] compares).
    pub fn uncorrected(&self) -> Timestamp {
        (self.source)()
    }
}

/// Moves an [`Clock::adjustable`] clock.
#[derive(Clone)]
pub struct ClockControl(Arc<AtomicI64>);

impl ClockControl {
    /// Jumps forward (as a stalled process sees time when it resumes).
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }

    /// Sets the offset from the wall clock, in milliseconds (negative: behind).
    pub fn set_offset_ms(&self, ms: i64) {
        self.0.store(ms, Ordering::Relaxed);
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_takes_the_reference_as_read_half_way() {
        let (clock, skew) = Clock::adjustable();
        skew.set_offset_ms(3_600_000);
        let before = clock.uncorrected();
        let reference = Timestamp::from_millis(before.as_millis() - 3_600_000 + 5);
        let after = Timestamp::from_millis(before.as_millis() + 10);
        let c = clock.align(before, reference, after);
        assert_eq!(c, Duration::from_millis(3_600_000));
        // Corrected, the skewed clock reads (about) the reference's time.
        let diff = clock.now().as_millis() - Timestamp::now().as_millis();
        assert!(diff.abs() < 1000, "{diff}");
    }
}
