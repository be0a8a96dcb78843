//! The checker must be able to fail: each kind of violation, fed synthetically, is
//! reported; a clean history passes.

use serde_json::json;

use super::*;
use crate::chaos::history::{FaultKind, OpKind};

fn ev(seq: i64, kind: &str) -> EventTruth {
    EventTruth {
        seq,
        kind: kind.into(),
    }
}

fn task(id: &str, tool: &str, status: &str, kinds: &[&str]) -> TaskTruth {
    TaskTruth {
        id: id.into(),
        tool: tool.into(),
        status: status.into(),
        leased: false,
        step: None,
        events: kinds
            .iter()
            .enumerate()
            .map(|(i, k)| ev(i as i64 + 1, k))
            .collect(),
    }
}

fn op(id: u64, kind: OpKind, status: u16, answer: Value) -> Op {
    let outcome = match status {
        200..=299 => Outcome::Ok,
        400..=499 => Outcome::Fail,
        _ => Outcome::Info,
    };
    let tasks = answer
        .get("task_id")
        .and_then(Value::as_str)
        .map(|t| vec![t.to_string()])
        .unwrap_or_default();
    Op {
        id,
        client: 0,
        kind,
        node: "node-1".into(),
        method: "POST".into(),
        path: "/v1/tasks".into(),
        request: Value::Null,
        invoked_ms: id * 100,
        completed_ms: id * 100 + 10,
        outcome,
        status: Some(status),
        answer,
        tasks,
        workflow: None,
        expect: Expect::Nothing,
    }
}

/// A history where everything went right: each invariant checks something.
fn clean() -> (Vec<Op>, Vec<Fault>, Truth) {
    let mut truth = Truth::default();
    let mut add = |t: TaskTruth| {
        truth.tasks.insert(t.id.clone(), t);
    };
    add(task(
        "a",
        "baton__echo",
        "completed",
        &["created", "started", "completed"],
    ));
    add(task(
        "b",
        "t__effect",
        "completed",
        &[
            "created",
            "started",
            "lease_expired",
            "started",
            "completed",
        ],
    ));
    add(task(
        "c",
        "baton__sleep",
        "cancelled",
        &[
            "created",
            "cancelled",
            "retried",
            "started",
            "cancel_requested",
            "cancelled",
        ],
    ));
    add(task(
        "d",
        "baton__fail",
        "failed",
        &["created", "started", "retry_scheduled", "started", "failed"],
    ));
    let mut s1 = task(
        "s1",
        "baton__echo",
        "completed",
        &["created", "started", "completed"],
    );
    s1.step = Some(("w".into(), "one".into()));
    let mut s2 = task("s2", "t__effect", "completed", &[]);
    s2.events = vec![ev(10, "created"), ev(11, "started"), ev(12, "completed")];
    s2.step = Some(("w".into(), "two".into()));
    add(s1);
    add(s2);
    truth.effects.insert("b".into(), 2);
    truth.effects.insert("s2".into(), 1);
    truth.workflows.insert(
        "w".into(),
        WorkflowTruth {
            id: "w".into(),
            status: "completed".into(),
            deps: [
                ("one".to_string(), vec![]),
                ("two".to_string(), vec!["one".to_string()]),
            ]
            .into_iter()
            .collect(),
        },
    );
    let mut wf = op(6, OpKind::Workflow, 202, json!({"workflow_id": "w"}));
    wf.workflow = Some("w".into());
    wf.tasks = vec!["s1".into()];
    let mut replay = op(
        3,
        OpKind::IdemReplay,
        202,
        json!({"task_id": "a", "created": false}),
    );
    replay.expect = Expect::SameTask { task: "a".into() };
    let mut conflict = op(
        4,
        OpKind::IdemConflict,
        409,
        json!({"error": {"code": "conflict"}}),
    );
    conflict.expect = Expect::Conflict {
        task: Some("a".into()),
    };
    // A 503 during a PostgreSQL restart is excused.
    let mut during = op(7, OpKind::Submit, 503, json!({"error": "unavailable"}));
    during.invoked_ms = 1000;
    during.completed_ms = 1100;
    let ops = vec![
        op(
            1,
            OpKind::Submit,
            202,
            json!({"task_id": "a", "created": true}),
        ),
        op(
            2,
            OpKind::Submit,
            202,
            json!({"task_id": "b", "created": true}),
        ),
        replay,
        conflict,
        op(
            5,
            OpKind::Cancel,
            202,
            json!({"task_id": "c", "status": "cancelled"}),
        ),
        wf,
        during,
    ];
    let faults = vec![Fault {
        kind: FaultKind::PgRestart,
        target: "postgres".into(),
        detail: String::new(),
        start_ms: 900,
        end_ms: 1000,
        recovery_ms: 50,
        affects: vec!["*".into()],
    }];
    (ops, faults, truth)
}

