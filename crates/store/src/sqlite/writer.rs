//! The writer task. SQLite has one writer at a time; owning the write connection here
//! avoids handing it between callers, and running every queued write in one transaction
//! (each under its own savepoint, so one failing write does not undo the others) makes
//! one commit cover submissions, claims, completions and progress alike. Callers hear
//! back only after the commit: an acknowledged write is a durable write.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::error::{closed, db_err};
use crate::{StoreError, StoreResult};

/// Rows per multi-row statement: keeps bound parameters well under SQLite's limit.
pub(super) const CHUNK: usize = 500;

/// Most writes sharing one transaction.
const MAX_GROUP: usize = 256;

type AnyResult = StoreResult<Box<dyn Any + Send>>;
pub(super) type BoxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;
type RunFn = Box<dyn for<'c> FnOnce(&'c mut Writer) -> BoxFuture<'c, AnyResult> + Send>;

/// The write connection, owned by the writer task. The writes of every topic are
/// implemented on it (the `shared` traits), and run inside its current transaction.
pub(super) struct Writer {
    pub(super) conn: SqliteConnection,
    /// The last event number handed out, while known. Only this connection writes
    /// events, so it can count them itself instead of asking `sqlite_sequence` every
    /// time; it forgets the number whenever a write or a commit is rolled back.
    pub(super) last_event_seq: Option<i64>,
    /// Whether a webhook or a task callback exists, once known: until one does, appended
    /// events cannot make deliveries and the outbox statement is skipped. Only this
    /// connection writes either, so it learns of them as it writes them.
    pub(super) outbox_armed: Option<bool>,
}

/// A write and where its result goes once it is committed.
struct Command {
    run: RunFn,
    reply: oneshot::Sender<AnyResult>,
}

enum Msg {
    Cmd(Command),
    /// Finish queued writes, checkpoint, close the connection, then answer.
    Close(oneshot::Sender<()>),
}

/// The way to the writer task.
pub(super) struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
}

impl Handle {
    /// Starts the writer task on the write connection.
    pub(super) fn spawn(conn: SqliteConnection) -> Handle {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer_loop(conn, rx));
        Handle { tx }
    }

    /// Runs `f` in the writer task's current transaction and returns its result once that
    /// transaction has committed.
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Writer) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let run: RunFn = Box::new(move |c| {
            Box::pin(async move { f(c).await.map(|v| Box::new(v) as Box<dyn Any + Send>) })
        });
        self.tx
            .send(Msg::Cmd(Command { run, reply: tx }))
            .map_err(|_| closed())?;
        let any = rx.await.map_err(|_| closed())??;
        Ok(*any
            .downcast::<T>()
            .expect("the writer returns each command's own result"))
    }

    /// Lets the queued writes finish, then closes the write connection.
    pub(super) async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

async fn writer_loop(conn: SqliteConnection, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut w = Writer {
        conn,
        last_event_seq: None,
        outbox_armed: None,
    };
    let mut closing = None;
    while closing.is_none() {
        let Some(first) = rx.recv().await else { break };
        let mut cmds = Vec::new();
        match first {
            Msg::Cmd(c) => cmds.push(c),
            Msg::Close(t) => closing = Some(t),
        }
        while closing.is_none() && cmds.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(Msg::Cmd(c)) => cmds.push(c),
                Ok(Msg::Close(t)) => closing = Some(t),
                Err(_) => break,
            }
        }
        if !cmds.is_empty() {
            let (n, t) = (cmds.len(), std::time::Instant::now());
            run_group(&mut w, cmds).await;
            tracing::trace!(
                writes = n,
                ms = t.elapsed().as_secs_f64() * 1e3,
                "write group committed"
            );
        }
    }
    // Fold the WAL into the main file so a copied database file is complete on its own.
    let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut w.conn)
        .await;
    let _ = sqlx::Connection::close(w.conn).await;
    if let Some(t) = closing {
        let _ = t.send(());
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> StoreResult<()> {
    sqlx::raw_sql(sql)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(db_err)
}

/// Runs a group of writes in one transaction. With more than one write, each runs after
/// a savepoint, so a failing write is rolled back alone; savepoint bookkeeping is folded
/// into neighbouring statements (`RELEASE w; SAVEPOINT w` is one round trip, and COMMIT
/// releases the last one) because every round trip to SQLite's thread costs more than
/// the statements themselves.
async fn run_group(w: &mut Writer, cmds: Vec<Command>) {
    let single = cmds.len() == 1;
    let begin = if single {
        "BEGIN IMMEDIATE"
    } else {
        "BEGIN IMMEDIATE; SAVEPOINT w"
    };
    if let Err(e) = exec(&mut w.conn, begin).await {
        let _ = exec(&mut w.conn, "ROLLBACK").await;
        for c in cmds {
            let _ = c.reply.send(Err(e.clone()));
        }
        return;
    }
    let n = cmds.len();
    let mut done: Vec<(oneshot::Sender<AnyResult>, AnyResult)> = Vec::with_capacity(n);
    // Set when the transaction itself is lost (SQLite rolls back the whole transaction
    // on some errors, e.g. a full disk): nothing of the group can be kept.
    let mut broken: Option<StoreError> = None;
    for (i, c) in cmds.into_iter().enumerate() {
        if let Some(e) = &broken {
            let _ = c.reply.send(Err(e.clone()));
            continue;
        }
        let result = (c.run)(w).await;
        if !single {
            let last = i + 1 == n;
            let end = match (&result, last) {
                // The savepoint now marks the state after this write, for the next one.
                (Ok(_), false) => exec(&mut w.conn, "RELEASE w; SAVEPOINT w").await,
                (Ok(_), true) => Ok(()),
                // ROLLBACK TO keeps the savepoint, at the state before this write.
                (Err(_), _) => {
                    w.last_event_seq = None;
                    exec(&mut w.conn, "ROLLBACK TO w").await
                }
            };
            if let Err(e) = end {
                broken = Some(e);
            }
        }
        done.push((c.reply, result));
    }
    let failed_alone = single && done.first().is_some_and(|(_, r)| r.is_err());
    let commit_error = if broken.is_some() || failed_alone {
        w.last_event_seq = None;
        let _ = exec(&mut w.conn, "ROLLBACK").await;
        broken
    } else {
        match exec(&mut w.conn, "COMMIT").await {
            Ok(()) => None,
            Err(e) => {
                w.last_event_seq = None;
                let _ = exec(&mut w.conn, "ROLLBACK").await;
                Some(e)
            }
        }
    };
    for (reply, result) in done {
        let result = match (&commit_error, result) {
            (Some(e), Ok(_)) => Err(e.clone()),
            (_, r) => r,
        };
        let _ = reply.send(result);
    }
}
