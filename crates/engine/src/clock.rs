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

    pub fn now(&self) -> Timestamp {
        (self.0)()
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
