//! The engine's workflow methods: submit, read, wait, cancel, retry, DAG, timeline.

use std::sync::Arc;
use std::time::Duration;

use baton_core::task::{NewTask, StepRef};
use baton_core::{Task, TaskId, TaskStatus};
use baton_store::{NewWorkflow, TaskQuery, WorkflowQuery, WorkflowUpdate, WorkflowUpdated};
use baton_workflow::{Dag, Definition, Plan, Problem, StepRun, StepState, WorkflowStatus};
use serde_json::{Map, Value, json};

use super::MAX_STEPS;
use super::plans::{Registry, plan_of, step_key};
use super::views::{
    DagFormat, DagOutput, Loaded, TimelineEntry, WorkflowPage, WorkflowResult, WorkflowView,
    step_record,
};
use crate::EngineError;
use crate::engine::Engine;

/// How often `workflow_result` re-reads a workflow it waits for.
const RESULT_POLL: Duration = Duration::from_millis(500);
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

/// How a workflow is submitted, besides its definition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkflowOptions {
    /// A second submission with the same key (by the same owner) stores nothing and
    /// answers with the workflow the first one made: an agent retried after a crash
    /// finds the workflow it started instead of starting another.
    pub idempotency_key: Option<String>,
    /// The task submitting it (an agent calling Baton while it runs a task): every
    /// step's task becomes a child of that task, so the lineage shows the workflow
    /// under it, and cancelling the task cancels the steps.
    pub parent: Option<TaskId>,
}

/// A submitted workflow, and whether this submission made it.
#[derive(Debug, Clone)]
pub struct SubmittedWorkflow {
    pub workflow: WorkflowView,
    /// `false`: the idempotency key had made it before.
    pub created: bool,
}

impl Engine {
    /// Validates a definition (every problem at once; nothing is stored if there is
    /// one), then stores the workflow with the tasks of its first steps.
    pub async fn submit_workflow(
        &self,
        owner: &str,
        definition: Definition,
    ) -> Result<WorkflowView, EngineError> {
        let id = TaskId::generate(self.now());
        self.submit_workflow_as(owner, definition, id, None).await
    }

    /// [`submit_workflow`](Self::submit_workflow) with an idempotency key and a parent
    /// task ([`WorkflowOptions`]).
    pub async fn submit_workflow_with(
        &self,
        owner: &str,
        definition: Definition,
        options: WorkflowOptions,
    ) -> Result<SubmittedWorkflow, EngineError> {
        if let Some(parent) = options.parent {
            // Only a task the caller may see: a workflow never attaches to another
            // tenant's task.
            self.get(owner, parent).await?;
        }
        let Some(key) = options.idempotency_key else {
            let id = TaskId::generate(self.now());
            let workflow = self
                .submit_workflow_as(owner, definition, id, options.parent)
                .await?;
            return Ok(SubmittedWorkflow {
                workflow,
                created: true,
            });
        };
        baton_core::submit::check_idempotency_key(&key)?;
        // The key names the workflow: its id is derived from the owner and the key, so
        // the store's primary key settles a race between two submissions.
        let id = TaskId::derived(
            baton_core::Timestamp::from_millis(0),
            &format!("workflow\0{owner}\0{key}"),
        );
        let wf = format!("wf-{id}");
        if self.store().get_workflow(&wf).await?.is_some() {
            return Ok(SubmittedWorkflow {
                workflow: self.get_workflow(owner, &wf).await?,
                created: false,
            });
        }
        match self
            .submit_workflow_as(owner, definition, id, options.parent)
            .await
        {
            Ok(workflow) => Ok(SubmittedWorkflow {
                workflow,
                created: true,
            }),
            Err(e) => match self.store().get_workflow(&wf).await? {
                // Another submission with the key stored it at the same moment.
                Some(_) => Ok(SubmittedWorkflow {
                    workflow: self.get_workflow(owner, &wf).await?,
                    created: false,
                }),
                None => Err(e),
            },
        }
    }

