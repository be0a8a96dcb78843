//! Faults against the real binary: kill -9 under load, graceful stop, a stalled node,
//! and a database that is locked, full or read-only.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Api, Baton, baton_bin, eventually, pid_alive, wait_exit};
use baton_core::{EventKind, TaskId, TaskStatus};
use baton_store::Store;
use baton_store::sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;
use tokio::sync::Mutex;

async fn open_store(data: &Path) -> SqliteStore {
    SqliteStore::open(&SqliteOptions::new(data.join("baton.db")))
        .await
        .unwrap()
}

/// Every task's events, read from the database file itself.
async fn events_by_task(
    store: &SqliteStore,
    ids: &[TaskId],
) -> HashMap<TaskId, Vec<baton_core::TaskEvent>> {
    let mut out = HashMap::new();
    for id in ids {
        out.insert(*id, store.task_events(*id, 0, 10_000).await.unwrap());
    }
    out
}

#[tokio::test]
async fn kill_9_under_load_loses_nothing_and_never_reruns_a_completed_task() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let baton = Baton::start(&data, &[]);
    let api = Api::new(&baton.url);
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop_at = Instant::now() + Duration::from_millis(1500);
    let mut clients = Vec::new();
    for c in 0..64 {
        let api = api.clone();
        let accepted = accepted.clone();
        clients.push(tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                let body = if n.is_multiple_of(4) {
                    json!({"tool": "baton__sleep", "arguments": {"ms": 300, "steps": 3}})
                } else {
                    json!({"tool": "baton__echo", "arguments": {"client": c, "n": n}})
                };
                n += 1;
                let sent = api
                    .http
                    .post(format!("{}/v1/tasks", api.base))
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 202 => {
                        let v: serde_json::Value = r.json().await.unwrap();
                        accepted
                            .lock()
                            .await
                            .push(v["task_id"].as_str().unwrap().to_string());
                    }
                    // The server died mid-request: that submission was never acknowledged.
                    _ => return,
                }
                if Instant::now() > stop_at + Duration::from_secs(10) {
                    return;
                }
            }
        }));
    }
    // The crash comes in the middle of real load: after 1.5 s of it (part of the
    // scenario), and once more than 500 submissions were acknowledged (on a busy machine
    // that can take longer; the clients keep going for 10 s more).
    tokio::time::sleep_until(stop_at.into()).await;
    eventually(
        "more than 500 submissions acknowledged",
        Duration::from_secs(8),
        async || accepted.lock().await.len() > 500,
    )
    .await;
    baton.kill9();
    for c in clients {
        c.await.unwrap();
    }
    let accepted = accepted.lock().await.clone();
    assert!(
        accepted.len() > 500,
        "load was real: {} accepted",
        accepted.len()
    );

    // Restart on the same data directory: the node re-queues its crashed run's leases
    // at once, so everything finishes.
    let baton = Baton::start(&data, &[]);
    let api = Api::new(&baton.url);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let q = api.get("/v1/queues").await;
        if q.body["active_tasks"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tasks left unfinished: {}",
            q.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(baton.terminate().success());

    let store = open_store(&data).await;
    let ids: Vec<TaskId> = accepted.iter().map(|s| s.parse().unwrap()).collect();
    let mut completed = 0;
    for id in &ids {
        let t = store
            .get_task(*id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged task {id} is lost"));
        assert_eq!(t.status, TaskStatus::Completed, "{id}: {t:?}");
        completed += 1;
    }
    let events = events_by_task(&store, &ids).await;
    let mut rerun = 0;
    for (id, evs) in &events {
        let done: Vec<usize> = evs
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == EventKind::Completed)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(done.len(), 1, "{id} completed exactly once: {evs:?}");
        assert!(
            evs[done[0] + 1..]
                .iter()
                .all(|e| e.kind != EventKind::Started),
            "{id} started again after completing: {evs:?}"
        );
        if evs.iter().filter(|e| e.kind == EventKind::Started).count() > 1 {
            rerun += 1;
        }
    }
    eprintln!(
        "{} acknowledged, {completed} completed once each, {rerun} re-run after the crash",
        ids.len()
    );
    store.close().await;
}