fn violations(ops: &[Op], faults: &[Fault], truth: &Truth) -> Vec<(u8, String)> {
    check(ops, faults, truth)
        .into_iter()
        .flat_map(|i| {
            let n = i.number;
            i.violations.into_iter().map(move |v| (n, v.evidence))
        })
        .collect()
}

/// The invariants that reported something.
fn failing(ops: &[Op], faults: &[Fault], truth: &Truth) -> Vec<u8> {
    let mut n: Vec<u8> = violations(ops, faults, truth)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    n.dedup();
    n
}

#[test]
fn a_clean_history_passes_and_every_invariant_checks_something() {
    let (ops, faults, truth) = clean();
    let result = check(&ops, &faults, &truth);
    assert_eq!(result.len(), 7);
    for inv in &result {
        assert!(
            inv.violations.is_empty(),
            "{}: {:?}",
            inv.name,
            inv.violations
        );
        assert!(inv.checked > 0, "invariant {} checked nothing", inv.number);
    }
}

#[test]
fn a_lost_acknowledged_task_is_reported() {
    let (mut ops, faults, truth) = clean();
    ops.push(op(8, OpKind::Batch, 202, json!({})));
    ops.last_mut().unwrap().tasks = vec!["lost".into()];
    let v = violations(&ops, &faults, &truth);
    assert!(
        v.iter()
            .any(|(n, e)| *n == 1 && e.contains("not in the store")),
        "{v:?}"
    );
}

#[test]
fn an_acknowledged_task_left_pending_is_reported() {
    let (ops, faults, mut truth) = clean();
    truth.tasks.get_mut("a").unwrap().status = "pending".into();
    let f = failing(&ops, &faults, &truth);
    assert!(f.contains(&1) && f.contains(&6), "{f:?}");
}

#[test]
fn an_acknowledged_workflow_left_running_is_reported() {
    let (ops, faults, mut truth) = clean();
    truth.workflows.get_mut("w").unwrap().status = "running".into();
    let v = violations(&ops, &faults, &truth);
    assert!(
        v.iter().any(|(n, e)| *n == 1 && e.contains("workflow")),
        "{v:?}"
    );
    assert!(v.iter().any(|(n, _)| *n == 6), "{v:?}");
}

#[test]
fn a_double_completion_is_reported() {
    let (ops, faults, mut truth) = clean();
    truth
        .tasks
        .get_mut("a")
        .unwrap()
        .events
        .push(ev(99, "completed"));
    let v = violations(&ops, &faults, &truth);
    assert!(
        v.iter()
            .any(|(n, e)| *n == 2 && e.contains("completed 2 times")),
        "{v:?}"
    );
}

#[test]
fn a_completion_undone_is_reported() {
    let (ops, faults, mut truth) = clean();
    truth.tasks.get_mut("a").unwrap().status = "failed".into();
    assert_eq!(failing(&ops, &faults, &truth), vec![2]);
}

#[test]
fn a_run_after_a_cancellation_is_reported() {
    let (ops, faults, mut truth) = clean();
    truth.tasks.insert(
        "x".into(),
        task(
            "x",
            "baton__sleep",
            "completed",
            &["created", "cancelled", "started", "completed"],
        ),
    );
    let v = violations(&ops, &faults, &truth);
    assert!(
        v.iter()
            .any(|(n, e)| *n == 3 && e.contains("`started` at seq 3 after `cancelled` at seq 2")),
        "{v:?}"
    );
}

#[test]
fn an_acknowledged_cancel_that_did_not_stick_is_reported() {
    let (mut ops, faults, mut truth) = clean();
    truth.tasks.insert(
        "y".into(),
        task(
            "y",
            "baton__sleep",
            "failed",
            &["created", "cancelled", "failed"],
        ),
    );
    ops.push(op(
        9,
        OpKind::Cancel,
        202,
        json!({"task_id": "y", "status": "cancelled"}),
    ));
    let v = violations(&ops, &faults, &truth);
    assert!(
        v.iter()
            .any(|(n, e)| *n == 3 && e.contains("never retried after, but ends `failed`")),
        "{v:?}"
    );
    // And one acknowledged with no `cancelled` event at all.
    truth.tasks.insert(
        "y".into(),
        task(
            "y",
            "baton__sleep",
            "completed",
            &["created", "started", "completed"],
        ),
    );
    let v = violations(&ops, &faults, &truth);
    assert!(
        v.iter()
            .any(|(n, e)| *n == 3 && e.contains("no `cancelled` event")),
        "{v:?}"
    );
}

