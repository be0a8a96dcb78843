//! Helpers of the conformance suite.

use std::time::Duration;

use baton_core::policy::Transition;
use baton_core::task::NewTask;
use baton_core::{TaskId, Timestamp};
use serde_json::json;

use crate::{ClaimRequest, ConcurrencyLimit, Finish, RateLimit, Store};

pub(super) const SEC: Duration = Duration::from_secs(1);

pub(super) fn t0() -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000)
}

pub(super) fn new_task(tool: &str, priority: i32, at: Timestamp) -> NewTask {
    NewTask {
        id: TaskId::generate(at),
        tool: tool.to_string(),
        arguments: json!({"n": 1}),
        queue: "default".into(),
        priority,
        max_attempts: 3,
        run_at: at,
        timeout_ms: None,
        idempotency_key: None,
        owner: "alice".into(),
        parent_id: None,
        step: None,
        metadata: None,
        created_at: at,
        expires_at: None,
        trace_parent: None,
        group_key: None,
        callback_url: None,
        cache: None,
    }
}

pub(super) async fn create(store: &dyn Store, tasks: Vec<NewTask>) -> Vec<TaskId> {
    let (outcomes, _) = store.create_tasks(tasks).await.unwrap();
    outcomes.iter().map(|o| o.task().id).collect()
}

pub(super) async fn claim(
    store: &dyn Store,
    owner: &str,
    n: usize,
    now: Timestamp,
    token: i64,
) -> Vec<baton_core::Task> {
    claim_limited(store, owner, n, now, token, &[]).await
}

pub(super) async fn claim_limited(
    store: &dyn Store,
    owner: &str,
    n: usize,
    now: Timestamp,
    token: i64,
    limits: &[ConcurrencyLimit],
) -> Vec<baton_core::Task> {
    store
        .claim(&ClaimRequest {
            owner,
            limit: n,
            now,
            lease_until: now.saturating_add(30 * SEC),
            token,
            limits,
            rates: &[],
            group_max: None,
        })
        .await
        .unwrap()
        .0
}

pub(super) fn complete(id: TaskId, token: i64, at: Timestamp) -> Finish {
    Finish {
        id,
        token,
        transition: Transition::Complete {
            result: json!({"content": [{"type": "text", "text": "ok"}]}),
        },
        at,
    }
}

pub(super) async fn get(store: &dyn Store, id: TaskId) -> baton_core::Task {
    store.get_task(id).await.unwrap().expect("task exists")
}

/// Claims up to 100 tasks for `w` at `now`, within `rates` and `group_max`.
pub(super) async fn claim_with(
    store: &dyn Store,
    now: Timestamp,
    token: i64,
    rates: &[RateLimit],
    group_max: Option<u32>,
) -> Vec<baton_core::Task> {
    store
        .claim(&ClaimRequest {
            owner: "w",
            limit: 100,
            now,
            lease_until: now.saturating_add(30 * SEC),
            token,
            limits: &[],
            rates,
            group_max,
        })
        .await
        .unwrap()
        .0
}
