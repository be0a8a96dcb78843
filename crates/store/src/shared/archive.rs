//! The archive's bookkeeping, written once for both dialects (statements with `$n`
//! parameters, turned into the dialect's by [`query`]; id lists built with sqlx's
//! `QueryBuilder`).
//!
//! Retention with an archive goes in three steps, and the store keeps what makes them
//! safe to repeat: the items retention would delete ([`archivable`], by the same rules as
//! `purge_finished`) are recorded as batches with their members ([`begin`]); the engine
//! reads each batch's items ([`contents`]) and writes its object; then [`complete`]
//! writes the index, deletes the items and marks the batch done, in one transaction, but
//! only if no item changed since it was read. An item is a member of at most one batch
//! (the primary key of `archive_members`), so it is archived once; a batch still
//! `writing` is written again to the same path from its members.

use std::collections::{HashMap, HashSet};

use baton_core::{TaskId, Timestamp};
use sqlx::{Executor, Pool, QueryBuilder};

use super::dialect::{Bind, Dialect, Tx, execute, fetch_all, fetch_optional, query};
use super::rows::{Columns, event_columns, event_from_row, task_columns, task_from_row};
use super::rows::{workflow_columns, workflow_from_row};
use crate::{
    Archivable, ArchiveBatch, ArchiveCompletion, ArchiveEntry, ArchiveKind, ArchiveWritten,
    ArchivedItem, StoreError, StoreResult, TaskRecord,
};

/// Ids per `IN (…)` list (well under SQLite's 32,766 parameters).
const CHUNK: usize = 500;

/// What else a finished task needs before retention (or the archive) takes it: it is no
/// workflow's step, and its parent (if any) no longer runs. As in `purge_finished`.
const PURGEABLE_TASK: &str = " AND tasks.workflow_id IS NULL AND (tasks.parent_id IS NULL \
     OR NOT EXISTS (SELECT 1 FROM tasks p WHERE p.id = tasks.parent_id \
     AND p.status IN ('pending', 'running', 'input_required')))";

/// What else a finished workflow needs: it is over, and none of its steps' tasks is open.
const PURGEABLE_WORKFLOW: &str = " AND workflows.completed_at IS NOT NULL \
     AND workflows.status <> 'running' AND NOT EXISTS (SELECT 1 FROM tasks t \
     WHERE t.workflow_id = workflows.id AND t.completed_at IS NULL)";

fn kind_of(s: &str) -> StoreResult<ArchiveKind> {
    ArchiveKind::parse(s).ok_or_else(|| StoreError::Decode(format!("archive kind `{s}`")))
}

/// See [`Store::archivable`](crate::Store::archivable).
pub(crate) async fn archivable<D: Dialect>(
    pool: &Pool<D>,
    before: Timestamp,
    now: Timestamp,
    limit: u32,
) -> StoreResult<Vec<Archivable>>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    i64: Bind<D>,
    D::Arguments: Default,
{
    let unbatched = |kind: &str, id: &str| {
        format!(
            " AND NOT EXISTS (SELECT 1 FROM archive_members m WHERE m.kind = '{kind}' \
             AND m.item_id = CAST({id} AS TEXT))"
        )
    };
    let task = |r: &D::Row| {
        Ok(Archivable {
            kind: ArchiveKind::Task,
            id: r.task_id("id")?.to_string(),
            completed_at: Timestamp::from_millis(r.int("completed_at")?),
        })
    };
    let unbatched_task = unbatched("task", "tasks.id");
    // Past their own time to live first, then past the retention period, as retention.
    let q = query::<D>(&format!(
        "SELECT id, completed_at FROM tasks WHERE expires_at IS NOT NULL \
         AND completed_at IS NOT NULL AND expires_at < $1{PURGEABLE_TASK}{unbatched_task} \
         ORDER BY expires_at LIMIT $2"
    ))
    .bind(now.as_millis())
    .bind(i64::from(limit));
    let mut found = fetch_all(pool, q, task).await?;
    let left = u64::from(limit).saturating_sub(found.len() as u64);
    if left > 0 {
        let q = query::<D>(&format!(
            "SELECT id, completed_at FROM tasks WHERE completed_at IS NOT NULL \
             AND completed_at < $1{PURGEABLE_TASK}{unbatched_task} \
             ORDER BY completed_at LIMIT $2"
        ))
        .bind(before.as_millis())
        .bind(left as i64);
        let seen: HashSet<String> = found.iter().map(|a| a.id.clone()).collect();
        let past = fetch_all(pool, q, task).await?;
        found.extend(past.into_iter().filter(|a| !seen.contains(&a.id)));
    }
    // A workflow takes all its steps with it: far fewer fit a batch (as in retention).
    let q = query::<D>(&format!(
        "SELECT id, completed_at FROM workflows WHERE completed_at < $1{PURGEABLE_WORKFLOW}{} \
         ORDER BY completed_at LIMIT $2",
        unbatched("workflow", "workflows.id")
    ))
    .bind(before.as_millis())
    .bind(i64::from(super::workflows::workflow_purge_batch(limit)));
    let workflows = fetch_all(pool, q, |r| {
        Ok(Archivable {
            kind: ArchiveKind::Workflow,
            id: r.text("id")?,
            completed_at: Timestamp::from_millis(r.int("completed_at")?),
        })
    })
    .await?;
    found.extend(workflows);
    Ok(found)
}