#[tokio::test]
async fn sigterm_drains_and_hands_unfinished_work_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let baton = Baton::start(&data, &[("BATON_WORKERS__SHUTDOWN_GRACE", "1s")]);
    let api = Api::new(&baton.url);
    let slow = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 60000, "steps": 60}}))
        .await;
    let quick = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 300}}))
        .await;
    api.wait_status(&slow, "running").await;
    api.wait_status(&quick, "running").await;
    let status = baton.terminate();
    assert!(status.success(), "clean exit: {status:?}");
    let store = open_store(&data).await;
    let q = store
        .get_task(quick.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        q.status,
        TaskStatus::Completed,
        "finished inside the grace period"
    );
    let s = store
        .get_task(slow.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (s.status, s.attempt),
        (TaskStatus::Pending, 0),
        "handed back, attempt not counted"
    );
    store.close().await;
    let baton = Baton::start(&data, &[]);
    let api = Api::new(&baton.url);
    let again = api.wait_status(&slow, "running").await;
    assert_eq!(again["attempt"], 1);
    api.delete(&format!("/v1/tasks/{slow}")).await;
    assert_eq!(api.wait_final(&slow).await["status"], "cancelled");
}

#[tokio::test]
async fn a_second_node_cannot_share_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Baton::start(&data, &[]);
    let out = Command::new(baton_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use by another Baton process") && err.contains(&first.pid().to_string()),
        "{err}"
    );
    // The first node is unaffected.
    let api = Api::new(&first.url);
    let id = api.submit(json!({"tool": "baton__echo"})).await;
    assert_eq!(api.wait_final(&id).await["status"], "completed");
}

#[tokio::test]
async fn a_stalled_node_loses_its_lease_and_cannot_complete_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let baton = Baton::start(&data, &[("BATON_WORKERS__LEASE", "2s")]);
    let api = Api::new(&baton.url);
    let id = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 2500, "steps": 5}}))
        .await;
    api.wait_status(&id, "running").await;
    // The run is under way: the tool has reported its first step.
    eventually(
        "the first step reported",
        Duration::from_secs(30),
        async || {
            api.task(&id).await["progress"]
                .as_f64()
                .is_some_and(|p| p > 0.0)
        },
    )
    .await;
    // Freeze the whole node for longer than its lease, then let it go on (the sleep is
    // the stall itself).
    baton.signal("STOP");
    tokio::time::sleep(Duration::from_secs(4)).await;
    baton.signal("CONT");
    let t = api.wait_final(&id).await;
    assert_eq!(t["status"], "completed");
    let r = api.get(&format!("/v1/tasks/{id}")).await;
    assert_eq!(
        r.body["attempt"], 2,
        "the stalled attempt could not complete: {}",
        r.body
    );
    let events = api.sse_events(&id, None).await;
    let kinds: Vec<&str> = events.iter().map(|(_, k, _)| k.as_str()).collect();
    assert!(kinds.contains(&"lease_expired"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "completed").count(),
        1,
        "{kinds:?}"
    );
    let completed = events.iter().find(|(_, k, _)| k == "completed").unwrap();
    assert_eq!(
        completed.2["attempt"], 2,
        "the completion came from the new attempt"
    );
}

/// Holds SQLite's write lock on `db` from another process until dropped.
struct ForeignLock(std::process::Child);

impl ForeignLock {
    fn take(db: &Path) -> ForeignLock {
        let script = "import sqlite3, sys\n\
            c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n\
            c.execute('BEGIN EXCLUSIVE')\n\
            print('locked', flush=True)\n\
            sys.stdin.read()\n\
            c.execute('ROLLBACK')\n";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed for this test");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        ForeignLock(child)
    }
}

impl Drop for ForeignLock {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_database_locked_by_another_process_gives_503_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let baton = Baton::start(&data, &[("BATON_STORE__BUSY_TIMEOUT", "300ms")]);
    let api = Api::new(&baton.url);
    let before = api
        .submit(json!({"tool": "baton__echo", "arguments": {"before": true}}))
        .await;
    let before_view = api.wait_final(&before).await;

    let lock = ForeignLock::take(&data.join("baton.db"));
    let r = api.post("/v1/tasks", json!({"tool": "baton__echo"})).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.error_message().contains("locked"), "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
    // Reads still work while another process holds the write lock.
    assert_eq!(api.task(&before).await, before_view);
    drop(lock);

