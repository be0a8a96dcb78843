//! The REST API and the CLI against the real binary on a real port, with its embedded
//! SQLite store in a temporary directory.

use std::time::Duration;

use crate::common::{Api, Baton, cli, eventually};
use serde_json::{Value, json};

async fn start(env: &[(&str, &str)]) -> (tempfile::TempDir, Baton, Api) {
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start(&dir.path().join("data"), env);
    let api = Api::new(&baton.url);
    (dir, baton, api)
}

#[tokio::test]
async fn quick_start_submit_poll_stream_result() {
    let (_d, baton, api) = start(&[]).await;
    let r = api
        .post(
            "/v1/tasks",
            json!({"tool": "baton__sleep", "arguments": {"ms": 400, "steps": 4}, "priority": "high"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["task_id"].as_str().unwrap().to_string();
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.headers["location"], format!("/v1/tasks/{id}").as_str());
    for (k, suffix) in [
        ("poll_url", ""),
        ("cancel_url", ""),
        ("result_url", "/result"),
        ("events_url", "/events"),
    ] {
        assert_eq!(r.body[k], format!("/v1/tasks/{id}{suffix}"), "{k}");
    }
    let view = api.task(&id).await;
    assert_eq!(view["tool"], "baton__sleep");
    assert_eq!(view["priority"], 75);
    // The event stream replays from the start and ends at the final state, with the result.
    let events = api.sse_events(&id, None).await;
    let kinds: Vec<&str> = events.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"created"));
    assert!(
        kinds.contains(&"started") && kinds.contains(&"progress"),
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"completed"));
    let (_, _, last) = events.last().unwrap();
    assert_eq!(last["result"]["structuredContent"]["slept_ms"], 400);
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
    // Resuming after an event id gives exactly what followed it.
    let after = api.sse_events(&id, Some(events[1].0)).await;
    assert_eq!(after.len(), events.len() - 2);
    assert_eq!(after[0].0, events[2].0);
    // Result endpoint.
    let r = api.get(&format!("/v1/tasks/{id}/result?wait=5")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "completed");
    assert_eq!(
        r.body["result"]["content"][0]["text"],
        "slept 400 ms in 4 steps"
    );
    let done = api.task(&id).await;
    assert_eq!(done["progress"], 1.0);
    assert!(done["completed_at"].is_string());
    drop(baton);
}

#[tokio::test]
async fn long_poll_waits_then_reports_not_ready() {
    let (_d, _b, api) = start(&[]).await;
    let id = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 5000}}))
        .await;
    let started = std::time::Instant::now();
    let r = api.get(&format!("/v1/tasks/{id}/result?wait=1")).await;
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited");
    assert_eq!(r.status, 202);
    assert_eq!(r.headers["retry-after"], "1");
    assert!(r.body["result"].is_null());
    // Estimates appear once the tool has history.
    let quick = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 50}}))
        .await;
    api.wait_final(&quick).await;
    let next = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 50}, "delay_ms": 60000}))
        .await;
    assert!(api.task(&next).await["estimated_completion"].is_string());
}

