//! The audit log's queue: bounded while the store takes no entries, and the gap recorded.

use std::time::Duration;

use baton_engine::EngineConfig;
use baton_engine::clock::Clock;
use baton_engine::page::Page;
use baton_engine::tools::ToolRegistry;
use baton_store::{AuditQuery, NewAuditEntry, StoreError};
use std::sync::Arc;

use crate::common::*;

fn entry(i: usize) -> NewAuditEntry {
    NewAuditEntry {
        at: baton_core::Timestamp::now(),
        principal: "team-a".into(),
        credential: "key:k".into(),
        action: "tasks.submit".into(),
        target: Some(format!("t{i}")),
        outcome: "ok".into(),
        status: Some(202),
        remote: None,
        request_id: None,
        detail: None,
    }
}

/// While the store refuses entries, at most `audit_queue` wait in memory (plus the batch
/// the writer holds); the others are dropped and counted, and once the store takes
/// entries again, an `audit.dropped` entry says how many: nothing is lost silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audit_queue_drops_entries_and_records_the_gap() {
    for backend in BACKENDS {
        let (store, _guard) = baton_store::fixtures::fresh(backend).await;
        let faulty = baton_store::fixtures::FaultyStore::new(store);
        faulty.set_fault(|call| {
            (call.method == "append_audit")
                .then(|| StoreError::Unavailable("injected: the database went away".into()))
        });
        let config = EngineConfig {
            audit_queue: 10,
            ..fast_config()
        };
        let engine = baton_engine::Engine::start(
            config,
            faulty.clone(),
            Arc::new(ToolRegistry::with_builtins("__")),
            Clock::system(),
        )
        .await
        .unwrap();
        const SENT: usize = 200;
        for i in 0..SENT {
            engine.audit(entry(i));
        }
        faulty.clear_fault();
        let read = async || {
            engine
                .audit_log(
                    AuditQuery::default(),
                    Page {
                        limit: 1000,
                        before_seq: None,
                    },
                )
                .await
                .unwrap()
                .entries
        };
        eventually("the gap is recorded", Duration::from_secs(20), async || {
            read()
                .await
                .iter()
                .any(|e| e.entry.action == "audit.dropped")
        })
        .await;
        let entries = read().await;
        let written = entries
            .iter()
            .filter(|e| e.entry.action == "tasks.submit")
            .count();
        let dropped: u64 = entries
            .iter()
            .filter(|e| e.entry.action == "audit.dropped")
            .map(|e| {
                e.entry.detail.as_ref().unwrap()["dropped"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        assert!(dropped > 0, "{backend:?}");
        assert!(
            written <= 10 + 500,
            "{backend:?}: {written} entries were held in memory"
        );
        assert_eq!(
            written as u64 + dropped,
            SENT as u64,
            "{backend:?}: every entry written or counted"
        );
        engine.shutdown().await;
    }
}
