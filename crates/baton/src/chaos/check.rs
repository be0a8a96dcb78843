//! The invariants, checked over the history and the final state read from the store.
//! Pure: no I/O, so each check is unit-tested with synthetic histories (check_tests.rs).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::history::{Expect, Fault, Op, OpKind, Outcome};

/// One event of a task's log, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct EventTruth {
    pub seq: i64,
    pub kind: String,
}

/// A task as the store has it at the end, with its complete event log (oldest first).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskTruth {
    pub id: String,
    pub tool: String,
    pub status: String,
    /// Whether a worker still holds a lease on it.
    pub leased: bool,
    /// `(workflow id, step id)` for a workflow's step task.
    pub step: Option<(String, String)>,
    pub events: Vec<EventTruth>,
}

impl TaskTruth {
    fn count(&self, kind: &str) -> usize {
        self.events.iter().filter(|e| e.kind == kind).count()
    }

    fn first(&self, kind: &str) -> Option<i64> {
        self.events.iter().find(|e| e.kind == kind).map(|e| e.seq)
    }
}

/// A workflow at the end: its status and each step's dependencies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkflowTruth {
    pub id: String,
    pub status: String,
    pub deps: BTreeMap<String, Vec<String>>,
}

/// The final state: the store's tasks and workflows, and the upstream's side effects
/// (lines of `effect-<key>` in the test server's state directory, by key).
#[derive(Clone, Debug, Default)]
pub struct Truth {
    pub tasks: BTreeMap<String, TaskTruth>,
    pub workflows: BTreeMap<String, WorkflowTruth>,
    pub effects: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    /// The task (or workflow, or operation) it is about.
    pub subject: String,
    pub evidence: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Invariant {
    pub number: u8,
    pub name: &'static str,
    /// How many things (tasks, operations) it was checked over.
    pub checked: u64,
    pub violations: Vec<Violation>,
}

impl Invariant {
    fn new(number: u8, name: &'static str) -> Invariant {
        Invariant {
            number,
            name,
            checked: 0,
            violations: Vec::new(),
        }
    }

    fn violation(&mut self, subject: &str, evidence: String) {
        self.violations.push(Violation {
            subject: subject.to_string(),
            evidence,
        });
    }
}

pub const FINAL: [&str; 3] = ["completed", "failed", "cancelled"];

fn is_final(status: &str) -> bool {
    FINAL.contains(&status)
}

/// Tools whose calls leave a line in `effect-<task id>`.
pub fn is_effect_tool(tool: &str) -> bool {
    tool.ends_with("__effect") || tool.ends_with("__stubborn")
}

fn describe(op: &Op) -> String {
    format!(
        "op #{} ({} {} {} on {}, {}..{} ms)",
        op.id,
        op.kind.as_str(),
        op.method,
        op.path,
        op.node,
        op.invoked_ms,
        op.completed_ms
    )
}

fn log(t: &TaskTruth) -> String {
    let events: Vec<String> = t
        .events
        .iter()
        .filter(|e| e.kind != "progress")
        .map(|e| format!("{}:{}", e.seq, e.kind))
        .collect();
    format!("log [{}]", events.join(" "))
}

/// Runs every check.
pub fn check(ops: &[Op], faults: &[Fault], truth: &Truth) -> Vec<Invariant> {
    vec![
        acknowledged_exist(ops, truth),
        completed_once(truth),
        cancel_is_final(ops, truth),
        workflow_order(truth),
        effects_bounded(truth),
        nothing_left_running(truth),
        answers(ops, faults),
    ]
}

/// 1. Every acknowledged task (and workflow) exists and ends in a final status.
fn acknowledged_exist(ops: &[Op], truth: &Truth) -> Invariant {
    let mut inv = Invariant::new(1, "acknowledged tasks exist and end final");
    let mut first_ack: BTreeMap<&str, &Op> = BTreeMap::new();
    let mut workflows: BTreeMap<&str, &Op> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        for t in &op.tasks {
            first_ack.entry(t).or_insert(op);
        }
        if let Some(w) = &op.workflow {
            workflows.entry(w).or_insert(op);
        }
    }
    for (id, op) in first_ack {
        inv.checked += 1;
        match truth.tasks.get(id) {
            None => inv.violation(
                id,
                format!("acknowledged by {} but not in the store", describe(op)),
            ),
            Some(t) if !is_final(&t.status) => inv.violation(
                id,
                format!(
                    "acknowledged by {} but ends `{}` ({})",
                    describe(op),
                    t.status,
                    log(t)
                ),
            ),
            Some(_) => {}
        }
    }
    for (id, op) in workflows {
        inv.checked += 1;
        match truth.workflows.get(id) {
            None => inv.violation(
                id,
                format!(
                    "workflow acknowledged by {} but not in the store",
                    describe(op)
                ),
            ),
            Some(w) if !is_final(&w.status) => inv.violation(
                id,
                format!(
                    "workflow acknowledged by {} but ends `{}`",
                    describe(op),
                    w.status
                ),
            ),
            Some(_) => {}
        }
    }
    inv
}

