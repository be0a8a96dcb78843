use baton_core::TaskStatus;
use baton_workflow::{FailureEffect, StepState, WorkflowStatus};

use crate::common::{WEEKLY_REPORT, plan};

use StepState::{Cancelled, Completed, Failed, Pending, Running, Skipped};

/// fetch → (charts, summary) → publish, plus an independent `audit` → `archive` branch.
fn with_branch(on_failure: &str) -> baton_workflow::Plan {
    plan(&format!(
        "name: x
on_failure: {on_failure}
steps:
  - {{id: publish, tool: docs__publish, depends_on: [charts, summary]}}
  - {{id: charts, tool: viz__render, depends_on: [fetch]}}
  - {{id: summary, tool: llm__summarize, depends_on: [fetch]}}
  - {{id: fetch, tool: baton__sleep}}
  - {{id: audit, tool: baton__sleep}}
  - {{id: archive, tool: baton__sleep, depends_on: [audit]}}
"
    ))
}

#[test]
fn graph_queries() {
    let p = with_branch("continue");
    // publish=0 charts=1 summary=2 fetch=3 audit=4 archive=5
    assert_eq!(p.topo_order(), [3, 1, 2, 0, 4, 5]);
    assert_eq!(p.index_of("summary"), Some(2));
    assert_eq!(p.index_of("nope"), None);
    assert_eq!(p.dependencies(0), [1, 2]);
    assert_eq!(p.dependants(3), [1, 2]);
    assert_eq!(p.ancestors(0), [3, 1, 2]);
    assert_eq!(p.ancestors(3), [] as [usize; 0]);
    assert_eq!(p.descendants(3), [1, 2, 0]);
    assert_eq!(p.descendants(4), [5]);
}

#[test]
fn ready_follows_dependencies() {
    let p = with_branch("fail_fast");
    let mut s = p.initial_states();
    assert_eq!(p.ready(&s), [3, 4]);
    s[3] = Running;
    s[4] = Running;
    assert_eq!(p.ready(&s), [] as [usize; 0]);
    s[3] = Completed;
    assert_eq!(p.ready(&s), [1, 2]);
    s[1] = Completed;
    s[2] = Running;
    assert_eq!(p.ready(&s), [] as [usize; 0], "publish waits for summary");
    s[2] = Completed;
    assert_eq!(p.ready(&s), [0]);
    assert_eq!(p.status(&s), WorkflowStatus::Running);
    s[0] = Completed;
    s[4] = Completed;
    s[5] = Completed;
    assert_eq!(p.ready(&s), [] as [usize; 0]);
    assert_eq!(p.status(&s), WorkflowStatus::Completed);
}

#[test]
fn fail_fast_stops_everything() {
    let p = with_branch("fail_fast");
    // fetch done; charts running, summary fails, audit running, archive pending.
    let mut s = vec![Pending, Running, Failed, Completed, Running, Pending];
    assert_eq!(
        p.failure_effect(2, &s),
        FailureEffect {
            skip: vec![0],
            cancel: vec![1, 4, 5],
        }
    );
    assert_eq!(p.ready(&s), [] as [usize; 0]);
    assert_eq!(p.status(&s), WorkflowStatus::Running, "tasks still running");
    s[0] = Skipped;
    s[1] = Cancelled;
    s[4] = Completed; // finished before the cancellation reached it
    s[5] = Cancelled;
    assert_eq!(p.status(&s), WorkflowStatus::Failed);
}

#[test]
fn continue_lets_independent_branches_finish() {
    let p = with_branch("continue");
    let mut s = vec![Pending, Running, Failed, Completed, Completed, Pending];
    assert_eq!(
        p.failure_effect(2, &s),
        FailureEffect {
            skip: vec![0],
            cancel: vec![],
        }
    );
    assert_eq!(p.ready(&s), [5], "archive does not depend on summary");
    assert_eq!(p.status(&s), WorkflowStatus::Running);
    s[0] = Skipped;
    s[1] = Completed;
    s[5] = Running;
    assert_eq!(p.status(&s), WorkflowStatus::Running);
    s[5] = Completed;
    assert_eq!(p.status(&s), WorkflowStatus::Failed);
    // Status does not wait for the engine to mark blocked steps skipped.
    let s = vec![Pending, Completed, Failed, Completed, Completed, Completed];
    assert_eq!(p.status(&s), WorkflowStatus::Failed);
}

