//! A validated workflow as a graph, and the rules for running it: which steps are ready,
//! what a failure stops, and the workflow's status.
//!
//! Steps are addressed by their index in [`Definition::steps`]; every `states` slice is
//! indexed the same way.

use std::collections::{BTreeSet, HashMap};

use baton_core::TaskStatus;
use serde::{Deserialize, Serialize};

use crate::definition::{Definition, OnFailure, Step};
use crate::reference::Reference;

/// Where one step of a running workflow is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not started: waiting for its dependencies (or for the engine to submit it).
    Pending,
    /// Its task exists and has not finished (queued, running, waiting for input or for
    /// a retry).
    Running,
    /// Its task completed; its result can be referenced.
    Completed,
    /// Its task failed for good (retries exhausted or not retryable).
    Failed,
    /// Its task was cancelled, or it was stopped before starting by `fail_fast`.
    Cancelled,
    /// Never started because a step it depends on did not complete.
    Skipped,
}

impl StepState {
    /// Every state, in lifecycle order.
    pub const ALL: [StepState; 6] = [
        StepState::Pending,
        StepState::Running,
        StepState::Completed,
        StepState::Failed,
        StepState::Cancelled,
        StepState::Skipped,
    ];

    /// The wire name, as serialised: `pending`, `running`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Completed => "completed",
            StepState::Failed => "failed",
            StepState::Cancelled => "cancelled",
            StepState::Skipped => "skipped",
        }
    }

    /// Whether the step will not change any more (short of a manual retry).
    pub fn is_finished(self) -> bool {
        !matches!(self, StepState::Pending | StepState::Running)
    }
}

/// The state of a step whose task has this status: every active status is `Running`.
impl From<TaskStatus> for StepState {
    fn from(status: TaskStatus) -> Self {
        match status {
            TaskStatus::Pending | TaskStatus::Running | TaskStatus::InputRequired => {
                StepState::Running
            }
            TaskStatus::Completed => StepState::Completed,
            TaskStatus::Failed => StepState::Failed,
            TaskStatus::Cancelled => StepState::Cancelled,
        }
    }
}

/// A workflow's overall status, derived from its steps' states ([`Plan::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    /// A step is running or can still start.
    Running,
    /// Every step completed (or was skipped without a failure).
    Completed,
    /// A step failed.
    Failed,
    /// A step was cancelled (and none failed), or steps were left unfinished.
    Cancelled,
}

impl WorkflowStatus {
    /// The wire name, as serialised: `running`, `completed`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Running => "running",
            WorkflowStatus::Completed => "completed",
            WorkflowStatus::Failed => "failed",
            WorkflowStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the workflow is over (anything but `Running`).
    pub fn is_final(self) -> bool {
        self != WorkflowStatus::Running
    }

    /// Every status, in lifecycle order.
    pub const ALL: [WorkflowStatus; 4] = [
        WorkflowStatus::Running,
        WorkflowStatus::Completed,
        WorkflowStatus::Failed,
        WorkflowStatus::Cancelled,
    ];
}

impl std::str::FromStr for WorkflowStatus {
    type Err = String;

    /// The wire name; the error lists the valid ones.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WorkflowStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown status `{s}`; expected one of: {}",
                    WorkflowStatus::ALL.map(|s| s.as_str()).join(", ")
                )
            })
    }
}

/// What the engine does after a step failed or was cancelled ([`Plan::failure_effect`]).
/// The two lists are disjoint and in topological order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureEffect {
    /// Not-started steps that depend (transitively) on the step: mark them `Skipped`.
    pub skip: Vec<usize>,
    /// `fail_fast` only: every other unfinished step. Cancel the tasks of `Running` ones
    /// (they end `Cancelled`); mark `Pending` ones `Cancelled`.
    pub cancel: Vec<usize>,
}

/// What an advance of a running workflow does, decided from its steps' states alone
/// ([`Plan::advance`]). The engine carries it out: records the skipped and cancelled
/// steps, cancels the running tasks, and builds and stores the tasks of `start`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advance {
    /// Pending steps that can never run because a step they depend on ended without
    /// completing: `(step, the step that caused it)`. Now `Skipped`.
    pub skipped: Vec<(usize, usize)>,
    /// Pending steps stopped because the workflow fails fast: `(step, cause)`. Now
    /// `Cancelled`.
    pub cancelled: Vec<(usize, usize)>,
    /// Running steps whose tasks must be cancelled (the workflow fails fast).
    pub cancel_running: Vec<usize>,
    /// Steps to start now, in topological order (at most the room given).
    pub start: Vec<usize>,
    /// Steps ready to start but held back for lack of room.
    pub held_back: usize,
}