/// 2. No task completes twice: a completed task has exactly one `completed` event, any
///    other none (nothing can undo a completion).
fn completed_once(truth: &Truth) -> Invariant {
    let mut inv = Invariant::new(2, "no task completes twice");
    for t in truth.tasks.values() {
        inv.checked += 1;
        let n = t.count("completed");
        let want = usize::from(t.status == "completed");
        if n != want {
            let what = if n > 1 {
                format!("completed {n} times")
            } else if n == 0 {
                "is `completed` without a `completed` event".to_string()
            } else {
                format!("has a `completed` event but ends `{}`", t.status)
            };
            inv.violation(&t.id, format!("{what} ({})", log(t)));
        }
    }
    inv
}

/// 3. No `started` or `completed` event follows a `cancelled` one without a `retried`
///    between them; a cancellation acknowledged as `cancelled` is in the log, and the task
///    stays cancelled unless it was retried afterwards.
fn cancel_is_final(ops: &[Op], truth: &Truth) -> Invariant {
    let mut inv = Invariant::new(3, "cancelled tasks never run again unless retried");
    for t in truth.tasks.values() {
        if t.first("cancelled").is_none() {
            continue;
        }
        inv.checked += 1;
        let mut cancelled_at = None;
        for e in &t.events {
            match e.kind.as_str() {
                "cancelled" => cancelled_at = Some(e.seq),
                "retried" => cancelled_at = None,
                "started" | "completed" => {
                    if let Some(c) = cancelled_at {
                        inv.violation(
                            &t.id,
                            format!(
                                "`{}` at seq {} after `cancelled` at seq {c} with no `retried` between ({})",
                                e.kind,
                                e.seq,
                                log(t)
                            ),
                        );
                        cancelled_at = None;
                    }
                }
                _ => {}
            }
        }
    }
    for op in ops.iter().filter(|o| {
        o.kind == OpKind::Cancel
            && o.outcome == Outcome::Ok
            && o.answer_status() == Some("cancelled")
    }) {
        let Some(id) = op.answer.get("task_id").and_then(Value::as_str) else {
            continue;
        };
        inv.checked += 1;
        let Some(t) = truth.tasks.get(id) else {
            inv.violation(
                id,
                format!("cancelled by {} but not in the store", describe(op)),
            );
            continue;
        };
        let last_cancel = t
            .events
            .iter()
            .rev()
            .find(|e| e.kind == "cancelled")
            .map(|e| e.seq);
        match last_cancel {
            None => inv.violation(
                id,
                format!(
                    "{} answered `cancelled` but the log has no `cancelled` event ({})",
                    describe(op),
                    log(t)
                ),
            ),
            Some(c) => {
                let retried_after = t.events.iter().any(|e| e.kind == "retried" && e.seq > c);
                if !retried_after && t.status != "cancelled" {
                    inv.violation(
                        id,
                        format!(
                            "{} answered `cancelled`, never retried after, but ends `{}` ({})",
                            describe(op),
                            t.status,
                            log(t)
                        ),
                    );
                }
            }
        }
    }
    inv
}

/// 4. No step's task starts before all its dependencies' tasks completed, and no
///    completed step's task runs again.
fn workflow_order(truth: &Truth) -> Invariant {
    let mut inv = Invariant::new(4, "workflow steps start after their dependencies completed");
    let mut by_step: BTreeMap<(&str, &str), Vec<&TaskTruth>> = BTreeMap::new();
    for t in truth.tasks.values() {
        if let Some((w, s)) = &t.step {
            by_step.entry((w, s)).or_default().push(t);
        }
    }
    for ((w, s), tasks) in &by_step {
        if tasks.len() > 1 {
            let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
            inv.violation(
                &format!("{w}/{s}"),
                format!("the step has {} tasks: {}", tasks.len(), ids.join(", ")),
            );
        }
    }
    for t in truth.tasks.values() {
        let Some((w, s)) = &t.step else { continue };
        let starts: Vec<i64> = t
            .events
            .iter()
            .filter(|e| e.kind == "started")
            .map(|e| e.seq)
            .collect();
        if starts.is_empty() {
            continue;
        }
        inv.checked += 1;
        let Some(wf) = truth.workflows.get(w) else {
            inv.violation(
                &t.id,
                format!("step `{s}` of workflow {w}, which is not in the store"),
            );
            continue;
        };
        if let Some(done) = t.first("completed")
            && let Some(again) = starts.iter().find(|&&st| st > done)
        {
            inv.violation(
                &t.id,
                format!(
                    "step `{s}` of {w} started again (seq {again}) after completing (seq {done}) ({})",
                    log(t)
                ),
            );
        }
        let first_start = starts[0];
        for dep in wf.deps.get(s).into_iter().flatten() {
            let dep_task = by_step
                .get(&(w.as_str(), dep.as_str()))
                .and_then(|v| v.first());
            let dep_done = dep_task.and_then(|d| d.first("completed"));
            match (dep_task, dep_done) {
                (None, _) => inv.violation(
                    &t.id,
                    format!(
                        "step `{s}` of {w} started (seq {first_start}) but its dependency `{dep}` has no task"
                    ),
                ),
                (Some(d), None) => inv.violation(
                    &t.id,
                    format!(
                        "step `{s}` of {w} started (seq {first_start}) but its dependency `{dep}` ({}) never completed ({})",
                        d.id,
                        log(d)
                    ),
                ),
                (Some(d), Some(c)) if c > first_start => inv.violation(
                    &t.id,
                    format!(
                        "step `{s}` of {w} started at seq {first_start}, before its dependency `{dep}` ({}) completed at seq {c}",
                        d.id
                    ),
                ),
                _ => {}
            }
        }
    }
    inv
}

