//! Schedules on the real binary: ticks fire once each (never early), across a restart and
//! across two nodes sharing PostgreSQL; missed ticks are skipped; `overlap: skip`
//! does not pile up on a paused queue; bad crons and zones are refused with the reason.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Api, Baton, PgSchema, eventually};

const LONG: Duration = Duration::from_secs(30);

fn every_second(name: &str, extra: Value) -> Value {
    let mut body = json!({
        "name": name,
        "cron": "* * * * * *",
        "task": {"tool": "baton__echo", "arguments": {"from": name}}
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

async fn runs(api: &Api, name: &str) -> Vec<Value> {
    let r = api
        .get(&format!("/v1/schedules/{name}/runs?limit=1000"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["runs"].as_array().unwrap().clone()
}

fn ticks(runs: &[Value]) -> Vec<i64> {
    let mut t: Vec<i64> = runs
        .iter()
        .map(|r| {
            baton_core::Timestamp::parse_rfc3339(r["tick_at"].as_str().unwrap())
                .unwrap()
                .as_millis()
        })
        .collect();
    t.sort();
    t
}

/// Each run's task exists, was made for its tick and no earlier, and no tick has two
/// tasks: the schedule's tasks are exactly its runs.
async fn runs_are_the_tasks(api: &Api, name: &str) -> Vec<i64> {
    let runs = runs(api, name).await;
    let tasks = api.get("/v1/tasks?tool=baton__echo&limit=1000").await.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["arguments"]["from"] == name)
        .count();
    assert_eq!(tasks, runs.len(), "one task per fired tick: {runs:?}");
    for r in &runs {
        let task = api.task(r["task_id"].as_str().unwrap()).await;
        let created =
            baton_core::Timestamp::parse_rfc3339(task["created_at"].as_str().unwrap()).unwrap();
        let tick = baton_core::Timestamp::parse_rfc3339(r["tick_at"].as_str().unwrap()).unwrap();
        assert!(created >= tick, "fired early: {task} for {r}");
    }
    let t = ticks(&runs);
    let mut distinct = t.clone();
    distinct.dedup();
    assert_eq!(distinct, t, "a tick fired twice");
    t
}

#[tokio::test]
async fn schedules_fire_once_per_tick_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let baton = Baton::start(&data, &[]);
    let api = Api::new(&baton.url);

    // Bad input is refused with the reason; nothing is stored.
    for (body, field, status) in [
        (
            every_second("bad", json!({"cron": "61 * * * *"})),
            "cron",
            400,
        ),
        (
            every_second("bad", json!({"timezone": "Mars/Olympus"})),
            "timezone",
            400,
        ),
        (
            json!({"name": "bad", "cron": "* * * * *", "task": {"tool": "nope__nothing"}}),
            "nope__nothing",
            400,
        ),
        (
            json!({"name": "bad", "cron": "* * * * *", "task": {"tool": "baton__echo", "idempotency_key": "k"}}),
            "idempotency_key",
            400,
        ),
        (every_second("bad name!", json!({})), "name", 400),
    ] {
        let r = api.post("/v1/schedules", body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.error_message().contains(field), "{body}: {}", r.body);
    }
    assert_eq!(api.get("/v1/schedules").await.body["schedules"], json!([]));

    let r = api
        .post("/v1/schedules", every_second("tick", json!({})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let next: Vec<&str> = r.body["next_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(next.len(), 5, "{}", r.body);
    assert!(!r.body["description"].as_str().unwrap().is_empty());
    let again = api
        .post("/v1/schedules", every_second("tick", json!({})))
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    eventually("three ticks fired", LONG, async || {
        runs(&api, "tick").await.len() >= 3
    })
    .await;
    let before = runs_are_the_tasks(&api, "tick").await;
    assert!(
        before.windows(2).all(|w| w[1] - w[0] == 1000),
        "consecutive seconds: {before:?}"
    );

    // Down for eight seconds: `catch_up: none` skips what it missed (`latest` is proven
    // against a clock the test moves, in the engine's tests).
    baton.kill9();
    let killed = baton_core::Timestamp::now().as_millis();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let starting = baton_core::Timestamp::now().as_millis();
    let baton = Baton::start(&data, &[]);
    let api = Api::new(&baton.url);
    eventually("ticks fire again", LONG, async || {
        ticks(&runs(&api, "tick").await)
            .last()
            .is_some_and(|t| *t > starting)
    })
    .await;
    let after = runs_are_the_tasks(&api, "tick").await;
    let missed: Vec<&i64> = after
        .iter()
        .filter(|t| **t > killed + 1500 && **t < starting - 1000)
        .collect();
    assert!(
        missed.is_empty(),
        "catch_up none fired missed ticks: {missed:?}"
    );

    // Paused: no ticks, no next runs; resumed: ticks again. Deleted: gone, tasks stay.
    let r = api.post("/v1/schedules/tick/pause", json!(null)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["paused"], true);
    assert_eq!(r.body["next_runs"], json!([]));
    let count = runs(&api, "tick").await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // At most the tick that was being fired as the pause landed.
    assert!(runs(&api, "tick").await.len() <= count + 1);
    let paused_count = runs(&api, "tick").await.len();
    api.post("/v1/schedules/tick/resume", json!(null)).await;
    eventually("ticks after resume", LONG, async || {
        runs(&api, "tick").await.len() > paused_count
    })
    .await;
    let r = api
        .patch("/v1/schedules/tick", json!({"cron": "0 0 1 1 *"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["next_runs"][0].as_str().unwrap().contains("-01-01T"));
    let r = api
        .patch("/v1/schedules/tick", json!({"timezone": "Nowhere"}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let task = runs(&api, "tick").await[0]["task_id"].clone();
    let r = api.delete("/v1/schedules/tick").await;
    assert_eq!(r.status, 204);
    assert_eq!(api.get("/v1/schedules/tick").await.status, 404);
    assert_eq!(
        api.task(task.as_str().unwrap()).await["status"],
        "completed"
    );
}

/// `overlap: skip` on a paused queue: the first tick's task waits, later ticks are
/// skipped rather than piling up.
#[tokio::test]
async fn overlap_skip_does_not_pile_up() {
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start(&dir.path().join("data"), &[]);
    let api = Api::new(&baton.url);
    api.submit(json!({"tool": "baton__echo", "queue": "held", "delay_ms": 600000}))
        .await;
    api.post("/v1/queues/held/pause", json!(null)).await;
    let body = json!({
        "name": "held",
        "cron": "* * * * * *",
        "overlap": "skip",
        "task": {"tool": "baton__echo", "queue": "held", "arguments": {"from": "held"}}
    });
    assert_eq!(api.post("/v1/schedules", body).await.status, 201);
    eventually("the first tick fired", LONG, async || {
        !runs(&api, "held").await.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(runs_are_the_tasks(&api, "held").await.len(), 1);
    // Once it can run, the next tick fires again.
    api.post("/v1/queues/held/resume", json!(null)).await;
    eventually("ticks resume once the run finished", LONG, async || {
        runs(&api, "held").await.len() >= 2
    })
    .await;
}

/// Two nodes share PostgreSQL and both run the scheduler: every tick still makes one task.
#[tokio::test]
async fn a_cluster_fires_each_tick_once() {
    let pg = PgSchema::create();
    let env = pg.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = Baton::start(&a_dir.path().join("data"), &env);
    let b = Baton::start(&b_dir.path().join("data"), &env);
    let api = Api::new(&a.url);
    let other = Api::new(&b.url);
    let r = api
        .post("/v1/schedules", every_second("shared", json!({})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    eventually("five ticks fired", LONG, async || {
        runs(&other, "shared").await.len() >= 5
    })
    .await;
    let t = runs_are_the_tasks(&api, "shared").await;
    assert!(
        t.windows(2).all(|w| w[1] - w[0] == 1000),
        "every second, once: {t:?}"
    );
    drop(b);
}

/// A schedule may start a workflow instead of a task: on two nodes sharing PostgreSQL,
/// each tick starts one workflow (its id derived from the tick), which runs to the end;
/// a definition that does not validate, or a task and a workflow at once, is refused.
#[tokio::test]
async fn a_workflow_schedule_starts_one_workflow_per_tick_across_a_cluster() {
    let pg = PgSchema::create();
    let env = pg.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Baton::start(&a_dir.path().join("data"), &env);
    let b = Baton::start(&b_dir.path().join("data"), &env);
    let api = Api::new(&a.url);
    let workflow = json!({
        "name": "nightly",
        "steps": [
            {"id": "fetch", "tool": "baton__echo", "arguments": {"n": 1}},
            {"id": "report", "tool": "baton__echo", "arguments": {"got": "${steps.fetch.result}"},
             "depends_on": ["fetch"]}
        ]
    });
    // Refused, with the reason, before anything is stored.
    let mut bad = workflow.clone();
    bad["steps"][1]["tool"] = json!("nowhere__tool");
    for (body, needle) in [
        (
            json!({"name": "w", "cron": "* * * * * *", "workflow": bad}),
            "report",
        ),
        (
            json!({"name": "w", "cron": "* * * * * *", "workflow": workflow,
                   "task": {"tool": "baton__echo"}}),
            "not both",
        ),
        (json!({"name": "w", "cron": "* * * * * *"}), "task"),
        (
            json!({"name": "w", "cron": "* * * * * *", "workflow": 7}),
            "workflow",
        ),
    ] {
        let r = api.post("/v1/schedules", body).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.error_message().contains(needle), "{}", r.body);
    }
    assert_eq!(api.get("/v1/schedules/w").await.status, 404);
    let r = api
        .post(
            "/v1/schedules",
            json!({"name": "w", "cron": "* * * * * *", "workflow": workflow}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["workflow"]["name"], "nightly");
    assert!(r.body.get("task").is_none(), "{}", r.body);
    let other = Api::new(&b.url);
    eventually("four ticks fired", LONG, async || {
        runs(&other, "w").await.len() >= 4
    })
    .await;
    api.post("/v1/schedules/w/pause", json!(null)).await;
    let runs = runs(&api, "w").await;
    let t = ticks(&runs);
    let mut distinct = t.clone();
    distinct.dedup();
    assert_eq!(distinct, t, "a tick fired twice");
    let ids: Vec<String> = runs
        .iter()
        .map(|r| {
            assert!(r.get("task_id").is_none(), "{r}");
            r["workflow_id"].as_str().unwrap().to_string()
        })
        .collect();
    for id in &ids {
        eventually("the workflow completes", LONG, async || {
            api.get(&format!("/v1/workflows/{id}")).await.body["status"] == "completed"
        })
        .await;
    }
    // The schedule's workflows are exactly its runs: none made twice for one tick.
    let stored = pg.query("SELECT count(*) FROM workflows WHERE name = 'nightly'");
    assert_eq!(stored, vec![runs.len().to_string()]);
    // The CLI takes a definition file.
    let file = a_dir.path().join("yearly.yaml");
    std::fs::write(
        &file,
        "name: yearly\nsteps:\n  - id: one\n    tool: baton__echo\n",
    )
    .unwrap();
    let out = crate::common::cli(
        &a.url,
        &[
            "schedules",
            "add",
            "yearly",
            "--cron",
            "0 0 1 1 *",
            "--workflow",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = api.get("/v1/schedules/yearly").await.body;
    assert_eq!(
        shown["workflow"]["steps"][0]["tool"], "baton__echo",
        "{shown}"
    );
    drop(b);
}

/// The CLI and the MCP tools manage the same schedules as the REST API.
#[tokio::test]
async fn schedules_from_the_cli_and_mcp() {
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start(&dir.path().join("data"), &[]);
    let api = Api::new(&baton.url);
    let url = baton.url.clone();
    let run = |args: &[&str]| {
        let out = crate::common::cli(&url, args);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let added = run(&[
        "schedules",
        "add",
        "nightly",
        "--cron",
        "0 3 * * *",
        "--tool",
        "baton__echo",
        "-a",
        "x=1",
        "--timezone",
        "Europe/Paris",
        "--overlap",
        "skip",
    ]);
    let added: Value = serde_json::from_str(&added).unwrap();
    assert_eq!(added["timezone"], "Europe/Paris");
    assert_eq!(added["overlap"], "skip");
    assert!(run(&["schedules"]).contains("nightly"));
    assert!(run(&["schedules", "show", "nightly"]).contains("0 3 * * *"));
    run(&["schedules", "pause", "nightly"]);
    assert_eq!(api.get("/v1/schedules/nightly").await.body["paused"], true);
    run(&["schedules", "resume", "nightly"]);
    assert_eq!(api.get("/v1/schedules/nightly").await.body["paused"], false);
    let bad = crate::common::cli(
        &url,
        &[
            "schedules",
            "add",
            "x",
            "--cron",
            "nope",
            "--tool",
            "baton__echo",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cron"));

    let mcp = crate::mcp_protocol::Mcp::new(&baton.url);
    let session = mcp.initialize("2025-11-25", json!({})).await;
    let call = |id: u64, name: &'static str, args: Value| mcp.call_tool(&session, id, name, args);
    let r = call(2, "schedule_list", json!({})).await;
    assert_eq!(
        r["structuredContent"]["schedules"][0]["name"], "nightly",
        "{r}"
    );
    let r = call(
        3,
        "schedule_update",
        json!({"name": "nightly", "cron": "0 4 * * *"}),
    )
    .await;
    assert_eq!(r["structuredContent"]["cron"], "0 4 * * *", "{r}");
    let r = call(4, "schedule_create", json!({"name": "bad", "cron": "* * * * *", "timezone": "Nowhere", "task": {"tool": "baton__echo"}})).await;
    assert_eq!(r["isError"], true, "{r}");
    let r = call(5, "schedule_delete", json!({"name": "nightly"})).await;
    assert_eq!(r["structuredContent"]["deleted"], true, "{r}");
    run(&["schedules"]);
    assert_eq!(api.get("/v1/schedules/nightly").await.status, 404);
    let gone = crate::common::cli(&url, &["schedules", "rm", "nightly"]);
    assert!(!gone.status.success());
}
