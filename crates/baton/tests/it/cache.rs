//! The result cache on the real binary, with the test server as the upstream (its state
//! directory counts the calls it really got): hits, misses, the time to live, bypass and
//! refresh, principals kept apart, invalidation by hand and by a changed schema, metrics
//! and analytics, and single-flight of 50 identical calls on SQLite and across two
//! PostgreSQL nodes.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Api, Baton, PgSchema, eventually, testserver_bin, wait_healthy};
use crate::mcp_protocol::Mcp;

const LONG: Duration = Duration::from_secs(30);

/// How many calls of `slow` with `id` the test server got.
fn calls(state: &Path, id: &str) -> usize {
    std::fs::read_to_string(state.join(format!("slow-{id}.started")))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn config(state: &Path, extra: &str) -> String {
    format!(
        "[[servers]]\nname = \"test\"\ncommand = \"{}\"\nargs = [\"--state-dir\", \"{}\"]\ncache = \"1h\"\n\n\
         [cache.tools]\n\"test__slow\" = \"3s\"\n\"test__echo\" = false\n{extra}",
        testserver_bin().display(),
        state.display()
    )
}

async fn run(api: &Api, body: Value) -> Value {
    let r = api.post("/v1/tasks", body).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["task_id"].as_str().unwrap().to_string();
    let t = api.wait_final(&id).await;
    assert_eq!(t["status"], "completed", "{t}");
    t
}

fn slow(id: &str) -> Value {
    json!({"tool": "test__slow", "arguments": {"duration_ms": 50, "steps": 1, "id": id}})
}

#[tokio::test]
async fn cached_results_answer_identical_calls_until_they_expire_or_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let baton = Baton::start_configured(dir.path(), &config(&state, ""), &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;

    let first = run(&api, slow("a")).await;
    assert!(first.get("cached_from").is_none(), "{first}");
    assert_eq!(calls(&state, "a"), 1);

    // The same call, its arguments written in another order: answered at once.
    let r = api
        .post(
            "/v1/tasks",
            json!({"tool": "test__slow", "arguments": {"id": "a", "steps": 1, "duration_ms": 50}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.body["status"], "completed",
        "answered by the submission: {}",
        r.body
    );
    assert_eq!(r.body["cached_from"], first["task_id"]);
    let hit = api.task(r.body["task_id"].as_str().unwrap()).await;
    assert_eq!(hit["result"], first["result"]);
    assert_eq!(hit["cached_from"], first["task_id"]);
    let result = api
        .get(&format!(
            "/v1/tasks/{}/result",
            hit["task_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        result.body["cached_from"], first["task_id"],
        "{}",
        result.body
    );
    assert_eq!(calls(&state, "a"), 1, "the tool was not called again");

    // Another principal's identical call is its own.
    let other = Api::as_principal(&baton.url, "someone-else");
    let theirs = run(&other, slow("a")).await;
    assert!(theirs.get("cached_from").is_none(), "{theirs}");
    assert_eq!(calls(&state, "a"), 2);

    // Bypass calls the tool and leaves the cache as it was; refresh calls it and its
    // result answers from then on.
    let mut body = slow("a");
    body["cache"] = json!("bypass");
    let bypassed = run(&api, body).await;
    assert!(bypassed.get("cached_from").is_none());
    assert_eq!(calls(&state, "a"), 3);
    assert_eq!(run(&api, slow("a")).await["cached_from"], first["task_id"]);
    let mut body = slow("a");
    body["cache"] = json!("refresh");
    let refreshed = run(&api, body).await;
    assert!(refreshed.get("cached_from").is_none());
    assert_eq!(calls(&state, "a"), 4);
    assert_eq!(
        run(&api, slow("a")).await["cached_from"],
        refreshed["task_id"]
    );
    let mut body = slow("a");
    body["cache"] = json!("sometimes");
    let bad = api.post("/v1/tasks", body).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.error_message().contains("cache"), "{}", bad.body);

    // `[cache.tools] "test__echo" = false` beats the server's `cache = "1h"`.
    for _ in 0..2 {
        let t = run(
            &api,
            json!({"tool": "test__echo", "arguments": {"text": "x"}}),
        )
        .await;
        assert!(t.get("cached_from").is_none(), "{t}");
    }
    // The server's setting caches its other tools.
    let add = json!({"tool": "test__add", "arguments": {"a": 1, "b": 2}});
    let sum = run(&api, add.clone()).await;
    assert_eq!(run(&api, add).await["cached_from"], sum["task_id"]);

    // Past the time to live (3 s), the call runs again.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let expired = run(&api, slow("a")).await;
    assert!(expired.get("cached_from").is_none(), "{expired}");
    assert_eq!(calls(&state, "a"), 5);

    // Dropped by hand: the next call runs.
    let r = api.delete("/v1/cache?tool=test__slow").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"tool": "test__slow", "dropped": 1}));
    let after = run(&api, slow("a")).await;
    assert!(after.get("cached_from").is_none(), "{after}");
    assert_eq!(calls(&state, "a"), 6);
    let r = api.delete("/v1/cache?tool=").await;
    assert_eq!(r.status, 400, "{}", r.body);
    // The CLI: a refresh through `baton submit`, then `baton cache drop`.
    let out = crate::common::cli(
        &baton.url,
        &[
            "submit",
            "test__slow",
            r#"{"duration_ms": 50, "steps": 1, "id": "a"}"#,
            "--cache",
            "refresh",
            "--wait",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(calls(&state, "a"), 7);
    let out = crate::common::cli(&baton.url, &["cache", "drop", "--tool", "test__slow"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The call made after the last drop, and the refresh.
    assert_eq!(text.trim(), "test__slow: 2 cached results dropped");
    let out = crate::common::cli(&baton.url, &["cache", "drop"]);
    assert_eq!(out.status.code(), Some(2), "--tool or --all is required");

    // Metrics and analytics count hits and misses.
    let text = reqwest::get(format!("{}/metrics", baton.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |outcome: &str| -> f64 {
        text.lines()
            .find(|l| {
                l.starts_with("baton_cache_lookups_total{")
                    && l.contains(&format!("outcome=\"{outcome}\""))
                    && l.contains("tool=\"test__slow\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {outcome} count in\n{text}"))
    };
    assert_eq!(count("hit"), 3.0);
    // The other principal's call was a miss too; bypassing is neither.
    assert_eq!(
        count("miss"),
        6.0,
        "first, theirs, refreshed, expired, after, refreshed by the CLI"
    );
    // The local operator sees every principal's figures.
    let a = api.get("/v1/analytics?group_by=tool").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let tool = a.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "test__slow")
        .unwrap_or_else(|| panic!("{}", a.body));
    assert_eq!(tool["cache_hits"], 3, "{tool}");
    assert_eq!(tool["cache_misses"], 6, "{tool}");
}

/// A tool whose input schema changes (the server lists its tools again) no longer answers
/// from results of the old one.
#[tokio::test]
async fn a_changed_schema_drops_the_tools_cached_results() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let baton = Baton::start_configured(dir.path(), &config(&state, ""), &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;
    run(
        &api,
        json!({"tool": "test__add_tool", "arguments": {"name": "dyn"}}),
    )
    .await;
    let call = json!({"tool": "test__dyn", "arguments": {"text": "hi"}});
    let mut first = None;
    eventually("the new tool is listed", LONG, async || {
        let r = api.post("/v1/tasks", call.clone()).await;
        first = r.body["task_id"].as_str().map(str::to_string);
        r.status == 202
    })
    .await;
    let first = api.wait_final(&first.unwrap()).await;
    let again = run(&api, call.clone()).await;
    assert_eq!(
        again["cached_from"], first["task_id"],
        "cached before the change"
    );
    // Version 1 of the tool has another input schema.
    run(
        &api,
        json!({"tool": "test__add_tool", "arguments": {"name": "dyn", "version": 1}}),
    )
    .await;
    eventually("the change drops the cached result", LONG, async || {
        run(&api, call.clone()).await.get("cached_from").is_none()
    })
    .await;
}

async fn single_flight(apis: &[Api], state: &Path) {
    let body = json!({"tool": "test__slow",
                      "arguments": {"duration_ms": 1500, "steps": 3, "id": "sf"}});
    let submits = (0..50).map(|i| {
        let api = apis[i % apis.len()].clone();
        let body = body.clone();
        async move {
            let r = api.post("/v1/tasks", body).await;
            assert_eq!(r.status, 202, "{}", r.body);
            r.body
        }
    });
    let tasks = futures::future::join_all(submits).await;
    let waiting: Vec<&Value> = tasks
        .iter()
        .filter(|t| t.get("waiting_for").is_some())
        .collect();
    assert_eq!(waiting.len(), 49, "all but one wait: {tasks:?}");
    let leader = tasks
        .iter()
        .find(|t| t.get("waiting_for").is_none())
        .unwrap()["task_id"]
        .clone();
    assert!(waiting.iter().all(|t| t["waiting_for"] == leader));
    let follower = waiting[0]["task_id"].as_str().unwrap();
    let seen = apis[0].task(follower).await;
    if seen["status"] == "pending" {
        assert!(
            seen["waiting_reason"]
                .as_str()
                .unwrap_or_default()
                .contains("identical call"),
            "{seen}"
        );
    }
    let finals = futures::future::join_all(tasks.iter().enumerate().map(|(i, t)| {
        let api = apis[i % apis.len()].clone();
        let id = t["task_id"].as_str().unwrap().to_string();
        async move { api.wait_final(&id).await }
    }))
    .await;
    let result = &finals[0]["result"];
    for f in &finals {
        assert_eq!(f["status"], "completed", "{f}");
        assert_eq!(&f["result"], result);
        if f["task_id"] != leader {
            assert_eq!(f["cached_from"], leader, "{f}");
            assert_eq!(f["attempt"], 0, "a follower never ran: {f}");
        }
    }
    assert_eq!(calls(state, "sf"), 1, "one call reached the server");
}

#[tokio::test]
async fn fifty_identical_calls_make_one_upstream_call() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let baton = Baton::start_configured(dir.path(), &config(&state, ""), &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;
    single_flight(&[api], &state).await;
}

/// Two nodes of one PostgreSQL cluster, each with its own test server process sharing one
/// state directory: the calls submitted through both make one call in all.
#[tokio::test]
async fn fifty_identical_calls_across_a_postgres_cluster_make_one_upstream_call() {
    let pg = PgSchema::create();
    let env = pg.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let a = Baton::start_configured(&a_dir, &config(&state, ""), &env);
    let b = Baton::start_configured(&b_dir, &config(&state, ""), &env);
    let apis = [Api::new(&a.url), Api::new(&b.url)];
    for api in &apis {
        wait_healthy(api, "test").await;
    }
    single_flight(&apis, &state).await;
    drop((a, b));
}

/// Over MCP: a plain `tools/call` uses the cache, `_meta["baton/cache"]` bypasses it (a
/// bad value is a clear error), and the `cache_invalidate` tool drops a tool's entries.
#[tokio::test]
async fn mcp_calls_use_the_cache_and_can_drop_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let baton = Baton::start_configured(dir.path(), &config(&state, ""), &[]);
    wait_healthy(&Api::new(&baton.url), "test").await;
    let mcp = Mcp::new(&baton.url);
    let s = mcp.initialize("2025-11-25", json!({})).await;
    let args = json!({"duration_ms": 50, "steps": 1, "id": "m"});
    let first = mcp.call_tool(&s, 1, "test__slow", args.clone()).await;
    assert!(first["content"].is_array(), "{first}");
    let second = mcp.call_tool(&s, 2, "test__slow", args.clone()).await;
    assert_eq!(first, second);
    assert_eq!(calls(&state, "m"), 1);
    let call = |id: u64, mode: Value| {
        mcp.legacy(
            &s,
            id,
            "tools/call",
            json!({"name": "test__slow", "arguments": args.clone(), "_meta": {"baton/cache": mode}}),
        )
    };
    let bypassed = call(3, json!("bypass")).await;
    assert!(
        bypassed.last()["result"]["content"].is_array(),
        "{:?}",
        bypassed.last()
    );
    assert_eq!(calls(&state, "m"), 2);
    let bad = call(4, json!("never")).await;
    assert_eq!(bad.last()["error"]["code"], -32602, "{:?}", bad.last());
    assert!(
        bad.last()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("baton/cache"),
        "{:?}",
        bad.last()
    );
    let dropped = mcp
        .call_tool(&s, 5, "cache_invalidate", json!({"tool": "test__slow"}))
        .await;
    assert_eq!(dropped["structuredContent"]["dropped"], 1, "{dropped}");
    mcp.call_tool(&s, 6, "test__slow", args.clone()).await;
    assert_eq!(calls(&state, "m"), 3, "dropped: the call ran");
}

/// Large arguments and results are stored compressed in the node's SQLite file, and every
/// reader gets them back whole.
#[tokio::test]
async fn large_payloads_are_stored_compressed_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let baton = Baton::start(&data, &[]);
    let api = Api::new(&baton.url);
    let rows: Vec<Value> = (0..3000)
        .map(|i| json!({"id": i, "customer": format!("customer {i}"), "plan": "pro", "active": i % 2 == 0}))
        .collect();
    let arguments = json!({"rows": rows});
    let plain = arguments.to_string().len();
    let id = api
        .submit(json!({"tool": "baton__echo", "arguments": arguments}))
        .await;
    let t = api.wait_final(&id).await;
    assert_eq!(t["status"], "completed", "{t}");
    assert_eq!(t["arguments"], arguments);
    assert_eq!(t["result"]["structuredContent"], arguments);
    let r = api.get(&format!("/v1/tasks/{id}/result")).await;
    assert_eq!(r.body["result"]["structuredContent"], arguments);
    let row = crate::common::sqlite_query(
        &data.join("baton.db"),
        "SELECT arguments, length(arguments_zstd), length(result_zstd), length(result) FROM tasks WHERE id = ?",
        &[&id],
    );
    let fields: Vec<&str> = row[0].split('|').collect();
    assert_eq!(fields[0], "{}", "only a stub in the JSON column");
    let (args_z, result_z): (usize, usize) =
        (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    assert!(args_z * 5 < plain, "{args_z} compressed bytes for {plain}");
    assert!(
        result_z * 5 < plain,
        "{result_z} compressed bytes for {plain}"
    );
    assert!(fields[3].parse::<usize>().unwrap() < 100, "{row:?}");
}
