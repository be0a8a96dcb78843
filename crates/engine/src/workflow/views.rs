//! What the API shows of a workflow: its steps, progress, DAG and timeline.

use std::sync::Arc;

use baton_core::{Task, TaskEvent, TaskId, TaskStatus, Timestamp};
use baton_store::Workflow;
use baton_workflow::{OnFailure, Plan, StepState, WorkflowStatus};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Workflow progress: steps done of all, and a fraction that counts running steps'
/// own progress.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WorkflowProgress {
    pub steps_total: usize,
    pub steps_completed: usize,
    /// Completed, failed, cancelled or skipped.
    pub steps_finished: usize,
    pub steps_running: usize,
    pub fraction: f64,
}

/// One step as the API shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StepView {
    pub step_id: String,
    pub tool: String,
    pub state: StepState,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_status: Option<TaskStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Why the step failed, or why it was skipped or cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// A workflow as the API shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WorkflowView {
    pub workflow_id: String,
    pub name: String,
    pub status: WorkflowStatus,
    pub on_failure: OnFailure,
    pub owner: String,
    pub progress: WorkflowProgress,
    /// The task that submitted it (an agent running that task), whose children its
    /// steps' tasks are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_task_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    /// The first failed step's error, when the workflow failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// Every step; left out of lists ([`Engine::list_workflows`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepView>,
    /// Read back from the archive: retention deleted the workflow from the store after
    /// archiving it (`[archive]`). Absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
}

/// One line of a workflow's timeline: a task event of one of its steps.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TimelineEntry {
    pub step_id: String,
    /// The event as logged (`seq` orders events that share `at`).
    #[serde(flatten)]
    pub event: TaskEvent,
}

/// How a DAG is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DagFormat {
    Json,
    Dot,
    Mermaid,
}

impl std::str::FromStr for DagFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(DagFormat::Json),
            "dot" => Ok(DagFormat::Dot),
            "mermaid" => Ok(DagFormat::Mermaid),
            other => Err(format!(
                "unknown DAG format `{other}`; expected json, dot or mermaid"
            )),
        }
    }
}

/// A rendered DAG.
#[derive(Debug, Clone)]
pub enum DagOutput {
    Json(Value),
    Text(String),
}

/// A workflow read back with its tasks and every step's state.
pub(super) struct Loaded {
    pub(super) workflow: Workflow,
    pub(super) plan: Arc<Plan>,
    /// The task of each step that has one (by step index).
    pub(super) tasks: Vec<Option<Task>>,
    pub(super) states: Vec<StepState>,
}

impl Loaded {
    pub(super) fn new(workflow: Workflow, plan: Arc<Plan>, all: Vec<Task>) -> Loaded {
        let mut tasks: Vec<Option<Task>> = vec![None; plan.steps().len()];
        for t in all {
            let Some(i) = t.step.as_ref().and_then(|s| plan.index_of(&s.step_id)) else {
                continue;
            };
            // One task per step (the idempotency key); should there be more, the newest.
            if tasks[i].as_ref().is_none_or(|old| old.seq < t.seq) {
                tasks[i] = Some(t);
            }
        }
        let states = (0..plan.steps().len())
            .map(|i| match &tasks[i] {
                Some(t) => StepState::from(t.status),
                None => stored_state(&workflow.steps, &plan.step(i).id),
            })
            .collect();
        Loaded {
            workflow,
            plan,
            tasks,
            states,
        }
    }

    /// The task that submitted the workflow, if one did: its steps' tasks are its
    /// children (see [`WorkflowOptions`](super::api::WorkflowOptions)).
    pub(super) fn parent(&self) -> Option<TaskId> {
        self.tasks.iter().flatten().find_map(|t| t.parent_id)
    }