/// A validated definition ([`crate::validate()`]): an acyclic graph of steps with known
/// tools and sound references.
#[derive(Debug, Clone)]
pub struct Plan {
    definition: Definition,
    index: HashMap<String, usize>,
    dependencies: Vec<Vec<usize>>,
    dependants: Vec<Vec<usize>>,
    order: Vec<usize>,
    references: Vec<Vec<Reference>>,
}

impl Plan {
    /// `dependencies[i]` are step `i`'s (deduplicated) dependencies; the graph must be
    /// acyclic.
    pub(crate) fn new(
        definition: Definition,
        dependencies: Vec<Vec<usize>>,
        references: Vec<Vec<Reference>>,
    ) -> Plan {
        let n = definition.steps.len();
        let mut dependants = vec![Vec::new(); n];
        for (i, deps) in dependencies.iter().enumerate() {
            for &d in deps {
                dependants[d].push(i);
            }
        }
        let order = topological_order(&dependencies, &dependants)
            .expect("validate() passes only acyclic graphs");
        let index = definition
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        Plan {
            definition,
            index,
            dependencies,
            dependants,
            order,
            references,
        }
    }

    /// The definition as validated.
    pub fn definition(&self) -> &Definition {
        &self.definition
    }

    /// The steps, in definition order (their indexes are the step numbers used here).
    pub fn steps(&self) -> &[Step] {
        &self.definition.steps
    }

    /// The step at this index. Panics if it is out of range.
    pub fn step(&self, step: usize) -> &Step {
        &self.definition.steps[step]
    }

    /// The index of the step with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The workflow's failure policy.
    pub fn on_failure(&self) -> OnFailure {
        self.definition.on_failure
    }

    /// Every step once, each after its dependencies; among steps free to go next, the one
    /// defined first.
    pub fn topo_order(&self) -> &[usize] {
        &self.order
    }

    /// The steps `step` lists in `depends_on`, in ascending index order.
    pub fn dependencies(&self, step: usize) -> &[usize] {
        &self.dependencies[step]
    }

    /// The steps that list `step` in `depends_on`, in ascending index order.
    pub fn dependants(&self, step: usize) -> &[usize] {
        &self.dependants[step]
    }

    /// The references in the step's arguments, in document order.
    pub fn references(&self, step: usize) -> &[Reference] {
        &self.references[step]
    }

    /// Every step `step` depends on, directly or not, in topological order.
    pub fn ancestors(&self, step: usize) -> Vec<usize> {
        self.reachable(step, &self.dependencies)
    }

    /// Every step that depends on `step`, directly or not, in topological order.
    pub fn descendants(&self, step: usize) -> Vec<usize> {
        self.reachable(step, &self.dependants)
    }

