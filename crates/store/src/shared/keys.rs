//! API keys and the audit log. Each dialect's statements are a [`KeySql`] and an
//! [`AuditSql`].

use baton_core::Timestamp;
use serde_json::Value;
use sqlx::{Database, Executor, QueryBuilder};

use super::dialect::{Bind, Dialect, execute, fetch_all, fetch_optional};
use super::rows::Columns;
use crate::{AuditEntry, AuditQuery, NewAuditEntry, StoreError, StoreResult, StoredKey};

/// The key statements of a dialect. Parameters are numbered as PostgreSQL numbers them.
pub(crate) trait KeySql: Dialect {
    /// Inserts a key: `$1` key id … `$13` updated at, in the order of the table's columns.
    const INSERT_KEY: &'static str;
    /// The key `$1`.
    const GET_KEY: &'static str;
    /// Keys changed at or after `$1`, oldest change first.
    const KEYS_SINCE: &'static str;
    /// Revokes key `$1` at `$2` (if it is not revoked yet).
    const REVOKE_KEY: &'static str;
    /// Key `$1` gets secret hash `$2`; the current one stays valid until `$3`; at `$4`.
    const ROTATE_KEY: &'static str;
}

fn key_from_row<R: Columns>(r: &R) -> StoreResult<StoredKey> {
    let scopes = r.json("scopes")?.unwrap_or(Value::Null);
    let scopes = serde_json::from_value(scopes).map_err(|e| StoreError::Decode(e.to_string()))?;
    Ok(StoredKey {
        key_id: r.text("key_id")?,
        name: r.text("name")?,
        principal: r.text("principal")?,
        scopes,
        secret_hash: r.text("secret_hash")?,
        previous_hash: r.opt_text("previous_hash")?,
        previous_until: r.opt_ts("previous_until")?,
        rate_limit: r.opt_text("rate_limit")?,
        max_active: r.opt_int("max_active")?.map(|n| n.max(0) as u64),
        created_at: Timestamp::from_millis(r.int("created_at")?),
        expires_at: r.opt_ts("expires_at")?,
        revoked_at: r.opt_ts("revoked_at")?,
        updated_at: Timestamp::from_millis(r.int("updated_at")?),
    })
}

pub(crate) async fn put_key<'c, D: KeySql>(
    db: impl Executor<'c, Database = D>,
    key: &StoredKey,
) -> StoreResult<()>
where
    String: Bind<D>,
    Option<String>: Bind<D>,
    i64: Bind<D>,
    Option<i64>: Bind<D>,
{
    let query = sqlx::query(D::INSERT_KEY)
        .bind(key.key_id.clone())
        .bind(key.name.clone())
        .bind(key.principal.clone())
        .bind(serde_json::to_string(&key.scopes).unwrap_or_else(|_| "[]".into()))
        .bind(key.secret_hash.clone())
        .bind(key.previous_hash.clone())
        .bind(key.previous_until.map(Timestamp::as_millis))
        .bind(key.rate_limit.clone())
        .bind(key.max_active.map(|n| n as i64))
        .bind(key.created_at.as_millis())
        .bind(key.expires_at.map(Timestamp::as_millis))
        .bind(key.revoked_at.map(Timestamp::as_millis))
        .bind(key.updated_at.as_millis());
    match execute(db, query).await {
        Err(StoreError::Database(m)) if m.contains("UNIQUE") || m.contains("unique") => Err(
            StoreError::Conflict(format!("a key with id `{}` exists", key.key_id)),
        ),
        other => other.map(|_| ()),
    }
}

pub(crate) async fn get_key<'c, D: KeySql>(
    db: impl Executor<'c, Database = D>,
    key_id: &str,
) -> StoreResult<Option<StoredKey>>
where
    String: Bind<D>,
{
    fetch_optional(
        db,
        sqlx::query(D::GET_KEY).bind(key_id.to_string()),
        key_from_row,
    )
    .await
}

pub(crate) async fn list_keys<'c, D: KeySql>(
    db: impl Executor<'c, Database = D>,
    since: Option<Timestamp>,
) -> StoreResult<Vec<StoredKey>>
where
    i64: Bind<D>,
{
    let since = since.map_or(i64::MIN, Timestamp::as_millis);
    fetch_all(db, sqlx::query(D::KEYS_SINCE).bind(since), key_from_row).await
}

pub(crate) async fn revoke_key<'c, D: KeySql>(
    db: impl Executor<'c, Database = D>,
    key_id: &str,
    now: Timestamp,
) -> StoreResult<bool>
where
    String: Bind<D>,
    i64: Bind<D>,
{
    let query = sqlx::query(D::REVOKE_KEY)
        .bind(key_id.to_string())
        .bind(now.as_millis());
    Ok(execute(db, query).await? > 0)
}

