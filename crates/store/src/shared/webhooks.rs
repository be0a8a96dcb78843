//! Webhooks and their outbox of deliveries, written once for both dialects (the
//! statements use `$n` parameters, turned into the dialect's by [`query`](super::dialect::query)).
//!
//! The outbox rows of task events are written by the statement (PostgreSQL) or right
//! after the statement (SQLite) that appends the events, in the same transaction, from
//! each backend's `Tx::insert_events`: [`TASK_DELIVERIES`] is the `SELECT` both use, over
//! the just-appended events (a CTE in PostgreSQL, a range of numbers in SQLite). It
//! costs nothing while no webhook and no callback exists (PostgreSQL evaluates the
//! `EXISTS` gates once; SQLite's writer skips the statement while it knows of neither).

use baton_core::Timestamp;
use baton_core::task::NewTask;
use sqlx::Executor;

use super::dialect::{Bind, Dialect, Tx, execute, fetch_all, fetch_optional, query};
use super::rows::Columns;
use crate::{
    AttemptRecord, CreateOutcome, Delivery, DeliveryAttempt, DeliveryNext, NewOwnerlessEvent,
    StoreResult, StoredWebhook,
};

/// Attempts kept per delivery (the newest).
const KEEP_ATTEMPTS: i64 = 50;

/// Events that make a task delivery: the event `e` (columns `seq`, `task_id`, `kind`,
/// `status`, `at`) ended the task or made it wait for input.
macro_rules! task_event_filter {
    () => {
        "e.kind IN ('completed', 'failed', 'cancelled', 'input_required', 'lease_expired') \
         AND e.status IN ('completed', 'failed', 'cancelled', 'input_required')"
    };
}

/// The deliveries of task events `e` joined with their tasks `t`, for the backends to
/// select from their just-appended events: `{events}` is replaced by the source of `e`,
/// `{task_id_text}` by `e.task_id` as text.
pub(crate) const TASK_DELIVERIES: &str = concat!(
    "SELECT 'msg_' || e.seq || '_' || w.id, w.id, t.owner, NULL, 'task.' || e.status, \
            {task_id_text}, t.workflow_id, e.at, 'pending', 0, e.at, e.at, e.at \
     FROM {events} JOIN tasks t ON t.id = e.task_id \
          JOIN webhooks w ON (w.all_owners = 1 OR w.owner = t.owner) \
     WHERE EXISTS (SELECT 1 FROM webhooks) AND ",
    task_event_filter!(),
    " AND w.events LIKE '%,task.' || e.status || ',%' \
       AND (w.tool IS NULL OR w.tool = t.tool) AND (w.queue IS NULL OR w.queue = t.queue) \
       AND (w.workflow IS NULL OR w.workflow = t.workflow_id) \
     UNION ALL \
     SELECT 'msg_' || e.seq || '_callback', NULL, t.owner, c.url, 'task.' || e.status, \
            {task_id_text}, t.workflow_id, e.at, 'pending', 0, e.at, e.at, e.at \
     FROM {events} JOIN task_callbacks c ON c.task_id = e.task_id \
          JOIN tasks t ON t.id = e.task_id \
     WHERE EXISTS (SELECT 1 FROM task_callbacks) AND e.status <> 'input_required' AND ",
    task_event_filter!()
);

/// The columns [`TASK_DELIVERIES`] fills, in its order.
pub(crate) const INSERT_DELIVERY_COLUMNS: &str = "INSERT INTO webhook_deliveries (id, \
     webhook_id, owner, url, event_type, task_id, workflow_id, event_at, status, attempts, \
     next_attempt_at, created_at, updated_at) ";

const WEBHOOK_COLUMNS: &str = "id, owner, url, events, tool, queue, workflow, all_owners, \
     secret, previous_secret, previous_until, description, created_at, updated_at";

const DELIVERY_COLUMNS: &str = "id, webhook_id, owner, url, event_type, task_id, workflow_id, \
     subject, event_at, payload, status, attempts, next_attempt_at, lease_until, \
     last_status_code, last_error, last_latency_ms, created_at, updated_at";

/// `a,b` as stored: `,a,b,`, so that `LIKE '%,a,%'` finds a type.
fn join_events(events: &[String]) -> String {
    format!(",{},", events.join(","))
}

