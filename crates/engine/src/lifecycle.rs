//! Starting and stopping an engine: the group-commit loops, the worker pool and the
//! background loops are wired here, and taken down in order on shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use baton_core::task::NewTask;
use baton_core::{EventKind, TaskEvent};
use baton_store::{Finish, FinishOutcome, LeaseSelector, Requeue, Store, StoreError};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::batch::Batcher;
use crate::clock::Clock;
use crate::engine::Engine;
use crate::hub::EventHub;
use crate::inner::Inner;
use crate::publisher::Publisher;
use crate::runs::{ProgressBuffer, Runs};
use crate::tools::ToolRegistry;
use crate::{EngineConfig, EngineError, maintenance, worker};

/// Whether a failed batched write may be the fault of one caller's items (then the
/// others are written without them): anything but the store being unreachable or busy.
fn own_fault(e: &StoreError) -> bool {
    e.code() != baton_core::ErrorCode::Unavailable
}

impl Engine {
    /// Starts the engine: group-commit loops, maintenance and, when `run_workers`, the
    /// worker pool — after re-queueing whatever this node's previous run still held.
    pub async fn start(
        config: EngineConfig,
        store: Arc<dyn Store>,
        tools: Arc<ToolRegistry>,
        clock: Clock,
    ) -> Result<Engine, EngineError> {
        let wake = Arc::new(Notify::new());
        let publisher = Publisher {
            hub: Arc::new(EventHub::default()),
            active: Arc::new(AtomicI64::new(store.count_active().await? as i64)),
            wake: wake.clone(),
            backlog: Arc::new(AtomicBool::new(true)),
            active_changes: Arc::default(),
            deliveries: Arc::default(),
            deliveries_active: Arc::default(),
        };
        // Submissions need the engine itself (to start what they claim), which does not
        // exist yet: the batcher reaches it through a slot filled below.
        let engine_slot: Arc<std::sync::OnceLock<std::sync::Weak<Inner>>> = Arc::default();
        let (submitter, h1) = {
            let slot = engine_slot.clone();
            Batcher::spawn(
                config.submit_batch_max,
                move |tasks: Vec<NewTask>| {
                    let inner = slot.get().and_then(|w| w.upgrade());
                    async move {
                        let Some(inner) = inner else {
                            return Err(StoreError::Unavailable("the engine is stopping".into()));
                        };
                        worker::store_submissions(&inner, tasks).await
                    }
                },
                own_fault,
            )
        };
        let finished = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (finisher, h2) = {
            let store = store.clone();
            let publisher = publisher.clone();
            let finished = finished.clone();
            Batcher::spawn(
                config.submit_batch_max,
                move |items: Vec<Finish>| {
                    let store = store.clone();
                    let publisher = publisher.clone();
                    let finished = finished.clone();
                    async move {
                        let t = std::time::Instant::now();
                        let n = items.len();
                        let outcomes = store.finish(items).await?;
                        crate::metrics::committed(n, t.elapsed());
                        tracing::debug!(n, ms = t.elapsed().as_secs_f64() * 1e3, "finish");
                        let events: Vec<TaskEvent> = outcomes
                            .iter()
                            .filter_map(|o| match o {
                                FinishOutcome::Applied(e) => Some(e.clone()),
                                FinishOutcome::LeaseLost => None,
                            })
                            .collect();
                        let done = events.iter().filter(|e| e.status.is_final()).count();
                        finished.fetch_add(done as u64, Ordering::Relaxed);
                        publisher.publish(&events);
                        Ok(outcomes)
                    }
                },
                own_fault,
            )
        };
        let audit_queue = config.audit_queue;
        let inner = Arc::new(Inner {
            slots: Arc::new(Semaphore::new(config.workers.max(1))),
            config,
            store,
            tools,
            clock,
            publisher,
            wake,
            submitter,
            finisher,
            progress: Arc::new(ProgressBuffer::default()),
            logs: Arc::new(crate::runs::LogBuffer::default()),
            running: Runs::default(),
            runs: TaskTracker::new(),
            stop_claiming: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            stop_background: CancellationToken::new(),
            dispatcher: Mutex::new(None),
            background: Mutex::new(Vec::new()),
            batchers: Mutex::new(vec![h1, h2]),
            estimates: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
            finished,
            workflows: Default::default(),
            keys: Default::default(),
            audit: crate::audit::queue::AuditQueue::with_capacity(audit_queue),
            schedules_changed: Notify::new(),
        });
        let _ = engine_slot.set(Arc::downgrade(&inner));
        // Before the first timestamp is written: a cluster agrees on the database's clock.
        crate::cluster::align_clock(&inner).await;
        let engine = Engine::from_inner(inner);
        engine.start_loops().await?;
        Ok(engine)
    }