    fn progress(&self) -> WorkflowProgress {
        let total = self.states.len();
        let count = |f: fn(&StepState) -> bool| self.states.iter().filter(|s| f(s)).count();
        let running: f64 = self
            .tasks
            .iter()
            .zip(&self.states)
            .filter(|(_, s)| **s == StepState::Running)
            .map(|(t, _)| t.as_ref().and_then(|t| t.progress).unwrap_or(0.0))
            .sum();
        let finished = count(|s| s.is_finished());
        WorkflowProgress {
            steps_total: total,
            steps_completed: count(|s| *s == StepState::Completed),
            steps_finished: finished,
            steps_running: count(|s| *s == StepState::Running),
            fraction: if total == 0 {
                1.0
            } else {
                ((finished as f64 + running) / total as f64).min(1.0)
            },
        }
    }

    fn step_error(&self, i: usize) -> Option<Value> {
        if let Some(t) = &self.tasks[i]
            && let Some(e) = &t.error
            && matches!(self.states[i], StepState::Failed | StepState::Cancelled)
        {
            return serde_json::to_value(e).ok();
        }
        if self.tasks[i].is_none() {
            return self
                .workflow
                .steps
                .get(&self.plan.step(i).id)
                .and_then(|s| s.get("error"))
                .cloned();
        }
        None
    }

    pub(super) fn view(&self) -> WorkflowView {
        let steps: Vec<StepView> = (0..self.states.len())
            .map(|i| {
                let step = self.plan.step(i);
                let task = self.tasks[i].as_ref();
                StepView {
                    step_id: step.id.clone(),
                    tool: step.tool.clone(),
                    state: self.states[i],
                    depends_on: step.depends_on.clone(),
                    task_id: task.map(|t| t.id.to_string()),
                    task_status: task.map(|t| t.status),
                    attempt: task.map(|t| t.attempt),
                    progress: task.and_then(|t| t.progress),
                    progress_message: task.and_then(|t| t.progress_message.clone()),
                    started_at: task.and_then(|t| t.started_at),
                    completed_at: task.and_then(|t| t.completed_at),
                    duration_ms: task.and_then(Task::duration_ms),
                    error: self.step_error(i),
                }
            })
            .collect();
        let error = if self.workflow.status == WorkflowStatus::Failed {
            self.plan
                .topo_order()
                .iter()
                .find(|&&i| self.states[i] == StepState::Failed)
                .map(|&i| {
                    let mut e = self.step_error(i).unwrap_or_else(|| json!({}));
                    if let Some(o) = e.as_object_mut() {
                        o.insert("step_id".into(), json!(self.plan.step(i).id));
                    }
                    e
                })
        } else {
            None
        };
        WorkflowView {
            workflow_id: self.workflow.id.clone(),
            name: self.workflow.name.clone(),
            status: self.workflow.status,
            on_failure: self.plan.on_failure(),
            owner: self.workflow.owner.clone(),
            progress: self.progress(),
            parent_task_id: self.parent().map(|p| p.to_string()),
            created_at: self.workflow.created_at,
            updated_at: self.workflow.updated_at,
            completed_at: self.workflow.completed_at,
            error,
            steps,
            archived: false,
        }
    }
}

/// The state kept in the workflow row for a step without a task; `Pending` if none.
pub(super) fn stored_state(steps: &Map<String, Value>, id: &str) -> StepState {
    steps
        .get(id)
        .and_then(|s| s.get("state"))
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or(StepState::Pending)
}

pub(super) fn step_record(state: StepState, code: &str, message: String) -> Value {
    json!({"state": state, "error": {"code": code, "message": message, "retryable": false}})
}

/// The outcome of a workflow: the results of its final steps (those no step depends
/// on), by step id.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WorkflowResult {
    pub workflow_id: String,
    pub status: WorkflowStatus,
    pub progress: WorkflowProgress,
    /// Each final step's result (an MCP `CallToolResult`), by step id.
    pub outputs: Map<String, Value>,
    /// The first failed step's error, when the workflow failed.
    pub error: Option<Value>,
}

/// A page of workflows, newest first, without their steps.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WorkflowPage {
    pub workflows: Vec<WorkflowView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}
