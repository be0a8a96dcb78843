//! Workflows: lifecycle, conditional updates, and retention with their steps.

use baton_core::policy::Transition;
use baton_core::task::{NewTask, StepRef};
use baton_core::{TaskError, TaskStatus, Timestamp};
use serde_json::json;

use super::support::{SEC, claim, complete, create, get, new_task, t0};
use crate::{
    CreateOutcome, Finish, NewWorkflow, Store, TaskQuery, WorkflowQuery, WorkflowStatus,
    WorkflowUpdate, WorkflowUpdated,
};

pub(super) fn step_task(workflow: &str, step: &str, at: Timestamp) -> NewTask {
    let mut t = new_task("s__tool", 50, at);
    t.step = Some(StepRef {
        workflow_id: workflow.into(),
        step_id: step.into(),
    });
    t.idempotency_key = Some(format!("workflow/{workflow}/{step}"));
    t
}

pub(super) fn new_workflow(id: &str, at: Timestamp) -> NewWorkflow {
    NewWorkflow {
        id: id.into(),
        name: "report".into(),
        owner: "alice".into(),
        definition: json!({"name": "report", "steps": [{"id": "a", "tool": "s__tool"}]}),
        created_at: at,
    }
}

pub(super) fn update(id: &str, at: Timestamp) -> WorkflowUpdate {
    WorkflowUpdate {
        id: id.into(),
        expect: vec![WorkflowStatus::Running],
        now: at,
        status: None,
        steps: None,
        tasks: Vec::new(),
        retry: Vec::new(),
        cancel: Vec::new(),
    }
}

