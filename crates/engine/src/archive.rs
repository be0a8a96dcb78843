//! The archive: finished tasks and workflows written to object storage ([`Objects`])
//! before retention deletes them, and read back from there.
//!
//! **Layout.** One object per batch, `tasks/day=YYYY-MM-DD/<batch>.jsonl.zst` or
//! `workflows/day=…/<batch>.jsonl.zst` (the UTC day the items finished): zstd-compressed
//! JSON Lines, one [`ArchiveLine`] per line, a task with its events or a workflow with its
//! steps' tasks and their events. `zstd -d` or DuckDB's `read_json` read them as they are;
//! [`export`] writes a range of them as plain JSON Lines.
//!
//! **Exactly once, crash-safe.** Only the maintenance holder archives
//! ([`archive_expired`], in place of plain retention). The store records each batch and
//! its members before the object is written, and after the write, in one transaction,
//! indexes the items, deletes them and marks the batch done (see
//! `baton_store::Store::complete_archive`). A crash between the two leaves the batch
//! `writing`: the next round writes it again, from its members, to the same path (a put
//! replaces the object whole), so nothing is lost and nothing is in two objects. An item
//! that changed in between (a hand retry) leaves the batch, and the object is written
//! again without it.
//!
//! **Reads.** The index (`Store::archived`) says which object holds an id; the object is
//! fetched and the line found. A workflow's steps are indexed as tasks in the workflow's
//! object.

use std::io::Write;

use baton_core::{Task, TaskEvent, TaskId, Timestamp};
use baton_store::{
    Archivable, ArchiveBatch, ArchiveCompletion, ArchiveKind, ArchivedItem, TaskRecord, Workflow,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::inner::Inner;
use crate::objects::{Objects, ObjectsError};

/// Items per batch (and per retention transaction).
const BATCH: u32 = 1000;
/// zstd's default level: fast, and JSON shrinks well at it.
const LEVEL: i32 = 3;
/// Times a batch is written again when its items keep changing underneath.
const REWRITES: usize = 5;

/// One line of an archive object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one line at a time
pub enum ArchiveLine {
    Task {
        task: Task,
        events: Vec<TaskEvent>,
    },
    Workflow {
        workflow: Workflow,
        steps: Vec<ArchivedTask>,
    },
}

/// A workflow step's task with its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedTask {
    pub task: Task,
    pub events: Vec<TaskEvent>,
}

