//! The filters of [`Store::list_tasks`](crate::Store::list_tasks) and
//! [`Store::list_workflows`](crate::Store::list_workflows), built with sqlx's
//! `QueryBuilder` for either dialect: each backend starts the query (`SELECT … WHERE` a
//! condition that always holds) and says how it binds a task id.

use baton_core::TaskId;
use sqlx::{Database, QueryBuilder};

use super::dialect::Bind;
use crate::{TaskQuery, WorkflowQuery};

/// Appends the conditions of `q`, then the order (newest first) and the page size.
pub(crate) fn push_task_filters<DB, Id>(
    qb: &mut QueryBuilder<DB>,
    q: &TaskQuery,
    task_id: impl Fn(TaskId) -> Id,
) where
    DB: Database,
    Id: Bind<DB>,
    String: Bind<DB>,
    &'static str: Bind<DB>,
    i64: Bind<DB>,
{
    push_owner_status(qb, q.owner.as_ref(), q.status.map(|s| s.as_str()));
    if let Some(tool) = &q.tool {
        qb.push(" AND tool = ").push_bind(tool.clone());
    }
    if let Some(queue) = &q.queue {
        qb.push(" AND queue = ").push_bind(queue.clone());
    }
    if let Some(wf) = &q.workflow_id {
        qb.push(" AND workflow_id = ").push_bind(wf.clone());
    }
    if let Some(parent) = q.parent_id {
        qb.push(" AND parent_id = ").push_bind(task_id(parent));
    }
    if let Some(group) = &q.group_key {
        qb.push(" AND group_key = ").push_bind(group.clone());
    }
    push_page(qb, q.before_seq, q.limit);
}

/// Appends the conditions of `q`, then the order (newest first) and the page size.
pub(crate) fn push_workflow_filters<DB>(qb: &mut QueryBuilder<DB>, q: &WorkflowQuery)
where
    DB: Database,
    String: Bind<DB>,
    &'static str: Bind<DB>,
    i64: Bind<DB>,
{
    push_owner_status(qb, q.owner.as_ref(), q.status.map(|s| s.as_str()));
    push_page(qb, q.before_seq, q.limit);
}

/// The conditions both lists have.
fn push_owner_status<DB>(
    qb: &mut QueryBuilder<DB>,
    owner: Option<&String>,
    status: Option<&'static str>,
) where
    DB: Database,
    String: Bind<DB>,
    &'static str: Bind<DB>,
{
    if let Some(owner) = owner {
        qb.push(" AND owner = ").push_bind(owner.clone());
    }
    if let Some(status) = status {
        qb.push(" AND status = ").push_bind(status);
    }
}

/// Newest first, from the cursor `before_seq`.
fn push_page<DB>(qb: &mut QueryBuilder<DB>, before_seq: Option<i64>, limit: u32)
where
    DB: Database,
    i64: Bind<DB>,
{
    if let Some(before) = before_seq {
        qb.push(" AND seq < ").push_bind(before);
    }
    qb.push(" ORDER BY seq DESC LIMIT ")
        .push_bind(i64::from(limit));
}