/// See [`Store::begin_archive`](crate::Store::begin_archive).
pub(crate) async fn begin<T: Tx>(
    tx: &mut T,
    batches: &[ArchiveBatch],
) -> StoreResult<Vec<ArchiveBatch>>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let mut recorded = Vec::new();
    for b in batches {
        let q = query::<T::Db>(
            "INSERT INTO archive_batches (id, kind, day, path, state, created_at) \
             VALUES ($1, $2, $3, $4, 'writing', $5)",
        )
        .bind(b.id.clone())
        .bind(b.kind.as_str().to_string())
        .bind(b.day.clone())
        .bind(b.path.clone())
        .bind(b.created_at.as_millis());
        execute(tx.exec(), q).await?;
        let mut members = Vec::new();
        for id in &b.members {
            let q = query::<T::Db>(
                "INSERT INTO archive_members (kind, item_id, batch_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (kind, item_id) DO NOTHING",
            )
            .bind(b.kind.as_str().to_string())
            .bind(id.clone())
            .bind(b.id.clone());
            if execute(tx.exec(), q).await? == 1 {
                members.push(id.clone());
            }
        }
        if members.is_empty() {
            let q = query::<T::Db>("DELETE FROM archive_batches WHERE id = $1").bind(b.id.clone());
            execute(tx.exec(), q).await?;
            continue;
        }
        recorded.push(ArchiveBatch {
            members,
            ..b.clone()
        });
    }
    Ok(recorded)
}

/// See [`Store::archive_batches_writing`](crate::Store::archive_batches_writing).
pub(crate) async fn writing<D: Dialect>(pool: &Pool<D>) -> StoreResult<Vec<ArchiveBatch>>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    String: Bind<D>,
    D::Arguments: Default,
{
    let q = query::<D>(
        "SELECT id, kind, day, path, created_at FROM archive_batches \
         WHERE state = 'writing' ORDER BY created_at, id",
    );
    let mut batches = fetch_all(pool, q, |r| {
        Ok(ArchiveBatch {
            id: r.text("id")?,
            kind: kind_of(&r.text("kind")?)?,
            day: r.text("day")?,
            path: r.text("path")?,
            created_at: Timestamp::from_millis(r.int("created_at")?),
            members: Vec::new(),
        })
    })
    .await?;
    for b in &mut batches {
        b.members = members(pool, &b.id).await?;
    }
    Ok(batches)
}

async fn members<'c, D: Dialect>(
    db: impl Executor<'c, Database = D>,
    batch_id: &str,
) -> StoreResult<Vec<String>>
where
    D::Arguments: Default,
    String: Bind<D>,
{
    let q = query::<D>("SELECT item_id FROM archive_members WHERE batch_id = $1 ORDER BY item_id")
        .bind(batch_id.to_string());
    fetch_all(db, q, |r| r.text("item_id")).await
}