pub(crate) async fn rotate_key<'c, D: KeySql>(
    db: impl Executor<'c, Database = D>,
    key_id: &str,
    new_hash: &str,
    previous_until: Timestamp,
    now: Timestamp,
) -> StoreResult<bool>
where
    String: Bind<D>,
    i64: Bind<D>,
{
    let query = sqlx::query(D::ROTATE_KEY)
        .bind(key_id.to_string())
        .bind(new_hash.to_string())
        .bind(previous_until.as_millis())
        .bind(now.as_millis());
    Ok(execute(db, query).await? > 0)
}

/// The audit statements of a dialect.
pub(crate) trait AuditSql: Dialect {
    /// Deletes up to `$2` entries older than `$1`, oldest first.
    const PURGE_AUDIT: &'static str;
    /// How a JSON value is bound (`$n::json` in PostgreSQL).
    const JSON_CAST: &'static str;
}

const AUDIT_COLUMNS: &str =
    "at, principal, credential, action, target, outcome, status, remote, request_id, detail";

pub(crate) async fn append_audit<'c, D: AuditSql>(
    db: impl Executor<'c, Database = D>,
    entries: &[NewAuditEntry],
) -> StoreResult<()>
where
    String: Bind<D>,
    Option<String>: Bind<D>,
    i64: Bind<D>,
    Option<i64>: Bind<D>,
    for<'a> <D as Database>::Arguments: sqlx::IntoArguments<D>,
{
    if entries.is_empty() {
        return Ok(());
    }
    let mut qb = QueryBuilder::<D>::new(format!("INSERT INTO audit_log ({AUDIT_COLUMNS}) "));
    qb.push_values(entries, |mut b, e| {
        b.push_bind(e.at.as_millis())
            .push_bind(e.principal.clone())
            .push_bind(e.credential.clone())
            .push_bind(e.action.clone())
            .push_bind(e.target.clone())
            .push_bind(e.outcome.clone())
            .push_bind(e.status.map(i64::from))
            .push_bind(e.remote.clone())
            .push_bind(e.request_id.clone())
            .push_bind(e.detail.as_ref().map(Value::to_string))
            .push_unseparated(D::JSON_CAST);
    });
    execute(db, qb.build()).await?;
    Ok(())
}

pub(crate) async fn list_audit<'c, D: AuditSql>(
    db: impl Executor<'c, Database = D>,
    q: &AuditQuery,
) -> StoreResult<Vec<AuditEntry>>
where
    String: Bind<D>,
    i64: Bind<D>,
    for<'a> <D as Database>::Arguments: sqlx::IntoArguments<D>,
{
    let mut qb = QueryBuilder::<D>::new(format!(
        "SELECT seq, {AUDIT_COLUMNS} FROM audit_log WHERE 1 = 1"
    ));
    if let Some(p) = &q.principal {
        qb.push(" AND principal = ").push_bind(p.clone());
    }
    if let Some(a) = &q.action {
        qb.push(" AND action = ").push_bind(a.clone());
    }
    if let Some(t) = &q.target {
        qb.push(" AND target = ").push_bind(t.clone());
    }
    if let Some(s) = q.since {
        qb.push(" AND at >= ").push_bind(s.as_millis());
    }
    if let Some(u) = q.until {
        qb.push(" AND at < ").push_bind(u.as_millis());
    }
    if let Some(b) = q.before_seq {
        qb.push(" AND seq < ").push_bind(b);
    }
    qb.push(" ORDER BY seq DESC LIMIT ")
        .push_bind(i64::from(q.limit.max(1)));
    fetch_all(db, qb.build(), |r| {
        Ok(AuditEntry {
            seq: r.int("seq")?,
            entry: NewAuditEntry {
                at: Timestamp::from_millis(r.int("at")?),
                principal: r.text("principal")?,
                credential: r.text("credential")?,
                action: r.text("action")?,
                target: r.opt_text("target")?,
                outcome: r.text("outcome")?,
                status: r.opt_int("status")?.map(|s| s as u16),
                remote: r.opt_text("remote")?,
                request_id: r.opt_text("request_id")?,
                detail: r.json("detail")?,
            },
        })
    })
    .await
}

pub(crate) async fn purge_audit<'c, D: AuditSql>(
    db: impl Executor<'c, Database = D>,
    before: Timestamp,
    limit: u32,
) -> StoreResult<u64>
where
    i64: Bind<D>,
{
    let query = sqlx::query(D::PURGE_AUDIT)
        .bind(before.as_millis())
        .bind(i64::from(limit));
    execute(db, query).await
}