fn decode_webhook<R: Columns>(r: &R) -> StoreResult<StoredWebhook> {
    Ok(StoredWebhook {
        id: r.text("id")?,
        owner: r.text("owner")?,
        url: r.text("url")?,
        events: r
            .text("events")?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        tool: r.opt_text("tool")?,
        queue: r.opt_text("queue")?,
        workflow: r.opt_text("workflow")?,
        all_owners: r.int("all_owners")? != 0,
        secret: r.text("secret")?,
        previous_secret: r.opt_text("previous_secret")?,
        previous_until: r.opt_int("previous_until")?.map(Timestamp::from_millis),
        description: r.opt_text("description")?,
        created_at: Timestamp::from_millis(r.int("created_at")?),
        updated_at: Timestamp::from_millis(r.int("updated_at")?),
    })
}

fn decode_delivery<R: Columns>(r: &R) -> StoreResult<Delivery> {
    Ok(Delivery {
        id: r.text("id")?,
        webhook_id: r.opt_text("webhook_id")?,
        owner: r.text("owner")?,
        url: r.opt_text("url")?,
        event_type: r.text("event_type")?,
        task_id: r.opt_text("task_id")?,
        workflow_id: r.opt_text("workflow_id")?,
        subject: r.opt_text("subject")?,
        event_at: Timestamp::from_millis(r.int("event_at")?),
        payload: r.opt_text("payload")?,
        status: r.text("status")?,
        attempts: r.int("attempts")?.clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_at: Timestamp::from_millis(r.int("next_attempt_at")?),
        lease_until: r.opt_int("lease_until")?.map(Timestamp::from_millis),
        last_status_code: r
            .opt_int("last_status_code")?
            .map(|c| c.clamp(0, 999) as u16),
        last_error: r.opt_text("last_error")?,
        last_latency_ms: r.opt_int("last_latency_ms")?.map(|v| v.max(0) as u64),
        created_at: Timestamp::from_millis(r.int("created_at")?),
        updated_at: Timestamp::from_millis(r.int("updated_at")?),
    })
}

pub(crate) async fn insert<T: Tx>(tx: &mut T, w: &StoredWebhook) -> StoreResult<()>
where
    String: Bind<T::Db>,
    Option<String>: Bind<T::Db>,
    i64: Bind<T::Db>,
    Option<i64>: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let q = query::<T::Db>(&format!(
        "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
         $10, $11, $12, $13, $14)"
    ))
    .bind(w.id.clone())
    .bind(w.owner.clone())
    .bind(w.url.clone())
    .bind(join_events(&w.events))
    .bind(w.tool.clone())
    .bind(w.queue.clone())
    .bind(w.workflow.clone())
    .bind(i64::from(w.all_owners))
    .bind(w.secret.clone())
    .bind(w.previous_secret.clone())
    .bind(w.previous_until.map(Timestamp::as_millis))
    .bind(w.description.clone())
    .bind(w.created_at.as_millis())
    .bind(w.updated_at.as_millis());
    execute(tx.exec(), q).await?;
    tx.arm_outbox();
    Ok(())
}

pub(crate) async fn get<'c, D: Dialect>(
    db: impl Executor<'c, Database = D>,
    id: &str,
) -> StoreResult<Option<StoredWebhook>>
where
    String: Bind<D>,
    D::Arguments: Default,
{
    let q = query::<D>(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"
    ))
    .bind(id.to_string());
    fetch_optional(db, q, decode_webhook).await
}

pub(crate) async fn list<'c, D: Dialect>(
    db: impl Executor<'c, Database = D>,
    owner: Option<&str>,
) -> StoreResult<Vec<StoredWebhook>>
where
    Option<String>: Bind<D>,
    D::Arguments: Default,
{
    let q = query::<D>(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE ($1 IS NULL OR owner = $1) \
         ORDER BY created_at, id"
    ))
    .bind(owner.map(str::to_string));
    fetch_all(db, q, decode_webhook).await
}

pub(crate) async fn delete<T: Tx>(tx: &mut T, owner: &str, id: &str) -> StoreResult<bool>
where
    String: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let q = query::<T::Db>("DELETE FROM webhooks WHERE owner = $1 AND id = $2")
        .bind(owner.to_string())
        .bind(id.to_string());
    if execute(tx.exec(), q).await? == 0 {
        return Ok(false);
    }
    let q = query::<T::Db>(
        "DELETE FROM webhook_attempts WHERE delivery_id IN \
         (SELECT id FROM webhook_deliveries WHERE webhook_id = $1)",
    )
    .bind(id.to_string());
    execute(tx.exec(), q).await?;
    let q =
        query::<T::Db>("DELETE FROM webhook_deliveries WHERE webhook_id = $1").bind(id.to_string());
    execute(tx.exec(), q).await?;
    Ok(true)
}

