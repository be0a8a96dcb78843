//! The engine's notion of "now".
//!
//! Wall-clock time in production; in tests, time that follows tokio's clock so that
//! `tokio::time::pause`/`advance` drive leases, delays and retention deterministically.

use std::sync::Arc;

use baton_core::Timestamp;

#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Timestamp + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Clock(Arc::new(Timestamp::now))
    }

    /// Starts at the current wall-clock time and then advances with `tokio::time`.
    pub fn tokio() -> Self {
        let base = Timestamp::now();
        let start = tokio::time::Instant::now();
        Clock(Arc::new(move || base.saturating_add(start.elapsed())))
    }

    /// The wall clock shifted by an offset that [`ClockControl`] changes: a skewed
    /// machine (a constant offset) or a process that stalled (a jump), in tests.
    pub fn adjustable() -> (Self, ClockControl) {
        let offset = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let read = offset.clone();
        let clock = Clock(Arc::new(move || {
            let now = Timestamp::now().as_millis();
            Timestamp::from_millis(
                now.saturating_add(read.load(std::sync::atomic::Ordering::Relaxed)),
            )
        }));
        (clock, ClockControl(offset))
    }

    pub fn now(&self) -> Timestamp {
        (self.0)()
    }
}

/// Moves an [`Clock::adjustable`] clock.
#[derive(Clone)]
pub struct ClockControl(Arc<std::sync::atomic::AtomicI64>);

impl ClockControl {
    /// Jumps forward (as a stalled process sees time when it resumes).
    pub fn advance(&self, by: std::time::Duration) {
        self.0
            .fetch_add(by.as_millis() as i64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sets the offset from the wall clock, in milliseconds (negative: behind).
    pub fn set_offset_ms(&self, ms: i64) {
        self.0.store(ms, std::sync::atomic::Ordering::Relaxed);
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
