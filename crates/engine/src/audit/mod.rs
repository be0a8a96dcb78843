//! The audit log: who asked for what, and what came of it. Front doors record an entry
//! for every state-changing request and every refused one; entries are written to the
//! store in batches by a background writer, so recording never slows a request down,
//! and a clean stop writes what is queued. The store keeps one log for a cluster.

use std::time::Duration;

use baton_store::{AuditEntry, AuditQuery, NewAuditEntry};
use schemars::JsonSchema;
use serde::Serialize;

use crate::engine::Engine;
use crate::error::EngineError;
use crate::page::Page;

pub(crate) mod queue;

/// Most entries written in one transaction.
const BATCH: usize = 500;

/// A page of the audit log, newest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditPage {
    #[schemars(with = "Vec<serde_json::Value>")]
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

impl Engine {
    /// Records an entry (written shortly, in a batch).
    pub fn audit(&self, entry: NewAuditEntry) {
        self.inner().audit.push(entry);
    }

    /// A page of the audit log.
    pub async fn audit_log(
        &self,
        mut query: AuditQuery,
        page: Page,
    ) -> Result<AuditPage, EngineError> {
        query.before_seq = page.before_seq;
        query.limit = page.limit;
        let entries = self.store().list_audit(&query).await?;
        let next_cursor = page.next(&entries, |e| e.seq);
        Ok(AuditPage {
            entries,
            next_cursor,
        })
    }
}

/// Writes queued entries until the engine stops, then writes what is left.
pub(crate) async fn writer_loop(engine: Engine) {
    let Some(mut rx) = engine
        .inner()
        .audit
        .rx
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    else {
        return;
    };
    let stop = engine.inner().stop_background.clone();
    let mut batch = Vec::new();
    loop {
        let first = tokio::select! {
            e = rx.recv() => e,
            _ = stop.cancelled() => None,
        };
        let stopping = first.is_none();
        batch.extend(first);
        // Stopping: everything queued goes, in batches.
        while let Ok(e) = rx.try_recv() {
            batch.push(e);
            if batch.len() >= BATCH {
                if !stopping {
                    break;
                }
                write(&engine, &mut batch, stopping).await;
            }
        }
        write(&engine, &mut batch, stopping).await;
        if stopping {
            return;
        }
    }
}

/// Writes `batch`, retrying while the store is unavailable (a few times once the engine
/// is stopping, even if it began stopping during the retries: a node on a full disk still
/// stops).
async fn write(engine: &Engine, batch: &mut Vec<NewAuditEntry>, stopping: bool) {
    let stop = engine.inner().stop_background.clone();
    let mut backoff = Duration::from_millis(100);
    let mut tries = 0;
    while !batch.is_empty() {
        match engine.store().append_audit(batch.clone()).await {
            Ok(()) => {
                batch.clear();
                // The store takes entries again: record the gap a full queue left.
                let dropped = engine.inner().audit.take_dropped();
                if dropped > 0 {
                    batch.push(gap(engine, dropped));
                }
            }
            Err(e) => {
                tries += 1;
                if (stopping || stop.is_cancelled()) && tries >= 3 {
                    tracing::error!(error = %e, entries = batch.len(), "could not write the last audit entries");
                    batch.clear();
                    return;
                }
                tracing::warn!(error = %e, entries = batch.len(), "cannot write audit entries now; retrying");
                if stop.is_cancelled() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                } else {
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.cancelled() => {}
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The entry that records `dropped` entries lost to a full queue.
fn gap(engine: &Engine, dropped: u64) -> NewAuditEntry {
    NewAuditEntry {
        at: engine.now(),
        principal: "-".into(),
        credential: "none".into(),
        action: "audit.dropped".into(),
        target: None,
        outcome: "failed".into(),
        status: None,
        remote: None,
        request_id: None,
        detail: Some(serde_json::json!({
            "dropped": dropped,
            "reason": "the audit queue was full while the store was not taking entries",
        })),
    }
}

/// Deletes entries past the retention (run by the maintenance holder).
pub(crate) async fn purge(engine: &Engine) {
    let cutoff = engine.now().saturating_sub(engine.config().audit_retention);
    loop {
        match engine.store().purge_audit(cutoff, 1000).await {
            Ok(n) if n >= 1000 => continue,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "audit retention failed");
                return;
            }
        }
    }
}