    fn reachable(&self, from: usize, edges: &[Vec<usize>]) -> Vec<usize> {
        let mut seen = vec![false; edges.len()];
        let mut stack = edges[from].clone();
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut seen[i], true) {
                stack.extend(&edges[i]);
            }
        }
        self.order.iter().copied().filter(|&i| seen[i]).collect()
    }

    /// The states of a workflow that has just started: every step `Pending`.
    pub fn initial_states(&self) -> Vec<StepState> {
        vec![StepState::Pending; self.steps().len()]
    }

    /// Steps to submit now: `Pending` ones whose dependencies all `Completed`, in
    /// topological order. Under `fail_fast`, nothing once a step failed or was cancelled.
    ///
    /// Panics if `states` does not have one entry per step.
    pub fn ready(&self, states: &[StepState]) -> Vec<usize> {
        self.check_len(states);
        if self.stopping(states) {
            return Vec::new();
        }
        self.order
            .iter()
            .copied()
            .filter(|&i| {
                states[i] == StepState::Pending
                    && self.dependencies[i]
                        .iter()
                        .all(|&d| states[d] == StepState::Completed)
            })
            .collect()
    }

    /// Decides an advance: applies the failure policy for every step that ended
    /// `Failed` or `Cancelled` (in topological order, each seeing the effects of the
    /// earlier ones), then picks the steps ready to start, at most `room` of them.
    /// `states` is updated for the skipped and cancelled steps; the started ones are the
    /// caller's to mark once their tasks exist.
    ///
    /// Panics if `states` does not have one entry per step.
    pub fn advance(&self, states: &mut [StepState], room: usize) -> Advance {
        self.check_len(states);
        let mut advance = Advance::default();
        for &i in &self.order {
            if !matches!(states[i], StepState::Failed | StepState::Cancelled) {
                continue;
            }
            let effect = self.failure_effect(i, states);
            for s in effect.skip {
                states[s] = StepState::Skipped;
                advance.skipped.push((s, i));
            }
            for s in effect.cancel {
                match states[s] {
                    StepState::Running if !advance.cancel_running.contains(&s) => {
                        advance.cancel_running.push(s)
                    }
                    StepState::Pending => {
                        states[s] = StepState::Cancelled;
                        advance.cancelled.push((s, i));
                    }
                    _ => {}
                }
            }
        }
        let ready = self.ready(states);
        advance.held_back = ready.len().saturating_sub(room);
        advance.start = ready.into_iter().take(room).collect();
        advance
    }

    /// What to do after step `failed` ended `Failed` (or `Cancelled`): its unfinished
    /// descendants can never run; under `fail_fast` everything else unfinished stops too.
    ///
    /// Panics if `states` does not have one entry per step.
    pub fn failure_effect(&self, failed: usize, states: &[StepState]) -> FailureEffect {
        self.check_len(states);
        let skip: Vec<usize> = self
            .descendants(failed)
            .into_iter()
            .filter(|&i| states[i] == StepState::Pending)
            .collect();
        let cancel = match self.definition.on_failure {
            OnFailure::Continue => Vec::new(),
            OnFailure::FailFast => {
                let skipped: BTreeSet<usize> = skip.iter().copied().collect();
                self.order
                    .iter()
                    .copied()
                    .filter(|&i| i != failed && !states[i].is_finished() && !skipped.contains(&i))
                    .collect()
            }
        };
        FailureEffect { skip, cancel }
    }

    /// The workflow's status:
    /// - `Running` while a step is `Running`, or a `Pending` step can still start (under
    ///   `fail_fast`, none can once a step failed or was cancelled);
    /// - then `Failed` if any step failed, else `Cancelled` if any step was cancelled or
    ///   left unfinished, else `Completed` (every step completed or skipped).
    ///
    /// Panics if `states` does not have one entry per step.
    pub fn status(&self, states: &[StepState]) -> WorkflowStatus {
        self.check_len(states);
        let has = |s: StepState| states.contains(&s);
        let stopping = self.stopping(states);
        // A pending step can still start unless something before it did not complete.
        let mut blocked = vec![false; states.len()];
        let mut can_start = false;
        for &i in &self.order {
            blocked[i] = self.dependencies[i].iter().any(|&d| {
                blocked[d]
                    || matches!(
                        states[d],
                        StepState::Failed | StepState::Cancelled | StepState::Skipped
                    )
            });
            can_start |= states[i] == StepState::Pending && !blocked[i];
        }
        if has(StepState::Running) || (can_start && !stopping) {
            WorkflowStatus::Running
        } else if has(StepState::Failed) {
            WorkflowStatus::Failed
        } else if states
            .iter()
            .all(|s| matches!(s, StepState::Completed | StepState::Skipped))
        {
            WorkflowStatus::Completed
        } else {
            WorkflowStatus::Cancelled
        }
    }

    fn stopping(&self, states: &[StepState]) -> bool {
        self.definition.on_failure == OnFailure::FailFast
            && states
                .iter()
                .any(|s| matches!(s, StepState::Failed | StepState::Cancelled))
    }

    fn check_len(&self, states: &[StepState]) {
        assert_eq!(
            states.len(),
            self.steps().len(),
            "one state per step of workflow `{}`",
            self.definition.name
        );
    }
}

/// Kahn's algorithm, taking the lowest ready index first; `None` if there is a cycle.
pub(crate) fn topological_order(
    dependencies: &[Vec<usize>],
    dependants: &[Vec<usize>],
) -> Option<Vec<usize>> {
    let mut waiting: Vec<usize> = dependencies.iter().map(Vec::len).collect();
    let mut ready: BTreeSet<usize> = (0..waiting.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(waiting.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &dependants[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.insert(j);
            }
        }
    }
    (order.len() == waiting.len()).then_some(order)
}