pub(crate) async fn rotate<T: Tx>(
    tx: &mut T,
    owner: &str,
    id: &str,
    secret: &str,
    previous_until: Timestamp,
    now: Timestamp,
) -> StoreResult<bool>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let q = query::<T::Db>(
        "UPDATE webhooks SET previous_secret = secret, previous_until = $4, secret = $3, \
         updated_at = $5 WHERE owner = $1 AND id = $2",
    )
    .bind(owner.to_string())
    .bind(id.to_string())
    .bind(secret.to_string())
    .bind(previous_until.as_millis())
    .bind(now.as_millis());
    Ok(execute(tx.exec(), q).await? == 1)
}

/// Stores the callback URLs of the tasks `outcomes` created (in `tasks`' order).
pub(crate) async fn insert_callbacks<T: Tx>(
    tx: &mut T,
    tasks: &[NewTask],
    outcomes: &[CreateOutcome],
) -> StoreResult<()>
where
    String: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    for (t, o) in tasks.iter().zip(outcomes) {
        let (Some(url), CreateOutcome::Created(_)) = (&t.callback_url, o) else {
            continue;
        };
        let q = query::<T::Db>(
            "INSERT INTO task_callbacks (task_id, url) VALUES ($1, $2) \
             ON CONFLICT (task_id) DO NOTHING",
        )
        .bind(<T::Db as Dialect>::id(t.id))
        .bind(url.clone());
        execute(tx.exec(), q).await?;
        tx.arm_outbox();
    }
    Ok(())
}

/// Enqueues `workflow.<status>` for the webhooks subscribed to it, in the transaction
/// that ends the workflow.
pub(crate) async fn enqueue_workflow<T: Tx>(
    tx: &mut T,
    workflow_id: &str,
    owner: &str,
    status: &str,
    at: Timestamp,
) -> StoreResult<()>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let event_type = format!("workflow.{status}");
    let q = query::<T::Db>(&format!(
        "{INSERT_DELIVERY_COLUMNS} SELECT $1 || w.id, w.id, $2, NULL, $3, NULL, $4, $5, \
         'pending', 0, $5, $5, $5 FROM webhooks w \
         WHERE (w.all_owners = 1 OR w.owner = $2) AND w.events LIKE $6 \
         AND (w.workflow IS NULL OR w.workflow = $4) \
         ON CONFLICT (id) DO NOTHING"
    ))
    .bind(format!("msg_wf_{workflow_id}_{}_", at.as_millis()))
    .bind(owner.to_string())
    .bind(event_type.clone())
    .bind(workflow_id.to_string())
    .bind(at.as_millis())
    .bind(format!("%,{event_type},%"));
    execute(tx.exec(), q).await?;
    Ok(())
}

pub(crate) async fn enqueue_ownerless<T: Tx>(tx: &mut T, e: &NewOwnerlessEvent) -> StoreResult<u64>
where
    String: Bind<T::Db>,
    Option<String>: Bind<T::Db>,
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let q = query::<T::Db>(
        "INSERT INTO webhook_deliveries (id, webhook_id, owner, url, event_type, subject, \
         event_at, payload, status, attempts, next_attempt_at, created_at, updated_at) \
         SELECT $1 || w.id, w.id, w.owner, NULL, $2, $3, $4, $5, 'pending', 0, $4, $4, $4 \
         FROM webhooks w WHERE w.events LIKE $6 \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(format!("msg_{}_", e.key))
    .bind(e.event_type.clone())
    .bind(e.subject.clone())
    .bind(e.at.as_millis())
    .bind(e.payload.clone())
    .bind(format!("%,{},%", e.event_type));
    execute(tx.exec(), q).await
}

