//! Schedules: stored per principal, found when due, moved on once per tick.

use baton_core::TaskId;

use super::support::{SEC, t0};
use crate::{ScheduleRun, Store, StoredSchedule};

fn schedule(owner: &str, name: &str, next: i64) -> StoredSchedule {
    StoredSchedule {
        owner: owner.into(),
        name: name.into(),
        cron: "*/5 * * * * *".into(),
        timezone: "UTC".into(),
        task: r#"{"tool":"baton__echo"}"#.into(),
        overlap: "allow".into(),
        catch_up: "none".into(),
        paused: false,
        next_at: t0().saturating_add(SEC * next as u32),
        last_at: None,
        last_task_id: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

/// Created once per owner and name, listed, due in order, advanced only from the tick
/// read (a second advance of the same tick writes nothing), paused ones never due, runs
/// recorded newest first, deleted with their runs.
pub async fn schedules_fire_each_tick_once(store: &dyn Store) {
    let a = schedule("alice", "nightly", 5);
    assert!(store.insert_schedule(&a).await.unwrap());
    assert!(
        !store.insert_schedule(&a).await.unwrap(),
        "names are unique per owner"
    );
    assert!(
        store
            .insert_schedule(&schedule("bob", "nightly", 3))
            .await
            .unwrap()
    );
    let mut paused = schedule("alice", "paused", 1);
    paused.paused = true;
    assert!(store.insert_schedule(&paused).await.unwrap());

    let mine = store.list_schedules(Some("alice")).await.unwrap();
    let names: Vec<&str> = mine.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["nightly", "paused"]);
    assert_eq!(store.list_schedules(None).await.unwrap().len(), 3);
    assert_eq!(
        store.get_schedule("alice", "nightly").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.get_schedule("carol", "nightly").await.unwrap(), None);
    assert_eq!(
        store.next_schedule_at().await.unwrap(),
        Some(t0().saturating_add(3 * SEC)),
        "the paused one is not counted"
    );

    let now = t0().saturating_add(10 * SEC);
    let due = store.due_schedules(now, 10).await.unwrap();
    let due: Vec<(&str, &str)> = due
        .iter()
        .map(|s| (s.owner.as_str(), s.name.as_str()))
        .collect();
    assert_eq!(due, [("bob", "nightly"), ("alice", "nightly")]);

    let run = ScheduleRun {
        tick_at: a.next_at,
        task_id: TaskId::generate(now),
    };
    let next = t0().saturating_add(15 * SEC);
    assert!(
        store
            .advance_schedule("alice", "nightly", a.next_at, next, Some(run), now)
            .await
            .unwrap()
    );
    // Another process that read the same tick finds it moved: nothing written.
    let other = ScheduleRun {
        tick_at: a.next_at,
        task_id: TaskId::generate(now),
    };
    assert!(
        !store
            .advance_schedule("alice", "nightly", a.next_at, next, Some(other), now)
            .await
            .unwrap()
    );
    let stored = store
        .get_schedule("alice", "nightly")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.next_at, next);
    assert_eq!(
        (stored.last_at, stored.last_task_id),
        (Some(a.next_at), Some(run.task_id))
    );
    assert_eq!(
        store.schedule_runs("alice", "nightly", 10).await.unwrap(),
        [run]
    );
    // A skipped tick moves on without a run.
    let later = t0().saturating_add(20 * SEC);
    assert!(
        store
            .advance_schedule("alice", "nightly", next, later, None, now)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .schedule_runs("alice", "nightly", 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // Updating replaces the definition and keeps the history.
    let mut changed = stored.clone();
    changed.cron = "0 * * * * *".into();
    changed.paused = true;
    assert!(store.update_schedule(&changed).await.unwrap());
    let stored = store
        .get_schedule("alice", "nightly")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.cron.as_str(), stored.paused), ("0 * * * * *", true));
    assert_eq!(stored.last_task_id, Some(run.task_id));
    assert!(
        !store
            .update_schedule(&schedule("alice", "missing", 1))
            .await
            .unwrap()
    );

    assert!(store.delete_schedule("alice", "nightly").await.unwrap());
    assert!(!store.delete_schedule("alice", "nightly").await.unwrap());
    assert!(
        store
            .schedule_runs("alice", "nightly", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .get_schedule("bob", "nightly")
            .await
            .unwrap()
            .is_some()
    );
}
