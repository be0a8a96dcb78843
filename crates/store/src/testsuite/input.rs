//! Checkpoints and input requests, fenced by the lease.

use baton_core::policy::Transition;
use baton_core::{EventKind, TaskError, TaskId, TaskStatus};
use serde_json::json;

use super::support::{SEC, claim, complete, create, get, new_task, t0};
use crate::{Finish, InputOutcome, LeaseSelector, Requeue, Store};

pub async fn checkpoints_are_fenced(store: &dyn Store) {
    let id = create(store, vec![new_task("t", 50, t0())]).await[0];
    claim(store, "w", 1, t0(), 4).await;
    let cp = json!({"upstream_task": "u-1"});
    assert!(
        store
            .save_checkpoint(id, 4, cp.clone(), t0())
            .await
            .unwrap()
    );
    assert!(
        !store
            .save_checkpoint(id, 5, json!({"x": 1}), t0())
            .await
            .unwrap(),
        "wrong token"
    );
    assert_eq!(get(store, id).await.checkpoint, Some(cp.clone()));
    // The checkpoint survives the lease being lost and the task being claimed again.
    let later = t0().saturating_add(31 * SEC);
    store
        .requeue_leases(&Requeue {
            selector: LeaseSelector::ExpiredBefore(later),
            now: later,
            count_attempt: true,
            kind: EventKind::LeaseExpired,
            message: "lease expired",
        })
        .await
        .unwrap();
    let again = claim(store, "w2", 1, later, 6).await;
    assert_eq!(again[0].checkpoint, Some(cp.clone()));
    // A run that ends with an outcome (here a failure to be retried, e.g. a timeout) ends
    // its attempt: the next attempt starts afresh, not from the old upstream task.
    let retry_at = later.saturating_add(SEC);
    store
        .finish(vec![Finish {
            id,
            token: 6,
            transition: Transition::Retry {
                run_at: retry_at,
                error: TaskError::new("timeout", "too slow", true),
            },
            at: later,
        }])
        .await
        .unwrap();
    assert_eq!(
        get(store, id).await.checkpoint,
        None,
        "cleared by an outcome"
    );
    let third = claim(store, "w2", 1, retry_at, 7).await;
    assert_eq!(third[0].checkpoint, None);
    assert!(
        store
            .save_checkpoint(id, 7, cp.clone(), retry_at)
            .await
            .unwrap()
    );
    store
        .finish(vec![Finish {
            id,
            token: 7,
            transition: Transition::Fail {
                error: TaskError::new("timeout", "too slow", true),
            },
            at: retry_at,
        }])
        .await
        .unwrap();
    assert!(
        !store.save_checkpoint(id, 7, cp, retry_at).await.unwrap(),
        "a finished run saves nothing"
    );
    // A retry by hand starts afresh too.
    store.retry_task(id, retry_at).await.unwrap();
    assert_eq!(
        get(store, id).await.checkpoint,
        None,
        "cleared by a hand retry"
    );
}

pub async fn input_round_trip(store: &dyn Store) {
    let id = create(store, vec![new_task("t", 50, t0())]).await[0];
    claim(store, "w", 1, t0(), 4).await;
    let requests = json!({"q1": {"method": "elicitation/create", "params": {"message": "which?"}}});
    // Nothing to answer yet.
    assert!(matches!(
        store
            .provide_input(id, json!({"q1": {}}), t0())
            .await
            .unwrap(),
        InputOutcome::NotWaiting(_)
    ));
    assert!(
        store
            .set_input_required(id, 99, requests.clone(), t0())
            .await
            .unwrap()
            .is_none(),
        "fenced"
    );
    let ev = store
        .set_input_required(id, 4, requests.clone(), t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ev.kind, ev.status),
        (EventKind::InputRequired, TaskStatus::InputRequired)
    );
    assert_eq!(ev.data, Some(requests.clone()));
    let waiting = get(store, id).await;
    assert_eq!(waiting.status, TaskStatus::InputRequired);
    assert_eq!(waiting.input_requests, Some(requests));
    assert!(
        store.take_input(id, 4).await.unwrap().is_none(),
        "no answer yet"
    );
    let answer = json!({"q1": {"action": "accept", "content": {"choice": "b"}}});
    match store.provide_input(id, answer.clone(), t0()).await.unwrap() {
        InputOutcome::Accepted(t, ev) => {
            assert_eq!(t.status, TaskStatus::Running);
            assert!(t.input_requests.is_none());
            assert_eq!(ev.kind, EventKind::InputReceived);
        }
        other => panic!("{other:?}"),
    }
    assert!(store.take_input(id, 99).await.unwrap().is_none(), "fenced");
    assert_eq!(store.take_input(id, 4).await.unwrap(), Some(answer));
    assert!(
        store.take_input(id, 4).await.unwrap().is_none(),
        "taken once"
    );
    assert!(matches!(
        store
            .provide_input(TaskId::generate(t0()), json!({}), t0())
            .await
            .unwrap(),
        InputOutcome::NotFound
    ));
    // Input-required tasks keep their lease alive through heartbeats.
    store
        .set_input_required(id, 4, json!({"q2": {}}), t0())
        .await
        .unwrap()
        .unwrap();
    let hb = store
        .heartbeat("w", t0(), t0().saturating_add(60 * SEC))
        .await
        .unwrap();
    assert_eq!(hb.held, vec![(id, 4)]);
    store.finish(vec![complete(id, 4, t0())]).await.unwrap();
    let done = get(store, id).await;
    assert_eq!(done.status, TaskStatus::Completed);
    assert!(done.input_requests.is_none());
}
