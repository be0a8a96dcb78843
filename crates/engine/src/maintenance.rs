//! Background upkeep: rescuing expired leases, deleting (or archiving, see
//! [`crate::archive`]) expired finished tasks, folding
//! finishes into the analytics rollup, and keeping the active-task count honest.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baton_core::EventKind;
use baton_store::{LeaseSelector, Requeue};

use crate::inner::Inner;

/// Tasks deleted per retention transaction (short transactions keep the writer free).
const PURGE_BATCH: u32 = 1000;

pub(crate) async fn rescue_expired(inner: &Inner) {
    let now = inner.clock.now();
    let req = Requeue {
        selector: LeaseSelector::ExpiredBefore(now),
        now,
        count_attempt: true,
        kind: EventKind::LeaseExpired,
        message: "the lease expired: the worker holding it stopped heartbeating",
    };
    match inner.store.requeue_leases(&req).await {
        Ok(events) if !events.is_empty() => {
            crate::metrics::rescued(events.len());
            tracing::warn!(tasks = events.len(), "rescued tasks whose lease expired");
            inner.publisher.publish(&events);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "lease rescue failed"),
    }
}

/// Deletes finished tasks (and workflows) past retention, archiving them first when an
/// archive is configured; returns how many tasks were deleted.
pub(crate) async fn purge_expired(inner: &Inner) -> u64 {
    if let Some(objects) = &inner.config.archive {
        return crate::archive::archive_expired(inner, objects).await;
    }
    let now = inner.clock.now();
    let cutoff = now.saturating_sub(inner.config.retention);
    let mut total = 0;
    loop {
        match inner.store.purge_finished(cutoff, now, PURGE_BATCH).await {
            Ok(n) => {
                total += n;
                if n < u64::from(PURGE_BATCH) || inner.stop_background.is_cancelled() {
                    break;
                }
                // Let other writers in between batches.
                tokio::task::yield_now().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention failed");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(tasks = total, "deleted finished tasks past retention");
    }
    total
}

/// How far behind now the analytics rollup stays: finishes are stamped by the clock of
/// the node that recorded them a moment before they commit, and a minute is folded once.
const FOLD_DELAY: Duration = Duration::from_secs(120);
/// Minutes folded per transaction (short transactions keep the writer free) and
/// transactions per round (a store full of unfolded history catches up over rounds).
const FOLD_MINUTES: u32 = 10;
const FOLD_ROUNDS: u32 = 36;

/// Folds the whole minutes that finished before [`FOLD_DELAY`] ago into the analytics
/// rollup; returns the instant folded up to.
pub(crate) async fn fold_analytics(inner: &Inner) -> Option<baton_core::Timestamp> {
    let upto = inner.clock.now().saturating_sub(FOLD_DELAY);
    let mut folded = None;
    for _ in 0..FOLD_ROUNDS {
        match inner.store.fold_analytics(upto, FOLD_MINUTES).await {
            Ok(at) => {
                let done = folded == Some(at) || upto.millis_since(at) < 60_000;
                folded = Some(at);
                if done || inner.stop_background.is_cancelled() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "folding analytics failed");
                break;
            }
        }
    }
    folded
}

/// The active count is kept in memory for the submit-time cap; this re-reads it from the
/// store now and then so it cannot drift (other nodes, purges, crashes).
pub(crate) async fn reconcile_loop(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = inner.stop_background.cancelled() => break,
        }
        // The count follows every submission and finish as it is published; a recount
        // corrects what those cannot see (other nodes' purges, crashes). It must not be
        // written while changes are in flight: a write committed before the read but
        // published after it would be counted twice (or missed) until the next recount.
        // So it is written only after a quiet moment around the read.
        for _ in 0..20 {
            let seen = inner.publisher.active_changes.load(Ordering::Acquire);
            let Ok(n) = inner.store.count_active().await else {
                break;
            };
            tokio::time::sleep(Duration::from_millis(100)).await;
            if inner.publisher.active_changes.load(Ordering::Acquire) == seen {
                inner.publisher.active.store(n as i64, Ordering::Relaxed);
                break;
            }
        }
    }
}
