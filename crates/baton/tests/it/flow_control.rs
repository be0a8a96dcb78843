//! Flow control on the real binary: rate limits per tool and per server pace the starts
//! of tasks (one bucket for a whole PostgreSQL cluster), tasks over the rate say why they
//! wait, and bad rates are refused with the reason; claims rotate between principals and
//! group keys, and `max_running_per_group` caps each group.

use serde_json::{Value, json};

use crate::common::{Api, Baton, PgSchema, testserver_bin, wait_healthy};

const LONG: std::time::Duration = std::time::Duration::from_secs(30);

fn started_ms(t: &Value) -> i64 {
    baton_core::Timestamp::parse_rfc3339(t["started_at"].as_str().unwrap())
        .unwrap()
        .as_millis()
}

/// Checks starts against a token bucket of `rate` a second holding `rate` tokens: in any
/// second at most `2 * rate` start (a full bucket, then what flows in), and `n` starts
/// take at least `(n - rate) / rate` seconds. The clock is in milliseconds, hence the
/// 20 ms of slack.
fn assert_paced(mut starts: Vec<i64>, rate: usize) {
    starts.sort();
    for (i, s) in starts.iter().enumerate() {
        let within = starts[i..].iter().take_while(|t| **t < s + 1000).count();
        assert!(
            within <= 2 * rate,
            "{within} started within a second of {s}: {starts:?}"
        );
    }
    let span = starts.last().unwrap() - starts.first().unwrap();
    let least = ((starts.len() - rate) * 1000 / rate) as i64 - 20;
    assert!(
        span >= least,
        "{} starts took {span} ms, less than {least}",
        starts.len()
    );
}

async fn submit_all(apis: &[&Api], n: usize, tool: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            apis[i % apis.len()]
                .submit(json!({"tool": tool, "arguments": {"text": i.to_string()}}))
                .await,
        );
    }
    ids
}

#[tokio::test]
async fn a_server_rate_limit_paces_its_tasks_and_says_why_they_wait() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let toml = format!(
        "[[servers]]\nname = \"test\"\ncommand = \"{}\"\nargs = [\"--state-dir\", \"{}\"]\nrate_limit = \"4/s\"\n",
        testserver_bin().display(),
        state.display()
    );
    let baton = Baton::start_configured(dir.path(), &toml, &[]);
    let api = Api::new(&baton.url);
    wait_healthy(&api, "test").await;
    let ids = submit_all(&[&api], 16, "test__echo").await;
    // Other tools are not held back.
    let free = api.submit(json!({"tool": "baton__echo"})).await;
    assert_eq!(api.wait_final(&free).await["status"], "completed");
    // The last one waits for the rate, and says so (between a token's arrival and the
    // claim that takes it, a pending task has no reason to give: look more than once).
    crate::common::eventually("the last task says why it waits", LONG, async || {
        let last = api.task(ids.last().unwrap()).await;
        assert_eq!(last["status"], "pending", "{last}");
        last["waiting_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("rate limit of server `test` (4/s) reached")
    })
    .await;
    let mut starts = Vec::new();
    for id in &ids {
        let t = api.wait_final(id).await;
        assert_eq!(t["status"], "completed", "{t}");
        assert_eq!(t["attempt"], 1, "waiting for the rate spends no attempt");
        starts.push(started_ms(&t));
    }
    assert_paced(starts, 4);
}

/// Two nodes on one PostgreSQL schema share one bucket: tasks submitted to both start at
/// the configured rate in all, not at twice it.
#[tokio::test]
async fn a_tool_rate_limit_holds_across_a_postgres_cluster() {
    let pg = PgSchema::create();
    let env = pg.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let toml = "[limits.rates]\n\"baton__echo\" = \"5/s\"\n";
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Baton::start_configured(a_dir.path(), toml, &env);
    let b = Baton::start_configured(b_dir.path(), toml, &env);
    let (api_a, api_b) = (Api::new(&a.url), Api::new(&b.url));
    let ids = submit_all(&[&api_a, &api_b], 25, "baton__echo").await;
    let mut starts = Vec::new();
    for id in &ids {
        let t = api_a.wait_final(id).await;
        assert_eq!(t["status"], "completed", "{t}");
        starts.push(started_ms(&t));
    }
    // Separate buckets would let 10 a second through.
    assert_paced(starts, 5);
    drop((a, b));
}