#[test]
fn a_failed_root_skips_its_whole_subtree() {
    let p = with_branch("continue");
    let s = vec![Pending, Pending, Pending, Failed, Running, Pending];
    assert_eq!(p.failure_effect(3, &s).skip, [1, 2, 0]);
    assert_eq!(p.failure_effect(3, &s).cancel, [] as [usize; 0]);
    let p = with_branch("fail_fast");
    assert_eq!(p.failure_effect(3, &s).skip, [1, 2, 0]);
    assert_eq!(p.failure_effect(3, &s).cancel, [4, 5]);
}

#[test]
fn cancelled_workflows() {
    let p = plan(WEEKLY_REPORT);
    assert_eq!(
        p.status(&[Completed, Cancelled, Cancelled, Cancelled]),
        WorkflowStatus::Cancelled
    );
    // A cancelled step under fail_fast stops the rest, like a failure.
    assert_eq!(
        p.ready(&[Completed, Cancelled, Pending, Pending]),
        [] as [usize; 0]
    );
    assert_eq!(
        p.status(&[Completed, Cancelled, Pending, Pending]),
        WorkflowStatus::Cancelled
    );
    // A failure outweighs cancellations.
    assert_eq!(
        p.status(&[Completed, Failed, Cancelled, Skipped]),
        WorkflowStatus::Failed
    );
    assert!(WorkflowStatus::Cancelled.is_final());
    assert!(!WorkflowStatus::Running.is_final());
}

#[test]
fn task_statuses_map_to_step_states() {
    let mapped: Vec<StepState> = TaskStatus::ALL.into_iter().map(StepState::from).collect();
    assert_eq!(
        mapped,
        [Running, Running, Running, Completed, Failed, Cancelled]
    );
    assert_eq!(serde_json::to_string(&Skipped).unwrap(), "\"skipped\"");
    assert!(Skipped.is_finished() && !Running.is_finished() && !Pending.is_finished());
}

#[test]
#[should_panic(expected = "one state per step")]
fn states_must_cover_every_step() {
    plan(WEEKLY_REPORT).ready(&[Pending]);
}

fn chain_and_branch() -> baton_workflow::Plan {
    // a -> b -> c, and d independent; under fail_fast unless said otherwise.
    plan(
        "name: x\nsteps:\n  - {id: a, tool: baton__sleep}\n  - {id: b, tool: baton__sleep, depends_on: [a]}\n  - {id: c, tool: baton__sleep, depends_on: [b]}\n  - {id: d, tool: baton__sleep}\n",
    )
}

#[test]
fn an_advance_starts_what_is_ready_within_the_room() {
    use baton_workflow::StepState::*;
    let p = chain_and_branch();
    let mut states = p.initial_states();
    let a = p.advance(&mut states, 10);
    assert_eq!(a.start, vec![0, 3]);
    assert_eq!(a.held_back, 0);
    assert!(a.skipped.is_empty() && a.cancelled.is_empty() && a.cancel_running.is_empty());
    // With room for one, one starts and one waits.
    let mut states = p.initial_states();
    let a = p.advance(&mut states, 1);
    assert_eq!((a.start.len(), a.held_back), (1, 1));
    // a completed: b is ready.
    let mut states = vec![Completed, Pending, Pending, Running];
    assert_eq!(p.advance(&mut states, 10).start, vec![1]);
}

#[test]
fn an_advance_applies_the_failure_policy() {
    use baton_workflow::StepState::*;
    let p = chain_and_branch();
    // fail_fast: a failed; b and c are skipped (behind it), d's task is cancelled.
    let mut states = vec![Failed, Pending, Pending, Running];
    let a = p.advance(&mut states, 10);
    assert_eq!(a.skipped, vec![(1, 0), (2, 0)]);
    assert_eq!(a.cancel_running, vec![3]);
    assert!(a.start.is_empty());
    assert_eq!(states, vec![Failed, Skipped, Skipped, Running]);
    // A pending independent step is cancelled rather than started.
    let mut states = vec![Failed, Pending, Pending, Pending];
    let a = p.advance(&mut states, 10);
    assert_eq!(a.cancelled, vec![(3, 0)]);
    assert_eq!(states[3], Cancelled);
    // continue: only what depends on the failure is skipped; d runs.
    let p = plan(
        "name: x\non_failure: continue\nsteps:\n  - {id: a, tool: baton__sleep}\n  - {id: b, tool: baton__sleep, depends_on: [a]}\n  - {id: d, tool: baton__sleep}\n",
    );
    let mut states = vec![Failed, Pending, Pending];
    let a = p.advance(&mut states, 10);
    assert_eq!(a.skipped, vec![(1, 0)]);
    assert_eq!(a.start, vec![2]);
    assert!(a.cancel_running.is_empty() && a.cancelled.is_empty());
}
