//! The result cache: fresh hits, single-flight followers, settling, invalidation.

use baton_core::policy::Transition;
use baton_core::task::{CacheLookup, NewTask};
use baton_core::{EventKind, TaskError, TaskId, TaskStatus, Timestamp};

use super::support::{SEC, claim, complete, get, new_task, t0};
use crate::{CreateOutcome, Finish, Store};

fn cached(key: &str, at: Timestamp, fresh_since: Option<Timestamp>) -> NewTask {
    let mut t = new_task("srv__read", 50, at);
    t.cache = Some(CacheLookup {
        key: key.into(),
        fresh_since,
    });
    t
}

async fn store_one(store: &dyn Store, t: NewTask) -> (baton_core::Task, Vec<EventKind>) {
    let (mut outcomes, events) = store.create_tasks(vec![t]).await.unwrap();
    let task = match outcomes.remove(0) {
        CreateOutcome::Created(t) => t,
        other => panic!("expected a new task, got {other:?}"),
    };
    (task, events.iter().map(|e| e.kind).collect())
}

/// The first call runs; identical calls in flight follow it (never claimed) and complete
/// with its result when it completes; a later call within the freshness window completes
/// at once from it, one outside it (or a refresh) runs; other keys are not touched;
/// invalidation drops entries.
pub async fn result_cache_hits_and_single_flight(store: &dyn Store) {
    let now = t0();
    let (first, _) = store_one(store, cached("k1", now, Some(now))).await;
    assert_eq!(first.follows, None);
    assert_eq!(first.cache_key.as_deref(), Some("k1"));
    // Two identical calls while it waits, one in a batch of its own; another key.
    let (outcomes, _) = store
        .create_tasks(vec![
            cached("k1", now, Some(now)),
            cached("k1", now, Some(now)),
            cached("k2", now, Some(now)),
        ])
        .await
        .unwrap();
    let ids: Vec<TaskId> = outcomes.iter().map(|o| o.task().id).collect();
    assert_eq!(outcomes[0].task().follows, Some(first.id));
    assert_eq!(outcomes[1].task().follows, Some(first.id));
    assert_eq!(
        outcomes[2].task().follows,
        None,
        "another key is a call of its own"
    );

    // Claims pass the followers by.
    let claimed = claim(store, "w", 10, now, 1).await;
    let mut claimed_ids: Vec<TaskId> = claimed.iter().map(|t| t.id).collect();
    claimed_ids.sort();
    let mut expected = vec![first.id, ids[2]];
    expected.sort();
    assert_eq!(claimed_ids, expected, "only the calls to make are claimed");

    // Settling before the call ends changes nothing.
    assert!(
        store
            .settle_followers(first.id, now)
            .await
            .unwrap()
            .is_empty()
    );
    let done = now.saturating_add(SEC);
    store
        .finish(vec![complete(first.id, 1, done)])
        .await
        .unwrap();
    let events = store.settle_followers(first.id, done).await.unwrap();
    let result = get(store, first.id).await.result;
    assert!(result.is_some());
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.kind == EventKind::Completed && e.result.as_deref() == result.as_ref())
    );
    for id in &ids[..2] {
        let t = get(store, *id).await;
        assert_eq!(t.status, TaskStatus::Completed);
        assert_eq!(t.cached_from, Some(first.id));
        assert_eq!(t.follows, None);
        assert_eq!(t.result, get(store, first.id).await.result);
    }
    assert!(
        store
            .settle_followers(first.id, done)
            .await
            .unwrap()
            .is_empty(),
        "settling twice writes nothing"
    );

    // Within the window: answered at once, with a `completed` event after `created`.
    let later = done.saturating_add(10 * SEC);
    let (hit, kinds) = store_one(store, cached("k1", later, Some(now))).await;
    assert_eq!(hit.status, TaskStatus::Completed);
    assert_eq!(
        hit.cached_from,
        Some(first.id),
        "the call that ran, not a copy"
    );
    assert_eq!(hit.result, get(store, first.id).await.result);
    assert_eq!(kinds, [EventKind::Created, EventKind::Completed]);
    assert_eq!(get(store, hit.id).await.status, TaskStatus::Completed);

    // Outside the window, or a refresh: the call runs again.
    let (stale, _) = store_one(store, cached("k1", later, Some(later))).await;
    assert_eq!(stale.status, TaskStatus::Pending);
    assert_eq!(stale.follows, None);
    let (refresh, _) = store_one(store, cached("k1", later, None)).await;
    assert_eq!(
        refresh.follows,
        Some(stale.id),
        "a refresh still joins a call in flight"
    );

    // Invalidation: the completed entry answers no more (counted once).
    let inv = later.saturating_add(SEC);
    let drop = |tool| store.invalidate_cache(tool, inv, now);
    assert_eq!(drop(Some("other__tool")).await.unwrap(), 0);
    assert_eq!(drop(Some("srv__read")).await.unwrap(), 1);
    assert_eq!(drop(None).await.unwrap(), 0, "already dropped");
    let (miss, _) = store_one(store, cached("k1", inv, Some(now))).await;
    assert_ne!(miss.status, TaskStatus::Completed, "invalidated: no hit");
    // A call completed after the invalidation answers again.
    let (k4, _) = store_one(store, cached("k4", inv, Some(now))).await;
    let token = 9;
    let claimed = claim(store, "w", 10, inv, token).await;
    assert!(claimed.iter().any(|t| t.id == k4.id));
    let after = inv.saturating_add(SEC);
    store
        .finish(vec![complete(k4.id, token, after)])
        .await
        .unwrap();
    let (hit, _) = store_one(store, cached("k4", after, Some(now))).await;
    assert_eq!(hit.cached_from, Some(k4.id));
}