pub(crate) async fn record_server_health<T: Tx>(
    tx: &mut T,
    name: &str,
    up: bool,
    e: &NewOwnerlessEvent,
) -> StoreResult<u64>
where
    String: Bind<T::Db>,
    Option<String>: Bind<T::Db>,
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let q = query::<T::Db>(
        "UPDATE server_health SET up = $2, changed_at = $3 WHERE name = $1 AND up <> $2",
    )
    .bind(name.to_string())
    .bind(i64::from(up))
    .bind(e.at.as_millis());
    let changed = if execute(tx.exec(), q).await? == 1 {
        true
    } else {
        let q = query::<T::Db>(
            "INSERT INTO server_health (name, up, changed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.to_string())
        .bind(i64::from(up))
        .bind(e.at.as_millis());
        // First seen: a server first seen up is no news; first seen down is.
        execute(tx.exec(), q).await? == 1 && !up
    };
    if !changed {
        return Ok(0);
    }
    let mut e = e.clone();
    e.key = format!("{}_{}", e.key, e.at.as_millis());
    enqueue_ownerless(tx, &e).await
}

pub(crate) async fn claim<T: Tx>(
    tx: &mut T,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> StoreResult<Vec<Delivery>>
where
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let q = query::<T::Db>(&format!(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, lease_until = $2, \
         updated_at = $1 WHERE id IN (SELECT id FROM webhook_deliveries \
         WHERE status = 'pending' AND next_attempt_at <= $1 \
         AND (lease_until IS NULL OR lease_until < $1) \
         ORDER BY next_attempt_at LIMIT $3{}) RETURNING {DELIVERY_COLUMNS}",
        <T::Db as Dialect>::SKIP_LOCKED
    ))
    .bind(now.as_millis())
    .bind(lease_until.as_millis())
    .bind(i64::from(limit));
    fetch_all(tx.exec(), q, decode_delivery).await
}

pub(crate) async fn record<T: Tx>(tx: &mut T, r: &AttemptRecord) -> StoreResult<bool>
where
    String: Bind<T::Db>,
    Option<String>: Bind<T::Db>,
    i64: Bind<T::Db>,
    Option<i64>: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let (status, next_at) = match r.next {
        DeliveryNext::Delivered => ("delivered", None),
        DeliveryNext::RetryAt(at) => ("pending", Some(at.as_millis())),
        DeliveryNext::Failed => ("failed", None),
    };
    let q = query::<T::Db>(
        "UPDATE webhook_deliveries SET status = $3, next_attempt_at = coalesce($4, \
         next_attempt_at), lease_until = NULL, last_status_code = $5, last_error = $6, \
         last_latency_ms = $7, payload = coalesce(payload, $8), updated_at = $9 \
         WHERE id = $1 AND attempts = $2 AND status = 'pending'",
    )
    .bind(r.delivery_id.clone())
    .bind(i64::from(r.attempt))
    .bind(status.to_string())
    .bind(next_at)
    .bind(r.status_code.map(i64::from))
    .bind(r.error.clone())
    .bind(r.latency_ms as i64)
    .bind(r.payload.clone())
    .bind(r.at.as_millis());
    if execute(tx.exec(), q).await? == 0 {
        return Ok(false);
    }
    let q = query::<T::Db>(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, latency_ms, \
         error) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (delivery_id, attempt) DO NOTHING",
    )
    .bind(r.delivery_id.clone())
    .bind(i64::from(r.attempt))
    .bind(r.at.as_millis())
    .bind(r.status_code.map(i64::from))
    .bind(r.latency_ms as i64)
    .bind(r.error.clone());
    execute(tx.exec(), q).await?;
    let q = query::<T::Db>("DELETE FROM webhook_attempts WHERE delivery_id = $1 AND attempt <= $2")
        .bind(r.delivery_id.clone())
        .bind(i64::from(r.attempt) - KEEP_ATTEMPTS);
    execute(tx.exec(), q).await?;
    Ok(true)
}

pub(crate) async fn get_delivery<'c, D: Dialect>(
    db: impl Executor<'c, Database = D>,
    id: &str,
) -> StoreResult<Option<Delivery>>
where
    String: Bind<D>,
    D::Arguments: Default,
{
    let q = query::<D>(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"
    ))
    .bind(id.to_string());
    fetch_optional(db, q, decode_delivery).await
}