pub async fn workflows_lifecycle(store: &dyn Store) {
    let (wf, outcomes, events) = store
        .create_workflow(
            new_workflow("wf-1", t0()),
            vec![step_task("wf-1", "a", t0())],
        )
        .await
        .unwrap();
    assert_eq!(wf.status, WorkflowStatus::Running);
    assert_eq!(outcomes.len(), 1);
    // The step's task names its workflow and step, and so does its `created` event.
    let task = get(store, outcomes[0].task().id).await;
    assert_eq!(
        task.step,
        Some(StepRef {
            workflow_id: "wf-1".into(),
            step_id: "a".into()
        })
    );
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].data,
        Some(json!({"workflow_id": "wf-1", "step_id": "a"}))
    );
    let got = store.get_workflow("wf-1").await.unwrap().unwrap();
    assert_eq!(got.definition, wf.definition);
    assert_eq!(got.name, "report");
    assert!(store.get_workflow("wf-404").await.unwrap().is_none());

    // A step added later lands with the update; step states are kept.
    let mut u = update("wf-1", t0().saturating_add(SEC));
    u.tasks = vec![step_task("wf-1", "b", t0())];
    let mut steps = serde_json::Map::new();
    steps.insert("c".into(), json!({"state": "skipped"}));
    u.steps = Some(steps.clone());
    let WorkflowUpdated::Applied { outcomes, .. } = store.update_workflow(u).await.unwrap() else {
        panic!("a running workflow takes updates");
    };
    assert!(matches!(outcomes[0], CreateOutcome::Created(_)));
    let steps_tasks = store
        .list_tasks(&TaskQuery {
            workflow_id: Some("wf-1".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut names: Vec<String> = steps_tasks
        .iter()
        .map(|t| t.step.as_ref().unwrap().step_id.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    // The same step submitted twice is one task.
    let mut u = update("wf-1", t0().saturating_add(SEC));
    u.tasks = vec![step_task("wf-1", "b", t0())];
    let WorkflowUpdated::Applied { outcomes, .. } = store.update_workflow(u).await.unwrap() else {
        panic!("still running");
    };
    assert!(matches!(outcomes[0], CreateOutcome::Existing(_)));

    // Finishing sets completed_at; listing filters by owner and status.
    let mut u = update("wf-1", t0().saturating_add(2 * SEC));
    u.status = Some(WorkflowStatus::Completed);
    store.update_workflow(u).await.unwrap();
    let got = store.get_workflow("wf-1").await.unwrap().unwrap();
    assert_eq!(got.status, WorkflowStatus::Completed);
    assert_eq!(got.steps, steps);
    assert_eq!(got.completed_at, Some(t0().saturating_add(2 * SEC)));
    store
        .create_workflow(new_workflow("wf-2", t0()), Vec::new())
        .await
        .unwrap();
    let all = store
        .list_workflows(&WorkflowQuery {
            owner: Some("alice".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["wf-2", "wf-1"],
        "newest first"
    );
    let running = store
        .list_workflows(&WorkflowQuery {
            status: Some(WorkflowStatus::Running),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].id, "wf-2");
    let page = store
        .list_workflows(&WorkflowQuery {
            before_seq: Some(all[0].seq),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, "wf-1");
    assert!(
        store
            .list_workflows(&WorkflowQuery {
                owner: Some("bob".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn workflow_updates_are_conditional(store: &dyn Store) {
    store
        .create_workflow(new_workflow("wf-1", t0()), Vec::new())
        .await
        .unwrap();
    let mut cancel = update("wf-1", t0());
    cancel.status = Some(WorkflowStatus::Cancelled);
    assert!(matches!(
        store.update_workflow(cancel).await.unwrap(),
        WorkflowUpdated::Applied { .. }
    ));
    // A coordinator that still thinks it runs adds nothing to a cancelled workflow.
    let mut late = update("wf-1", t0().saturating_add(SEC));
    late.tasks = vec![step_task("wf-1", "a", t0())];
    match store.update_workflow(late).await.unwrap() {
        WorkflowUpdated::Refused(wf) => assert_eq!(wf.status, WorkflowStatus::Cancelled),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(
        store
            .list_tasks(&TaskQuery {
                workflow_id: Some("wf-1".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty(),
        "nothing was stored"
    );
    // A retry reopens it; completed_at is cleared.
    let mut reopen = update("wf-1", t0().saturating_add(2 * SEC));
    reopen.expect = vec![WorkflowStatus::Failed, WorkflowStatus::Cancelled];
    reopen.status = Some(WorkflowStatus::Running);
    let WorkflowUpdated::Applied { workflow, .. } = store.update_workflow(reopen).await.unwrap()
    else {
        panic!("a cancelled workflow can be reopened");
    };
    assert_eq!(workflow.status, WorkflowStatus::Running);
    assert_eq!(workflow.completed_at, None);
    let stored = store.get_workflow("wf-1").await.unwrap().unwrap();
    assert_eq!(stored.completed_at, None);
    assert!(matches!(
        store.update_workflow(update("wf-404", t0())).await.unwrap(),
        WorkflowUpdated::NotFound
    ));
}

pub async fn running_workflows_keep_their_steps(store: &dyn Store) {
    let (_, outcomes, _) = store
        .create_workflow(
            new_workflow("wf-1", t0()),
            vec![step_task("wf-1", "a", t0())],
        )
        .await
        .unwrap();
    let step = outcomes[0].task().id;
    let plain = create(store, vec![new_task("t", 50, t0())]).await[0];
    let running = claim(store, "w", 2, t0(), 1).await;
    assert_eq!(running.len(), 2);
    for id in [step, plain] {
        store.finish(vec![complete(id, 1, t0())]).await.unwrap();
    }
    let later = t0().saturating_add(100 * SEC);
    // Retention takes the plain task, not the step of a workflow still running (its
    // result may still be referenced, and the step must not run again).
    assert_eq!(store.purge_finished(later, later, 100).await.unwrap(), 1);
    assert!(store.get_task(plain).await.unwrap().is_none());
    assert!(store.get_task(step).await.unwrap().is_some());
    // Once the workflow is over, both go.
    let mut done = update("wf-1", t0().saturating_add(SEC));
    done.status = Some(WorkflowStatus::Completed);
    store.update_workflow(done).await.unwrap();
    assert_eq!(store.purge_finished(later, later, 100).await.unwrap(), 1);
    assert!(store.get_task(step).await.unwrap().is_none());
    assert!(store.get_workflow("wf-1").await.unwrap().is_none());
}

/// Retention and workflows are one decision: a failed workflow (which can be retried)
/// keeps its completed steps however old they are, so a retry never runs them again;
/// the workflow goes with all its steps once it has been over for the retention period.
/// Children of a task still running stay too.
pub async fn retention_keeps_what_a_retry_or_a_parent_needs(store: &dyn Store) {
    let (_, outcomes, _) = store
        .create_workflow(
            new_workflow("wf-r", t0()),
            vec![step_task("wf-r", "a", t0()), step_task("wf-r", "b", t0())],
        )
        .await
        .unwrap();
    let (a, b) = (outcomes[0].task().id, outcomes[1].task().id);
    claim(store, "w", 2, t0(), 1).await;
    // a completed long ago; b failed later, failing the workflow.
    store.finish(vec![complete(a, 1, t0())]).await.unwrap();
    let failed_at = t0().saturating_add(20 * SEC);
    store
        .finish(vec![Finish {
            id: b,
            token: 1,
            transition: Transition::Fail {
                error: TaskError::new("boom", "boom", false),
            },
            at: failed_at,
        }])
        .await
        .unwrap();
    let mut fail = update("wf-r", failed_at);
    fail.status = Some(WorkflowStatus::Failed);
    store.update_workflow(fail).await.unwrap();
    // A parent still running, with a child that completed long ago.
    let mut parent = new_task("t", 50, t0());
    parent.run_at = failed_at;
    let mut child = new_task("t", 50, t0());
    child.parent_id = Some(parent.id);
    create(store, vec![parent.clone(), child.clone()]).await;
    let claimed = claim(store, "w", 1, t0(), 2).await;
    assert_eq!(claimed[0].id, child.id);
    store
        .finish(vec![complete(child.id, 2, t0())])
        .await
        .unwrap();
    assert_eq!(claim(store, "w", 1, failed_at, 3).await[0].id, parent.id);

    // Retention of 15 s, 5 s after the workflow failed: a is 25 s old but stays.
    let cut = failed_at.saturating_add(5 * SEC).saturating_sub(15 * SEC);
    assert_eq!(store.purge_finished(cut, cut, 100).await.unwrap(), 0);
    assert!(
        store.get_task(a).await.unwrap().is_some(),
        "a completed step of a retryable workflow"
    );
    assert!(
        store.get_task(child.id).await.unwrap().is_some(),
        "a child of a running task"
    );
    // Past retention of the workflow: it goes with both its steps. The parent finished:
    // its child goes too.
    store
        .finish(vec![complete(
            parent.id,
            3,
            failed_at.saturating_add(5 * SEC),
        )])
        .await
        .unwrap();
    let cut = failed_at.saturating_add(SEC);
    assert_eq!(store.purge_finished(cut, cut, 100).await.unwrap(), 3);
    assert!(store.get_workflow("wf-r").await.unwrap().is_none());
    for id in [a, b, child.id] {
        assert!(store.get_task(id).await.unwrap().is_none());
    }
    assert!(
        store.get_task(parent.id).await.unwrap().is_some(),
        "finished after the cut"
    );
}

/// A workflow's retry moves its ended steps back to pending in the same transaction as
/// the workflow goes back to running, and finishing a cancel cancels steps only while the
/// workflow is still cancelled: no reader sees one half without the other.
pub async fn workflow_retry_and_cancel_move_steps_with_it(store: &dyn Store) {
    let (_, outcomes, _) = store
        .create_workflow(
            new_workflow("wf-1", t0()),
            vec![
                step_task("wf-1", "a", t0()),
                step_task("wf-1", "b", t0()),
                step_task("wf-1", "c", t0()),
            ],
        )
        .await
        .unwrap();
    let ids: Vec<_> = outcomes.iter().map(|o| o.task().id).collect();
    // `a` completes, `b` is running, `c` pending; then the workflow is cancelled.
    let claimed = claim(store, "n1", 1, t0(), 7).await;
    let first = claimed[0].id;
    store
        .finish(vec![complete(first, 7, t0().saturating_add(SEC))])
        .await
        .unwrap();
    let running = claim(store, "n1", 1, t0().saturating_add(SEC), 8).await[0].id;
    let pending = *ids.iter().find(|&&i| i != first && i != running).unwrap();
    let mut cancel = update("wf-1", t0().saturating_add(2 * SEC));
    cancel.status = Some(WorkflowStatus::Cancelled);
    cancel.cancel = vec![first, running, pending];
    let WorkflowUpdated::Applied { events, .. } = store.update_workflow(cancel).await.unwrap()
    else {
        panic!("a running workflow can be cancelled");
    };
    assert_eq!(events.len(), 2, "one event per unfinished step: {events:?}");
    assert_eq!(get(store, first).await.status, TaskStatus::Completed);
    assert!(get(store, running).await.cancel_requested);
    assert_eq!(get(store, pending).await.status, TaskStatus::Cancelled);

    // The running step stops; the retry brings back both ended steps, not the completed one.
    let mut stopped = complete(running, 8, t0().saturating_add(3 * SEC));
    stopped.transition = Transition::Cancel;
    store.finish(vec![stopped]).await.unwrap();
    let mut retry = update("wf-1", t0().saturating_add(4 * SEC));
    retry.expect = vec![WorkflowStatus::Failed, WorkflowStatus::Cancelled];
    retry.status = Some(WorkflowStatus::Running);
    retry.retry = vec![first, running, pending];
    let WorkflowUpdated::Applied {
        events, workflow, ..
    } = store.update_workflow(retry).await.unwrap()
    else {
        panic!("a cancelled workflow can be retried");
    };
    assert_eq!(workflow.status, WorkflowStatus::Running);
    assert_eq!(
        events.len(),
        2,
        "one `retried` event per ended step: {events:?}"
    );
    assert_eq!(get(store, first).await.status, TaskStatus::Completed);
    for id in [running, pending] {
        let t = get(store, id).await;
        assert_eq!(t.status, TaskStatus::Pending, "{id}");
        assert!(!t.cancel_requested);
    }

    // A coordinator finishing the old cancel, late, changes nothing now.
    let mut late = update("wf-1", t0().saturating_add(5 * SEC));
    late.expect = vec![WorkflowStatus::Cancelled];
    late.cancel = vec![running, pending];
    assert!(matches!(
        store.update_workflow(late).await.unwrap(),
        WorkflowUpdated::Refused(_)
    ));
    for id in [running, pending] {
        assert_eq!(get(store, id).await.status, TaskStatus::Pending, "{id}");
    }
    // Nor does a retry refused because the workflow is running: its steps stay as they are.
    let running_again = claim(store, "n1", 1, t0().saturating_add(6 * SEC), 9).await[0].id;
    let mut late_retry = update("wf-1", t0().saturating_add(6 * SEC));
    late_retry.expect = vec![WorkflowStatus::Failed, WorkflowStatus::Cancelled];
    late_retry.retry = vec![running_again];
    late_retry.status = Some(WorkflowStatus::Running);
    assert!(matches!(
        store.update_workflow(late_retry).await.unwrap(),
        WorkflowUpdated::Refused(_)
    ));
    assert_eq!(get(store, running_again).await.status, TaskStatus::Running);
}