    let after = api
        .submit(json!({"tool": "baton__echo", "arguments": {"after": true}}))
        .await;
    assert_eq!(api.wait_final(&after).await["status"], "completed");
    let all = api.get("/v1/tasks?limit=100").await;
    assert_eq!(
        all.body["tasks"].as_array().unwrap().len(),
        2,
        "the refused submission stored nothing"
    );
}

/// Runs `script` (with `$BATON`, `$DIR` and `$OUT` set) in its own mount namespace, so it
/// can mount a small or read-only filesystem without touching the host.
fn in_mount_namespace(script: &str, dir: &Path, out: &Path) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
        .env("BATON", baton_bin())
        .env("DIR", dir)
        .env("OUT", out);
    cmd
}

#[tokio::test]
async fn a_full_disk_gives_503_and_corrupts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("out"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let script = r#"set -e
        mount -t tmpfs -o size=3m tmpfs "$DIR"
        "$BATON" serve --listen 127.0.0.1:0 --data-dir "$DIR" &
        pid=$!
        echo "$pid" > "$OUT/pid"
        wait "$pid" || echo "exit $?" > "$OUT/exit"
        python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' "$DIR/baton.db" > "$OUT/integrity"
        cp "$DIR"/baton.db* "$OUT"/"#;
    let baton = Baton::spawn(
        in_mount_namespace(script, &data, &out),
        &dir.path().join("baton.log"),
    );
    let api = Api::new(&baton.url);
    api.post("/v1/queues/default/pause", json!(null)).await;
    // Random text, so the store's compression cannot make it small.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let blob: String = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    let mut accepted = Vec::new();
    let full = loop {
        let r = api
            .post(
                "/v1/tasks",
                json!({"tool": "baton__echo", "arguments": {"blob": blob}}),
            )
            .await;
        match r.status {
            202 => accepted.push(r.body["task_id"].as_str().unwrap().to_string()),
            _ => break r,
        }
        assert!(accepted.len() < 100, "the 3 MB disk never filled");
    };
    assert_eq!(full.status, 503, "{}", full.body);
    assert!(full.error_message().contains("full"), "{}", full.body);
    assert!(!accepted.is_empty());
    // What was acknowledged is still readable, and small writes fail cleanly too.
    for id in &accepted {
        assert_eq!(api.task(id).await["status"], "pending");
    }
    let pid = std::fs::read_to_string(out.join("pid")).unwrap();
    Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    let ns = baton;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !out.join("baton.db").exists() {
        assert!(
            Instant::now() < deadline,
            "namespace script did not finish: {}",
            ns.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The script still copies the WAL and exits after the database: wait for the end of
    // it (dropping `ns` kills whatever is still running).
    eventually(
        "the namespace script exited",
        Duration::from_secs(60),
        async || !pid_alive(ns.pid()),
    )
    .await;
    drop(ns);
    assert_eq!(
        std::fs::read_to_string(out.join("integrity"))
            .unwrap()
            .trim(),
        "ok"
    );
    // Every acknowledged task is in the database the full disk held.
    let store = open_store(&out).await;
    for id in &accepted {
        let t = store.get_task(id.parse().unwrap()).await.unwrap();
        assert!(t.is_some(), "acknowledged task {id} is missing");
    }
    store.close().await;
}

#[tokio::test]
async fn a_read_only_data_directory_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let baton = Baton::start(&data, &[]);
    let api = Api::new(&baton.url);
    let id = api
        .submit(json!({"tool": "baton__echo", "arguments": {"keep": 1}}))
        .await;
    api.wait_final(&id).await;
    assert!(baton.terminate().success());
    let before = std::fs::read(data.join("baton.db")).unwrap();

    let script = r#"set -e
        mount --bind "$DIR" "$DIR"
        mount -o remount,ro,bind "$DIR"
        exec "$BATON" serve --listen 127.0.0.1:0 --data-dir "$DIR""#;
    let mut cmd = in_mount_namespace(script, &data, dir.path());
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(
        std::fs::read(data.join("baton.db")).unwrap(),
        before,
        "the database is untouched"
    );

    let baton = Baton::start(&data, &[]);
    assert_eq!(Api::new(&baton.url).task(&id).await["status"], "completed");
}