/// 5. The upstream's side effects per task are at most the attempts started, and a
///    completed effect task left at least one.
fn effects_bounded(truth: &Truth) -> Invariant {
    let mut inv = Invariant::new(5, "side effects <= attempts started");
    for t in truth.tasks.values().filter(|t| is_effect_tool(&t.tool)) {
        inv.checked += 1;
        let lines = truth.effects.get(&t.id).copied().unwrap_or(0);
        let starts = t.count("started") as u64;
        if lines > starts {
            inv.violation(
                &t.id,
                format!(
                    "{lines} side effects for {starts} started attempts ({})",
                    log(t)
                ),
            );
        }
        if t.status == "completed" && lines == 0 {
            inv.violation(
                &t.id,
                format!("completed without its side effect ({})", log(t)),
            );
        }
    }
    let known: BTreeSet<&str> = truth.tasks.keys().map(String::as_str).collect();
    for (key, n) in &truth.effects {
        if !known.contains(key.as_str()) {
            inv.checked += 1;
            inv.violation(
                key,
                format!("{n} side effects for a task the store does not have"),
            );
        }
    }
    inv
}

/// 6. At the end nothing is running or holding a lease: every task is final and
///    unleased, and no workflow is still running.
fn nothing_left_running(truth: &Truth) -> Invariant {
    let mut inv = Invariant::new(6, "nothing left running or leased");
    for t in truth.tasks.values() {
        inv.checked += 1;
        if !is_final(&t.status) {
            inv.violation(&t.id, format!("ends `{}` ({})", t.status, log(t)));
        } else if t.leased {
            inv.violation(
                &t.id,
                format!("ends `{}` but still holds a lease", t.status),
            );
        }
    }
    for w in truth.workflows.values() {
        inv.checked += 1;
        if !is_final(&w.status) {
            inv.violation(&w.id, format!("workflow ends `{}`", w.status));
        }
    }
    inv
}

/// 7. No 5xx outside a fault window (hostile input included), and idempotent resubmits
///    answer the original task (same key, other arguments: 409).
fn answers(ops: &[Op], faults: &[Fault]) -> Invariant {
    let mut inv = Invariant::new(7, "no 5xx outside faults; idempotency holds");
    for op in ops {
        let in_fault = faults
            .iter()
            .any(|f| f.disturbs(&op.node, op.invoked_ms, op.completed_ms));
        if let Some(status) = op.status
            && !in_fault
        {
            inv.checked += 1;
            if status >= 500 {
                inv.violation(
                    &format!("op #{}", op.id),
                    format!(
                        "{} answered {status} outside any fault window: {}",
                        describe(op),
                        short(&op.answer)
                    ),
                );
            }
        }
        match &op.expect {
            Expect::Nothing => {}
            Expect::SameTask { task } => {
                if op.outcome != Outcome::Ok {
                    continue;
                }
                inv.checked += 1;
                let got = op.answer.get("task_id").and_then(Value::as_str);
                if got != Some(task.as_str())
                    || op.answer.get("created") == Some(&Value::Bool(true))
                {
                    inv.violation(
                        task,
                        format!(
                            "idempotent resubmit {} answered {:?} (created: {}), not the original task",
                            describe(op),
                            got,
                            op.answer.get("created").unwrap_or(&Value::Null)
                        ),
                    );
                }
            }
            Expect::Conflict { task } => {
                // Only a definite answer counts (not a timeout or a refused connection).
                if op.outcome == Outcome::Info || op.status.is_none() {
                    continue;
                }
                inv.checked += 1;
                if op.status != Some(409) {
                    inv.violation(
                        task.as_deref().unwrap_or("?"),
                        format!(
                            "same idempotency key with other arguments: {} answered {:?}, not 409: {}",
                            describe(op),
                            op.status,
                            short(&op.answer)
                        ),
                    );
                }
            }
        }
    }
    inv
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
