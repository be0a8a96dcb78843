//! Advancing workflows: one process holds the `workflows` role and moves each running
//! workflow on when its steps end (see the module docs of [`crate::workflow`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use baton_core::TaskId;
use baton_store::{SingletonGuard, WorkflowQuery, WorkflowUpdate, WorkflowUpdated};
use baton_workflow::{StepState, WorkflowStatus};

use super::views::step_record;
use crate::EngineError;
use crate::engine::Engine;
use crate::inner::Inner;

/// How often a process checks that it still holds the coordinator role, or tries for it.
const ROLE_CHECK: Duration = Duration::from_secs(2);
/// How often the coordinator re-reads every running workflow, whatever it heard (a
/// backstop: it also does when it takes the role and when the store's feed had a gap).
const RESYNC: Duration = Duration::from_secs(30);

impl Engine {
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
            // Steps start only while the active-task cap has room; the others stay
            // pending, and the workflow is looked at again shortly.
            let decision = plan.advance(&mut states, self.room() as usize);
            let cause = |c: usize| format!("step `{}` {}", plan.step(c).id, states[c].as_str());
            for &(s, c) in &decision.skipped {
                steps.insert(
                    plan.step(s).id.clone(),
                    step_record(StepState::Skipped, "skipped", cause(c)),
                );
            }
            for &(s, c) in &decision.cancelled {
                steps.insert(
                    plan.step(s).id.clone(),
                    step_record(
                        StepState::Cancelled,
                        "cancelled",
                        format!("{} and the workflow fails fast", cause(c)),
                    ),
                );
            }
            let to_cancel: Vec<TaskId> = decision
                .cancel_running
                .iter()
                .filter_map(|&s| loaded.tasks[s].as_ref())
                .filter(|t| !t.cancel_requested)
                .map(|t| t.id)
                .collect();
            let mut new_tasks = Vec::new();
            let mut failed_to_start = false;
            let held_back = decision.held_back;
            for i in decision.start {
                match self.step_task(
                    id,
                    &loaded.workflow.owner,
                    plan,
                    i,
                    &loaded.tasks,
                    loaded.parent(),
                ) {
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
                let labels: Vec<(String, String)> = new_tasks
                    .iter()
                    .map(|t| (t.tool.clone(), t.queue.clone()))
                    .collect();
                let now = self.now();
                let update = WorkflowUpdate {
                    id: id.to_string(),
                    expect: vec![WorkflowStatus::Running],
                    now,
                    status: finishing.then_some(status),
                    steps: Some(steps),
                    tasks: new_tasks,
                    retry: Vec::new(),
                    cancel: Vec::new(),
                };
                match self.store().update_workflow(update).await? {
                    WorkflowUpdated::Applied { events, .. } => {
                        self.inner().publisher.publish(&events);
                        for (tool, queue) in &labels {
                            crate::metrics::submitted(tool, queue);
                        }
                        if finishing {
                            crate::metrics::workflow_finished(
                                status.as_str(),
                                loaded.workflow.created_at,
                                now,
                            );
                        }
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
