//! The archive's bookkeeping: batches recorded before their objects are written, each
//! item in one batch only, completion that indexes and deletes in one go unless an item
//! changed meanwhile, and batches left `writing` found again.

use baton_core::policy::Transition;
use baton_core::{TaskError, Timestamp};

use super::support::{SEC, claim, complete, create, new_task, t0};
use super::workflows::{new_workflow, step_task, update};
use crate::{
    ArchiveBatch, ArchiveCompletion, ArchiveKind, ArchivedItem, Finish, RetryOutcome, Store,
    WorkflowStatus,
};

fn batch(id: &str, kind: ArchiveKind, members: Vec<String>) -> ArchiveBatch {
    ArchiveBatch {
        id: id.into(),
        kind,
        day: "2027-01-15".into(),
        path: format!("{}s/day=2027-01-15/{id}.jsonl.zst", kind.as_str()),
        created_at: t0(),
        members,
    }
}

fn written(items: &[ArchivedItem]) -> Vec<crate::ArchiveWritten> {
    items.iter().map(ArchivedItem::written).collect()
}

pub async fn archive_batches_complete_once(store: &dyn Store) {
    let ids = create(store, (0..3).map(|_| new_task("t", 50, t0())).collect()).await;
    let running = claim(store, "w", 2, t0(), 1).await;
    let (done, failed) = (running[0].id, running[1].id);
    let open = *ids.iter().find(|i| ![done, failed].contains(i)).unwrap();
    store.finish(vec![complete(done, 1, t0())]).await.unwrap();
    store
        .finish(vec![Finish {
            id: failed,
            token: 1,
            transition: Transition::Fail {
                error: TaskError::new("boom", "it broke", false),
            },
            at: t0(),
        }])
        .await
        .unwrap();
    let later = t0().saturating_add(100 * SEC);

    // What retention would delete, and nothing open.
    let found = store.archivable(later, t0(), 100).await.unwrap();
    let mut found_ids: Vec<String> = found.iter().map(|a| a.id.clone()).collect();
    found_ids.sort();
    let mut expect = vec![done.to_string(), failed.to_string()];
    expect.sort();
    assert_eq!(found_ids, expect);
    assert!(found.iter().all(|a| a.kind == ArchiveKind::Task));
    assert!(found.iter().all(|a| a.completed_at == t0()));

    // An item goes into one batch only.
    let first = store
        .begin_archive(&[batch("b1", ArchiveKind::Task, expect.clone())])
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].members.len(), 2);
    let again = store
        .begin_archive(&[batch("b2", ArchiveKind::Task, vec![done.to_string()])])
        .await
        .unwrap();
    assert!(again.is_empty(), "no batch without members");
    assert!(store.archivable(later, t0(), 100).await.unwrap().is_empty());
    let writing = store.archive_batches_writing().await.unwrap();
    assert_eq!(writing.len(), 1);
    assert_eq!(writing[0].id, "b1");
    assert_eq!(writing[0].path, "tasks/day=2027-01-15/b1.jsonl.zst");

    // The contents, with events; a task retried after they were read leaves the batch.
    let items = store.archive_contents(&writing[0]).await.unwrap();
    assert_eq!(items.len(), 2);
    for item in &items {
        let ArchivedItem::Task(r) = item else {
            panic!("a task batch holds tasks");
        };
        assert!(!r.events.is_empty(), "with its events");
        assert!(r.events.iter().all(|e| e.task_id == r.task.id));
    }
    let retried_at = t0().saturating_add(SEC);
    assert!(matches!(
        store.retry_task(failed, retried_at).await.unwrap(),
        RetryOutcome::Retried(..)
    ));
    let outcome = store
        .complete_archive("b1", &written(&items), later)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ArchiveCompletion::Changed {
            dropped: vec![failed.to_string()]
        }
    );
    assert!(
        store.get_task(done).await.unwrap().is_some(),
        "nothing deleted"
    );
    assert!(
        store
            .archived(ArchiveKind::Task, &done.to_string())
            .await
            .unwrap()
            .is_none()
    );

    // Written again without it, the batch completes: indexed, deleted, done.
    let writing = store.archive_batches_writing().await.unwrap();
    assert_eq!(writing[0].members, vec![done.to_string()]);
    let items = store.archive_contents(&writing[0]).await.unwrap();
    assert_eq!(items.len(), 1);
    let outcome = store
        .complete_archive("b1", &written(&items), later)
        .await
        .unwrap();
    assert_eq!(outcome, ArchiveCompletion::Done { items: 1, tasks: 1 });
    assert!(store.get_task(done).await.unwrap().is_none());
    assert!(store.task_events(done, 0, 10).await.unwrap().is_empty());
    let entry = store
        .archived(ArchiveKind::Task, &done.to_string())
        .await
        .unwrap()
        .expect("indexed");
    assert_eq!(entry.owner, "alice");
    assert_eq!(entry.path, "tasks/day=2027-01-15/b1.jsonl.zst");
    assert_eq!(entry.day, "2027-01-15");
    assert_eq!(entry.archived_at, later);
    assert!(store.get_task(failed).await.unwrap().is_some());
    assert!(store.get_task(open).await.unwrap().is_some());
    // Completing twice does nothing.
    assert_eq!(
        store
            .complete_archive("b1", &written(&items), later)
            .await
            .unwrap(),
        ArchiveCompletion::AlreadyDone
    );
    assert!(store.archive_batches_writing().await.unwrap().is_empty());
    // The retried task can be archived later, in a batch of its own.
    let running = claim(store, "w", 10, retried_at, 2).await;
    assert!(running.iter().any(|t| t.id == failed));
    store
        .finish(vec![complete(failed, 2, retried_at)])
        .await
        .unwrap();
    let found = store.archivable(later, later, 100).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, failed.to_string());
}

