//! Rows into the crate's types, once for both backends: a backend says how it reads a
//! column of each kind ([`Columns`]: SQLite keeps ids and JSON as text, PostgreSQL as
//! `uuid` and `json`), and the decoders here say which columns make a task, an event, a
//! workflow, a peer or a server. The column lists are the same in both dialects.

use std::str::FromStr;

use baton_core::task::{Lease, StepRef};
use baton_core::{EventKind, Task, TaskError, TaskEvent, TaskId, TaskStatus, Timestamp};
use serde_json::Value;
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::payload;
use crate::{Peer, PeerState, StoreError, StoreResult, StoredServer, Workflow};

/// The columns [`task_from_row`] reads. A macro, so that queries can be assembled with
/// `concat!` into `&'static str` (sqlx's safe SQL type, and one prepared statement per
/// query).
macro_rules! task_columns {
    () => {
        "seq, id, tool, arguments, queue, priority, status, progress, progress_message, \
         attempt, max_attempts, run_at, timeout_ms, idempotency_key, owner, parent_id, \
         metadata, created_at, started_at, updated_at, completed_at, result, error, \
         cancel_requested, lease_owner, lease_token, lease_expires_at, input_requests, \
         checkpoint, workflow_id, step_id, expires_at, trace_parent, group_key, fair_key, \
         cache_key, cached_from, follows, arguments_zstd, result_zstd"
    };
}
pub(crate) use task_columns;

/// The columns [`event_from_row`] reads.
macro_rules! event_columns {
    () => {
        "seq, task_id, at, kind, status, attempt, progress, message, data"
    };
}
pub(crate) use event_columns;

/// The columns [`workflow_from_row`] reads.
macro_rules! workflow_columns {
    () => {
        "seq, id, name, owner, definition, status, steps, created_at, updated_at, completed_at"
    };
}
pub(crate) use workflow_columns;

/// The columns [`peer_from_row`] reads.
macro_rules! peer_columns {
    () => {
        "id, role, address, version, state, started_at, last_heartbeat, running, finished, \
         throughput, draining"
    };
}
pub(crate) use peer_columns;

/// The statuses under a lease.
macro_rules! leased {
    () => {
        "status IN ('running', 'input_required')"
    };
}
pub(crate) use leased;

pub(crate) fn decode_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Decode(e.to_string())
}

/// What differs between the dialects' rows: how they hold JSON and task ids, and what a
/// decoding error says.
pub(crate) trait DialectRow: Row {
    fn decode_error(col: &str, e: sqlx::Error) -> StoreError;
    fn decode_json(&self, col: &str) -> StoreResult<Option<Value>>;
    fn decode_id(&self, col: &str) -> StoreResult<TaskId>;
    fn decode_opt_id(&self, col: &str) -> StoreResult<Option<TaskId>>;
}

/// One column of each kind, read from a row of either dialect.
pub(crate) trait Columns {
    fn text(&self, col: &str) -> StoreResult<String>;
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>>;
    fn int(&self, col: &str) -> StoreResult<i64>;
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>>;
    fn int4(&self, col: &str) -> StoreResult<i32>;
    fn real(&self, col: &str) -> StoreResult<f64>;
    fn opt_real(&self, col: &str) -> StoreResult<Option<f64>>;
    fn flag(&self, col: &str) -> StoreResult<bool>;
    fn json(&self, col: &str) -> StoreResult<Option<Value>>;
    fn opt_bytes(&self, col: &str) -> StoreResult<Option<Vec<u8>>>;
    fn task_id(&self, col: &str) -> StoreResult<TaskId>;
    fn opt_task_id(&self, col: &str) -> StoreResult<Option<TaskId>>;

    /// Times are stored as milliseconds since the epoch.
    fn opt_ts(&self, col: &str) -> StoreResult<Option<Timestamp>> {
        Ok(self.opt_int(col)?.map(Timestamp::from_millis))
    }
}

impl<R> Columns for R
where
    R: DialectRow,
    for<'a> &'a str: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i32: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    f64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, col: &str) -> StoreResult<String> {
        get(self, col)
    }
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        get(self, col)
    }
    fn int(&self, col: &str) -> StoreResult<i64> {
        get(self, col)
    }
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>> {
        get(self, col)
    }
    fn int4(&self, col: &str) -> StoreResult<i32> {
        get(self, col)
    }
    fn real(&self, col: &str) -> StoreResult<f64> {
        get(self, col)
    }
    fn opt_real(&self, col: &str) -> StoreResult<Option<f64>> {
        get(self, col)
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        get(self, col)
    }
    fn json(&self, col: &str) -> StoreResult<Option<Value>> {
        self.decode_json(col)
    }
    fn opt_bytes(&self, col: &str) -> StoreResult<Option<Vec<u8>>> {
        get(self, col)
    }
    fn task_id(&self, col: &str) -> StoreResult<TaskId> {
        self.decode_id(col)
    }
    fn opt_task_id(&self, col: &str) -> StoreResult<Option<TaskId>> {
        self.decode_opt_id(col)
    }
}

fn get<'r, R, T>(r: &'r R, col: &str) -> StoreResult<T>
where
    R: DialectRow,
    for<'a> &'a str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    r.try_get(col).map_err(|e| R::decode_error(col, e))
}

