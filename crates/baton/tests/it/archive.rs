//! The archive on the real binary: retention archives finished tasks and workflows to a
//! directory or to a real S3-compatible server (moto, run by the test), `GET` answers
//! for them with `archived: true` (their owner only), `baton archive export` writes them
//! as JSON Lines; on SQLite and on PostgreSQL. And a node killed while an object is
//! being written loses and repeats nothing once restarted. Large results go to the same
//! object storage (or a directory beside an embedded store) and are read back whole.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{
    Api, Baton, PgSchema, baton_bin, eventually, free_port, repo_root, sqlite_query,
};

const LONG: Duration = Duration::from_secs(60);

/// moto's S3 server on a free port, with one bucket; stopped with the test.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    async fn start(bucket: &str) -> Moto {
        let bin = repo_root().join("test-support/python/.venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/test-env (it installs moto from test-support/python/requirements.txt)",
            bin.display()
        );
        let port = free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let url = format!("{}/{bucket}", moto.endpoint);
        eventually("moto answers", LONG, async || {
            http.put(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        moto
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} moto");
    }

    /// The node's environment for an archive in `bucket` on this server.
    fn env(&self, bucket: &str) -> Vec<(&'static str, String)> {
        vec![
            ("BATON_ARCHIVE__URL", format!("s3://{bucket}/archive")),
            ("BATON_ARCHIVE__ENDPOINT", self.endpoint.clone()),
            ("BATON_ARCHIVE__ALLOW_HTTP", "true".into()),
            ("BATON_ARCHIVE__REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Retention after a second; maintenance looks every half second (a quarter lease).
fn fast_retention() -> Vec<(&'static str, String)> {
    vec![
        ("BATON_TASKS__RETENTION", "1s".into()),
        ("BATON_WORKERS__LEASE", "2s".into()),
    ]
}

fn refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// `baton archive export` with `env` (no node involved); the lines, parsed.
fn export(env: &[(&'static str, String)], dir: &Path, kind: &str) -> Vec<Value> {
    let out = dir.join(format!("{kind}.jsonl"));
    let run = Command::new(baton_bin())
        .args([
            "archive",
            "export",
            "--since",
            "2000-01-01",
            "--kind",
            kind,
            "--out",
        ])
        .arg(&out)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Tasks and a workflow finish; retention archives them; reads and the export find them.
async fn round_trip(env: Vec<(&'static str, String)>, dir: &Path) {
    let mut node_env = env.clone();
    node_env.extend(fast_retention());
    let baton = Baton::start(&dir.join("data"), &refs(&node_env));
    let api = Api::new(&baton.url);
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            api.submit(json!({"tool": "baton__echo", "arguments": {"i": i}}))
                .await,
        );
    }
    let definition = json!({
        "name": "two",
        "steps": [
            {"id": "a", "tool": "baton__echo", "arguments": {"x": 1}},
            {"id": "b", "tool": "baton__echo", "arguments": {"y": 2}, "depends_on": ["a"]},
        ],
    });
    let r = api.post_raw("/v1/workflows", definition.to_string()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let wf = r.body["workflow_id"].as_str().unwrap().to_string();
    for id in &ids {
        assert_eq!(api.wait_final(id).await["status"], "completed");
    }
    eventually("every task archived", LONG, async || {
        let mut all = true;
        for id in &ids {
            all &= api.get(&format!("/v1/tasks/{id}")).await.body["archived"] == true;
        }
        all
    })
    .await;
    eventually("the workflow archived", LONG, async || {
        api.get(&format!("/v1/workflows/{wf}")).await.body["archived"] == true
    })
    .await;
    for (i, id) in ids.iter().enumerate() {
        let r = api.get(&format!("/v1/tasks/{id}")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["status"], "completed");
        assert_eq!(r.body["result"]["structuredContent"], json!({"i": i}));
        let r = api.get(&format!("/v1/tasks/{id}/result")).await;
        assert_eq!(r.body["result"]["structuredContent"], json!({"i": i}));
        // Another principal's archived task is as missing as any other of theirs.
        let mallory = Api::as_principal(&baton.url, "mallory");
        assert_eq!(mallory.get(&format!("/v1/tasks/{id}")).await.status, 404);
    }
    let r = api.get(&format!("/v1/workflows/{wf}")).await;
    assert_eq!(r.body["status"], "completed");
    assert_eq!(r.body["steps"].as_array().unwrap().len(), 2);
    // Not archived: no such field.
    let fresh = api
        .submit(json!({"tool": "baton__echo", "arguments": {}}))
        .await;
    assert!(
        api.get(&format!("/v1/tasks/{fresh}"))
            .await
            .body
            .get("archived")
            .is_none()
    );

    let tasks = export(&env, dir, "tasks");
    let mut seen: Vec<String> = tasks
        .iter()
        .map(|l| l["task"]["id"].as_str().unwrap().to_string())
        .filter(|id| *id != fresh)
        .collect();
    seen.sort();
    let mut expect = ids.clone();
    expect.sort();
    assert_eq!(seen, expect, "each task once");
    assert!(
        tasks
            .iter()
            .all(|l| l["kind"] == "task" && l["events"].is_array())
    );
    let workflows = export(&env, dir, "workflows");
    assert_eq!(workflows.len(), 1);
    assert_eq!(workflows[0]["workflow"]["id"], json!(wf));
    assert_eq!(workflows[0]["steps"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn sqlite_archives_to_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("archive").display());
    round_trip(vec![("BATON_ARCHIVE__URL", url)], dir.path()).await;
    let objects: Vec<_> = walk(&dir.path().join("archive"));
    assert!(
        objects
            .iter()
            .any(|p| p.contains("tasks/day=") && p.ends_with(".jsonl.zst")),
        "{objects:?}"
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(walk(&p));
        } else {
            found.push(p.to_string_lossy().to_string());
        }
    }
    found
}

#[tokio::test]
async fn sqlite_archives_to_s3() {
    let moto = Moto::start("archive-sqlite").await;
    let dir = tempfile::tempdir().unwrap();
    round_trip(moto.env("archive-sqlite"), dir.path()).await;
}

#[tokio::test]
async fn postgres_archives_to_s3() {
    let pg = PgSchema::create();
    let moto = Moto::start("archive-pg").await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = moto.env("archive-pg");
    env.extend(pg.env());
    round_trip(env, dir.path()).await;
}

/// The node is killed while an object is being written (the S3 server stopped mid
/// request): after a restart, the batch is written again to the same object and every
/// task is in the archive exactly once.
#[tokio::test]
async fn a_node_killed_while_archiving_loses_and_repeats_nothing() {
    let moto = Moto::start("archive-crash").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut env = moto.env("archive-crash");
    env.extend(fast_retention());
    // The object store hangs from now on: the first batch's put will not return.
    moto.signal("STOP");
    let baton = Baton::start(&data, &refs(&env));
    let api = Api::new(&baton.url);
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            api.submit(json!({"tool": "baton__echo", "arguments": {"i": i}}))
                .await,
        );
    }
    for id in &ids {
        api.wait_final(id).await;
    }
    let db = data.join("baton.db");
    eventually("a batch is being written", LONG, async || {
        sqlite_query(
            &db,
            "SELECT count(*) FROM archive_batches WHERE state = 'writing'",
            &[],
        ) == ["1"]
    })
    .await;
    baton.kill9();
    moto.signal("CONT");
    let batch = sqlite_query(
        &db,
        "SELECT path FROM archive_batches WHERE state = 'writing'",
        &[],
    );
    assert_eq!(batch.len(), 1);

    let baton = Baton::start(&data, &refs(&env));
    let api = Api::new(&baton.url);
    eventually("every task archived", LONG, async || {
        let mut all = true;
        for id in &ids {
            all &= api.get(&format!("/v1/tasks/{id}")).await.body["archived"] == true;
        }
        all
    })
    .await;
    // The batch was finished, not replaced (later tasks may have made more batches).
    assert_eq!(
        sqlite_query(
            &db,
            "SELECT state FROM archive_batches WHERE path = ?",
            &[&batch[0]]
        ),
        ["done"]
    );
    let lines = export(&env, dir.path(), "tasks");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for l in &lines {
        *seen
            .entry(l["task"]["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), ids.len(), "none lost: {seen:?}");
    assert!(seen.values().all(|n| *n == 1), "none twice: {seen:?}");
}

/// The export's refusals say what is wrong.
#[test]
fn export_refuses_bad_input_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(baton_bin())
            .args(["archive", "export"])
            .args(args)
            .env_remove("BATON_ARCHIVE__URL")
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run(&["--since", "2020-01-01"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no archive is configured"), "{err}");
    let url = format!("file://{}", dir.path().join("a").display());
    let env = [("BATON_ARCHIVE__URL", url.as_str())];
    let (code, err) = run(&["--since", "last tuesday"], &env);
    assert_eq!(code, Some(2));
    assert!(err.contains("last tuesday"), "{err}");
    let (code, err) = run(&["--since", "2027-01-02", "--until", "2027-01-01"], &env);
    assert_eq!(code, Some(2));
    assert!(err.contains("--until"), "{err}");
    let (code, err) = run(
        &["--since", "2020-01-01"],
        &[("BATON_ARCHIVE__URL", "ftp://x/y")],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("archive.url"), "{err}");
    // An empty archive exports nothing, successfully.
    let (code, err) = run(&["--since", "2020-01-01", "--until", "2030-01-01"], &env);
    assert_eq!(code, Some(0), "{err}");
}

/// A result larger than `tasks.offload_above` is kept in object storage and read back
/// whole: by `GET /v1/tasks/{id}` and, streamed, by `GET /v1/tasks/{id}/result`; the
/// store keeps only the reference. Returns the task id.
async fn large_result_round_trip(env: &[(&'static str, String)], dir: &Path) -> String {
    let baton = Baton::start(&dir.join("data"), &refs(env));
    let api = Api::new(&baton.url);
    // Over a MiB of rows, and twice that as the result: over the 1 MiB default.
    let rows: Vec<Value> = (0..25_000)
        .map(|i| json!({"id": i, "name": format!("customer number {i}"), "score": i * 7 % 1000}))
        .collect();
    let arguments = json!({"rows": rows});
    assert!(arguments.to_string().len() > 1024 * 1024);
    let id = api
        .submit(json!({"tool": "baton__echo", "arguments": arguments}))
        .await;
    let t = api.wait_final(&id).await;
    assert_eq!(t["status"], "completed", "{}", t["error"]);
    assert_eq!(
        t["result"]["structuredContent"], arguments,
        "read back whole"
    );
    let r = api.get(&format!("/v1/tasks/{id}/result")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["result"]["structuredContent"], arguments,
        "streamed whole"
    );
    assert_eq!(r.body["status"], "completed");
    assert_eq!(r.body["task_id"], id.as_str());
    id
}

#[tokio::test]
async fn large_results_go_to_a_directory_beside_an_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let id = large_result_round_trip(&[], dir.path()).await;
    let object = dir.path().join(format!("data/payloads/{id}/result-1.json"));
    assert!(object.exists(), "{}", object.display());
    let stored = sqlite_query(
        &dir.path().join("data/baton.db"),
        "SELECT result FROM tasks WHERE id = ?",
        &[&id],
    );
    assert!(stored[0].contains("baton/payload"), "{stored:?}");
    assert!(stored[0].len() < 1000, "only the reference is in the store");
}

#[tokio::test]
async fn large_results_go_to_s3_on_postgres() {
    let pg = PgSchema::create();
    let moto = Moto::start("payloads-pg").await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = moto.env("payloads-pg");
    env.extend(pg.env());
    let id = large_result_round_trip(&env, dir.path()).await;
    let listing = reqwest::get(format!(
        "{}/payloads-pg?list-type=2&prefix=archive/payloads/",
        moto.endpoint
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        listing.contains(&format!("archive/payloads/{id}/result-1.json")),
        "{listing}"
    );
}

/// A result over `tasks.max_result_bytes` fails its task with the limit named: nothing is
/// stored cut short.
#[tokio::test]
async fn a_result_over_the_limit_fails_its_task_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start(
        &dir.path().join("data"),
        &[("BATON_TASKS__MAX_RESULT_BYTES", "1100000")],
    );
    let api = Api::new(&baton.url);
    let id = api
        .submit(json!({"tool": "baton__echo", "arguments": {"blob": "y".repeat(1_200_000)}}))
        .await;
    let t = api.wait_final(&id).await;
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["error"]["code"], "result_too_large");
    let message = t["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("more than tasks.max_result_bytes (1100000 bytes)"),
        "{message}"
    );
    assert_eq!(t["attempt"], 1, "not retried: another attempt cannot help");
}
