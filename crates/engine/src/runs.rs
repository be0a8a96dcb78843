//! What a node keeps about the runs it executes: the runs themselves (by task and lease
//! token) and their progress reports waiting to be written.

use std::collections::HashMap;
use std::sync::Mutex;

use baton_core::TaskId;
use baton_store::ProgressUpdate;
use tokio_util::sync::CancellationToken;

/// A run of a task on this node.
struct Running {
    cancel: CancellationToken,
    /// When the lease was taken; a heartbeat that began later must report it held.
    claimed: tokio::time::Instant,
}

/// The runs of this node, each known by its task and lease token. A task can have two
/// here at once: a run that lost its lease (this node stalled, the task was rescued) and
/// the run of its next claim, by this same node. Only the token tells them apart, so a
/// run ending never unregisters its successor, whose heartbeats and cancellation go on.
#[derive(Default)]
pub(crate) struct Runs {
    map: Mutex<HashMap<(TaskId, i64), Running>>,
}

impl Runs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(TaskId, i64), Running>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn start(&self, id: TaskId, token: i64, cancel: CancellationToken) {
        self.lock().insert(
            (id, token),
            Running {
                cancel,
                claimed: tokio::time::Instant::now(),
            },
        );
    }

    pub(crate) fn end(&self, id: TaskId, token: i64) {
        self.lock().remove(&(id, token));
    }

    /// Tells every run of the task here to stop.
    pub(crate) fn cancel_task(&self, id: TaskId) {
        for ((task, _), r) in self.lock().iter() {
            if *task == id {
                r.cancel.cancel();
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// After a heartbeat that began at `began` extended the leases in `held`: every run
    /// claimed before it whose lease is not among them lost it (this node stalled past
    /// its lease); its tool is stopped, since its outcome could not be written.
    pub(crate) fn stop_lost(
        &self,
        held: &std::collections::HashSet<(TaskId, i64)>,
        began: tokio::time::Instant,
    ) {
        for (run, r) in self.lock().iter() {
            if r.claimed < began && !held.contains(run) && !r.cancel.is_cancelled() {
                tracing::warn!(task_id = %run.0, "lease lost (expired); stopping the tool");
                r.cancel.cancel();
            }
        }
    }
}

/// Progress reports waiting to be written; the latest report per task wins.
#[derive(Default)]
pub(crate) struct ProgressBuffer {
    /// By run (task and lease token): a stale run's report never displaces the current
    /// run's.
    pending: Mutex<HashMap<(TaskId, i64), ProgressUpdate>>,
}

impl ProgressBuffer {
    pub(crate) fn push(&self, u: ProgressUpdate) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get_mut(&(u.id, u.token)) {
            Some(prev) => {
                if u.progress.is_some() {
                    prev.progress = u.progress;
                }
                if u.message.is_some() {
                    prev.message = u.message;
                }
                prev.at = u.at;
            }
            None => {
                pending.insert((u.id, u.token), u);
            }
        }
    }

    pub(crate) fn take(&self) -> Vec<ProgressUpdate> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.drain().map(|(_, u)| u).collect()
    }
}

/// Log lines waiting to be written, in the order tools emitted them.
#[derive(Default)]
pub(crate) struct LogBuffer {
    pending: Mutex<Vec<baton_core::log::NewLogLine>>,
}

/// Lines held at most while the store cannot take them; beyond, the oldest are dropped.
const MAX_BUFFERED_LINES: usize = 100_000;

impl LogBuffer {
    pub(crate) fn push(&self, line: baton_core::log::NewLogLine) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= MAX_BUFFERED_LINES {
            pending.remove(0);
        }
        pending.push(line);
    }

    pub(crate) fn take(&self) -> Vec<baton_core::log::NewLogLine> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts lines that could not be written back in front of newer ones.
    pub(crate) fn restore(&self, mut lines: Vec<baton_core::log::NewLogLine>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        lines.append(&mut pending);
        let excess = lines.len().saturating_sub(MAX_BUFFERED_LINES);
        lines.drain(..excess);
        *pending = lines;
    }
}
