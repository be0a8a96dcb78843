//! Working with the other processes that share the store.
//!
//! - **Remote changes**: events other processes commit arrive through the store's feed
//!   (PostgreSQL `LISTEN/NOTIFY`) and are published here like local ones: waiters, SSE
//!   streams and MCP notifications see them at once, new work wakes the dispatcher, and a
//!   cancellation reaches a run of this node without waiting for its heartbeat. A gap in
//!   the feed wakes everything that polls, so nothing waits for a change it missed.
//! - **Presence**: every process reports itself (role, address, load) at each heartbeat
//!   and says when it stops cleanly.
//! - **Singleton maintenance**: lease rescue, retention and spotting lost peers run on
//!   exactly one process at a time, the holder of the store's `maintenance` role; when
//!   that process dies the role (an advisory lock on its connection) passes to another.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baton_core::EventKind;
use baton_store::{LeaseSelector, PeerReport, RemoteChange, Requeue, SingletonGuard};

use crate::inner::Inner;
use crate::maintenance;

/// Publishes what other processes commit, until the engine stops.
pub(crate) async fn remote_loop(
    inner: Arc<Inner>,
    mut feed: tokio::sync::mpsc::Receiver<RemoteChange>,
) {
    loop {
        let change = tokio::select! {
            c = feed.recv() => c,
            _ = inner.stop_background.cancelled() => return,
        };
        match change {
            Some(RemoteChange::Events(events)) => {
                // Another node's cancellation reaches the run here at once.
                for e in &events {
                    if e.kind == EventKind::CancelRequested {
                        inner.running.cancel_task(e.task_id);
                    }
                }
                inner.publisher.publish(&events);
            }
            Some(RemoteChange::Gap) => {
                // Something may have been missed: look for work now, and have the
                // workflow coordinator re-read the running workflows.
                inner.publisher.backlog.store(true, Ordering::Relaxed);
                inner.wake.notify_one();
                inner.workflows.resync();
            }
            None => return,
        }
    }
}

/// How often a process re-reads the shared store's clock (machine clocks drift, and
/// NTP may step them).
const CLOCK_ALIGN: Duration = Duration::from_secs(30);

/// Aligns the engine's clock with the shared store's (see [`crate::clock`]). Says so
/// when this machine's clock is more than a second off: the processes of a cluster then
/// disagree on time, and Baton uses the database's.
pub(crate) async fn align_clock(inner: &Inner) {
    let before = inner.clock.uncorrected();
    match inner.store.clock().await {
        Ok(Some(reference)) => {
            let after = inner.clock.uncorrected();
            let off = inner.clock.align(before, reference, after);
            if off > Duration::from_secs(1) {
                tracing::warn!(
                    off_ms = off.as_millis() as u64,
                    "this machine's clock differs from the database server's; leases, heartbeats and peer health use the database's"
                );
            }
        }
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "cannot read the store's clock now"),
    }
}

/// Reports this process at every heartbeat interval until the engine stops.
pub(crate) async fn presence_loop(inner: Arc<Inner>) {
    let started_at = inner.clock.now();
    let mut last = (tokio::time::Instant::now(), 0u64);
    let mut aligned = tokio::time::Instant::now();
    loop {
        if aligned.elapsed() >= CLOCK_ALIGN {
            aligned = tokio::time::Instant::now();
            align_clock(&inner).await;
        }
        let finished = inner.finished.load(Ordering::Relaxed);
        let elapsed = last.0.elapsed().as_secs_f64();
        let throughput = if elapsed > 0.0 {
            (finished - last.1) as f64 / elapsed
        } else {
            0.0
        };
        last = (tokio::time::Instant::now(), finished);
        let running = inner.running.len() as u64;
        let report = PeerReport {
            id: inner.config.node_id.clone(),
            role: inner.config.presence.role.clone(),
            address: inner.config.presence.address.clone(),
            version: inner.config.presence.version.clone(),
            started_at,
            now: inner.clock.now(),
            running,
            finished,
            throughput,
        };
        match inner.store.report_peer(&report).await {
            // Asked (by an operator, through any node) to drain: stop claiming, finish
            // what runs here.
            Ok(true) if !inner.stop_claiming.is_cancelled() => {
                tracing::warn!(node = %inner.config.node_id, running, "drained: this process claims no more tasks");
                inner.stop_claiming.cancel();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not report this node's heartbeat"),
        }
        tokio::select! {
            _ = tokio::time::sleep(inner.config.heartbeat) => {}
            _ = inner.stop_background.cancelled() => break,
        }
    }
}

/// Holds the `maintenance` role when it can, and does the maintenance while it holds it.
pub(crate) async fn maintenance_loop(inner: Arc<Inner>) {
    let mut role: Option<Box<dyn SingletonGuard>> = None;
    let mut last_retention = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(inner.config.rescue_interval) => {}
            _ = inner.stop_background.cancelled() => break,
        }
        if let Some(r) = &role
            && !r.held().await
        {
            tracing::warn!("lost the maintenance role (its connection to the store broke)");
            if let Some(r) = role.take() {
                r.release().await;
            }
        }
        if role.is_none() {
            match inner.store.try_singleton("maintenance").await {
                Ok(Some(r)) => {
                    tracing::info!(node = %inner.config.node_id, "this node now runs maintenance (lease rescue, retention, lost peers)");
                    role = Some(r);
                    // Start with a full round: the previous holder may be long gone.
                    last_retention = tokio::time::Instant::now() - inner.config.retention_interval;
                }
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot take the maintenance role now");
                    continue;
                }
            }
        }
        rescue_lost_peers(&inner).await;
        maintenance::rescue_expired(&inner).await;
        crate::cache::sweep(&inner).await;
        maintenance::fold_analytics(&inner).await;
        match inner.store.refresh_statistics().await {
            Ok(true) => tracing::debug!("refreshed the task table's planner statistics"),
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "could not refresh planner statistics"),
        }
        if last_retention.elapsed() >= inner.config.retention_interval {
            last_retention = tokio::time::Instant::now();
            maintenance::purge_expired(&inner).await;
            crate::audit::purge(&crate::engine::Engine::from_inner(inner.clone())).await;
        }
    }
    // Stopping: hand the role on at once rather than when the process exits.
    if let Some(r) = role {
        r.release().await;
    }
}

/// Peers whose heartbeats stopped for a lease are lost; their leases are rescued at once
/// (they would expire soon anyway, but this says why).
async fn rescue_lost_peers(inner: &Inner) {
    let now = inner.clock.now();
    let silent_since = now.saturating_sub(inner.config.lease);
    let forget_before = now.saturating_sub(Duration::from_secs(24 * 3600));
    let lost = match inner
        .store
        .mark_lost_peers(silent_since, forget_before, &inner.config.node_id)
        .await
    {
        Ok(lost) => lost,
        Err(e) => {
            tracing::warn!(error = %e, "could not check for lost peers");
            return;
        }
    };
    for peer in lost {
        let req = Requeue {
            selector: LeaseSelector::Owner(&peer.id),
            now,
            count_attempt: true,
            kind: EventKind::LeaseExpired,
            message: "the process running the task stopped heartbeating",
        };
        match inner.store.requeue_leases(&req).await {
            Ok(events) => {
                tracing::warn!(peer = %peer.id, role = %peer.role, tasks = events.len(), "peer lost; its tasks are queued again");
                inner.publisher.publish(&events);
            }
            Err(e) => {
                tracing::warn!(peer = %peer.id, error = %e, "could not rescue a lost peer's tasks")
            }
        }
    }
}
