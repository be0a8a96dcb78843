//! What this process remembers about workflows between advances.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use baton_workflow::Plan;
use tokio::sync::Notify;

/// Workflows this process should look at soon (submitted, cancelled or retried here).
#[derive(Default)]
pub(crate) struct Coordination {
    /// Plans of workflows read back recently, by id. A definition never changes once
    /// stored, so its plan (parsed and checked again) is built once, not at every advance
    /// and every read: for a large DAG that work dominated, and steps waited for it.
    pub(super) plans: Mutex<HashMap<String, Arc<Plan>>>,
    /// Plans built from stored definitions since start (cache misses).
    pub(super) plans_built: std::sync::atomic::AtomicU64,
    dirty: Mutex<BTreeSet<String>>,
    /// Set when events may have been missed (a gap in the store's feed).
    pub(super) resync: std::sync::atomic::AtomicBool,
    pub(super) wake: Notify,
}

impl Coordination {
    pub(crate) fn mark(&self, id: &str) {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
        self.wake.notify_one();
    }

    /// Asks the coordinator to re-read every running workflow.
    pub(crate) fn resync(&self) {
        self.resync
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
    }

    pub(super) fn take_resync(&self) -> bool {
        self.resync
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks a workflow for the next pass without waking the coordinator (a retry after
    /// an error waits for the next role check rather than spinning).
    pub(crate) fn mark_quietly(&self, id: &str) {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
    }

    pub(super) fn take(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
