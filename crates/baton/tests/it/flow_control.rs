//! Flow control on the real binary: rate limits per tool and per server pace the starts
//! of tasks (one bucket for a whole PostgreSQL cluster), tasks over the rate say why they
//! wait, and bad rates are refused with the reason.

use serde_json::{Value, json};

use crate::common::{Api, Baton, PgSchema, testserver_bin, wait_healthy};

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
    // The last one waits for the rate, and says so.
    let last = api.task(ids.last().unwrap()).await;
    assert_eq!(last["status"], "pending", "{last}");
    let why = last["waiting_reason"].as_str().unwrap_or_default();
    assert!(
        why.contains("rate limit of server `test` (4/s) reached"),
        "{last}"
    );
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
