//! Workflows end to end: the real binary, real upstreams (the repo's test server and
//! server-everything), real SQLite files.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Api, Baton, cli, eventually, everything_bin, testserver_bin, wait_healthy};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);

/// A node with the test server as `t` and server-everything as `e`.
fn start(dir: &Path, env: &[(&str, &str)]) -> Baton {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let config = dir.join("baton.toml");
    std::fs::write(
        &config,
        format!(
            "[workers]\nconcurrency = 16\n\n\
             [[servers]]\nname = \"t\"\ncommand = \"{}\"\nargs = [\"--state-dir\", \"{}\"]\nmax_concurrency = 16\n\n\
             [[servers]]\nname = \"e\"\ncommand = \"{}\"\nargs = [\"stdio\"]\n",
            testserver_bin().display(),
            state.display(),
            everything_bin().display()
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().to_string();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("BATON_CONFIG", &config));
    Baton::start(&dir.join("data"), &env)
}

/// A node with the built-in tools only.
fn start_plain(dir: &Path) -> Baton {
    Baton::start(&dir.join("data"), &[])
}

async fn submit(api: &Api, definition: &str) -> String {
    let r = api.post_raw("/v1/workflows", definition.to_string()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.headers["location"].to_str().unwrap(),
        format!("/v1/workflows/{}", r.body["workflow_id"].as_str().unwrap())
    );
    r.body["workflow_id"].as_str().unwrap().to_string()
}

async fn workflow(api: &Api, id: &str) -> Value {
    let r = api.get(&format!("/v1/workflows/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Polls until the workflow is no longer running.
async fn wait_done(api: &Api, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let wf = workflow(api, id).await;
        if wf["status"] != "running" {
            return wf;
        }
        assert!(Instant::now() < deadline, "workflow never finished: {wf:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn step<'a>(wf: &'a Value, id: &str) -> &'a Value {
    wf["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {wf:#}"))
}

fn states(wf: &Value) -> HashMap<String, String> {
    wf["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step_id"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn timeline(api: &Api, id: &str) -> Vec<Value> {
    let r = api.get(&format!("/v1/workflows/{id}/timeline")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["events"].as_array().unwrap().clone()
}

/// How many times a step's task was started.
fn starts(events: &[Value], step: &str) -> usize {
    events
        .iter()
        .filter(|e| e["step_id"] == step && e["kind"] == "started")
        .count()
}

const TWENTY: &str = r#"
name: fan-out-fan-in
on_failure: fail_fast
steps:
  - { id: start, tool: t__echo, arguments: { text: go } }
  - { id: a1, tool: t__slow, depends_on: [start], arguments: { duration_ms: 600, steps: 3 } }
  - { id: a2, tool: t__slow, depends_on: [start], arguments: { duration_ms: 600, steps: 3 } }
  - { id: a3, tool: t__slow, depends_on: [start], arguments: { duration_ms: 600, steps: 3 } }
  - { id: a4, tool: t__slow, depends_on: [start], arguments: { duration_ms: 600, steps: 3 } }
  - { id: a5, tool: t__slow, depends_on: [start], arguments: { duration_ms: 600, steps: 3 } }
  - { id: a6, tool: t__slow, depends_on: [start], arguments: { duration_ms: 600, steps: 3 } }
  - id: weather
    tool: e__get-structured-content
    depends_on: [start]
    arguments: { location: Chicago }
  - id: shout
    tool: e__echo
    depends_on: [start]
    arguments: { message: "${steps.start.result.structuredContent.text}" }
  - id: long
    tool: e__trigger-long-running-operation
    depends_on: [start]
    arguments: { duration: 1, steps: 2 }
  - { id: sum1, tool: t__add, depends_on: [a1, a2, a3], arguments: { a: 1, b: 2 } }
  - id: sum2
    tool: t__add
    depends_on: [sum1, a4, a5, a6]
    arguments: { a: "${steps.sum1.result.structuredContent.sum}", b: 10 }
  - id: temp
    tool: t__echo
    depends_on: [weather]
    arguments: { text: "temperature ${steps.weather.result.structuredContent.temperature}" }
  - { id: after-long, tool: t__echo, depends_on: [long], arguments: { text: done } }
  - { id: b1, tool: t__slow, depends_on: [sum2], arguments: { duration_ms: 400, steps: 2 } }
  - { id: b2, tool: t__slow, depends_on: [sum2], arguments: { duration_ms: 400, steps: 2 } }
  - { id: b3, tool: t__slow, depends_on: [sum2], arguments: { duration_ms: 400, steps: 2 } }
  - { id: b4, tool: t__slow, depends_on: [sum2], arguments: { duration_ms: 400, steps: 2 } }
  - { id: b5, tool: t__slow, depends_on: [sum2], arguments: { duration_ms: 400, steps: 2 } }
  - id: final
    tool: t__echo
    depends_on: [b1, b2, b3, b4, b5, temp, shout, after-long]
    arguments: { text: "sum=${steps.sum2.result.structuredContent.sum} shout=${steps.shout.result.content[0].text}" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_step_dag_runs_in_dependency_order_and_in_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start(dir.path(), &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "t").await;
    wait_healthy(&api, "e").await;

    let id = submit(&api, TWENTY).await;
    let wf = wait_done(&api, &id).await;
    assert_eq!(wf["status"], "completed", "{wf:#}");
    assert_eq!(wf["progress"]["steps_total"], 20);
    assert_eq!(wf["progress"]["steps_completed"], 20);
    assert_eq!(wf["progress"]["fraction"], 1.0);

    // References were resolved from stored results, with their JSON types (sum1's sum
    // is a number, so sum2 = 3 + 10).
    let result = api.get(&format!("/v1/workflows/{id}/result")).await;
    assert_eq!(result.status, 200, "{}", result.body);
    let final_text = result.body["outputs"]["final"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    // (the test server reports sums as floats: 13.0)
    assert!(
        final_text.starts_with("sum=13") && final_text.ends_with(" shout=Echo: go"),
        "{final_text}"
    );
    let sum2 = api
        .task(step(&wf, "sum2")["task_id"].as_str().unwrap())
        .await;
    assert_eq!(
        sum2["arguments"]["a"].as_f64(),
        Some(3.0),
        "a whole-string reference keeps the value's type: {}",
        sum2["arguments"]
    );
    let temp = api
        .task(step(&wf, "temp")["task_id"].as_str().unwrap())
        .await;
    assert!(
        temp["arguments"]["text"]
            .as_str()
            .unwrap()
            .starts_with("temperature "),
        "{}",
        temp["arguments"]
    );

    // Each step is a task in the task API, naming its workflow and step.
    let a1 = api.task(step(&wf, "a1")["task_id"].as_str().unwrap()).await;
    assert_eq!(a1["workflow_id"], id);
    assert_eq!(a1["step_id"], "a1");
    assert_eq!(a1["tool"], "t__slow");
    let listed = api
        .get(&format!("/v1/tasks?workflow_id={id}&limit=100"))
        .await
        .body;
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 20);

    // Order: no step was created before every step it depends on completed.
    let events = timeline(&api, &id).await;
    let seq_of = |step: &str, kind: &str| -> Vec<i64> {
        events
            .iter()
            .filter(|e| e["step_id"] == step && e["kind"] == kind)
            .map(|e| e["seq"].as_i64().unwrap())
            .collect()
    };
    let definition = baton_deps(TWENTY);
    for (step_id, deps) in &definition {
        let created = seq_of(step_id, "created");
        assert_eq!(created.len(), 1, "{step_id} created once");
        for d in deps {
            let done = seq_of(d, "completed");
            assert_eq!(done.len(), 1, "{d} completed once");
            assert!(
                created[0] > done[0],
                "{step_id} was created (event {}) before its dependency {d} completed (event {})",
                created[0],
                done[0]
            );
        }
        assert_eq!(starts(&events, step_id), 1, "{step_id} ran once");
    }
    // Parallelism: the most steps running at once, replayed from the event log.
    let mut running = BTreeSet::new();
    let mut most = 0;
    for e in &events {
        let s = e["step_id"].as_str().unwrap().to_string();
        match e["kind"].as_str().unwrap() {
            "started" => {
                running.insert(s);
            }
            "completed" | "failed" | "cancelled" => {
                running.remove(&s);
            }
            _ => {}
        }
        most = most.max(running.len());
    }
    assert!(
        most >= 6,
        "the fan-out after `start` (9 independent steps) should run side by side; at most {most} ran at once"
    );

    // The DAG: JSON with states and the critical path; DOT that parses; Mermaid.
    let dag = api.get(&format!("/v1/workflows/{id}/dag")).await;
    assert_eq!(dag.status, 200, "{}", dag.body);
    let nodes = dag.body["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 20);
    assert!(
        nodes.iter().all(|n| n["status"] == "completed"),
        "{}",
        dag.body
    );
    let path: Vec<&str> = dag.body["critical_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(path.first(), Some(&"start"), "{path:?}");
    assert_eq!(path.last(), Some(&"final"), "{path:?}");
    let dot = api
        .http
        .get(format!("{}/v1/workflows/{id}/dag?format=dot", baton.url))
        .send()
        .await
        .unwrap();
    assert!(
        dot.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/vnd.graphviz")
    );
    let dot = dot.text().await.unwrap();
    let graph = graphviz_rust::parse(&dot).unwrap_or_else(|e| panic!("{e}\n{dot}"));
    let graph_text = format!("{graph:?}");
    for s in ["start", "sum2", "after-long", "final"] {
        assert!(graph_text.contains(s), "{s} missing from the DOT graph");
    }
    let mermaid = cli(&baton.url, &["workflow", "dag", &id, "--format", "mermaid"]);
    assert!(mermaid.status.success(), "{mermaid:?}");
    let mermaid = String::from_utf8(mermaid.stdout).unwrap();
    assert!(mermaid.starts_with("flowchart"), "{mermaid}");
    assert!(mermaid.contains("after-long") || mermaid.contains("after_long"));

    // The CLI shows it.
    let out = cli(&baton.url, &["workflow", "status", &id]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("completed (20 of 20 steps finished"),
        "{text}"
    );
    let out = cli(&baton.url, &["workflow", "list"]);
    assert!(String::from_utf8(out.stdout).unwrap().contains(&id));
}

/// `depends_on` of every step of a YAML definition.
fn baton_deps(yaml: &str) -> Vec<(String, Vec<String>)> {
    let def = baton_workflow::Definition::parse(yaml).unwrap();
    def.steps
        .iter()
        .map(|s| (s.id.clone(), s.depends_on.clone()))
        .collect()
}

#[tokio::test]
async fn fail_fast_stops_everything_and_continue_runs_what_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start_plain(dir.path());
    let api = Api::new(&baton.url);

    let fail_fast = submit(
        &api,
        r#"
name: ff
steps:
  - { id: slow, tool: baton__sleep, arguments: { ms: 30000, steps: 30 } }
  - { id: boom, tool: baton__fail, arguments: { message: disk on fire, retryable: false } }
  - { id: after-boom, tool: baton__echo, depends_on: [boom] }
  - { id: after-slow, tool: baton__echo, depends_on: [slow] }
"#,
    )
    .await;
    let wf = wait_done(&api, &fail_fast).await;
    assert_eq!(wf["status"], "failed", "{wf:#}");
    let st = states(&wf);
    assert_eq!(st["boom"], "failed");
    assert_eq!(st["slow"], "cancelled", "the running sibling is cancelled");
    assert_eq!(st["after-boom"], "skipped");
    assert!(
        matches!(st["after-slow"].as_str(), "skipped" | "cancelled"),
        "{st:?}"
    );
    assert_eq!(wf["error"]["step_id"], "boom");
    assert_eq!(wf["error"]["message"], "disk on fire");
    let slow = api
        .task(step(&wf, "slow")["task_id"].as_str().unwrap())
        .await;
    assert_eq!(slow["status"], "cancelled");
    assert!(
        step(&wf, "after-boom")["task_id"].is_null(),
        "never started"
    );

    let cont = submit(
        &api,
        r#"
name: cont
on_failure: continue
steps:
  - { id: slow, tool: baton__sleep, arguments: { ms: 500, steps: 5 } }
  - { id: boom, tool: baton__fail, arguments: { message: nope, retryable: false } }
  - { id: after-boom, tool: baton__echo, depends_on: [boom] }
  - { id: after-slow, tool: baton__echo, depends_on: [slow], arguments: { x: 1 } }
"#,
    )
    .await;
    let wf = wait_done(&api, &cont).await;
    let st = states(&wf);
    assert_eq!(st["boom"], "failed");
    assert_eq!(st["slow"], "completed");
    assert_eq!(st["after-slow"], "completed", "independent branch ran");
    assert_eq!(st["after-boom"], "skipped");
    assert_eq!(wf["status"], "failed", "a step failed: {wf:#}");
    assert_eq!(wf["progress"]["steps_finished"], 4);

    // The CLI: `workflow run FILE --watch` follows it to the end; exit code 1 (failed).
    let file = dir.path().join("cont.yaml");
    std::fs::write(
        &file,
        "name: cli\non_failure: continue\nsteps:\n  - { id: ok, tool: baton__echo }\n  - { id: bad, tool: baton__fail, arguments: { message: nope, retryable: false } }\n  - { id: after-bad, tool: baton__echo, depends_on: [bad] }\n",
    )
    .unwrap();
    let out = cli(
        &baton.url,
        &["workflow", "run", file.to_str().unwrap(), "--watch"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("status    failed"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("after-bad") && l.contains("skipped")),
        "{text}"
    );
    // A bad file is refused with the step named, exit code 1.
    std::fs::write(
        &file,
        "name: cli\nsteps:\n  - { id: x, tool: baton__nope }\n",
    )
    .unwrap();
    let out = cli(&baton.url, &["workflow", "run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("step `x`"), "{err}");
}

#[tokio::test]
async fn cancel_mid_run_cascades_and_retry_resumes_from_the_failed_step() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start_plain(dir.path());
    let api = Api::new(&baton.url);

    let id = submit(
        &api,
        r#"
name: cancel-me
steps:
  - { id: first, tool: baton__echo, arguments: { n: 1 } }
  - { id: long, tool: baton__sleep, depends_on: [first], arguments: { ms: 60000, steps: 60 } }
  - { id: last, tool: baton__echo, depends_on: [long] }
"#,
    )
    .await;
    eventually("long running", LONG, async || {
        step(&workflow(&api, &id).await, "long")["task_status"] == "running"
    })
    .await;
    let r = api.delete(&format!("/v1/workflows/{id}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let wf = wait_done(&api, &id).await;
    assert_eq!(wf["status"], "cancelled");
    let long_task = step(&wf, "long")["task_id"].as_str().unwrap().to_string();
    let t = api.wait_final(&long_task).await;
    assert_eq!(t["status"], "cancelled", "the running step's task stopped");
    assert_eq!(states(&wf)["last"], "cancelled");
    assert_eq!(states(&wf)["first"], "completed");
    // Cancelling again is a conflict, not a change.
    let again = api.delete(&format!("/v1/workflows/{id}")).await;
    assert_eq!(again.status, 409, "{}", again.body);

    // Retry: the cancelled step runs again (a fresh attempt of the same task), the
    // completed one does not.
    let r = api
        .post(&format!("/v1/workflows/{id}/retry"), json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    eventually("long running again", LONG, async || {
        step(&workflow(&api, &id).await, "long")["task_status"] == "running"
    })
    .await;
    let wf = workflow(&api, &id).await;
    assert_eq!(wf["status"], "running");
    assert_eq!(step(&wf, "long")["task_id"], long_task.as_str());
    // Stop it the quick way: cancel the step's task itself; under fail_fast the
    // workflow then ends cancelled.
    let r = api.delete(&format!("/v1/tasks/{long_task}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let wf = wait_done(&api, &id).await;
    assert_eq!(wf["status"], "cancelled", "{wf:#}");
    let events = timeline(&api, &id).await;
    assert_eq!(
        starts(&events, "first"),
        1,
        "the completed step never re-ran"
    );
    assert_eq!(starts(&events, "long"), 2);

    // A step that fails, then succeeds on the workflow's retry: the test server's
    // `flaky` tool crashes its first call for a key.
    let dir2 = tempfile::tempdir().unwrap();
    let baton2 = start(dir2.path(), &[]);
    let api2 = Api::new(&baton2.url);
    wait_healthy(&api2, "t").await;
    let id = submit(
        &api2,
        r#"
name: flaky
steps:
  - { id: first, tool: t__echo, arguments: { text: a } }
  - { id: shaky, tool: t__flaky, depends_on: [first], arguments: { key: wf1, failures: 1 }, retry: { max_attempts: 1 } }
  - { id: last, tool: t__echo, depends_on: [shaky], arguments: { text: z } }
"#,
    )
    .await;
    let wf = wait_done(&api2, &id).await;
    assert_eq!(wf["status"], "failed", "{wf:#}");
    assert_eq!(states(&wf)["shaky"], "failed");
    assert_eq!(states(&wf)["last"], "skipped");
    // Retrying a workflow that is not over (or is completed) is refused.
    let r = api2
        .post(&format!("/v1/workflows/{id}/retry"), json!({}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let wf = wait_done(&api2, &id).await;
    assert_eq!(wf["status"], "completed", "{wf:#}");
    let events = timeline(&api2, &id).await;
    assert_eq!(starts(&events, "first"), 1);
    assert_eq!(starts(&events, "shaky"), 2);
    assert_eq!(starts(&events, "last"), 1);
    let r = api2
        .post(&format!("/v1/workflows/{id}/retry"), json!({}))
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.error_message().contains("only failed or cancelled"));
}

#[tokio::test]
async fn kill_9_mid_workflow_resumes_without_rerunning_completed_steps() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let baton = Baton::start(&data, &[]);
    let api = Api::new(&baton.url);
    let id = submit(
        &api,
        r#"
name: resume
steps:
  - { id: one, tool: baton__echo, arguments: { n: 1 } }
  - { id: two, tool: baton__echo, depends_on: [one], arguments: { n: 2 } }
  - { id: wide-a, tool: baton__sleep, depends_on: [two], arguments: { ms: 4000, steps: 8 } }
  - { id: wide-b, tool: baton__sleep, depends_on: [two], arguments: { ms: 4000, steps: 8 } }
  - { id: end, tool: baton__echo, depends_on: [wide-a, wide-b], arguments: { n: 3 } }
"#,
    )
    .await;
    eventually("wide steps running", LONG, async || {
        let wf = workflow(&api, &id).await;
        step(&wf, "wide-a")["task_status"] == "running"
            && step(&wf, "wide-b")["task_status"] == "running"
    })
    .await;
    let before = workflow(&api, &id).await;
    baton.kill9();

    let baton = Baton::start(&data, &[]);
    let api = Api::new(&baton.url);
    let wf = wait_done(&api, &id).await;
    assert_eq!(wf["status"], "completed", "{wf:#}");
    for s in ["one", "two", "wide-a", "wide-b"] {
        assert_eq!(
            step(&wf, s)["task_id"],
            step(&before, s)["task_id"],
            "{s} kept its task"
        );
    }
    let events = timeline(&api, &id).await;
    assert_eq!(
        starts(&events, "one"),
        1,
        "completed before the kill: not re-run"
    );
    assert_eq!(
        starts(&events, "two"),
        1,
        "completed before the kill: not re-run"
    );
    assert!(
        starts(&events, "wide-a") >= 2,
        "interrupted by the kill: run again"
    );
    assert_eq!(starts(&events, "end"), 1);
    let tasks = api.get("/v1/tasks?limit=100").await.body["tasks"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(tasks, 5, "one task per step, no duplicates");
}

#[tokio::test]
async fn bad_definitions_are_refused_naming_the_step_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start_plain(dir.path());
    let api = Api::new(&baton.url);
    let cases: &[(&str, &[&str])] = &[
        (
            "name: x\nsteps:\n  - { id: a, tool: baton__slep }\n",
            &["step `a`", "unknown tool `baton__slep`"],
        ),
        (
            "name: x\nsteps:\n  - { id: a, tool: baton__echo, depends_on: [b] }\n  - { id: b, tool: baton__echo, depends_on: [a] }\n",
            &["cycle"],
        ),
        ("name: x\nsteps:\n  - { tool: baton__echo }\n", &["id"]),
        (
            "name: x\nsteps:\n  - { id: a, tool: baton__echo }\n  - { id: a, tool: baton__echo }\n",
            &["step `a`", "more than one step"],
        ),
        (
            "name: x\nsteps:\n  - { id: a, tool: baton__echo }\n  - { id: b, tool: baton__echo, arguments: { v: '${steps.a.result.content}' } }\n",
            &["step `b`", "not", "`a`"],
        ),
        (
            "name: x\nsteps:\n  - { id: a, tool: baton__echo, depends_on: [ghost] }\n",
            &["step `a`", "ghost"],
        ),
        (
            "name: x\nsteps:\n  - { id: nap, tool: baton__sleep, arguments: { ms: soon } }\n",
            &["step `nap`", "ms"],
        ),
        ("name: x\nsteps: [\n", &["line"]),
        ("", &["empty"]),
    ];
    for (definition, needles) in cases {
        let r = api.post_raw("/v1/workflows", definition.to_string()).await;
        assert_eq!(r.status, 400, "{definition}: {}", r.body);
        let message = r.error_message().to_string();
        for n in *needles {
            assert!(
                message.contains(n),
                "{definition}\nexpected `{n}` in: {message}"
            );
        }
    }
    // Every problem at once, each with its step, in `details`.
    let r = api
        .post_raw(
            "/v1/workflows",
            "name: x\nsteps:\n  - { id: a, tool: nope__tool }\n  - { id: b, tool: baton__echo, depends_on: [zzz] }\n",
        )
        .await;
    assert_eq!(r.status, 400);
    let steps: BTreeSet<&str> = r.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["step"].as_str())
        .collect();
    assert_eq!(steps, BTreeSet::from(["a", "b"]), "{}", r.body);

    let list = api.get("/v1/workflows").await;
    assert_eq!(list.body["workflows"], json!([]), "nothing stored");
    let tasks = api.get("/v1/tasks").await;
    assert_eq!(tasks.body["tasks"], json!([]), "no task stored");
    let r = api.get("/v1/workflows/wf-nope").await;
    assert_eq!(r.status, 404);
    assert!(r.error_message().contains("wf-nope"));
    let r = api.get("/v1/workflows/wf-nope/dag?format=svg").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("unknown DAG format `svg`"));
    let r = api.get("/v1/workflows?status=done").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains(
            "unknown status `done`; expected one of: running, completed, failed, cancelled"
        ),
        "{}",
        r.body
    );
}

/// The MCP front door: a 2026-07-28 request with the tasks extension.
async fn mcp_call(baton: &Baton, name: &str, arguments: Value, meta: Value) -> Value {
    let mut m = meta;
    m["io.modelcontextprotocol/protocolVersion"] = json!("2026-07-28");
    m["io.modelcontextprotocol/clientCapabilities"] =
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
    let resp = reqwest::Client::new()
        .post(format!("{}/mcp", baton.url))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", name)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": name, "arguments": arguments, "_meta": m}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let body = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .next_back()
        .map(str::trim)
        .unwrap_or(&text)
        .to_string();
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

#[tokio::test]
async fn agents_delegate_children_and_workflows_work_over_mcp() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start_plain(dir.path());
    let api = Api::new(&baton.url);

    // An agent running task `parent` calls Baton's MCP endpoint and names its task.
    let parent = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 60000, "steps": 60}}))
        .await;
    api.wait_status(&parent, "running").await;
    let mut children = Vec::new();
    for _ in 0..2 {
        let answer = mcp_call(
            &baton,
            "baton__sleep",
            json!({"ms": 60000, "steps": 60}),
            json!({"baton/parentTask": parent}),
        )
        .await;
        let child = answer["result"]["taskId"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"))
            .to_string();
        children.push(child);
    }
    let view = api.task(&parent).await;
    assert_eq!(view["children"], json!(children));
    let listed = api.get(&format!("/v1/tasks?parent_id={parent}")).await.body;
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 2, "{listed}");
    let child = api.task(&children[0]).await;
    assert_eq!(child["parent_id"], parent.as_str());
    api.wait_status(&children[0], "running").await;
    // Cancelling the parent cancels its children.
    let r = api.delete(&format!("/v1/tasks/{parent}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    for c in &children {
        assert_eq!(api.wait_final(c).await["status"], "cancelled");
    }

    // Workflows through the orchestration tools.
    let answer = mcp_call(
        &baton,
        "workflow_submit",
        json!({"definition": "name: via-mcp\nsteps:\n  - { id: a, tool: baton__echo, arguments: { v: 1 } }\n  - { id: b, tool: baton__echo, depends_on: [a], arguments: { v: '${steps.a.result.structuredContent.v}' } }\n"}),
        json!({}),
    )
    .await;
    let sc = &answer["result"]["structuredContent"];
    let id = sc["workflow_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_string();
    let answer = mcp_call(
        &baton,
        "workflow_result",
        json!({"workflow_id": id, "wait_seconds": 30}),
        json!({}),
    )
    .await;
    let sc = &answer["result"]["structuredContent"];
    assert_eq!(sc["status"], "completed", "{answer}");
    assert!(sc["outputs"]["b"].is_object(), "{answer}");
    let answer = mcp_call(
        &baton,
        "workflow_dag",
        json!({"workflow_id": id, "format": "mermaid"}),
        json!({}),
    )
    .await;
    assert!(
        answer["result"]["structuredContent"]["dag"]
            .as_str()
            .unwrap()
            .starts_with("flowchart")
    );
    let answer = mcp_call(&baton, "workflow_list", json!({}), json!({})).await;
    assert_eq!(
        answer["result"]["structuredContent"]["workflows"][0]["workflow_id"],
        id.as_str()
    );
    // A bad definition is a tool error the model can read.
    let answer = mcp_call(
        &baton,
        "workflow_submit",
        json!({"definition": {"name": "x", "steps": [{"id": "a", "tool": "nope__x"}]}}),
        json!({}),
    )
    .await;
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("step `a`")
    );
}

#[tokio::test]
async fn an_agents_workflow_is_its_tasks_child_and_submitted_once_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let baton = start_plain(dir.path());
    let api = Api::new(&baton.url);
    let parent = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 60000, "steps": 60}}))
        .await;
    api.wait_status(&parent, "running").await;

    // The agent running `parent` submits a workflow through MCP, naming its task and a
    // key; a retried agent submitting again gets the same workflow, not a second one.
    let definition = json!({"name": "fan-out", "steps": [
        {"id": "plan", "tool": "baton__echo", "arguments": {"v": 1}},
        {"id": "build", "tool": "baton__sleep", "depends_on": ["plan"], "arguments": {"ms": 60000, "steps": 60}},
        {"id": "test", "tool": "baton__sleep", "depends_on": ["plan"], "arguments": {"ms": 60000, "steps": 60}}
    ]});
    let key = format!("launch-{parent}");
    let mut ids = Vec::new();
    for created in [true, false] {
        let answer = mcp_call(
            &baton,
            "workflow_submit",
            json!({"definition": definition, "idempotency_key": key}),
            json!({"baton/parentTask": parent}),
        )
        .await;
        let sc = &answer["result"]["structuredContent"];
        assert_eq!(sc["created"], created, "{answer}");
        assert_eq!(sc["parent_task_id"], parent.as_str(), "{answer}");
        ids.push(sc["workflow_id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids[0], ids[1]);
    let wf = ids[0].clone();
    let listed = api.get("/v1/workflows").await.body;
    assert_eq!(listed["workflows"].as_array().unwrap().len(), 1, "{listed}");

    // Every step's task is a child of the agent's task, the ones started later by the
    // coordinator too.
    eventually(
        "the later steps to start",
        Duration::from_secs(30),
        async || {
            api.get(&format!("/v1/tasks?parent_id={parent}")).await.body["tasks"]
                .as_array()
                .unwrap()
                .len()
                == 3
        },
    )
    .await;
    let view = api.get(&format!("/v1/workflows/{wf}")).await.body;
    assert_eq!(view["parent_task_id"], parent.as_str(), "{view}");
    let mut step_tasks: Vec<String> = view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["task_id"].as_str().unwrap().to_string())
        .collect();
    let mut children: Vec<String> = api.task(&parent).await["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    step_tasks.sort();
    children.sort();
    assert_eq!(step_tasks, children);

    // Cancelling the agent's task cancels the workflow's running steps.
    let r = api.delete(&format!("/v1/tasks/{parent}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let done = wait_done(&api, &wf).await;
    assert_ne!(done["status"], "completed", "{done}");
    for t in &step_tasks {
        let s = api.wait_final(t).await["status"].clone();
        assert!(s == "cancelled" || s == "completed", "{t}: {s}");
    }

    // REST takes the key and the parent as query parameters: 202 the first time, then
    // 200 with the same workflow.
    let other = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 60000, "steps": 60}}))
        .await;
    let path = format!("/v1/workflows?idempotency_key=nightly&parent_id={other}");
    let body =
        json!({"name": "rest", "steps": [{"id": "a", "tool": "baton__echo", "arguments": {}}]});
    let first = api.post(&path, body.clone()).await;
    assert_eq!(first.status, 202, "{}", first.body);
    let again = api.post(&path, body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["workflow_id"], first.body["workflow_id"]);
    assert_eq!(again.body["parent_task_id"], other.as_str());

    // Another principal's task cannot be a parent; a bad key is named.
    let stranger = Api::as_principal(&baton.url, "mallory");
    let r = stranger
        .post(
            &format!("/v1/workflows?parent_id={other}"),
            json!({"name": "x", "steps": [{"id": "a", "tool": "baton__echo", "arguments": {}}]}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = api
        .post(
            "/v1/workflows?idempotency_key=",
            json!({"name": "x", "steps": [{"id": "a", "tool": "baton__echo", "arguments": {}}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("idempotency_key"), "{}", r.body);
    api.delete(&format!("/v1/tasks/{other}")).await;
}
