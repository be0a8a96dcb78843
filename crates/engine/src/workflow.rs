//! Workflows: a validated DAG of steps ([`baton_workflow`]) run as durable tasks.
//!
//! The store keeps everything: the workflow row (definition, status, the state of steps
//! that ended without a task) and one task per started step, which names its workflow
//! and step. Nothing lives only in memory, so a restart resumes where the store says the
//! workflow is, and a completed step never runs again: its task is there, completed.
//!
//! **Submission** validates the whole definition (every problem at once), then stores the
//! workflow and the tasks of its root steps in one transaction.
//!
//! **The coordinator** ([`coordinator_loop`]) moves running workflows on. One process of a
//! deployment holds the `workflows` singleton role and coordinates; it hears every task
//! event (its own and, through the store's feed, other processes'), and when a step's
//! task finishes it *advances* the workflow: it reads the workflow and its tasks back,
//! derives every step's state, applies the failure policy (skip what depends on a
//! failure; under `fail_fast` cancel the running steps and skip the rest), resolves the
//! references of the steps that became ready from the stored results, and stores their
//! tasks — in one transaction that only applies while the workflow is still running, so a
//! cancel can never be overtaken by a step starting. Step tasks carry an idempotency key
//! made of the workflow and step ids: advancing twice stores one task. A periodic sweep of
//! running workflows covers anything an event did not say (a gap in the feed, a role
//! that just moved here).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_core::task::{NewTask, StepRef};
use baton_core::{Task, TaskEvent, TaskId, TaskStatus, Timestamp};
use baton_store::{
    NewWorkflow, SingletonGuard, TaskQuery, Workflow, WorkflowQuery, WorkflowUpdate,
    WorkflowUpdated,
};
use baton_workflow::{
    Dag, Definition, OnFailure, Plan, Problem, StepRun, StepState, ToolCatalog, WorkflowStatus,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::EngineError;
use crate::engine::{Engine, Inner};
use crate::tools::ToolRegistry;

/// How often a process checks that it still holds the coordinator role, or tries for it.
const ROLE_CHECK: Duration = Duration::from_secs(2);
/// How often the coordinator re-reads every running workflow, whatever it heard (a
/// backstop: it also does when it takes the role and when the store's feed had a gap).
const RESYNC: Duration = Duration::from_secs(30);
/// How often `workflow_result` re-reads a workflow it waits for.
const RESULT_POLL: Duration = Duration::from_millis(500);
/// Most steps of one workflow (and so tasks read back per advance).
const MAX_STEPS: u32 = 1000;

/// Workflows this process should look at soon (submitted, cancelled or retried here).
#[derive(Default)]
pub(crate) struct Coordination {
    /// Plans of workflows read back recently, by id. A definition never changes once
    /// stored, so its plan (parsed and checked again) is built once, not at every advance
    /// and every read: for a large DAG that work dominated, and steps waited for it.
    plans: Mutex<HashMap<String, Arc<Plan>>>,
    dirty: Mutex<BTreeSet<String>>,
    /// Set when events may have been missed (a gap in the store's feed).
    resync: std::sync::atomic::AtomicBool,
    wake: Notify,
}

impl Coordination {
    pub(crate) fn mark(&self, id: &str) {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
        self.wake.notify_one();
    }

    /// Asks the coordinator to re-read every running workflow.
    pub(crate) fn resync(&self) {
        self.resync
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
    }

    fn take_resync(&self) -> bool {
        self.resync
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks a workflow for the next pass without waking the coordinator (a retry after
    /// an error waits for the next role check rather than spinning).
    fn mark_quietly(&self, id: &str) {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
    }

    fn take(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The engine's tool registry as the catalog a definition is checked against.
struct Registry<'a>(&'a ToolRegistry);

impl ToolCatalog for Registry<'_> {
    fn exists(&self, tool: &str) -> bool {
        self.0.resolve(tool).is_some()
    }

    fn suggest(&self, tool: &str) -> Option<String> {
        let hint = self.0.suggest(tool);
        (!hint.is_empty()).then(|| hint.trim_start_matches("; ").to_string())
    }

    fn check_arguments(&self, tool: &str, arguments: &Value) -> Result<(), String> {
        match self.0.resolve(tool) {
            Some(resolved) => self.0.validate(tool, &resolved.info, arguments),
            None => Ok(()),
        }
    }
}

/// For definitions that were validated when stored: the graph is checked again, the
/// tools are not (a server may be away for a while; its steps then fail when they start).
struct Stored;

impl ToolCatalog for Stored {
    fn exists(&self, _: &str) -> bool {
        true
    }
    fn suggest(&self, _: &str) -> Option<String> {
        None
    }
    fn check_arguments(&self, _: &str, _: &Value) -> Result<(), String> {
        Ok(())
    }
}

/// Most plans kept (see [`Coordination::plans`]).
const PLAN_CACHE: usize = 1024;

/// The plan of a stored workflow, from the cache or built once.
fn plan_of(engine: &Engine, wf: &Workflow) -> Result<Arc<Plan>, EngineError> {
    let plans = &engine.inner().workflows.plans;
    if let Some(p) = plans.lock().unwrap_or_else(|e| e.into_inner()).get(&wf.id) {
        return Ok(p.clone());
    }
    let plan = Arc::new(stored_plan(wf)?);
    let mut cache = plans.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= PLAN_CACHE {
        cache.clear();
    }
    cache.insert(wf.id.clone(), plan.clone());
    Ok(plan)
}

fn stored_plan(wf: &Workflow) -> Result<Plan, EngineError> {
    let definition = Definition::from_value(wf.definition.clone()).map_err(|e| {
        EngineError::Store(baton_store::StoreError::Decode(format!(
            "workflow {}: {e}",
            wf.id
        )))
    })?;
    baton_workflow::validate(&definition, &Stored).map_err(|problems| {
        EngineError::Store(baton_store::StoreError::Decode(format!(
            "workflow {}: {}",
            wf.id,
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )))
    })
}

/// The idempotency key of a step's task: advancing a workflow twice stores one task.
fn step_key(workflow: &str, step: &str) -> String {
    format!("workflow/{workflow}/{step}")
}

/// Workflow progress: steps done of all, and a fraction that counts running steps'
/// own progress.
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowProgress {
    pub steps_total: usize,
    pub steps_completed: usize,
    /// Completed, failed, cancelled or skipped.
    pub steps_finished: usize,
    pub steps_running: usize,
    pub fraction: f64,
}

/// One step as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub step_id: String,
    pub tool: String,
    pub state: StepState,
    #[serde(skip_serializing_if = "Vec::is_empty")]
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
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowView {
    pub workflow_id: String,
    pub name: String,
    pub status: WorkflowStatus,
    pub on_failure: OnFailure,
    pub owner: String,
    pub progress: WorkflowProgress,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    /// The first failed step's error, when the workflow failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// Every step; left out of lists ([`Engine::list_workflows`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepView>,
}

/// One line of a workflow's timeline: a task event of one of its steps.
#[derive(Debug, Clone, Serialize)]
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
struct Loaded {
    workflow: Workflow,
    plan: Arc<Plan>,
    /// The task of each step that has one (by step index).
    tasks: Vec<Option<Task>>,
    states: Vec<StepState>,
}

impl Loaded {
    fn new(workflow: Workflow, plan: Arc<Plan>, all: Vec<Task>) -> Loaded {
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

    fn view(&self) -> WorkflowView {
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
            created_at: self.workflow.created_at,
            updated_at: self.workflow.updated_at,
            completed_at: self.workflow.completed_at,
            error,
            steps,
        }
    }
}

/// The state kept in the workflow row for a step without a task; `Pending` if none.
fn stored_state(steps: &Map<String, Value>, id: &str) -> StepState {
    steps
        .get(id)
        .and_then(|s| s.get("state"))
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or(StepState::Pending)
}

fn step_record(state: StepState, code: &str, message: String) -> Value {
    json!({"state": state, "error": {"code": code, "message": message, "retryable": false}})
}

/// Parses a definition from YAML or JSON text (what `baton workflow run FILE` sends).
pub fn parse_definition(text: &str) -> Result<Definition, EngineError> {
    Definition::parse(text).map_err(|e| {
        EngineError::InvalidWorkflow(vec![Problem {
            step: None,
            message: e.to_string(),
        }])
    })
}

/// A definition given as JSON (a REST or MCP body).
pub fn definition_from_value(value: Value) -> Result<Definition, EngineError> {
    Definition::from_value(value).map_err(|e| {
        EngineError::InvalidWorkflow(vec![Problem {
            step: None,
            message: e.to_string(),
        }])
    })
}

impl Engine {
    /// Validates a definition (every problem at once; nothing is stored if there is
    /// one), then stores the workflow with the tasks of its first steps.
    pub async fn submit_workflow(
        &self,
        owner: &str,
        definition: Definition,
    ) -> Result<WorkflowView, EngineError> {
        let plan = baton_workflow::validate(&definition, &Registry(self.tools()))
            .map_err(EngineError::InvalidWorkflow)?;
        if self.is_shutting_down() {
            return Err(EngineError::ShuttingDown);
        }
        let now = self.now();
        let id = format!("wf-{}", TaskId::generate(now));
        let workflow = NewWorkflow {
            id: id.clone(),
            name: definition.name.clone(),
            owner: owner.to_string(),
            definition: serde_json::to_value(&definition)
                .map_err(|e| EngineError::Conflict(format!("cannot store the definition: {e}")))?,
            created_at: now,
        };
        // Root steps have no references (a reference names an ancestor), so their
        // arguments are final; a schema problem was reported above.
        let mut problems = Vec::new();
        let mut tasks = Vec::new();
        for i in plan.ready(&plan.initial_states()) {
            match self.step_task(&id, owner, &plan, i, &[]) {
                Ok(t) => tasks.push(t),
                Err(message) => problems.push(Problem {
                    step: Some(plan.step(i).id.clone()),
                    message,
                }),
            }
        }
        if !problems.is_empty() {
            return Err(EngineError::InvalidWorkflow(problems));
        }
        // Its first steps count against the active-task cap like any submission; later
        // steps start only while there is room (see `advance_workflow`).
        self.admit(tasks.len() as u64)?;
        let (stored, outcomes, events) = self.store().create_workflow(workflow, tasks).await?;
        self.inner().publisher.publish(&events);
        self.inner().workflows.mark(&id);
        let tasks = outcomes.into_iter().map(|o| o.task().clone()).collect();
        Ok(Loaded::new(stored, Arc::new(plan), tasks).view())
    }

    /// The task of step `i`, its references resolved from `tasks` (indexed like the
    /// plan's steps). `Err` says why the step cannot start.
    fn step_task(
        &self,
        workflow: &str,
        owner: &str,
        plan: &Plan,
        i: usize,
        tasks: &[Option<Task>],
    ) -> Result<NewTask, String> {
        let step = plan.step(i);
        let arguments = Value::Object(step.arguments.clone());
        let arguments = if plan.references(i).is_empty() {
            arguments
        } else {
            baton_workflow::resolve(&arguments, |id| {
                let j = plan.index_of(id)?;
                tasks.get(j)?.as_ref()?.result.as_ref()
            })
            .map_err(|e| e.to_string())?
        };
        let request = step.submit_request(arguments);
        let mut task = match self.prepare(owner, request.clone()) {
            Ok(task) => task,
            // The definition was checked against the catalog when it was submitted; a
            // tool missing now (its server still connecting after a restart, or not
            // configured on the process that coordinates) is the run's problem, as for any
            // task: it fails its attempt and is retried, instead of failing the step.
            Err(EngineError::UnknownTool { .. }) => request
                .validate(owner, &self.config().submit_defaults, self.now())
                .map_err(|e| e.to_string())?,
            Err(e) => return Err(e.to_string()),
        };
        task.step = Some(StepRef {
            workflow_id: workflow.to_string(),
            step_id: step.id.clone(),
        });
        task.idempotency_key = Some(step_key(workflow, &step.id));
        Ok(task)
    }

    async fn workflow_tasks(&self, id: &str) -> Result<Vec<Task>, EngineError> {
        Ok(self
            .store()
            .list_tasks(&TaskQuery {
                workflow_id: Some(id.to_string()),
                limit: MAX_STEPS * 2,
                ..Default::default()
            })
            .await?)
    }

    async fn load_workflow(&self, owner: Option<&str>, id: &str) -> Result<Loaded, EngineError> {
        let wf = match self.store().get_workflow(id).await? {
            Some(wf) if owner.is_none_or(|o| o == wf.owner) => wf,
            _ => return Err(EngineError::WorkflowNotFound(id.to_string())),
        };
        let plan = plan_of(self, &wf)?;
        let tasks = self.workflow_tasks(id).await?;
        Ok(Loaded::new(wf, plan, tasks))
    }

    pub async fn get_workflow(&self, owner: &str, id: &str) -> Result<WorkflowView, EngineError> {
        Ok(self.load_workflow(Some(owner), id).await?.view())
    }

    /// The caller's workflows, newest first, without their steps (with the progress).
    pub async fn list_workflows(
        &self,
        owner: &str,
        mut query: WorkflowQuery,
    ) -> Result<Vec<(i64, WorkflowView)>, EngineError> {
        query.owner = Some(owner.to_string());
        let mut out = Vec::new();
        for wf in self.store().list_workflows(&query).await? {
            let seq = wf.seq;
            let plan = plan_of(self, &wf)?;
            let tasks = self.workflow_tasks(&wf.id).await?;
            let mut view = Loaded::new(wf, plan, tasks).view();
            view.steps.clear();
            out.push((seq, view));
        }
        Ok(out)
    }

    /// The results of the workflow's final steps (those nothing depends on), by step id,
    /// with the status; `wait` long-polls for the end first.
    pub async fn workflow_result(
        &self,
        owner: &str,
        id: &str,
        wait: Duration,
    ) -> Result<Value, EngineError> {
        let deadline = tokio::time::Instant::now() + wait;
        let loaded = loop {
            let loaded = self.load_workflow(Some(owner), id).await?;
            if loaded.workflow.status.is_final() || tokio::time::Instant::now() >= deadline {
                break loaded;
            }
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + RESULT_POLL)).await;
        };
        let view = loaded.view();
        let mut outputs = Map::new();
        for i in 0..loaded.states.len() {
            if loaded.plan.dependants(i).is_empty()
                && let Some(t) = &loaded.tasks[i]
                && let Some(r) = &t.result
            {
                outputs.insert(loaded.plan.step(i).id.clone(), r.clone());
            }
        }
        Ok(json!({
            "workflow_id": view.workflow_id,
            "status": view.status,
            "progress": view.progress,
            "outputs": outputs,
            "error": view.error,
        }))
    }

    /// Cancels a running workflow: steps not started are cancelled, running steps' tasks
    /// are cancelled (and their children).
    pub async fn cancel_workflow(
        &self,
        owner: &str,
        id: &str,
    ) -> Result<WorkflowView, EngineError> {
        let loaded = self.load_workflow(Some(owner), id).await?;
        if loaded.workflow.status.is_final() {
            return Err(EngineError::Conflict(format!(
                "workflow {id} already {}; there is nothing to cancel",
                loaded.workflow.status.as_str()
            )));
        }
        let mut steps = loaded.workflow.steps.clone();
        for (i, s) in loaded.states.iter().enumerate() {
            if *s == StepState::Pending {
                steps.insert(
                    loaded.plan.step(i).id.clone(),
                    step_record(
                        StepState::Cancelled,
                        "cancelled",
                        "the workflow was cancelled before this step started".into(),
                    ),
                );
            }
        }
        let update = WorkflowUpdate {
            id: id.to_string(),
            expect: vec![WorkflowStatus::Running],
            now: self.now(),
            status: Some(WorkflowStatus::Cancelled),
            steps: Some(steps),
            tasks: Vec::new(),
        };
        match self.store().update_workflow(update).await? {
            WorkflowUpdated::Applied { .. } => {}
            WorkflowUpdated::Refused(wf) => {
                return Err(EngineError::Conflict(format!(
                    "workflow {id} already {}; there is nothing to cancel",
                    wf.status.as_str()
                )));
            }
            WorkflowUpdated::NotFound => return Err(EngineError::WorkflowNotFound(id.into())),
        }
        // Tasks of steps started meanwhile are read back: the update above ordered them.
        // Best effort per step: one that finished meanwhile, or whose cancel fails now,
        // does not keep the others running; the coordinator cancels what is left.
        self.cancel_steps(id).await;
        self.inner().workflows.mark(id);
        self.get_workflow(owner, id).await
    }

    /// Cancels every unfinished step task of a cancelled workflow (and their children).
    /// Returns whether all were reached.
    async fn cancel_steps(&self, id: &str) -> bool {
        let tasks = match self.workflow_tasks(id).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(workflow = id, error = %e, "cannot read the steps to cancel now; the coordinator will");
                return false;
            }
        };
        let mut all = true;
        for t in tasks {
            if t.status.is_final() || t.cancel_requested {
                continue;
            }
            match self.cancel_unchecked(t.id).await {
                Ok(_) | Err(EngineError::Conflict(_) | EngineError::TaskNotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(workflow = id, task = %t.id, error = %e, "cannot cancel a step now; the coordinator will retry");
                    all = false;
                }
            }
        }
        all
    }

    /// Runs a failed or cancelled workflow again from where it stopped: completed steps
    /// keep their results; failed and cancelled steps run again, skipped steps when their
    /// dependencies complete.
    pub async fn retry_workflow(&self, owner: &str, id: &str) -> Result<WorkflowView, EngineError> {
        let loaded = self.load_workflow(Some(owner), id).await?;
        if !matches!(
            loaded.workflow.status,
            WorkflowStatus::Failed | WorkflowStatus::Cancelled
        ) {
            return Err(EngineError::Conflict(format!(
                "workflow {id} is {}; only failed or cancelled workflows can be retried",
                loaded.workflow.status.as_str()
            )));
        }
        let again = loaded
            .tasks
            .iter()
            .flatten()
            .filter(|t| matches!(t.status, TaskStatus::Failed | TaskStatus::Cancelled))
            .count();
        self.admit(again as u64)?;
        // The tasks first, while the workflow is still final (the coordinator leaves it
        // alone), then the workflow: a coordinator seeing it running again sees its
        // failed steps pending already.
        let now = self.now();
        for t in loaded.tasks.iter().flatten() {
            if matches!(t.status, TaskStatus::Failed | TaskStatus::Cancelled) {
                match self.store().retry_task(t.id, now).await? {
                    baton_store::RetryOutcome::Retried(_, ev) => {
                        self.inner().publisher.publish(&[ev])
                    }
                    other => tracing::debug!(task = %t.id, ?other, "step task not retried"),
                }
            }
        }
        let update = WorkflowUpdate {
            id: id.to_string(),
            expect: vec![WorkflowStatus::Failed, WorkflowStatus::Cancelled],
            now,
            status: Some(WorkflowStatus::Running),
            steps: Some(Map::new()),
            tasks: Vec::new(),
        };
        match self.store().update_workflow(update).await? {
            WorkflowUpdated::Applied { .. } => {}
            WorkflowUpdated::Refused(wf) => {
                return Err(EngineError::Conflict(format!(
                    "workflow {id} is {}; only failed or cancelled workflows can be retried",
                    wf.status.as_str()
                )));
            }
            WorkflowUpdated::NotFound => return Err(EngineError::WorkflowNotFound(id.into())),
        }
        self.inner().workflows.mark(id);
        self.get_workflow(owner, id).await
    }

    /// The DAG with each step's state and the critical path (actual durations of
    /// finished steps, the tool's median recent duration for the others).
    pub async fn workflow_dag(
        &self,
        owner: &str,
        id: &str,
        format: DagFormat,
    ) -> Result<DagOutput, EngineError> {
        let loaded = self.load_workflow(Some(owner), id).await?;
        let mut runs = Vec::with_capacity(loaded.states.len());
        for (i, state) in loaded.states.iter().enumerate() {
            let actual = loaded.tasks[i].as_ref().and_then(Task::duration_ms);
            let duration_ms = if state.is_finished() {
                actual
            } else {
                self.tool_median(&loaded.plan.step(i).tool).await
            };
            runs.push(StepRun {
                state: *state,
                duration_ms,
            });
        }
        let dag = Dag::new(&loaded.plan, &runs);
        Ok(match format {
            DagFormat::Json => {
                let mut v = dag.to_json();
                if let Some(o) = v.as_object_mut() {
                    o.insert("workflow_id".into(), json!(id));
                    o.insert("status".into(), json!(loaded.workflow.status));
                }
                DagOutput::Json(v)
            }
            DagFormat::Dot => DagOutput::Text(dag.to_dot()),
            DagFormat::Mermaid => DagOutput::Text(dag.to_mermaid()),
        })
    }

    /// Every event of every step's task, in time order.
    pub async fn workflow_timeline(
        &self,
        owner: &str,
        id: &str,
    ) -> Result<Vec<TimelineEntry>, EngineError> {
        let loaded = self.load_workflow(Some(owner), id).await?;
        let mut entries: Vec<TimelineEntry> = Vec::new();
        for (i, t) in loaded.tasks.iter().enumerate() {
            let Some(t) = t else { continue };
            let step_id = loaded.plan.step(i).id.clone();
            for e in self.store().task_events(t.id, 0, 10_000).await? {
                entries.push(TimelineEntry {
                    step_id: step_id.clone(),
                    event: e,
                });
            }
        }
        entries.sort_by_key(|e| (e.event.at, e.event.seq));
        Ok(entries)
    }

    /// Moves one workflow on (see the module docs). Idempotent.
    pub(crate) async fn advance_workflow(&self, id: &str) -> Result<(), EngineError> {
        // A step that cannot even start fails at once, which may stop or skip others:
        // go round until nothing changes.
        for _ in 0..8 {
            let loaded = match self.load_workflow(None, id).await {
                Ok(l) => l,
                Err(EngineError::WorkflowNotFound(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
            if loaded.workflow.status == WorkflowStatus::Cancelled
                && loaded
                    .tasks
                    .iter()
                    .flatten()
                    .any(|t| !t.status.is_final() && !t.cancel_requested)
            {
                // A cancel that could not reach every step (or a process that stopped
                // half-way through one): finish the job.
                if !self.cancel_steps(id).await {
                    return Err(EngineError::Store(baton_store::StoreError::Unavailable(
                        "some steps could not be cancelled yet".into(),
                    )));
                }
                return Ok(());
            }
            if loaded.workflow.status != WorkflowStatus::Running {
                return Ok(());
            }
            let plan = &loaded.plan;
            let mut states = loaded.states.clone();
            let mut steps = loaded.workflow.steps.clone();
            let mut to_cancel: Vec<TaskId> = Vec::new();
            for i in plan.topo_order().iter().copied() {
                if !matches!(states[i], StepState::Failed | StepState::Cancelled) {
                    continue;
                }
                let effect = plan.failure_effect(i, &states);
                let cause = format!("step `{}` {}", plan.step(i).id, states[i].as_str());
                for s in effect.skip {
                    states[s] = StepState::Skipped;
                    steps.insert(
                        plan.step(s).id.clone(),
                        step_record(StepState::Skipped, "skipped", cause.clone()),
                    );
                }
                for s in effect.cancel {
                    match states[s] {
                        StepState::Running => {
                            if let Some(t) = &loaded.tasks[s]
                                && !t.cancel_requested
                            {
                                to_cancel.push(t.id);
                            }
                        }
                        StepState::Pending => {
                            states[s] = StepState::Cancelled;
                            steps.insert(
                                plan.step(s).id.clone(),
                                step_record(
                                    StepState::Cancelled,
                                    "cancelled",
                                    format!("{cause} and the workflow fails fast"),
                                ),
                            );
                        }
                        _ => {}
                    }
                }
            }
            let mut new_tasks = Vec::new();
            let mut failed_to_start = false;
            // Steps start only while the active-task cap has room; the others stay
            // pending, and the workflow is looked at again shortly.
            let room = self.room() as usize;
            let ready = plan.ready(&states);
            let held_back = ready.len().saturating_sub(room);
            for i in ready.into_iter().take(room) {
                match self.step_task(id, &loaded.workflow.owner, plan, i, &loaded.tasks) {
                    Ok(t) => {
                        new_tasks.push(t);
                        states[i] = StepState::Running;
                    }
                    Err(message) => {
                        tracing::info!(workflow = id, step = %plan.step(i).id, %message, "workflow step cannot start");
                        states[i] = StepState::Failed;
                        steps.insert(
                            plan.step(i).id.clone(),
                            step_record(StepState::Failed, "invalid_step", message),
                        );
                        failed_to_start = true;
                    }
                }
            }
            let status = plan.status(&states);
            let finishing = status.is_final() && !failed_to_start;
            if steps != loaded.workflow.steps || !new_tasks.is_empty() || finishing {
                let n = new_tasks.len();
                let update = WorkflowUpdate {
                    id: id.to_string(),
                    expect: vec![WorkflowStatus::Running],
                    now: self.now(),
                    status: finishing.then_some(status),
                    steps: Some(steps),
                    tasks: new_tasks,
                };
                match self.store().update_workflow(update).await? {
                    WorkflowUpdated::Applied { events, .. } => {
                        self.inner().publisher.publish(&events);
                        if n > 0 {
                            tracing::debug!(workflow = id, steps = n, "workflow steps submitted");
                        }
                        if finishing {
                            tracing::info!(
                                workflow = id,
                                status = status.as_str(),
                                "workflow finished"
                            );
                        }
                    }
                    WorkflowUpdated::Refused(_) | WorkflowUpdated::NotFound => return Ok(()),
                }
            }
            for t in to_cancel {
                if let Err(e) = self.cancel_unchecked(t).await
                    && !matches!(e, EngineError::Conflict(_) | EngineError::TaskNotFound(_))
                {
                    return Err(e);
                }
            }
            if held_back > 0 {
                tracing::debug!(
                    workflow = id,
                    steps = held_back,
                    "steps wait for room under tasks.max_active"
                );
                self.inner().workflows.mark_quietly(id);
                return Ok(());
            }
            if !failed_to_start {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Holds the `workflows` role when it can, and advances workflows while it holds it:
/// those whose step tasks ended (the hub's feed) or that were changed through this
/// process, and every running one when it takes the role, after a gap in the store's
/// feed, and every [`RESYNC`] as a backstop.
pub(crate) async fn coordinator_loop(inner: Arc<Inner>) {
    let engine = Engine::from_inner(inner.clone());
    let Some(mut feed) = inner.publisher.hub.workflow_feed() else {
        return;
    };
    let mut role: Option<Box<dyn SingletonGuard>> = None;
    let mut role_check = tokio::time::interval(ROLE_CHECK);
    role_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_resync = tokio::time::Instant::now();
    loop {
        let mut dirty: HashSet<String> = HashSet::new();
        let mut check_role = false;
        tokio::select! {
            _ = inner.stop_background.cancelled() => break,
            _ = role_check.tick() => check_role = true,
            _ = inner.workflows.wake.notified() => {}
            wf = feed.recv() => match wf {
                Some(wf) => {
                    dirty.insert(wf);
                }
                None => break,
            },
        }
        // Take whatever else is queued, so a burst is one pass.
        while let Ok(wf) = feed.try_recv() {
            dirty.insert(wf);
        }
        dirty.extend(inner.workflows.take());
        let mut resync = inner.workflows.take_resync();
        if check_role {
            if let Some(r) = &role
                && !r.held().await
            {
                tracing::warn!("lost the workflows role (its connection to the store broke)");
                if let Some(r) = role.take() {
                    r.release().await;
                }
            }
            if role.is_none() {
                match inner.store.try_singleton("workflows").await {
                    Ok(Some(r)) => {
                        tracing::debug!(node = %inner.config.node_id, "this process coordinates workflows");
                        role = Some(r);
                        resync = true;
                    }
                    other => {
                        if let Err(e) = other {
                            tracing::debug!(error = %e, "cannot take the workflows role now");
                        }
                        // Another process coordinates: forget the steps learnt meanwhile.
                        inner.publisher.hub.watch_steps(HashMap::new());
                    }
                }
            }
        }
        if role.is_none() {
            continue;
        }
        if resync || last_resync.elapsed() >= RESYNC {
            last_resync = tokio::time::Instant::now();
            match running_workflows(&engine).await {
                Ok(running) => {
                    let mut steps = HashMap::new();
                    for (id, tasks) in running {
                        for t in tasks {
                            steps.insert(t, id.clone());
                        }
                        dirty.insert(id);
                    }
                    inner.publisher.hub.watch_steps(steps);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list running workflows");
                    inner
                        .workflows
                        .resync
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        for id in dirty {
            if let Err(e) = engine.advance_workflow(&id).await {
                tracing::warn!(workflow = %id, error = %e, "cannot advance the workflow now; trying again shortly");
                inner.workflows.mark_quietly(&id);
            }
        }
    }
    if let Some(r) = role {
        r.release().await;
    }
}

/// Every running workflow with its step tasks' ids.
async fn running_workflows(engine: &Engine) -> Result<Vec<(String, Vec<TaskId>)>, EngineError> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = engine
            .store()
            .list_workflows(&WorkflowQuery {
                status: Some(WorkflowStatus::Running),
                before_seq: before,
                limit: 500,
                ..Default::default()
            })
            .await?;
        let done = page.len() < 500;
        before = page.last().map(|w| w.seq);
        for wf in page {
            let tasks = engine.workflow_tasks(&wf.id).await?;
            out.push((wf.id, tasks.iter().map(|t| t.id).collect()));
        }
        if done {
            return Ok(out);
        }
    }
}