/// See [`Store::archive_contents`](crate::Store::archive_contents).
pub(crate) async fn contents<D: Dialect>(
    pool: &Pool<D>,
    batch: &ArchiveBatch,
) -> StoreResult<Vec<ArchivedItem>>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    String: Bind<D>,
    D::Arguments: Default,
{
    match batch.kind {
        ArchiveKind::Task => {
            let ids = parse_ids(&batch.members)?;
            let tasks = tasks_with_events(pool, &ids, " AND completed_at IS NOT NULL").await?;
            Ok(tasks.into_iter().map(ArchivedItem::Task).collect())
        }
        ArchiveKind::Workflow => {
            let mut items = Vec::new();
            for id in &batch.members {
                let q = query::<D>(&format!(
                    "SELECT {} FROM workflows WHERE id = $1{PURGEABLE_WORKFLOW}",
                    workflow_columns!()
                ))
                .bind(id.clone());
                let Some(workflow) = fetch_optional(pool, q, workflow_from_row).await? else {
                    continue;
                };
                let q = query::<D>("SELECT id FROM tasks WHERE workflow_id = $1 ORDER BY seq")
                    .bind(id.clone());
                let steps = fetch_all(pool, q, |r| r.task_id("id")).await?;
                let steps = tasks_with_events(pool, &steps, "").await?;
                items.push(ArchivedItem::Workflow { workflow, steps });
            }
            Ok(items)
        }
    }
}

fn parse_ids(ids: &[String]) -> StoreResult<Vec<TaskId>> {
    ids.iter()
        .map(|s| {
            s.parse::<TaskId>()
                .map_err(|e| StoreError::Decode(format!("archived task id `{s}`: {e}")))
        })
        .collect()
}

/// The tasks of `ids` (those matching `and`), in the order given, each with its events.
async fn tasks_with_events<D: Dialect>(
    pool: &Pool<D>,
    ids: &[TaskId],
    and: &str,
) -> StoreResult<Vec<TaskRecord>>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    D::Arguments: Default,
{
    let mut tasks = HashMap::new();
    let mut events: HashMap<TaskId, Vec<baton_core::TaskEvent>> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let mut qb = QueryBuilder::<D>::new(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE id IN ("
        ));
        push_ids::<D>(&mut qb, chunk);
        qb.push(")");
        qb.push(and.to_string());
        for t in fetch_all(pool, qb.build(), task_from_row).await? {
            tasks.insert(t.id, t);
        }
        let mut qb = QueryBuilder::<D>::new(concat!(
            "SELECT ",
            event_columns!(),
            " FROM task_events WHERE task_id IN ("
        ));
        push_ids::<D>(&mut qb, chunk);
        qb.push(") ORDER BY seq");
        for e in fetch_all(pool, qb.build(), event_from_row).await? {
            events.entry(e.task_id).or_default().push(e);
        }
    }
    Ok(ids
        .iter()
        .filter_map(|id| {
            let task = tasks.remove(id)?;
            Some(TaskRecord {
                events: events.remove(id).unwrap_or_default(),
                task,
            })
        })
        .collect())
}

fn push_ids<D: Dialect>(qb: &mut QueryBuilder<D>, ids: &[TaskId])
where
    D::Arguments: Default,
{
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(D::id(*id));
    }
}

fn push_texts<D: Dialect>(qb: &mut QueryBuilder<D>, ids: &[String])
where
    String: Bind<D>,
    D::Arguments: Default,
{
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(id.clone());
    }
}

/// A row as it is now, for the comparison with what was written.
struct Current {
    owner: String,
    updated_at: Timestamp,
}