pub(crate) async fn list_deliveries<'c, D: Dialect>(
    db: impl Executor<'c, Database = D>,
    webhook_id: &str,
    before: Option<(Timestamp, String)>,
    limit: u32,
) -> StoreResult<Vec<Delivery>>
where
    String: Bind<D>,
    Option<String>: Bind<D>,
    Option<i64>: Bind<D>,
    i64: Bind<D>,
    D::Arguments: Default,
{
    let (at, id) = before.map(|(t, i)| (Some(t.as_millis()), Some(i))).unzip();
    let q = query::<D>(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 \
         AND ($2 IS NULL OR event_at < $2 OR (event_at = $2 AND id < $3)) \
         ORDER BY event_at DESC, id DESC LIMIT $4"
    ))
    .bind(webhook_id.to_string())
    .bind(at.flatten())
    .bind(id.flatten())
    .bind(i64::from(limit));
    fetch_all(db, q, decode_delivery).await
}

pub(crate) async fn attempts<'c, D: Dialect>(
    db: impl Executor<'c, Database = D>,
    delivery_id: &str,
) -> StoreResult<Vec<DeliveryAttempt>>
where
    String: Bind<D>,
    D::Arguments: Default,
{
    let q = query::<D>(
        "SELECT attempt, at, status_code, latency_ms, error FROM webhook_attempts \
         WHERE delivery_id = $1 ORDER BY attempt",
    )
    .bind(delivery_id.to_string());
    fetch_all(db, q, |r| {
        Ok(DeliveryAttempt {
            attempt: r.int("attempt")?.clamp(0, i64::from(u32::MAX)) as u32,
            at: Timestamp::from_millis(r.int("at")?),
            status_code: r.opt_int("status_code")?.map(|c| c.clamp(0, 999) as u16),
            latency_ms: r.int("latency_ms")?.max(0) as u64,
            error: r.opt_text("error")?,
        })
    })
    .await
}

pub(crate) async fn redeliver<T: Tx>(
    tx: &mut T,
    webhook_id: &str,
    delivery_id: &str,
    now: Timestamp,
) -> StoreResult<bool>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let q = query::<T::Db>(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, \
         lease_until = NULL, updated_at = $3 WHERE id = $2 AND webhook_id = $1",
    )
    .bind(webhook_id.to_string())
    .bind(delivery_id.to_string())
    .bind(now.as_millis());
    Ok(execute(tx.exec(), q).await? == 1)
}

pub(crate) async fn purge<T: Tx>(tx: &mut T, before: Timestamp, limit: u32) -> StoreResult<u64>
where
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    const OLD: &str = "SELECT id FROM webhook_deliveries WHERE status <> 'pending' \
         AND updated_at < $1 ORDER BY updated_at LIMIT $2";
    let q = query::<T::Db>(&format!(
        "DELETE FROM webhook_attempts WHERE delivery_id IN ({OLD})"
    ))
    .bind(before.as_millis())
    .bind(i64::from(limit));
    execute(tx.exec(), q).await?;
    let q = query::<T::Db>(&format!(
        "DELETE FROM webhook_deliveries WHERE id IN ({OLD})"
    ))
    .bind(before.as_millis())
    .bind(i64::from(limit));
    let purged = execute(tx.exec(), q).await?;
    // The callback URLs of tasks retention deleted.
    let q = query::<T::Db>(
        "DELETE FROM task_callbacks WHERE NOT EXISTS \
         (SELECT 1 FROM tasks t WHERE t.id = task_callbacks.task_id)",
    );
    execute(tx.exec(), q).await?;
    Ok(purged)
}

/// Whether a delivery is due at `now` (a read before a claim takes the writer).
pub(crate) async fn any_due<'c, D: Dialect>(
    db: impl Executor<'c, Database = D>,
    now: Timestamp,
) -> StoreResult<bool>
where
    i64: Bind<D>,
    D::Arguments: Default,
{
    let q = query::<D>(
        "SELECT 1 AS due FROM webhook_deliveries WHERE status = 'pending' \
         AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1) LIMIT 1",
    )
    .bind(now.as_millis());
    Ok(fetch_optional(db, q, |r| r.int("due")).await?.is_some())
}

/// Whether any webhook or task callback exists (SQLite's writer asks once).
pub(crate) async fn armed<'c, D: Dialect>(db: impl Executor<'c, Database = D>) -> StoreResult<bool>
where
    D::Arguments: Default,
{
    let q = query::<D>(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM webhooks) \
         OR EXISTS (SELECT 1 FROM task_callbacks) THEN 1 ELSE 0 END AS armed",
    );
    Ok(fetch_optional(db, q, |r| r.int("armed"))
        .await?
        .unwrap_or(0)
        != 0)
}