pub async fn archived_workflows_take_their_steps(store: &dyn Store) {
    let (_, outcomes, _) = store
        .create_workflow(
            new_workflow("wf-1", t0()),
            vec![step_task("wf-1", "a", t0())],
        )
        .await
        .unwrap();
    let step = outcomes[0].task().id;
    claim(store, "w", 1, t0(), 1).await;
    store.finish(vec![complete(step, 1, t0())]).await.unwrap();
    let later = t0().saturating_add(100 * SEC);
    // Not while it runs, and a step never alone.
    assert!(
        store
            .archivable(later, later, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let mut over = update("wf-1", t0().saturating_add(SEC));
    over.status = Some(WorkflowStatus::Completed);
    store.update_workflow(over).await.unwrap();
    let found = store.archivable(later, later, 100).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ArchiveKind::Workflow);
    assert_eq!(found[0].id, "wf-1");
    assert_eq!(found[0].completed_at, t0().saturating_add(SEC));

    let recorded = store
        .begin_archive(&[batch("w1", ArchiveKind::Workflow, vec!["wf-1".into()])])
        .await
        .unwrap();
    let items = store.archive_contents(&recorded[0]).await.unwrap();
    let [ArchivedItem::Workflow { workflow, steps }] = items.as_slice() else {
        panic!("one workflow: {items:?}");
    };
    assert_eq!(workflow.id, "wf-1");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].task.id, step);
    assert!(!steps[0].events.is_empty());
    let outcome = store
        .complete_archive("w1", &written(&items), later)
        .await
        .unwrap();
    assert_eq!(outcome, ArchiveCompletion::Done { items: 1, tasks: 1 });
    assert!(store.get_workflow("wf-1").await.unwrap().is_none());
    assert!(store.get_task(step).await.unwrap().is_none());
    let wf = store
        .archived(ArchiveKind::Workflow, "wf-1")
        .await
        .unwrap()
        .expect("the workflow is indexed");
    let st = store
        .archived(ArchiveKind::Task, &step.to_string())
        .await
        .unwrap()
        .expect("so is its step");
    assert_eq!(wf.path, st.path);
    assert_eq!(wf.path, "workflows/day=2027-01-15/w1.jsonl.zst");
    assert!(
        store
            .archived(ArchiveKind::Task, "wf-1")
            .await
            .unwrap()
            .is_none()
    );
    let _: Timestamp = wf.archived_at;
}