/// See [`Store::complete_archive`](crate::Store::complete_archive).
pub(crate) async fn complete<T: Tx>(
    tx: &mut T,
    batch_id: &str,
    written: &[ArchiveWritten],
    now: Timestamp,
) -> StoreResult<ArchiveCompletion>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    // Taking the batch (an update locks its row on PostgreSQL) decides between two
    // processes completing it at once: the second finds it done.
    let q = query::<T::Db>(
        "UPDATE archive_batches SET done_at = NULL WHERE id = $1 AND state = 'writing' \
         RETURNING kind, day, path",
    )
    .bind(batch_id.to_string());
    let Some((kind, day, path)) = fetch_optional(tx.exec(), q, |r| {
        Ok((kind_of(&r.text("kind")?)?, r.text("day")?, r.text("path")?))
    })
    .await?
    else {
        return Ok(ArchiveCompletion::AlreadyDone);
    };
    let members: HashSet<String> = members(tx.exec(), batch_id).await?.into_iter().collect();
    let written: Vec<&ArchiveWritten> = written
        .iter()
        .filter(|w| w.kind == kind && members.contains(&w.id))
        .collect();

    // The rows as they are now (locked, where the dialect locks rows), in id order.
    let lock = <T::Db as Dialect>::FOR_UPDATE;
    let ids: Vec<String> = written.iter().map(|w| w.id.clone()).collect();
    let mut current: HashMap<String, Current> = HashMap::new();
    // Steps by task id, with their workflow.
    let mut steps_now: HashMap<TaskId, (String, Current)> = HashMap::new();
    let mut sorted = ids.clone();
    sorted.sort();
    for chunk in sorted.chunks(CHUNK) {
        let mut qb = match kind {
            ArchiveKind::Task => {
                let mut qb = QueryBuilder::<T::Db>::new(
                    "SELECT id, owner, updated_at FROM tasks WHERE completed_at IS NOT NULL",
                );
                qb.push(PURGEABLE_TASK);
                qb.push(" AND id IN (");
                push_ids::<T::Db>(&mut qb, &parse_ids(chunk)?);
                qb
            }
            ArchiveKind::Workflow => {
                let mut qb = QueryBuilder::<T::Db>::new(
                    "SELECT id, owner, updated_at FROM workflows WHERE true",
                );
                qb.push(PURGEABLE_WORKFLOW);
                qb.push(" AND id IN (");
                push_texts::<T::Db>(&mut qb, chunk);
                qb
            }
        };
        qb.push(") ORDER BY id");
        qb.push(lock);
        let rows = fetch_all(tx.exec(), qb.build(), |r| {
            let id = match kind {
                ArchiveKind::Task => r.task_id("id")?.to_string(),
                ArchiveKind::Workflow => r.text("id")?,
            };
            Ok((
                id,
                Current {
                    owner: r.text("owner")?,
                    updated_at: Timestamp::from_millis(r.int("updated_at")?),
                },
            ))
        })
        .await?;
        current.extend(rows);
        if kind == ArchiveKind::Workflow {
            let mut qb = QueryBuilder::<T::Db>::new(
                "SELECT id, workflow_id, owner, updated_at FROM tasks WHERE workflow_id IN (",
            );
            push_texts::<T::Db>(&mut qb, chunk);
            qb.push(") ORDER BY id");
            qb.push(lock);
            let rows = fetch_all(tx.exec(), qb.build(), |r| {
                Ok((
                    r.task_id("id")?,
                    (
                        r.text("workflow_id")?,
                        Current {
                            owner: r.text("owner")?,
                            updated_at: Timestamp::from_millis(r.int("updated_at")?),
                        },
                    ),
                ))
            })
            .await?;
            steps_now.extend(rows);
        }
    }

    // What changed since the object was written, or is not in it.
    let mut dropped: Vec<String> = Vec::new();
    let in_object: HashSet<&str> = written.iter().map(|w| w.id.as_str()).collect();
    dropped.extend(
        members
            .iter()
            .filter(|m| !in_object.contains(m.as_str()))
            .cloned(),
    );
    for w in &written {
        let same = current
            .get(&w.id)
            .is_some_and(|c| c.updated_at == w.updated_at);
        // A workflow's steps too: the same tasks, none changed, none added.
        let steps_same = kind == ArchiveKind::Task
            || (w.steps.iter().all(|(id, at)| {
                steps_now
                    .get(id)
                    .is_some_and(|(wf, c)| *wf == w.id && c.updated_at == *at)
            }) && steps_now.values().filter(|(wf, _)| *wf == w.id).count() == w.steps.len());
        if !same || !steps_same {
            dropped.push(w.id.clone());
        }
    }
    if !dropped.is_empty() {
        dropped.sort();
        dropped.dedup();
        for chunk in dropped.chunks(CHUNK) {
            let mut qb = QueryBuilder::<T::Db>::new("DELETE FROM archive_members WHERE kind = ");
            qb.push_bind(kind.as_str().to_string());
            qb.push(" AND item_id IN (");
            push_texts::<T::Db>(&mut qb, chunk);
            qb.push(")");
            execute(tx.exec(), qb.build()).await?;
        }
        return Ok(ArchiveCompletion::Changed { dropped });
    }

    // Index everything the object holds, then delete it.
    let mut task_ids: Vec<TaskId> = Vec::new();
    for w in &written {
        let owner = current[&w.id].owner.clone();
        index(tx, kind, &w.id, &owner, &path, &day, now).await?;
        match kind {
            ArchiveKind::Task => task_ids
                .push(w.id.parse().map_err(|e| {
                    StoreError::Decode(format!("archived task id `{}`: {e}", w.id))
                })?),
            ArchiveKind::Workflow => {
                for (id, _) in &w.steps {
                    let owner = steps_now[id].1.owner.clone();
                    index(
                        tx,
                        ArchiveKind::Task,
                        &id.to_string(),
                        &owner,
                        &path,
                        &day,
                        now,
                    )
                    .await?;
                    task_ids.push(*id);
                }
            }
        }
    }
    for chunk in task_ids.chunks(CHUNK) {
        for delete in [
            "DELETE FROM task_events WHERE task_id IN (",
            "DELETE FROM task_logs WHERE task_id IN (",
            "DELETE FROM tasks WHERE id IN (",
        ] {
            let mut qb = QueryBuilder::<T::Db>::new(delete);
            push_ids::<T::Db>(&mut qb, chunk);
            qb.push(")");
            execute(tx.exec(), qb.build()).await?;
        }
    }
    if kind == ArchiveKind::Workflow {
        for chunk in ids.chunks(CHUNK) {
            let mut qb = QueryBuilder::<T::Db>::new("DELETE FROM workflows WHERE id IN (");
            push_texts::<T::Db>(&mut qb, chunk);
            qb.push(")");
            execute(tx.exec(), qb.build()).await?;
        }
    }
    let q = query::<T::Db>("DELETE FROM archive_members WHERE batch_id = $1")
        .bind(batch_id.to_string());
    execute(tx.exec(), q).await?;
    let q = query::<T::Db>("UPDATE archive_batches SET state = 'done', done_at = $2 WHERE id = $1")
        .bind(batch_id.to_string())
        .bind(now.as_millis());
    execute(tx.exec(), q).await?;
    Ok(ArchiveCompletion::Done {
        items: written.len() as u64,
        tasks: task_ids.len() as u64,
    })
}