pub(crate) fn task_from_row<R: Columns>(r: &R) -> StoreResult<Task> {
    let status = r.text("status")?;
    let error = r
        .json("error")?
        .map(serde_json::from_value::<TaskError>)
        .transpose()
        .map_err(decode_err)?;
    let lease = match (
        r.opt_text("lease_owner")?,
        r.opt_int("lease_token")?,
        r.opt_ts("lease_expires_at")?,
    ) {
        (Some(owner), Some(token), Some(expires_at)) => Some(Lease {
            owner,
            token,
            expires_at,
        }),
        _ => None,
    };
    let step = match (r.opt_text("workflow_id")?, r.opt_text("step_id")?) {
        (Some(workflow_id), Some(step_id)) => Some(StepRef {
            workflow_id,
            step_id,
        }),
        _ => None,
    };
    Ok(Task {
        id: r.task_id("id")?,
        seq: r.int("seq")?,
        tool: r.text("tool")?,
        arguments: payload::decode(r.json("arguments")?, r.opt_bytes("arguments_zstd")?)?
            .unwrap_or(Value::Null),
        queue: r.text("queue")?,
        priority: r.int4("priority")?,
        status: TaskStatus::from_str(&status).map_err(decode_err)?,
        progress: r.opt_real("progress")?,
        progress_message: r.opt_text("progress_message")?,
        attempt: r.int("attempt")? as u32,
        max_attempts: r.int("max_attempts")? as u32,
        run_at: r.opt_ts("run_at")?.unwrap_or_default(),
        timeout_ms: r.opt_int("timeout_ms")?.map(|v| v as u64),
        idempotency_key: r.opt_text("idempotency_key")?,
        owner: r.text("owner")?,
        parent_id: r.opt_task_id("parent_id")?,
        step,
        metadata: r.json("metadata")?,
        created_at: r.opt_ts("created_at")?.unwrap_or_default(),
        started_at: r.opt_ts("started_at")?,
        updated_at: r.opt_ts("updated_at")?.unwrap_or_default(),
        completed_at: r.opt_ts("completed_at")?,
        result: payload::decode(r.json("result")?, r.opt_bytes("result_zstd")?)?,
        error,
        cancel_requested: r.flag("cancel_requested")?,
        lease,
        input_requests: r.json("input_requests")?,
        checkpoint: r.json("checkpoint")?,
        expires_at: r.opt_ts("expires_at")?,
        trace_parent: r.opt_text("trace_parent")?,
        group_key: Some(r.text("group_key")?).filter(|k| !k.is_empty()),
        fair_key: r.int("fair_key")?,
        cache_key: r.opt_text("cache_key")?,
        cached_from: r.opt_task_id("cached_from")?,
        follows: r.opt_task_id("follows")?,
    })
}

pub(crate) fn event_from_row<R: Columns>(r: &R) -> StoreResult<TaskEvent> {
    let kind = r.text("kind")?;
    let status = r.text("status")?;
    Ok(TaskEvent {
        seq: r.int("seq")?,
        task_id: r.task_id("task_id")?,
        at: Timestamp::from_millis(r.int("at")?),
        kind: EventKind::parse(&kind).ok_or_else(|| decode_err(format!("event kind {kind}")))?,
        status: TaskStatus::from_str(&status).map_err(decode_err)?,
        attempt: r.opt_int("attempt")?.map(|a| a as u32),
        progress: r.opt_real("progress")?,
        message: r.opt_text("message")?,
        data: r.json("data")?,
        result: None,
    })
}

pub(crate) fn workflow_from_row<R: Columns>(r: &R) -> StoreResult<Workflow> {
    let status = r.text("status")?;
    let steps = match r.json("steps")? {
        Some(Value::Object(m)) => m,
        _ => Default::default(),
    };
    Ok(Workflow {
        seq: r.int("seq")?,
        id: r.text("id")?,
        name: r.text("name")?,
        owner: r.text("owner")?,
        definition: r.json("definition")?.unwrap_or(Value::Null),
        status: status.parse().map_err(StoreError::Decode)?,
        steps,
        created_at: r.opt_ts("created_at")?.unwrap_or_default(),
        updated_at: r.opt_ts("updated_at")?.unwrap_or_default(),
        completed_at: r.opt_ts("completed_at")?,
    })
}

pub(crate) fn peer_from_row<R: Columns>(r: &R) -> StoreResult<Peer> {
    let state = r.text("state")?;
    Ok(Peer {
        id: r.text("id")?,
        role: r.text("role")?,
        address: r.opt_text("address")?,
        version: r.text("version")?,
        state: PeerState::parse(&state)
            .ok_or_else(|| StoreError::Decode(format!("unknown peer state `{state}`")))?,
        started_at: Timestamp::from_millis(r.int("started_at")?),
        last_heartbeat: Timestamp::from_millis(r.int("last_heartbeat")?),
        running: r.int("running")?.max(0) as u64,
        finished: r.int("finished")?.max(0) as u64,
        throughput: r.real("throughput")?,
        draining: r.int4("draining")? != 0,
    })
}

pub(crate) fn server_from_row<R: Columns>(r: &R) -> StoreResult<StoredServer> {
    Ok(StoredServer {
        name: r.text("name")?,
        config: r.json("config")?.unwrap_or(Value::Null),
        created_at: Timestamp::from_millis(r.int("created_at")?),
        updated_at: Timestamp::from_millis(r.int("updated_at")?),
    })
}

pub(crate) fn rate_bucket_from_row<R: Columns>(r: &R) -> StoreResult<crate::RateBucket> {
    Ok(crate::RateBucket {
        key: r.text("key")?,
        milli_tokens: r.int("milli_tokens")?,
        at: Timestamp::from_millis(r.int("at")?),
    })
}