/// When the followed call fails (or is cancelled), the oldest follower is released to
/// run and the others follow it; a follower left behind by a crash (its call ended but
/// nobody settled) is found and settled.
pub async fn failed_calls_release_their_followers(store: &dyn Store) {
    let now = t0();
    let (first, _) = store_one(store, cached("k", now, Some(now))).await;
    let (a, _) = store_one(store, cached("k", now, Some(now))).await;
    let (b, _) = store_one(store, cached("k", now, Some(now))).await;
    assert_eq!((a.follows, b.follows), (Some(first.id), Some(first.id)));
    assert_eq!(claim(store, "w", 10, now, 1).await.len(), 1);
    let fail = Finish {
        id: first.id,
        token: 1,
        transition: Transition::Fail {
            error: TaskError::new("boom", "it broke", false),
        },
        at: now,
    };
    store.finish(vec![fail]).await.unwrap();
    // Nobody settled it (as after a crash): the sweep finds it.
    let events = store.settle_ended_followed(now, 100).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Released);
    assert_eq!(events[0].task_id, a.id);
    assert_eq!(get(store, a.id).await.follows, None);
    assert_eq!(get(store, b.id).await.follows, Some(a.id));
    assert!(
        store
            .settle_ended_followed(now, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // The released one runs; when it completes, the other takes its result.
    let claimed = claim(store, "w", 10, now, 2).await;
    assert_eq!(claimed.iter().map(|t| t.id).collect::<Vec<_>>(), [a.id]);
    store.finish(vec![complete(a.id, 2, now)]).await.unwrap();
    store.settle_followers(a.id, now).await.unwrap();
    let b = get(store, b.id).await;
    assert_eq!(b.status, TaskStatus::Completed);
    assert_eq!(b.cached_from, Some(a.id));

    // A cancelled pending call releases its followers too.
    let (c, _) = store_one(store, cached("c", now, Some(now))).await;
    let (d, _) = store_one(store, cached("c", now, Some(now))).await;
    store.request_cancel(c.id, now).await.unwrap();
    store.settle_followers(c.id, now).await.unwrap();
    assert_eq!(get(store, d.id).await.follows, None);
    assert_eq!(claim(store, "w", 10, now, 3).await[0].id, d.id);
}

/// A large document: JSON rows that compress well.
fn rows(n: usize) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = (0..n)
        .map(
            |i| serde_json::json!({"id": i, "name": format!("customer {i}"), "active": i % 2 == 0}),
        )
        .collect();
    serde_json::json!({"rows": rows})
}

/// Large arguments and results (stored compressed) read back whole everywhere a task is
/// read (get, list, claim, a cached copy); a retry by hand clears the result; analytics
/// still find the cost a compressed result reported.
pub async fn large_documents_round_trip(store: &dyn Store) {
    let now = t0();
    let mut t = cached("big", now, Some(now));
    t.arguments = rows(400);
    let id = t.id;
    store_one(store, t).await;
    assert_eq!(get(store, id).await.arguments, rows(400));
    let listed = store
        .list_tasks(&crate::TaskQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed[0].arguments, rows(400));
    let claimed = claim(store, "w", 1, now, 1).await;
    assert_eq!(claimed[0].arguments, rows(400));
    let mut result = serde_json::json!({
        "content": [{"type": "text", "text": "rows"}],
        "_meta": {"baton/cost": {"usd": 0.5}},
    });
    result["structuredContent"] = rows(600);
    store
        .finish(vec![Finish {
            id,
            token: 1,
            transition: Transition::Complete {
                result: result.clone(),
            },
            at: now,
        }])
        .await
        .unwrap();
    assert_eq!(get(store, id).await.result, Some(result.clone()));
    let (hit, _) = store_one(store, cached("big", now, Some(now))).await;
    assert_eq!(get(store, hit.id).await.result, Some(result.clone()));
    assert_eq!(hit.result, Some(result.clone()));

    let rows_out = store
        .analytics(&crate::AnalyticsQuery {
            since: now,
            until: now.saturating_add(60 * SEC),
            key: crate::AnalyticsKey::Tool,
            owner: None,
            bucket_ms: 60_000,
        })
        .await
        .unwrap();
    let spent: f64 = rows_out.counts.iter().map(|c| c.cost_usd).sum();
    let saved: f64 = rows_out.counts.iter().map(|c| c.saved_usd).sum();
    assert_eq!((spent, saved), (0.5, 0.5), "{:?}", rows_out.counts);

    // A failed task retried by hand starts again without a result.
    let mut other = new_task("srv__read", 50, now);
    other.arguments = rows(300);
    let (other, _) = store_one(store, other).await;
    claim(store, "w", 1, now, 2).await;
    store
        .finish(vec![Finish {
            id: other.id,
            token: 2,
            transition: Transition::Fail {
                error: TaskError::new("boom", "it broke", false),
            },
            at: now,
        }])
        .await
        .unwrap();
    store.retry_task(other.id, now).await.unwrap();
    let again = get(store, other.id).await;
    assert_eq!((again.status, again.result), (TaskStatus::Pending, None));
    assert_eq!(again.arguments, rows(300));
}