#[tokio::test]
async fn bad_rates_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start(&dir.path().join("data"), &[]);
    let api = Api::new(&baton.url);
    let r = api
        .post(
            "/v1/servers",
            json!({"name": "fast", "command": testserver_bin(), "rate_limit": "lots/s"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.error_message()
            .contains("rate_limit: invalid rate `lots/s`"),
        "{}",
        r.body
    );
    assert_eq!(api.get("/v1/servers/fast").await.status, 404);
    // In the config file, the node does not start and names the setting.
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("baton.toml"),
        "[limits.rates]\n\"baton__echo\" = \"0/s\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::common::baton_bin())
        .args(["serve", "--data-dir"])
        .arg(bad.join("data"))
        .env("BATON_CONFIG", bad.join("baton.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("limits.rates.baton__echo"), "{stderr}");
}

fn ms_of(t: &Value, key: &str) -> i64 {
    baton_core::Timestamp::parse_rfc3339(t[key].as_str().unwrap())
        .unwrap()
        .as_millis()
}

async fn sleeps(api: &Api, n: usize, ms: u64, group: Option<&str>) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let mut body = json!({"tool": "baton__sleep", "arguments": {"ms": ms}});
        if let Some(g) = group {
            body["group_key"] = json!(g);
        }
        ids.push(api.submit(body).await);
    }
    ids
}

/// A principal with a backlog of 60 does not hold up one that comes after it with 4:
/// claims take turns, so the late one's tasks run among the first of the backlog's.
async fn late_tenant_is_not_starved(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = env.to_vec();
    env.push(("BATON_WORKERS__CONCURRENCY", "2"));
    let baton = Baton::start(&dir.path().join("data"), &env);
    let big = Api::as_principal(&baton.url, "tenant-big");
    let small = Api::as_principal(&baton.url, "tenant-small");
    let backlog = sleeps(&big, 60, 50, None).await;
    let late = sleeps(&small, 4, 50, None).await;
    let mut backlog_starts = Vec::new();
    for id in &backlog {
        let t = big.wait_final(id).await;
        assert_eq!(t["status"], "completed");
        backlog_starts.push(ms_of(&t, "started_at"));
    }
    for id in &late {
        let t = small.wait_final(id).await;
        assert_eq!(t["status"], "completed");
        let (created, started) = (ms_of(&t, "created_at"), ms_of(&t, "started_at"));
        // While it waited, the backlog's tasks started only in turn (one per turn, plus
        // those already claimed); first come, first served would start all of the
        // backlog left first.
        let while_waiting = backlog_starts
            .iter()
            .filter(|s| created < **s && **s < started)
            .count();
        let after = backlog_starts.iter().filter(|s| **s > started).count();
        assert!(
            while_waiting <= 8,
            "{while_waiting} of the backlog started while a late task waited"
        );
        assert!(after >= 10, "the backlog was not over yet ({after} left)");
    }
}

#[tokio::test]
async fn claims_take_turns_between_principals_on_sqlite() {
    late_tenant_is_not_starved(&[]).await;
}

#[tokio::test]
async fn claims_take_turns_between_principals_on_postgres() {
    let pg = PgSchema::create();
    let env = pg.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    late_tenant_is_not_starved(&env).await;
}

/// `max_running_per_group = 1`: each group (a principal, or a principal's group key)
/// runs one task at a time, while different groups run side by side.
#[tokio::test]
async fn max_running_per_group_caps_each_group() {
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start_configured(
        dir.path(),
        "[limits]\nmax_running_per_group = 1\n",
        &[("BATON_WORKERS__CONCURRENCY", "8")],
    );
    let a = Api::as_principal(&baton.url, "a");
    let b = Api::as_principal(&baton.url, "b");
    let mut runs: Vec<(String, i64, i64)> = Vec::new();
    let a_ids = sleeps(&a, 4, 300, None).await;
    // The last of a's waits for its group, and says so.
    let why = async || {
        a.task(a_ids.last().unwrap()).await["waiting_reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    crate::common::eventually("a's last task says why it waits", LONG, async || {
        why()
            .await
            .contains("`a` has 1 tasks running, the most max_running_per_group allows")
    })
    .await;
    let jobs = [
        ("a", &a, a_ids),
        ("a/x", &a, sleeps(&a, 4, 150, Some("x")).await),
        ("b", &b, sleeps(&b, 4, 150, None).await),
    ];
    for (group, api, ids) in &jobs {
        for id in ids {
            let t = api.wait_final(id).await;
            assert_eq!(t["status"], "completed");
            if *group == "a/x" {
                assert_eq!(t["group_key"], "x");
            }
            runs.push((
                group.to_string(),
                ms_of(&t, "started_at"),
                ms_of(&t, "completed_at"),
            ));
        }
    }
    let overlap = |g1: &str, g2: &str| {
        runs.iter()
            .filter(|r| r.0 == g1)
            .flat_map(|r1| {
                runs.iter()
                    .filter(move |r2| r2.0 == g2)
                    .map(move |r2| (r1, r2))
            })
            .filter(|(r1, r2)| !std::ptr::eq(*r1, *r2) && r1.1 < r2.2 && r2.1 < r1.2)
            .count()
    };
    for g in ["a", "a/x", "b"] {
        assert_eq!(overlap(g, g), 0, "two tasks of {g} ran at once: {runs:?}");
    }
    assert!(overlap("a", "b") > 0, "groups run side by side: {runs:?}");
    // A bad group key is refused with the reason.
    let r = a
        .post("/v1/tasks", json!({"tool": "baton__echo", "group_key": ""}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("group_key"), "{}", r.body);
}