impl From<ArchivedItem> for ArchiveLine {
    fn from(item: ArchivedItem) -> Self {
        match item {
            ArchivedItem::Task(TaskRecord { task, events }) => ArchiveLine::Task { task, events },
            ArchivedItem::Workflow { workflow, steps } => ArchiveLine::Workflow {
                workflow,
                steps: steps
                    .into_iter()
                    .map(|r| ArchivedTask {
                        task: r.task,
                        events: r.events,
                    })
                    .collect(),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Objects(#[from] ObjectsError),
    #[error("archive object {path} is unreadable: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("{0}")]
    Write(String),
}

/// The object a batch is written to.
pub fn batch_path(kind: ArchiveKind, day: &str, batch_id: &str) -> String {
    format!("{}s/day={day}/{batch_id}.jsonl.zst", kind.as_str())
}

/// The UTC day of `at`, as partitions name it.
pub fn day_of(at: Timestamp) -> String {
    at.to_datetime().format("%Y-%m-%d").to_string()
}

/// The lines of `items`, zstd-compressed.
pub fn encode(items: Vec<ArchivedItem>) -> Result<Bytes, ArchiveError> {
    let write = |e: std::io::Error| ArchiveError::Write(e.to_string());
    let mut z = zstd::Encoder::new(Vec::new(), LEVEL).map_err(write)?;
    for item in items {
        serde_json::to_writer(&mut z, &ArchiveLine::from(item))
            .map_err(|e| ArchiveError::Write(e.to_string()))?;
        z.write_all(b"\n").map_err(write)?;
    }
    Ok(Bytes::from(z.finish().map_err(write)?))
}

/// The plain JSON Lines of an object.
pub fn decode(path: &str, object: &[u8]) -> Result<Vec<u8>, ArchiveError> {
    zstd::decode_all(object).map_err(|e| ArchiveError::Corrupt {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

fn lines(plain: &[u8]) -> impl Iterator<Item = &[u8]> {
    plain.split(|b| *b == b'\n').filter(|l| !l.is_empty())
}

fn contains(line: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && line.windows(needle.len()).any(|w| w == needle)
}

/// The line of `path` about `id` (a task, a workflow step's task, or a workflow).
async fn find(
    objects: &Objects,
    path: &str,
    kind: ArchiveKind,
    id: &str,
) -> Result<Option<ArchiveLine>, ArchiveError> {
    let plain = decode(path, &objects.get(path).await?)?;
    let quoted = format!("\"{id}\"");
    for line in lines(&plain) {
        // Only lines that name the id are parsed.
        if !contains(line, quoted.as_bytes()) {
            continue;
        }
        let parsed: ArchiveLine =
            serde_json::from_slice(line).map_err(|e| ArchiveError::Corrupt {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
        let found = match (&parsed, kind) {
            (ArchiveLine::Task { task, .. }, ArchiveKind::Task) => task.id.to_string() == id,
            (ArchiveLine::Workflow { steps, .. }, ArchiveKind::Task) => {
                steps.iter().any(|s| s.task.id.to_string() == id)
            }
            (ArchiveLine::Workflow { workflow, .. }, ArchiveKind::Workflow) => workflow.id == id,
            _ => false,
        };
        if found {
            return Ok(Some(parsed));
        }
    }
    Ok(None)
}

impl Engine {
    fn objects(&self) -> Option<&Objects> {
        self.inner().config.archive.as_ref()
    }

    /// The caller's task from the store, else from the archive (a large result left as
    /// the reference to its object).
    pub async fn get_or_archived(&self, owner: &str, id: TaskId) -> Result<Task, EngineError> {
        match self.get(owner, id).await {
            Err(EngineError::TaskNotFound(missing)) => self
                .archived_task(owner, id)
                .await?
                .ok_or(EngineError::TaskNotFound(missing)),
            found => found,
        }
    }

    /// The caller's task from the archive, if the store deleted it after archiving it.
    pub async fn archived_task(
        &self,
        owner: &str,
        id: TaskId,
    ) -> Result<Option<Task>, EngineError> {
        let Some(objects) = self.objects() else {
            return Ok(None);
        };
        let key = id.to_string();
        let Some(entry) = self.store().archived(ArchiveKind::Task, &key).await? else {
            return Ok(None);
        };
        if entry.owner != owner {
            return Ok(None);
        }
        Ok(
            match find(objects, &entry.path, ArchiveKind::Task, &key).await? {
                Some(ArchiveLine::Task { task, .. }) => Some(task),
                Some(ArchiveLine::Workflow { steps, .. }) => {
                    steps.into_iter().map(|s| s.task).find(|t| t.id == id)
                }
                None => None,
            }
            .filter(|t| t.owner == owner),
        )
    }

    /// The caller's workflow and its steps' tasks from the archive, if the store deleted
    /// them after archiving them.
    pub async fn archived_workflow(
        &self,
        owner: &str,
        id: &str,
    ) -> Result<Option<(Workflow, Vec<Task>)>, EngineError> {
        let Some(objects) = self.objects() else {
            return Ok(None);
        };
        let Some(entry) = self.store().archived(ArchiveKind::Workflow, id).await? else {
            return Ok(None);
        };
        if entry.owner != owner {
            return Ok(None);
        }
        Ok(
            match find(objects, &entry.path, ArchiveKind::Workflow, id).await? {
                Some(ArchiveLine::Workflow { workflow, steps }) if workflow.owner == owner => {
                    Some((workflow, steps.into_iter().map(|s| s.task).collect()))
                }
                _ => None,
            },
        )
    }
}

/// Retention with an archive (run by the maintenance holder in place of the plain
/// purge): first the batches a crash or a failed write left, then new batches of what
/// retention would delete now, each archived, then deleted. Returns the tasks deleted.
/// A batch that cannot be written stops the round; its items stay until a later one.
pub(crate) async fn archive_expired(inner: &Inner, objects: &Objects) -> u64 {
    let now = inner.clock.now();
    let cutoff = now.saturating_sub(inner.config.retention);
    let mut total = 0;
    let left = match inner.store.archive_batches_writing().await {
        Ok(left) => left,
        Err(e) => {
            tracing::warn!(error = %e, "archiving failed: cannot read unfinished batches");
            return 0;
        }
    };
    if !left.is_empty() {
        tracing::info!(
            batches = left.len(),
            "archiving again the batches an earlier run left unfinished"
        );
    }
    for batch in left {
        match write_batch(inner, objects, batch).await {
            Ok(n) => total += n,
            Err(e) => {
                tracing::warn!(error = %e, "archiving failed; finished tasks are kept until it works");
                return total;
            }
        }
    }
    loop {
        let found = match inner.store.archivable(cutoff, now, BATCH).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "archiving failed: cannot select finished tasks");
                break;
            }
        };
        if found.is_empty() {
            break;
        }
        let recorded = match inner.store.begin_archive(&plan(&found, now)).await {
            Ok(recorded) => recorded,
            Err(e) => {
                tracing::warn!(error = %e, "archiving failed: cannot record a batch");
                break;
            }
        };
        for batch in recorded {
            match write_batch(inner, objects, batch).await {
                Ok(n) => total += n,
                Err(e) => {
                    tracing::warn!(error = %e, "archiving failed; finished tasks are kept until it works");
                    return total;
                }
            }
        }
        if found.len() < BATCH as usize || inner.stop_background.is_cancelled() {
            break;
        }
        tokio::task::yield_now().await;
    }
    if total > 0 {
        tracing::info!(tasks = total, archive = %objects.url(), "archived and deleted finished tasks past retention");
    }
    total
}

/// Batches for `found`: one per kind and day finished.
fn plan(found: &[Archivable], now: Timestamp) -> Vec<ArchiveBatch> {
    let mut groups: std::collections::BTreeMap<(ArchiveKind, String), Vec<String>> =
        Default::default();
    for a in found {
        groups
            .entry((a.kind, day_of(a.completed_at)))
            .or_default()
            .push(a.id.clone());
    }
    groups
        .into_iter()
        .map(|((kind, day), mut members)| {
            // In the order the store lists a batch's members, so that writing it again
            // after a crash writes the same object.
            members.sort();
            // Time-ordered and random, like task ids.
            let id = TaskId::generate(now).to_string();
            ArchiveBatch {
                path: batch_path(kind, &day, &id),
                id,
                kind,
                day,
                created_at: now,
                members,
            }
        })
        .collect()
}

/// Writes a recorded batch's object and completes the batch; returns the tasks deleted.
async fn write_batch(
    inner: &Inner,
    objects: &Objects,
    mut batch: ArchiveBatch,
) -> Result<u64, String> {
    for _ in 0..REWRITES {
        let items = inner
            .store
            .archive_contents(&batch)
            .await
            .map_err(|e| e.to_string())?;
        let written: Vec<_> = items.iter().map(ArchivedItem::written).collect();
        if items.is_empty() {
            objects
                .delete(&batch.path)
                .await
                .map_err(|e| e.to_string())?;
        } else {
            let body = encode(items).map_err(|e| e.to_string())?;
            objects
                .put(&batch.path, body)
                .await
                .map_err(|e| e.to_string())?;
        }
        let outcome = inner
            .store
            .complete_archive(&batch.id, &written, inner.clock.now())
            .await
            .map_err(|e| e.to_string())?;
        match outcome {
            ArchiveCompletion::Done { items, tasks } => {
                tracing::debug!(batch = %batch.id, path = %batch.path, items, tasks, "archived a batch");
                return Ok(tasks);
            }
            ArchiveCompletion::AlreadyDone => return Ok(0),
            ArchiveCompletion::Changed { dropped } => {
                tracing::debug!(batch = %batch.id, changed = dropped.len(), "items changed while archived; writing the batch again without them");
                batch.members.retain(|m| !dropped.contains(m));
            }
        }
    }
    Err(format!(
        "batch {}: its items kept changing while it was written",
        batch.id
    ))
}

/// What [`export`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Exported {
    pub objects: usize,
    pub lines: u64,
}

/// Writes, as plain JSON Lines, the archived items of `kind` that finished in
/// `[since, until)`, oldest day first; `progress` hears after each object (done, of
/// how many, lines so far).
pub async fn export(
    objects: &Objects,
    kind: ArchiveKind,
    since: Timestamp,
    until: Timestamp,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(usize, usize, u64),
) -> Result<Exported, ArchiveError> {
    let (first, last) = (day_of(since), day_of(until));
    let listed = objects.list(&format!("{}s/", kind.as_str())).await?;
    let chosen: Vec<_> = listed
        .into_iter()
        .filter(|o| {
            partition_day(&o.path).is_some_and(|d| d >= first.as_str() && d <= last.as_str())
        })
        .collect();
    let mut done = Exported::default();
    for (i, object) in chosen.iter().enumerate() {
        let plain = match objects.get(&object.path).await {
            Ok(bytes) => decode(&object.path, &bytes)?,
            // Deleted since listed (a batch emptied while written again).
            Err(ObjectsError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        for line in lines(&plain) {
            let finished: Finished =
                serde_json::from_slice(line).map_err(|e| ArchiveError::Corrupt {
                    path: object.path.clone(),
                    reason: e.to_string(),
                })?;
            let at = finished
                .task
                .or(finished.workflow)
                .and_then(|f| f.completed_at);
            if at.is_some_and(|at| at >= since && at < until) {
                out.write_all(line)
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(|e| ArchiveError::Write(e.to_string()))?;
                done.lines += 1;
            }
        }
        done.objects += 1;
        progress(i + 1, chosen.len(), done.lines);
    }
    out.flush()
        .map_err(|e| ArchiveError::Write(e.to_string()))?;
    Ok(done)
}

/// The day of a `…/day=YYYY-MM-DD/…` key.
fn partition_day(path: &str) -> Option<&str> {
    let rest = &path[path.find("day=")? + 4..];
    Some(rest.split('/').next().unwrap_or(rest))
}

/// Just enough of a line to filter it by when it finished.
#[derive(Deserialize)]
struct Finished {
    task: Option<FinishedAt>,
    workflow: Option<FinishedAt>,
}

#[derive(Deserialize)]
struct FinishedAt {
    completed_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_days() {
        let at = Timestamp::parse_rfc3339("2027-03-04T23:59:59.999Z").unwrap();
        assert_eq!(day_of(at), "2027-03-04");
        let p = batch_path(ArchiveKind::Workflow, "2027-03-04", "b");
        assert_eq!(p, "workflows/day=2027-03-04/b.jsonl.zst");
        assert_eq!(partition_day(&p), Some("2027-03-04"));
        assert_eq!(partition_day("tasks/x"), None);
    }
}
