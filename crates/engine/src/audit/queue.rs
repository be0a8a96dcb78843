//! Where audit entries wait for the writer: a bounded queue. While the store cannot take
//! entries (an outage, a full disk) and requests keep coming, memory stays bounded: past
//! [`CAPACITY`] waiting entries, new ones are counted and dropped, and the log records the
//! gap (an `audit.dropped` entry with the count) once the writer catches up.

use std::sync::atomic::{AtomicU64, Ordering};

use baton_store::NewAuditEntry;
use tokio::sync::mpsc;

/// Most entries waiting to be written, by default (`EngineConfig::audit_queue`).
pub(crate) const CAPACITY: usize = 100_000;

/// Where entries wait to be written.
pub(crate) struct AuditQueue {
    pub(super) tx: mpsc::Sender<NewAuditEntry>,
    pub(super) rx: std::sync::Mutex<Option<mpsc::Receiver<NewAuditEntry>>>,
    /// Entries dropped because the queue was full, not yet recorded as a gap.
    pub(super) dropped: AtomicU64,
}

impl AuditQueue {
    pub(crate) fn with_capacity(capacity: usize) -> AuditQueue {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        AuditQueue {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues `entry`, or counts it as dropped when the queue is full.
    pub(super) fn push(&self, entry: NewAuditEntry) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(entry) {
            let before = self.dropped.fetch_add(1, Ordering::Relaxed);
            if before.is_power_of_two() || before == 0 {
                tracing::warn!(
                    dropped = before + 1,
                    capacity = self.tx.max_capacity(),
                    "the audit queue is full (the store is not taking entries); dropping entries"
                );
            }
        }
    }

    /// How many entries were dropped since the last call.
    pub(super) fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }
}