#[test]
fn a_step_started_before_its_dependency_completed_is_reported() {
    let (ops, faults, mut truth) = clean();
    truth.tasks.get_mut("s2").unwrap().events =
        vec![ev(2, "created"), ev(2, "started"), ev(12, "completed")];
    let v = violations(&ops, &faults, &truth);
    assert!(
        v.iter()
            .any(|(n, e)| *n == 4 && e.contains("before its dependency `one`")),
        "{v:?}"
    );
}

#[test]
fn a_step_whose_dependency_never_completed_or_that_ran_again_is_reported() {
    let (ops, faults, mut truth) = clean();
    truth.tasks.get_mut("s1").unwrap().events =
        vec![ev(1, "created"), ev(2, "started"), ev(3, "failed")];
    truth.tasks.get_mut("s1").unwrap().status = "failed".into();
    truth
        .tasks
        .get_mut("s2")
        .unwrap()
        .events
        .push(ev(20, "started"));
    let v = violations(&ops, &faults, &truth);
    assert!(
        v.iter()
            .any(|(n, e)| *n == 4 && e.contains("never completed")),
        "{v:?}"
    );
    assert!(
        v.iter()
            .any(|(n, e)| *n == 4 && e.contains("started again")),
        "{v:?}"
    );
}

#[test]
fn more_side_effects_than_attempts_are_reported() {
    let (ops, faults, mut truth) = clean();
    truth.effects.insert("b".into(), 3);
    let v = violations(&ops, &faults, &truth);
    assert!(
        v.iter()
            .any(|(n, e)| *n == 5 && e.contains("3 side effects for 2 started")),
        "{v:?}"
    );
}

#[test]
fn a_completed_effect_without_its_effect_and_an_orphan_effect_are_reported() {
    let (ops, faults, mut truth) = clean();
    truth.effects.remove("s2");
    truth.effects.insert("ghost".into(), 1);
    let v = violations(&ops, &faults, &truth);
    assert!(
        v.iter()
            .any(|(n, e)| *n == 5 && e.contains("without its side effect")),
        "{v:?}"
    );
    assert!(
        v.iter()
            .any(|(n, e)| *n == 5 && e.contains("does not have")),
        "{v:?}"
    );
}

#[test]
fn a_leftover_lease_is_reported() {
    let (ops, faults, mut truth) = clean();
    truth.tasks.get_mut("d").unwrap().leased = true;
    assert_eq!(failing(&ops, &faults, &truth), vec![6]);
}

#[test]
fn a_5xx_outside_a_fault_window_is_reported() {
    let (mut ops, mut faults, truth) = clean();
    ops.push(op(30, OpKind::Hostile, 500, json!({"error": "boom"})));
    let v = violations(&ops, &faults, &truth);
    assert!(
        v.iter().any(|(n, e)| *n == 7 && e.contains("answered 500")),
        "{v:?}"
    );
    // A fault of another node does not excuse it; one of its own node does.
    faults.push(Fault {
        kind: FaultKind::Kill,
        target: "node-2".into(),
        detail: String::new(),
        start_ms: 2990,
        end_ms: 2995,
        recovery_ms: 5,
        affects: vec!["node-2".into()],
    });
    assert_eq!(failing(&ops, &faults, &truth), vec![7]);
    faults.last_mut().unwrap().affects = vec!["node-1".into()];
    assert!(failing(&ops, &faults, &truth).is_empty());
}

#[test]
fn a_broken_idempotent_resubmit_is_reported() {
    let (mut ops, faults, truth) = clean();
    ops[2].answer = json!({"task_id": "b", "created": false});
    ops[3].status = Some(202);
    ops[3].outcome = Outcome::Ok;
    let v = violations(&ops, &faults, &truth);
    assert!(
        v.iter()
            .any(|(n, e)| *n == 7 && e.contains("not the original task")),
        "{v:?}"
    );
    assert!(
        v.iter().any(|(n, e)| *n == 7 && e.contains("not 409")),
        "{v:?}"
    );
}

#[test]
fn a_conflict_that_never_reached_a_node_is_not_judged() {
    let (mut ops, faults, truth) = clean();
    ops[3].status = None;
    ops[3].answer = json!({"error": "connection refused"});
    assert!(failing(&ops, &faults, &truth).is_empty());
}