#[tokio::test]
async fn cancel_pending_running_and_final() {
    let (_d, _b, api) = start(&[]).await;
    let later = api
        .submit(json!({"tool": "baton__echo", "delay_ms": 60000}))
        .await;
    let r = api.delete(&format!("/v1/tasks/{later}")).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body["status"], "cancelled");
    let slow = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 60000, "steps": 600}}))
        .await;
    api.wait_status(&slow, "running").await;
    let r = api.delete(&format!("/v1/tasks/{slow}")).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body["cancel_requested"], true);
    let t = api.wait_final(&slow).await;
    assert_eq!(t["status"], "cancelled");
    let r = api.delete(&format!("/v1/tasks/{slow}")).await;
    assert_eq!(r.status, 409);
    assert!(
        r.error_message().contains("already cancelled"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn failed_tasks_retry_with_backoff_then_by_hand() {
    let (_d, _b, api) = start(&[("BATON_TASKS__RETRY_BASE_DELAY", "50ms")]).await;
    let id = api
        .submit(json!({"tool": "baton__fail", "arguments": {"message": "upstream flaked", "retryable": true}, "max_attempts": 2}))
        .await;
    let t = api.wait_final(&id).await;
    assert_eq!(t["status"], "failed");
    assert_eq!(t["attempt"], 2);
    assert_eq!(t["error"]["retryable"], true);
    let r = api
        .post(&format!("/v1/tasks/{id}/retry"), json!(null))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "pending");
    let t = api.wait_final(&id).await;
    assert_eq!(
        (t["status"].as_str(), t["attempt"].as_u64()),
        (Some("failed"), Some(2))
    );
    let ok = api.submit(json!({"tool": "baton__echo"})).await;
    api.wait_final(&ok).await;
    let r = api
        .post(&format!("/v1/tasks/{ok}/retry"), json!(null))
        .await;
    assert_eq!(r.status, 409);
}

#[tokio::test]
async fn list_filters_and_paginates() {
    let (_d, _b, api) = start(&[]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(api.submit(json!({"tool": "baton__echo", "arguments": {"i": i}, "queue": if i == 4 { "other" } else { "default" }})).await);
    }
    for id in &ids {
        api.wait_final(id).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tasks?limit=2&cursor={c}"),
            None => "/v1/tasks?limit=2".into(),
        };
        let r = api.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        for t in r.body["tasks"].as_array().unwrap() {
            seen.push(t["task_id"].as_str().unwrap().to_string());
            assert!(t.get("result").is_none(), "lists leave results out");
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let r = api.get("/v1/tasks?queue=other").await;
    assert_eq!(r.body["tasks"].as_array().unwrap().len(), 1);
    let r = api
        .get("/v1/tasks?status=completed&tool=baton__echo&limit=10")
        .await;
    assert_eq!(r.body["tasks"].as_array().unwrap().len(), 5);
    let r = api.get("/v1/tasks?status=failed").await;
    assert!(r.body["tasks"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn queues_pause_resume_and_stats() {
    let (_d, _b, api) = start(&[]).await;
    // A queue exists once it holds a task: pausing an unknown name does not mint one.
    let r = api.post("/v1/queues/reports/pause", json!(null)).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.error_message().contains("reports"), "{}", r.body);
    let later = api
        .submit(json!({"tool": "baton__echo", "queue": "reports", "delay_ms": 600000}))
        .await;
    let r = api.post("/v1/queues/reports/pause", json!(null)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = api
        .submit(json!({"tool": "baton__echo", "queue": "reports"}))
        .await;
    // Nothing to wait for: the check is that nothing happens. Give a wrongly started task
    // the time to show.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        api.task(&id).await["status"],
        "pending",
        "paused queues do not start tasks"
    );
    let q = api.get("/v1/queues").await;
    let reports = q.body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "reports")
        .unwrap()
        .clone();
    assert_eq!(reports["paused"], true);
    assert_eq!(reports["counts"]["pending"], 2);
    api.post("/v1/queues/reports/resume", json!(null)).await;
    assert_eq!(api.wait_final(&id).await["status"], "completed");
    let q = api.get("/v1/queues").await;
    let reports = q.body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "reports")
        .unwrap()
        .clone();
    assert_eq!(reports["counts"]["completed"], 1);
    assert_eq!(reports["completed_last_minute"], 1);
    assert_eq!(api.task(&later).await["status"], "pending", "still delayed");
    let bad = api
        .post("/v1/queues/Not%20A%20Queue/pause", json!(null))
        .await;
    assert_eq!(bad.status, 400);
}

/// A pending task's priority and due time change with `PATCH /v1/tasks/{id}` (and the
/// MCP tool `task_priority`); a change that says nothing, a bad value or a task that
/// already ran is refused with the reason.
#[tokio::test]
async fn pending_tasks_can_be_reprioritized() {
    let (_d, _b, api) = start(&[]).await;
    let later = api
        .submit(json!({"tool": "baton__echo", "arguments": {"n": 1}, "delay_ms": 600000}))
        .await;
    let r = api
        .patch(&format!("/v1/tasks/{later}"), json!({"priority": "high"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["priority"], 75);
    assert_eq!(r.body["status"], "pending", "still delayed");
    for (body, field) in [
        (json!({}), "nothing to change"),
        (json!({"priority": 101}), "out of range"),
        (json!({"run_at": "soon"}), "run_at"),
        (
            json!({"delay_ms": 5, "run_at": "2030-01-01T00:00:00Z"}),
            "not both",
        ),
        (json!({"colour": "red"}), "colour"),
    ] {
        let r = api.patch(&format!("/v1/tasks/{later}"), body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.error_message().contains(field), "{body}: {}", r.body);
    }
    // Brought forward, it runs at once.
    let r = api
        .patch(&format!("/v1/tasks/{later}"), json!({"delay_ms": 0}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(api.wait_final(&later).await["status"], "completed");
    let events = api.sse_events(&later, None).await;
    let changed: Vec<&Value> = events
        .iter()
        .filter(|(_, kind, _)| kind == "reprioritized")
        .map(|(_, _, data)| data)
        .collect();
    assert_eq!(changed.len(), 2, "{events:?}");
    assert_eq!(changed[0]["message"], "priority 50 to 75");
    assert!(changed[1]["message"].as_str().unwrap().starts_with("due "));
    let r = api
        .patch(&format!("/v1/tasks/{later}"), json!({"priority": 10}))
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.error_message().contains("only a pending task"),
        "{}",
        r.body
    );
    let r = api
        .patch(
            "/v1/tasks/01a228e1-97ef-7894-ba1a-f5e49051bcfb",
            json!({"priority": 10}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
}

/// Clearing a queue cancels its open tasks of the statuses asked for (pending by
/// default), only after an explicit confirmation, and leaves other queues alone.
#[tokio::test]
async fn queues_clear_after_confirmation() {
    let (_d, _b, api) = start(&[]).await;
    let mut pending = Vec::new();
    for i in 0..3 {
        pending.push(
            api.submit(json!({"tool": "baton__echo", "arguments": {"i": i}, "queue": "bulk", "delay_ms": 600000}))
                .await,
        );
    }
    let running = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 60000}, "queue": "bulk"}))
        .await;
    let elsewhere = api
        .submit(json!({"tool": "baton__echo", "queue": "other", "delay_ms": 600000}))
        .await;
    eventually("the sleep runs", Duration::from_secs(20), async || {
        api.task(&running).await["status"] == "running"
    })
    .await;

    let r = api.post("/v1/queues/bulk/clear", json!({})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("confirm"), "{}", r.body);
    let r = api
        .post(
            "/v1/queues/bulk/clear",
            json!({"status": "completed", "confirm": true}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message().contains("nothing to cancel"),
        "{}",
        r.body
    );
    let r = api
        .post("/v1/queues/nowhere/clear", json!({"confirm": true}))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    for id in &pending {
        assert_eq!(
            api.task(id).await["status"],
            "pending",
            "nothing cleared yet"
        );
    }

    let r = api
        .post("/v1/queues/bulk/clear", json!({"confirm": true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["cancelled"], 3);
    assert_eq!(r.body["statuses"], json!(["pending"]));
    for id in &pending {
        assert_eq!(api.task(id).await["status"], "cancelled");
    }
    assert_eq!(api.task(&running).await["status"], "running");
    assert_eq!(api.task(&elsewhere).await["status"], "pending");

    let r = api
        .post(
            "/v1/queues/bulk/clear",
            json!({"status": ["running", "input_required"], "confirm": true}),
        )
        .await;
    assert_eq!(r.body["cancelled"], 1, "{}", r.body);
    assert_eq!(api.wait_final(&running).await["status"], "cancelled");
    assert_eq!(api.task(&elsewhere).await["status"], "pending");
}

#[tokio::test]
async fn idempotency_keys_by_body_or_header() {
    let (_d, _b, api) = start(&[]).await;
    let body =
        json!({"tool": "baton__echo", "arguments": {"order": 42}, "idempotency_key": "order-42"});
    let a = api.post("/v1/tasks", body.clone()).await;
    let b = api.post("/v1/tasks", body).await;
    assert_eq!(a.body["task_id"], b.body["task_id"]);
    assert_eq!(
        (a.body["created"].as_bool(), b.body["created"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(b.headers["idempotent-replayed"], "true");
    let via_header = api
        .send(
            api.http
                .post(format!("{}/v1/tasks", api.base))
                .header("Idempotency-Key", "order-42")
                .json(&json!({"tool": "baton__echo", "arguments": {"order": 42}})),
        )
        .await;
    assert_eq!(via_header.body["task_id"], a.body["task_id"]);
    let conflict = api
        .post("/v1/tasks", json!({"tool": "baton__echo", "arguments": {"order": 43}, "idempotency_key": "order-42"}))
        .await;
    assert_eq!(conflict.status, 409);
    assert!(conflict.error_message().contains("order-42"));
}

#[tokio::test]
async fn active_cap_answers_429_with_retry_after() {
    let (_d, _b, api) = start(&[("BATON_TASKS__MAX_ACTIVE", "2")]).await;
    api.post("/v1/queues/default/pause", json!(null)).await;
    api.submit(json!({"tool": "baton__echo"})).await;
    api.submit(json!({"tool": "baton__echo"})).await;
    let r = api.post("/v1/tasks", json!({"tool": "baton__echo"})).await;
    assert_eq!(r.status, 429);
    assert!(r.headers.contains_key("retry-after"));
    assert!(r.error_message().contains("too many active tasks"));
    api.post("/v1/queues/default/resume", json!(null)).await;
    // Once they finish there is room again.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = api.post("/v1/tasks", json!({"tool": "baton__echo"})).await;
        if r.status == 202 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no room after tasks finished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn batch_submission_is_all_or_nothing() {
    let (_d, _b, api) = start(&[]).await;
    let r = api
        .post(
            "/v1/tasks/batch",
            json!({"tasks": [
                {"tool": "baton__echo", "arguments": {"n": 1}},
                {"tool": "baton__echo", "arguments": {"n": 2}},
                {"tool": "baton__sleep", "arguments": {"ms": 10}}
            ]}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let tasks = r.body["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 3);
    for t in tasks {
        api.wait_final(t["task_id"].as_str().unwrap()).await;
    }
    let bad = api
        .post("/v1/tasks/batch", json!({"tasks": [{"tool": "baton__echo"}, {"tool": "baton__sleep", "arguments": {"ms": "soon"}}]}))
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.error_message().contains("tasks[1]"), "{}", bad.body);
    let all = api.get("/v1/tasks?limit=100").await;
    assert_eq!(
        all.body["tasks"].as_array().unwrap().len(),
        3,
        "the bad batch stored nothing"
    );
}

#[tokio::test]
async fn health_readiness_and_tools() {
    let (_d, _b, api) = start(&[]).await;
    assert_eq!(api.get("/healthz").await.status, 200);
    let r = api.get("/readyz").await;
    assert_eq!((r.status, r.body["store"].as_str()), (200, Some("sqlite")));
    let tools = api.get("/v1/tools").await;
    let names: Vec<&str> = tools.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["baton__echo", "baton__fail", "baton__sleep"]);
}

#[tokio::test]
async fn cli_submit_status_list_cancel_watch() {
    let (_d, baton, _api) = start(&[]).await;
    let url = baton.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        let submit = cli(
            &url,
            &[
                "submit",
                "baton__echo",
                r#"{"x": 1}"#,
                "--arg",
                "y=two",
                "--wait",
            ],
        );
        let id_out = cli(
            &url,
            &[
                "submit",
                "baton__sleep",
                "-a",
                "ms=300",
                "-a",
                "steps=3",
                "--priority",
                "high",
            ],
        );
        let id = String::from_utf8_lossy(&id_out.stdout).trim().to_string();
        let watch = cli(&url, &["watch", &id]);
        let status = cli(&url, &["status", &id]);
        let list = cli(&url, &["list", "--limit", "5"]);
        let later = cli(&url, &["submit", "baton__echo", "--delay", "1m"]);
        let later_id = String::from_utf8_lossy(&later.stdout).trim().to_string();
        let cancel = cli(&url, &["cancel", &later_id]);
        let missing = cli(&url, &["status", "019a0000-0000-7000-8000-000000000000"]);
        let fail = cli(
            &url,
            &["submit", "baton__fail", "-a", "message=nope", "--wait"],
        );
        (submit, id_out, watch, status, list, cancel, missing, fail)
    })
    .await
    .unwrap();
    let (submit, id_out, watch, status, list, cancel, missing, fail) = out;
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        submit.status.success(),
        "{}",
        String::from_utf8_lossy(&submit.stderr)
    );
    assert!(text(&submit).contains(r#""y":"two""#), "{}", text(&submit));
    assert!(id_out.status.success());
    assert!(
        watch.status.success(),
        "{}",
        String::from_utf8_lossy(&watch.stderr)
    );
    assert!(
        text(&watch).contains("slept 300 ms in 3 steps"),
        "{}",
        text(&watch)
    );
    assert!(
        text(&watch).contains("progress"),
        "plain progress lines when not a terminal: {}",
        text(&watch)
    );
    assert!(text(&status).contains("completed"), "{}", text(&status));
    assert!(text(&list).lines().count() >= 3, "{}", text(&list));
    assert!(
        text(&cancel).contains("cancelled before it started"),
        "{}",
        text(&cancel)
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
    assert_eq!(fail.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&fail.stderr).contains("nope"));
}

#[tokio::test]
async fn cli_explains_an_unreachable_server() {
    let out = tokio::task::spawn_blocking(|| cli("http://127.0.0.1:9", &["list"]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach Baton at http://127.0.0.1:9"),
        "{err}"
    );
}

#[tokio::test]
async fn the_event_stream_of_a_retried_task_runs_to_its_new_end() {
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start(dir.path(), &[]);
    let api = Api::new(&baton.url);
    let id = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 60000, "steps": 60}}))
        .await;
    api.wait_status(&id, "running").await;
    assert_eq!(api.delete(&format!("/v1/tasks/{id}")).await.status, 202);
    assert_eq!(api.wait_final(&id).await["status"], "cancelled");
    // Run it again; while it runs, a stream opened from the start replays the first
    // run's end and keeps going. Cancelling the second run gives it its end.
    let r = api.post(&format!("/v1/tasks/{id}/retry"), json!({})).await;
    assert!(r.status == 200 || r.status == 202, "{}", r.body);
    api.wait_status(&id, "running").await;
    let reader = {
        let api = Api::new(&baton.url);
        let id = id.clone();
        tokio::spawn(async move { api.sse_events(&id, None).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !reader.is_finished(),
        "the stream ended at the first run's end while the task runs again"
    );
    assert_eq!(api.delete(&format!("/v1/tasks/{id}")).await.status, 202);
    let events = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the stream ends with the task")
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|(_, k, _)| k.as_str()).collect();
    let first_end = kinds.iter().position(|k| *k == "cancelled").unwrap();
    assert!(kinds[first_end + 1..].contains(&"retried"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"cancelled"), "{kinds:?}");
    assert!(kinds.len() > first_end + 2, "{kinds:?}");
    // The first run's end, replayed, carries no outcome: it would be the task's now.
    assert!(
        events[first_end].2.get("result").is_none(),
        "{:?}",
        events[first_end]
    );
    // Task events in order (log lines, numbered apart, are left out of this).
    let seqs: Vec<i64> = events
        .iter()
        .filter(|(_, k, _)| k != "log")
        .map(|(s, _, _)| *s)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}