    async fn start_loops(&self) -> Result<(), EngineError> {
        let inner = self.inner();
        let mut bg = vec![
            tokio::spawn(crate::cluster::maintenance_loop(inner.clone())),
            tokio::spawn(crate::cluster::presence_loop(inner.clone())),
            tokio::spawn(maintenance::reconcile_loop(inner.clone())),
            tokio::spawn(crate::workflow::coordinator_loop(inner.clone())),
        ];
        // Schedules fire where they are made: processes with an API share its catalog of
        // tools, while a worker or a stdio front door may know fewer servers and would
        // skip a tick whose tool it cannot resolve.
        if matches!(inner.config.presence.role.as_str(), "node" | "api") {
            bg.push(tokio::spawn(crate::schedules::scheduler_loop(
                inner.clone(),
            )));
            bg.push(tokio::spawn(crate::webhooks::delivery_loop(inner.clone())));
        }
        if let Some(feed) = inner.store.listen().await? {
            bg.push(tokio::spawn(crate::cluster::remote_loop(
                inner.clone(),
                feed,
            )));
        }
        if inner.config.run_workers {
            // Whatever this node held when it last stopped was not finished: a clean
            // stop hands leases back, so these are from a crash and count as attempts.
            let now = inner.clock.now();
            let events = inner
                .store
                .requeue_leases(&Requeue {
                    selector: LeaseSelector::Owner(&inner.config.node_id),
                    now,
                    count_attempt: true,
                    kind: EventKind::Released,
                    message: "this node restarted while running the task",
                })
                .await?;
            if !events.is_empty() {
                tracing::warn!(tasks = events.len(), node = %inner.config.node_id, "re-queued tasks this node held when it last stopped");
                inner.publisher.publish(&events);
            }
            bg.push(tokio::spawn(worker::heartbeat_loop(inner.clone())));
            *inner.dispatcher.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(tokio::spawn(worker::dispatcher(inner.clone())));
        }
        bg.push(tokio::spawn(worker::progress_loop(inner.clone())));
        // The keys are read before the first request is checked.
        crate::keys::refresh(self, true).await?;
        bg.push(tokio::spawn(crate::keys::refresh_loop(self.clone())));
        bg.push(tokio::spawn(crate::audit::writer_loop(self.clone())));
        inner
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(bg);
        Ok(())
    }

    /// Graceful stop: stop claiming; give running tasks `shutdown_grace` to finish; hand
    /// the rest back to the queue (they run again, here or elsewhere, without counting
    /// as an attempt); then close the store.
    pub async fn shutdown(&self) {
        let inner = self.inner();
        if inner.shutting_down.swap(true, Ordering::SeqCst) {
            return;
        }
        inner.stop_claiming.cancel();
        let dispatcher = inner
            .dispatcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(d) = dispatcher {
            let _ = d.await;
        }
        inner.runs.close();
        let running = self.running_here();
        if running > 0 {
            tracing::info!(
                running,
                grace_ms = inner.config.shutdown_grace.as_millis() as u64,
                "waiting for running tasks to finish"
            );
        }
        if tokio::time::timeout(inner.config.shutdown_grace, inner.runs.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                still_running = self.running_here(),
                "grace period over; handing unfinished tasks back to the queue"
            );
            inner.hard_stop.cancel();
            inner.runs.wait().await;
        }
        worker::flush_progress(inner).await;
        worker::flush_logs(inner).await;
        if inner.config.run_workers {
            let now = inner.clock.now();
            match inner
                .store
                .requeue_leases(&Requeue {
                    selector: LeaseSelector::Owner(&inner.config.node_id),
                    now,
                    count_attempt: false,
                    kind: EventKind::Released,
                    message: "the node shut down before the task finished",
                })
                .await
            {
                Ok(events) => {
                    if !events.is_empty() {
                        tracing::info!(
                            tasks = events.len(),
                            "handed unfinished tasks back to the queue"
                        );
                    }
                    inner.publisher.publish(&events);
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not hand leases back; they will be rescued when they expire")
                }
            }
        }
        inner.stop_background.cancel();
        if let Err(e) = inner
            .store
            .peer_stopped(&inner.config.node_id, inner.clock.now())
            .await
        {
            tracing::warn!(error = %e, "could not record this node's stop");
        }
        let handles: Vec<_> = inner
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for h in handles {
            let _ = h.await;
        }
        for h in inner
            .batchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            h.abort();
        }
        inner.store.close().await;
    }
}
