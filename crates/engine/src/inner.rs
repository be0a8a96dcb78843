//! The engine's shared state: what the API, the worker pool and the background loops of
//! one process share (one `Arc<Inner>`). Data only: the behaviour lives with the code that
//! uses it (`engine.rs` the API, `worker.rs` the runs, `cluster.rs` and `maintenance.rs`
//! the loops, `lifecycle.rs` start and stop).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use baton_core::task::NewTask;
use baton_store::{CreateOutcome, Finish, FinishOutcome, Store, StoreError};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::EngineConfig;
use crate::batch::Batcher;
use crate::clock::Clock;
use crate::publisher::Publisher;
use crate::runs::{ProgressBuffer, Runs};
use crate::tools::ToolRegistry;

pub(crate) struct Inner {
    pub config: EngineConfig,
    pub store: Arc<dyn Store>,
    pub tools: Arc<ToolRegistry>,
    pub clock: Clock,
    pub publisher: Publisher,
    pub wake: Arc<Notify>,
    pub(crate) submitter: Batcher<NewTask, CreateOutcome, StoreError>,
    pub finisher: Batcher<Finish, FinishOutcome, StoreError>,
    pub progress: Arc<ProgressBuffer>,
    /// Log lines of this node's runs waiting to be written.
    pub logs: Arc<crate::runs::LogBuffer>,
    pub running: Runs,
    pub slots: Arc<Semaphore>,
    pub runs: TaskTracker,
    pub stop_claiming: CancellationToken,
    pub hard_stop: CancellationToken,
    pub stop_background: CancellationToken,
    pub(crate) dispatcher: Mutex<Option<JoinHandle<()>>>,
    pub(crate) background: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) batchers: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) estimates: Mutex<HashMap<String, (Instant, Option<u64>)>>,
    pub(crate) shutting_down: AtomicBool,
    /// Runs this node finished (completed, failed or cancelled), for its peer report.
    pub finished: Arc<std::sync::atomic::AtomicU64>,
    /// Workflows to advance soon.
    pub(crate) workflows: crate::workflow::state::Coordination,
    /// The node's copy of the API keys.
    pub(crate) keys: crate::keys::cache::KeyCache,
    /// Audit entries waiting to be written.
    pub(crate) audit: crate::audit::queue::AuditQueue,
    /// Wakes the scheduler when this node changed a schedule.
    pub(crate) schedules_changed: Notify,
}