async fn index<T: Tx>(
    tx: &mut T,
    kind: ArchiveKind,
    id: &str,
    owner: &str,
    path: &str,
    day: &str,
    now: Timestamp,
) -> StoreResult<()>
where
    String: Bind<T::Db>,
    i64: Bind<T::Db>,
    <T::Db as sqlx::Database>::Arguments: Default,
{
    let q = query::<T::Db>(
        "INSERT INTO archive_index (kind, id, owner, path, day, archived_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind, id) DO NOTHING",
    )
    .bind(kind.as_str().to_string())
    .bind(id.to_string())
    .bind(owner.to_string())
    .bind(path.to_string())
    .bind(day.to_string())
    .bind(now.as_millis());
    execute(tx.exec(), q).await?;
    Ok(())
}

/// See [`Store::archived`](crate::Store::archived).
pub(crate) async fn archived<'c, D: Dialect>(
    db: impl Executor<'c, Database = D>,
    kind: ArchiveKind,
    id: &str,
) -> StoreResult<Option<ArchiveEntry>>
where
    String: Bind<D>,
    D::Arguments: Default,
{
    let q = query::<D>(
        "SELECT kind, id, owner, path, day, archived_at FROM archive_index \
         WHERE kind = $1 AND id = $2",
    )
    .bind(kind.as_str().to_string())
    .bind(id.to_string());
    fetch_optional(db, q, |r| {
        Ok(ArchiveEntry {
            kind: kind_of(&r.text("kind")?)?,
            id: r.text("id")?,
            owner: r.text("owner")?,
            path: r.text("path")?,
            day: r.text("day")?,
            archived_at: Timestamp::from_millis(r.int("archived_at")?),
        })
    })
    .await
}