    /// Checks a definition as [`submit_workflow`](Self::submit_workflow) would, without
    /// storing anything.
    pub fn check_workflow(&self, definition: &Definition) -> Result<(), EngineError> {
        baton_workflow::validate(definition, &Registry(self.tools()))
            .map(|_| ())
            .map_err(EngineError::InvalidWorkflow)
    }

    /// [`submit_workflow`](Self::submit_workflow) with the workflow's id given
    /// (`wf-<id>`): a second submission with the same id stores nothing (the store's key
    /// refuses it).
    pub(crate) async fn submit_workflow_as(
        &self,
        owner: &str,
        definition: Definition,
        id: TaskId,
        parent: Option<TaskId>,
    ) -> Result<WorkflowView, EngineError> {
        let plan = baton_workflow::validate(&definition, &Registry(self.tools()))
            .map_err(EngineError::InvalidWorkflow)?;
        if self.is_shutting_down() {
            return Err(EngineError::ShuttingDown);
        }
        let now = self.now();
        let id = format!("wf-{id}");
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
            match self.step_task(&id, owner, &plan, i, &[], parent) {
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
        for o in &outcomes {
            if let baton_store::CreateOutcome::Created(t) = o {
                crate::metrics::submitted(&t.tool, &t.queue);
            }
        }
        let tasks = outcomes.into_iter().map(|o| o.task().clone()).collect();
        Ok(Loaded::new(stored, Arc::new(plan), tasks).view())
    }

    /// The task of step `i`, its references resolved from `tasks` (indexed like the
    /// plan's steps), a child of `parent` (the task that submitted the workflow, if
    /// one did). `Err` says why the step cannot start.
    pub(super) fn step_task(
        &self,
        workflow: &str,
        owner: &str,
        plan: &Plan,
        i: usize,
        tasks: &[Option<Task>],
        parent: Option<TaskId>,
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
        task.parent_id = parent;
        // Steps started later, by the coordinator, join the trace of the request that
        // submitted the workflow, which its first steps kept.
        if task.trace_parent.is_none() {
            task.trace_parent = tasks.iter().flatten().find_map(|t| t.trace_parent.clone());
        }
        Ok(task)
    }

    /// The workflow's step tasks, with large results read back from object storage (later
    /// steps take them as arguments; the workflow's result shows them).
    pub(super) async fn workflow_tasks(&self, id: &str) -> Result<Vec<Task>, EngineError> {
        let mut tasks = self
            .store()
            .list_tasks(&TaskQuery {
                workflow_id: Some(id.to_string()),
                limit: MAX_STEPS * 2,
                ..Default::default()
            })
            .await?;
        for t in &mut tasks {
            self.resolve_payload(t).await?;
        }
        Ok(tasks)
    }

    /// A workflow as whoever owns it sees it (for webhook payloads).
    pub(crate) async fn workflow_view_of_any(&self, id: &str) -> Result<WorkflowView, EngineError> {
        Ok(self.load_workflow(None, id).await?.view())
    }

    pub(super) async fn load_workflow(
        &self,
        owner: Option<&str>,
        id: &str,
    ) -> Result<Loaded, EngineError> {
        let wf = match self.store().get_workflow(id).await? {
            Some(wf) if owner.is_none_or(|o| o == wf.owner) => wf,
            _ => return Err(EngineError::WorkflowNotFound(id.to_string())),
        };
        let plan = plan_of(self, &wf)?;
        let tasks = self.workflow_tasks(id).await?;
        Ok(Loaded::new(wf, plan, tasks))
    }

    pub async fn get_workflow(&self, owner: &str, id: &str) -> Result<WorkflowView, EngineError> {
        match self.load_workflow(Some(owner), id).await {
            Err(EngineError::WorkflowNotFound(missing)) => {
                // Deleted by retention: perhaps archived first.
                let Some((wf, tasks)) = self.archived_workflow(owner, id).await? else {
                    return Err(EngineError::WorkflowNotFound(missing));
                };
                let plan = plan_of(self, &wf)?;
                let mut view = Loaded::new(wf, plan, tasks).view();
                view.archived = true;
                Ok(view)
            }
            found => Ok(found?.view()),
        }
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

    /// A page of the caller's workflows, newest first (see [`crate::page`]).
    pub async fn workflow_page(
        &self,
        owner: &str,
        status: Option<WorkflowStatus>,
        page: crate::page::Page,
    ) -> Result<WorkflowPage, EngineError> {
        let found = self
            .list_workflows(
                owner,
                WorkflowQuery {
                    owner: None,
                    status,
                    before_seq: page.before_seq,
                    limit: page.limit,
                },
            )
            .await?;
        let next_cursor = page.next(&found, |(seq, _)| *seq);
        Ok(WorkflowPage {
            workflows: found.into_iter().map(|(_, v)| v).collect(),
            next_cursor,
        })
    }

    /// The results of the workflow's final steps (those nothing depends on), by step id,
    /// with the status; `wait` long-polls for the end first.
    pub async fn workflow_result(
        &self,
        owner: &str,
        id: &str,
        wait: Duration,
    ) -> Result<WorkflowResult, EngineError> {
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
        Ok(WorkflowResult {
            workflow_id: view.workflow_id,
            status: view.status,
            progress: view.progress,
            outputs,
            error: view.error,
        })
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
            retry: Vec::new(),
            cancel: Vec::new(),
        };
        let now = update.now;
        match self.store().update_workflow(update).await? {
            WorkflowUpdated::Applied { .. } => {
                crate::metrics::workflow_finished("cancelled", loaded.workflow.created_at, now);
            }
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
    pub(super) async fn cancel_steps(&self, id: &str) -> bool {
        let tasks = match self.workflow_tasks(id).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(workflow = id, error = %e, "cannot read the steps to cancel now; the coordinator will");
                return false;
            }
        };
        let cancel: Vec<TaskId> = tasks
            .iter()
            .filter(|t| !t.status.is_final() && !t.cancel_requested)
            .map(|t| t.id)
            .collect();
        if cancel.is_empty() {
            return true;
        }
        // Under the workflow's lock, and only while it is still cancelled: a retry may
        // have put it back to running since the steps were read.
        let update = WorkflowUpdate {
            id: id.to_string(),
            expect: vec![WorkflowStatus::Cancelled],
            now: self.now(),
            status: None,
            steps: None,
            tasks: Vec::new(),
            retry: Vec::new(),
            cancel: cancel.clone(),
        };
        match self.store().update_workflow(update).await {
            Ok(WorkflowUpdated::Applied { events, .. }) => {
                self.inner().publisher.publish(&events);
            }
            Ok(WorkflowUpdated::Refused(_) | WorkflowUpdated::NotFound) => return true,
            Err(e) => {
                tracing::warn!(workflow = id, error = %e, "cannot cancel the steps now; the coordinator will retry");
                return false;
            }
        }
        let mut all = true;
        for task in cancel {
            self.signal_cancel(task);
            if let Err(e) = self.cancel_children(task).await {
                tracing::warn!(workflow = id, %task, error = %e, "cannot cancel a step's children now; the coordinator will retry");
                all = false;
            }
        }
        all
    }

    /// How many workflow plans this process built from stored definitions (each
    /// workflow's once while it stays in the cache; a figure for diagnostics).
    pub fn workflow_plans_built(&self) -> u64 {
        self.inner()
            .workflows
            .plans_built
            .load(std::sync::atomic::Ordering::Relaxed)
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
        // The ended steps go back to pending in the same transaction as the workflow
        // goes back to running: a coordinator never sees one without the other (it would
        // cancel pending steps of a workflow still cancelled, or end a running workflow
        // again on a step still cancelled).
        let retry = loaded
            .tasks
            .iter()
            .flatten()
            .filter(|t| matches!(t.status, TaskStatus::Failed | TaskStatus::Cancelled))
            .map(|t| t.id)
            .collect();
        let update = WorkflowUpdate {
            id: id.to_string(),
            expect: vec![WorkflowStatus::Failed, WorkflowStatus::Cancelled],
            now: self.now(),
            status: Some(WorkflowStatus::Running),
            steps: Some(Map::new()),
            tasks: Vec::new(),
            retry,
            cancel: Vec::new(),
        };
        match self.store().update_workflow(update).await? {
            WorkflowUpdated::Applied { events, .. } => self.inner().publisher.publish(&events),
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
}
