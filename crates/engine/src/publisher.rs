//! Publishing committed events.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use baton_core::{EventKind, TaskEvent};
use tokio::sync::Notify;

use crate::hub::EventHub;

/// Publishes committed events: live subscribers, the dispatcher's wake-up, the active count.
#[derive(Clone)]
pub(crate) struct Publisher {
    pub hub: Arc<EventHub>,
    pub active: Arc<AtomicI64>,
    pub wake: Arc<Notify>,
    /// Set when pending work may be waiting for a free slot; finished runs then wake the
    /// dispatcher. Clear, a finished run does not: the dispatcher's claim would find
    /// nothing and only delay the next write.
    pub backlog: Arc<AtomicBool>,
    /// Bumped at every change of `active`, so that a recount from the store can tell
    /// whether changes landed while it read (and is then stale).
    pub active_changes: Arc<std::sync::atomic::AtomicU64>,
    /// Wakes the webhook delivery loop: an event that may have enqueued a delivery.
    pub deliveries: Arc<Notify>,
    /// Set while the delivery loop finds work: only then do ended tasks wake it (without
    /// webhooks, the hot path does not wake it at all; it polls).
    pub deliveries_active: Arc<AtomicBool>,
}

impl Publisher {
    pub(crate) fn publish(&self, events: &[TaskEvent]) {
        self.publish_with(events, true);
    }

    /// `wake_for_new`: whether new tasks should wake the dispatcher (not when the
    /// submission already claimed what could run).
    pub(crate) fn publish_with(&self, events: &[TaskEvent], wake_for_new: bool) {
        let mut delta = 0i64;
        let mut runnable = false;
        let mut ended = false;
        for e in events {
            ended |= matches!(
                e.kind,
                EventKind::Completed
                    | EventKind::Failed
                    | EventKind::Cancelled
                    | EventKind::InputRequired
                    | EventKind::LeaseExpired
            );
            match e.kind {
                EventKind::Created => {
                    delta += 1;
                    runnable |= wake_for_new;
                }
                EventKind::Retried => {
                    delta += 1;
                    runnable = true;
                }
                EventKind::Completed | EventKind::Failed | EventKind::Cancelled => delta -= 1,
                EventKind::RetryScheduled | EventKind::Released | EventKind::LeaseExpired => {
                    runnable = true
                }
                _ => {}
            }
        }
        if delta != 0 {
            self.active.fetch_add(delta, Ordering::Relaxed);
            self.active_changes.fetch_add(1, Ordering::Release);
        }
        if runnable {
            self.backlog.store(true, Ordering::Relaxed);
            self.wake.notify_one();
        }
        if ended && self.deliveries_active.load(Ordering::Relaxed) {
            self.deliveries.notify_one();
        }
        self.hub.publish(events);
    }
}
