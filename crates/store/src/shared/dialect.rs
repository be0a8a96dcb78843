//! What the shared Rust needs of a dialect ([`Dialect`]: SQLite or PostgreSQL) and of a
//! backend's write transaction ([`Tx`]).
//!
//! A statement both backends run alike is written once, in the topic's module here,
//! generic over the dialect: it takes its SQL text from the dialect (a const of the
//! topic's `…Sql` trait, which each backend implements in its own topic module), binds
//! the same values in the same order (SQLite numbers a value used twice, `?1`, as
//! PostgreSQL does, `$1`), and decodes the rows with [`Columns`]. (Rust does not pass
//! bounds such as `i64: Bind<D>` on to the users of `Dialect`, so each generic statement
//! names the value types it binds in its `where` clause.)

use baton_core::event::NewEvent;
use baton_core::{TaskEvent, TaskId};
use sqlx::query::Query;
use sqlx::{Database, Encode, Executor, IntoArguments, Type};

use super::rows::Columns;
use crate::{StoreError, StoreResult};

/// A value a dialect can bind.
pub(crate) trait Bind<DB: Database>: for<'q> Encode<'q, DB> + Type<DB> {}

impl<DB: Database, T: for<'q> Encode<'q, DB> + Type<DB>> Bind<DB> for T {}

/// A database the crate speaks.
pub(crate) trait Dialect: Database<Row: Columns, Arguments: IntoArguments<Self>> {
    /// A task id as the dialect binds it (text in SQLite, `uuid` in PostgreSQL).
    type Id: Bind<Self> + Send;

    fn id(id: TaskId) -> Self::Id;

    /// The dialect's errors as the errors a client can act on.
    fn db_err(e: sqlx::Error) -> StoreError;

    /// The rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// What precedes a parameter's number (`?` in SQLite, `$` in PostgreSQL).
    const PARAM: char;

    /// What ends a claim's subquery so concurrent claimers skip each other's rows
    /// (PostgreSQL; SQLite has one writer).
    const SKIP_LOCKED: &'static str;

    /// What ends a `SELECT` whose rows the transaction changes next (PostgreSQL; SQLite's
    /// writer holds the only write lock already).
    const FOR_UPDATE: &'static str;
}

/// `sql`, written with PostgreSQL's `$n` parameters, in the dialect's own.
pub(crate) fn numbered<D: Dialect>(sql: &str) -> String {
    sql.replace('$', &D::PARAM.to_string())
}

/// A statement written with `$n` parameters, in the dialect's own.
pub(crate) fn query<D: Dialect>(sql: &str) -> sqlx::query::Query<'static, D, D::Arguments>
where
    D::Arguments: Default,
{
    sqlx::query(sqlx::AssertSqlSafe(numbered::<D>(sql)))
}

/// A backend's write transaction: SQLite's writer connection, or a PostgreSQL
/// transaction's connection.
pub(crate) trait Tx: Send {
    type Db: Dialect;

    /// Where the transaction's statements run.
    fn exec(&mut self) -> impl Executor<'_, Database = Self::Db>;

    /// Appends `events` in one go and returns them numbered, in order: a task's events
    /// are numbered in the order they are written.
    async fn insert_events(&mut self, events: Vec<NewEvent>) -> StoreResult<Vec<TaskEvent>>;

    /// A webhook or a task callback was stored in this transaction: the events appended
    /// from now on may make deliveries (see `shared::webhooks`).
    fn arm_outbox(&mut self) {}
}

/// The row `query` returns, if any, decoded.
pub(crate) async fn fetch_optional<'c, D: Dialect, T>(
    db: impl Executor<'c, Database = D>,
    query: Query<'_, D, D::Arguments>,
    decode: impl Fn(&D::Row) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let row = query.fetch_optional(db).await.map_err(D::db_err)?;
    row.as_ref().map(decode).transpose()
}

/// The row `query` returns, decoded.
pub(crate) async fn fetch_one<'c, D: Dialect, T>(
    db: impl Executor<'c, Database = D>,
    query: Query<'_, D, D::Arguments>,
    decode: impl Fn(&D::Row) -> StoreResult<T>,
) -> StoreResult<T> {
    let row = query.fetch_one(db).await.map_err(D::db_err)?;
    decode(&row)
}

/// The rows `query` returns, decoded.
pub(crate) async fn fetch_all<'c, D: Dialect, T>(
    db: impl Executor<'c, Database = D>,
    query: Query<'_, D, D::Arguments>,
    decode: impl Fn(&D::Row) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let rows = query.fetch_all(db).await.map_err(D::db_err)?;
    rows.iter().map(decode).collect()
}

/// Runs `query`; returns how many rows it changed.
pub(crate) async fn execute<'c, D: Dialect>(
    db: impl Executor<'c, Database = D>,
    query: Query<'_, D, D::Arguments>,
) -> StoreResult<u64> {
    let done = query.execute(db).await.map_err(D::db_err)?;
    Ok(D::rows_affected(&done))
}

/// Checks that the database answers.
pub(crate) async fn ping<'c, D: Dialect>(db: impl Executor<'c, Database = D>) -> StoreResult<()> {
    execute(db, sqlx::query("SELECT 1")).await?;
    Ok(())
}
