//! Large results in object storage. A result whose JSON is longer than
//! `offload_above` is written to `payloads/<task id>/result-<attempt>.json` in the node's
//! object storage (`[archive] url`, else `<data dir>/payloads` on a local store) and the
//! task keeps a reference in its place: `_meta["baton/payload"]` with the object's path
//! and size (the rest of the result's `_meta` stays, where analytics read costs). Every
//! read through the engine puts the whole result back ([`Engine::resolve_payload`]);
//! `GET /v1/tasks/{id}/result` streams the object instead of loading it. A result over
//! `max_result_bytes` fails its task with `result_too_large`, naming the limit: nothing
//! is stored cut short.

use bytes::Bytes;
use futures::stream::BoxStream;
use serde_json::{Value, json};

use baton_core::{Task, TaskError, TaskId};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::objects::{Objects, ObjectsError};

/// The `_meta` key of a result kept in object storage.
pub const PAYLOAD_META: &str = "baton/payload";

/// Where large results go, and the limits.
#[derive(Debug, Clone)]
pub struct PayloadConfig {
    /// Object storage for large results; `None`: they stay in the store (compressed).
    pub objects: Option<Objects>,
    /// Results with more JSON than this go to object storage.
    pub offload_above: usize,
    /// Results with more JSON than this fail their task.
    pub max_result_bytes: usize,
}

impl Default for PayloadConfig {
    fn default() -> Self {
        PayloadConfig {
            objects: None,
            offload_above: 1024 * 1024,
            max_result_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Where a stored result's whole JSON is, if it was kept in object storage.
pub fn reference(result: &Value) -> Option<(&str, u64)> {
    let r = result.get("_meta")?.get(PAYLOAD_META)?;
    Some((r.get("path")?.as_str()?, r.get("bytes")?.as_u64()?))
}

/// What the store keeps of a completed run's result: the result itself, or, when it is
/// large and object storage is configured, a reference to the object written now. `Err`:
/// the result is over `max_result_bytes` (the task fails, nothing is cut short). When
/// the object cannot be written the result is kept in the store: nothing is lost.
pub(crate) async fn offload(
    config: &PayloadConfig,
    task: TaskId,
    attempt: u32,
    result: Value,
) -> Result<Value, TaskError> {
    // Every completion passes here: measure without building the text (the store
    // serialises the result itself), and build it only for an object.
    let len = json_len(&result);
    if len > config.max_result_bytes {
        return Err(TaskError::new(
            "result_too_large",
            format!(
                "the tool's result is {len} bytes, more than tasks.max_result_bytes ({} bytes)",
                config.max_result_bytes
            ),
            false,
        ));
    }
    let Some(objects) = config
        .objects
        .as_ref()
        .filter(|_| len > config.offload_above)
    else {
        return Ok(result);
    };
    let path = format!("payloads/{task}/result-{attempt}.json");
    let bytes = len as u64;
    if let Err(e) = objects.put(&path, Bytes::from(result.to_string())).await {
        tracing::warn!(task_id = %task, error = %e, "could not write a large result to object storage; keeping it in the store");
        return Ok(result);
    }
    let mut meta = result
        .get("_meta")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    meta.insert(
        PAYLOAD_META.into(),
        json!({"path": path, "bytes": bytes, "url": objects.url()}),
    );
    Ok(json!({
        "content": [{"type": "text", "text": format!(
            "The result ({bytes} bytes) is kept in object storage: GET /v1/tasks/{task}/result"
        )}],
        "_meta": meta,
    }))
}

/// The length of `v`'s JSON text, counted as it is written out, without keeping it.
fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

impl Engine {
    /// Puts a result kept in object storage back into the task (a no-op for others).
    pub async fn resolve_payload(&self, task: &mut Task) -> Result<(), EngineError> {
        let Some((path, _)) = task.result.as_ref().and_then(reference) else {
            return Ok(());
        };
        let bytes = self
            .payload_objects()?
            .get(path)
            .await
            .map_err(unavailable)?;
        let whole: Value = serde_json::from_slice(&bytes).map_err(|e| {
            EngineError::Store(baton_store::StoreError::Decode(format!(
                "result object {path}: {e}"
            )))
        })?;
        task.result = Some(whole);
        Ok(())
    }

    /// The whole JSON of a result kept in object storage, as a stream of its bytes.
    pub async fn payload_stream(
        &self,
        path: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, ObjectsError>>, EngineError> {
        self.payload_objects()?
            .get_stream(path)
            .await
            .map_err(unavailable)
    }

    fn payload_objects(&self) -> Result<&Objects, EngineError> {
        self.inner()
            .config
            .payloads
            .objects
            .as_ref()
            .ok_or_else(|| {
                unavailable(ObjectsError::Unavailable(
                    "this result is kept in object storage, and this node has none configured \
                 ([archive] url)"
                        .into(),
                ))
            })
    }
}

fn unavailable(e: ObjectsError) -> EngineError {
    let m = format!("object storage: {e}");
    EngineError::Store(match e {
        ObjectsError::Unavailable(_) => baton_store::StoreError::Unavailable(m),
        _ => baton_store::StoreError::Database(m),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn large_results_go_to_object_storage_and_small_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(&crate::objects::ObjectsConfig {
            url: format!("file://{}", dir.path().display()),
            ..Default::default()
        })
        .unwrap();
        let config = PayloadConfig {
            objects: Some(objects.clone()),
            offload_above: 1000,
            max_result_bytes: 100_000,
        };
        let id = TaskId::generate(baton_core::Timestamp::from_millis(1_800_000_000_000));
        let small = json!({"content": [{"type": "text", "text": "ok"}]});
        assert_eq!(offload(&config, id, 1, small.clone()).await.unwrap(), small);
        let big = json!({"content": [{"type": "text", "text": "x".repeat(5000)}],
                         "_meta": {"baton/cost": {"usd": 0.1}}});
        let stub = offload(&config, id, 2, big.clone()).await.unwrap();
        let (path, bytes) = reference(&stub).unwrap();
        assert_eq!(path, format!("payloads/{id}/result-2.json"));
        assert_eq!(bytes, big.to_string().len() as u64);
        assert_eq!(
            stub["_meta"]["baton/cost"]["usd"], 0.1,
            "costs stay for analytics"
        );
        let back: Value = serde_json::from_slice(&objects.get(path).await.unwrap()).unwrap();
        assert_eq!(back, big);
        let huge = json!({"text": "x".repeat(200_000)});
        let e = offload(&config, id, 3, huge).await.unwrap_err();
        assert_eq!(e.code, "result_too_large");
        assert!(
            e.message.contains("tasks.max_result_bytes (100000 bytes)"),
            "{}",
            e.message
        );
    }
}
