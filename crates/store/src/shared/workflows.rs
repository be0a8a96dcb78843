//! Workflows: stored with the tasks of their first steps, and changed (status, step
//! states, new step tasks) only while their status is one the caller expects. Each
//! dialect's statements are a [`WorkflowSql`].

use baton_core::TaskEvent;
use baton_core::task::NewTask;
use serde_json::Value;
use sqlx::{Executor, QueryBuilder};

use super::dialect::{Bind, Dialect, execute, fetch_all, fetch_one, fetch_optional};
use super::filters::push_workflow_filters;
use super::rows::{Columns, workflow_from_row};
use super::tasks::{TaskSql, TaskWrites, create_tasks, request_cancel, retry_task};
use crate::{
    CancelOutcome, CreateOutcome, NewWorkflow, RetryOutcome, StoreResult, Workflow, WorkflowQuery,
    WorkflowStatus, WorkflowUpdate, WorkflowUpdated,
};

/// The workflow statements of a dialect. Parameters are numbered as PostgreSQL numbers
/// them.
pub(crate) trait WorkflowSql: Dialect {
    /// Stores a running workflow with no step states: `$1` id, `$2` name, `$3` owner,
    /// `$4` definition (JSON text), `$5` created; returns its `seq`.
    const INSERT_WORKFLOW: &'static str;
    /// The workflow columns of workflow `$1`.
    const GET_WORKFLOW: &'static str;
    /// The same, the row locked for the rest of the transaction (where the dialect locks
    /// rows), so that concurrent updates (a cancel and the coordinator adding steps)
    /// apply one after the other.
    const LOCK_WORKFLOW: &'static str;
    /// The workflow columns of every workflow, to be followed by `AND` conditions.
    const LIST_WORKFLOWS: &'static str;
    /// Workflow `$5` gets status `$1`, steps `$2` (JSON text), `updated_at` `$3` and
    /// `completed_at` `$4`.
    const SAVE_WORKFLOW: &'static str;
}

pub(crate) async fn get_workflow<'c, D: WorkflowSql>(
    db: impl Executor<'c, Database = D>,
    id: &str,
) -> StoreResult<Option<Workflow>>
where
    String: Bind<D>,
{
    let query = sqlx::query(D::GET_WORKFLOW).bind(id.to_string());
    fetch_optional(db, query, workflow_from_row).await
}

pub(crate) async fn list_workflows<'c, D: WorkflowSql>(
    db: impl Executor<'c, Database = D>,
    q: &WorkflowQuery,
) -> StoreResult<Vec<Workflow>>
where
    String: Bind<D>,
    &'static str: Bind<D>,
    i64: Bind<D>,
{
    let mut qb = QueryBuilder::<D>::new(D::LIST_WORKFLOWS);
    push_workflow_filters(&mut qb, q);
    fetch_all(db, qb.build(), workflow_from_row).await
}

/// Stores a workflow and the tasks of its first steps.
pub(crate) async fn create_workflow<T: TaskWrites<Db: WorkflowSql>>(
    tx: &mut T,
    wf: &NewWorkflow,
    tasks: &[NewTask],
) -> StoreResult<(Workflow, Vec<CreateOutcome>, Vec<TaskEvent>)>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
{
    let query = sqlx::query(T::Db::INSERT_WORKFLOW)
        .bind(wf.id.clone())
        .bind(wf.name.clone())
        .bind(wf.owner.clone())
        .bind(wf.definition.to_string())
        .bind(wf.created_at.as_millis());
    let seq = fetch_one(tx.exec(), query, |r| r.int("seq")).await?;
    let (outcomes, events) = create_tasks(tx, tasks).await?;
    let workflow = Workflow {
        id: wf.id.clone(),
        seq,
        name: wf.name.clone(),
        owner: wf.owner.clone(),
        definition: wf.definition.clone(),
        status: WorkflowStatus::Running,
        steps: Default::default(),
        created_at: wf.created_at,
        updated_at: wf.created_at,
        completed_at: None,
    };
    Ok((workflow, outcomes, events))
}

/// Applies `u` if the workflow's status is one of `u.expect`.
pub(crate) async fn update_workflow<T: TaskWrites<Db: WorkflowSql + TaskSql>>(
    tx: &mut T,
    u: &WorkflowUpdate,
) -> StoreResult<WorkflowUpdated>
where
    String: Bind<T::Db>,
    &'static str: Bind<T::Db>,
    Option<i64>: Bind<T::Db>,
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let query = sqlx::query(T::Db::LOCK_WORKFLOW).bind(u.id.clone());
    let Some(current) = fetch_optional(tx.exec(), query, workflow_from_row).await? else {
        return Ok(WorkflowUpdated::NotFound);
    };
    if !u.expect.contains(&current.status) {
        return Ok(WorkflowUpdated::Refused(current));
    }
    let was_final = current.status.is_final();
    let workflow = workflow_after(current, u);
    let query = sqlx::query(T::Db::SAVE_WORKFLOW)
        .bind(workflow.status.as_str())
        .bind(Value::Object(workflow.steps.clone()).to_string())
        .bind(workflow.updated_at.as_millis())
        .bind(workflow.completed_at.map(|t| t.as_millis()))
        .bind(u.id.clone());
    execute(tx.exec(), query).await?;
    if workflow.status.is_final() && !was_final {
        super::webhooks::enqueue_workflow(
            tx,
            &workflow.id,
            &workflow.owner,
            workflow.status.as_str(),
            workflow.updated_at,
        )
        .await?;
    }
    let (outcomes, mut events) = create_tasks(tx, &u.tasks).await?;
    for &id in &u.retry {
        if let RetryOutcome::Retried(_, ev) = retry_task(tx, id, u.now).await? {
            events.push(ev);
        }
    }
    for &id in &u.cancel {
        match request_cancel(tx, id, u.now).await? {
            CancelOutcome::Cancelled(_, ev) | CancelOutcome::Requested(_, ev) => events.push(ev),
            _ => {}
        }
    }
    Ok(WorkflowUpdated::Applied {
        workflow,
        outcomes,
        events,
    })
}

/// The workflow after `update` (whose `expect` the caller checked): a final status sets
/// `completed_at` (kept if it was final already), running clears it.
fn workflow_after(current: Workflow, update: &WorkflowUpdate) -> Workflow {
    let status = update.status.unwrap_or(current.status);
    let completed_at = match (status.is_final(), current.status.is_final()) {
        (false, _) => None,
        (true, true) => current.completed_at.or(Some(update.now)),
        (true, false) => Some(update.now),
    };
    Workflow {
        status,
        steps: update.steps.clone().unwrap_or(current.steps.clone()),
        updated_at: update.now,
        completed_at,
        ..current
    }
}

/// Workflows purged per retention call: each takes all its steps (up to 1,000 tasks)
/// with it, so far fewer workflows than tasks fit one short transaction.
pub(crate) fn workflow_purge_batch(task_limit: u32) -> u32 {
    (task_limit / 100).max(1)
}
