//! Webhooks on the real binary, against a receiver in the test (a plain TCP listener on
//! 127.0.0.1 that records each request and answers as scripted: a status, a redirect,
//! silence, or a closed connection): signed deliveries verified here, retries with their
//! history, timeouts, SSRF refusals, a restart with pending retries, two PostgreSQL nodes
//! delivering each event once, redelivery, rotation, callbacks and bad input.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{Api, Baton, PgSchema, eventually};

const LONG: Duration = Duration::from_secs(30);

/// Opens loopback to deliveries, with short timeouts and retries for the tests.
const LOCAL: &str = r#"
[webhooks]
allow_networks = ["127.0.0.0/8"]
timeout = "1s"
retry_base = "200ms"
"#;

/// How the receiver answers one request.
#[derive(Clone, Debug)]
enum Answer {
    Status(u16),
    /// `302` to this URL.
    Redirect(String),
    /// Reads the request, then never answers.
    Hang,
    /// Reads the request, then closes the connection without a word.
    Close,
}

#[derive(Clone, Debug)]
struct Received {
    headers: BTreeMap<String, String>,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// The test's webhook receiver.
#[derive(Clone)]
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Receiver {
    /// Answers as `script` says, in order, then `200`.
    async fn start(script: Vec<Answer>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let r = Receiver {
            url,
            received: Arc::default(),
            script: Arc::new(Mutex::new(script.into())),
        };
        let me = r.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move { me.serve(sock).await });
            }
        });
        r
    }

    async fn serve(&self, mut sock: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let Ok(n) = sock.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let headers: BTreeMap<String, String> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
        self.received
            .lock()
            .unwrap()
            .push(Received { headers, body });
        let answer = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Answer::Status(200));
        let reply = match answer {
            Answer::Status(code) => {
                format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            }
            Answer::Redirect(to) => format!(
                "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            ),
            Answer::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Answer::Close => return,
        };
        let _ = sock.write_all(reply.as_bytes()).await;
        let _ = sock.shutdown().await;
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(&format!("{n} requests at the receiver"), LONG, async || {
            self.received().len() >= n
        })
        .await;
        self.received()
    }
}

/// Checks a request's Standard Webhooks signature against `secret` on its own (HMAC-SHA256
/// of `id.timestamp.body`, keyed with the base64 after `whsec_`): whether one of the
/// signatures in the header matches.
fn signed_with(r: &Received, secret: &str) -> bool {
    let key = B64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.{}",
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            r.body
        )
        .as_bytes(),
    );
    let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    r.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

async fn create_webhook(api: &Api, body: Value) -> Value {
    let r = api.post("/v1/webhooks", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

async fn deliveries(api: &Api, webhook: &str) -> Vec<Value> {
    let r = api.get(&format!("/v1/webhooks/{webhook}/deliveries")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["deliveries"].as_array().unwrap().clone()
}

async fn echo(api: &Api, tag: &str) -> String {
    let id = api
        .submit(json!({"tool": "baton__echo", "arguments": {"tag": tag}}))
        .await;
    assert_eq!(api.wait_final(&id).await["status"], "completed");
    id
}

/// A completed task: one delivery, signed, with the task in `data`, recorded as
/// delivered; nothing more arrives. Another principal's task makes none. Redelivered by
/// hand, it arrives again with the same `webhook-id`; after a rotation both secrets sign.
#[tokio::test]
async fn a_completed_task_is_delivered_once_signed() {
    let rx = Receiver::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start_configured(dir.path(), LOCAL, &[]);
    let api = Api::new(&baton.url);
    let hook = create_webhook(
        &api,
        json!({"url": rx.url, "events": ["task.*"], "description": "ci"}),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{hook}");
    let id = hook["id"].as_str().unwrap().to_string();
    assert_eq!(hook["events"].as_array().unwrap().len(), 4, "{hook}");
    // The secret is shown once: reads never carry it.
    let got = api.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(got.status, 200);
    assert!(got.body.get("secret").is_none(), "{}", got.body);
    let listed = api.get("/v1/webhooks").await.body;
    assert_eq!(listed["webhooks"][0]["id"], id.as_str());

    // Another principal's task is not this webhook's business.
    let other = api
        .send(
            reqwest::Client::new()
                .post(format!("{}/v1/tasks", baton.url))
                .header("Baton-Principal", "mallory")
                .json(&json!({"tool": "baton__echo", "arguments": {}})),
        )
        .await;
    assert_eq!(other.status, 202, "{}", other.body);

    let task = echo(&api, "one").await;
    let got = rx.wait_for(1).await;
    let r = &got[0];
    assert!(signed_with(r, &secret), "bad signature: {r:?}");
    assert!(r.header("webhook-id").starts_with("msg_"), "{r:?}");
    let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - ts).abs() < 60, "timestamp {ts} is not now ({now})");
    let body = r.json();
    assert_eq!(body["type"], "task.completed");
    assert_eq!(body["data"]["task_id"], task.as_str());
    assert_eq!(body["data"]["status"], "completed");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
    // Exactly one: nothing else arrives (the other principal's task included).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.received().len(), 1, "{:?}", rx.received());

    let ds = deliveries(&api, &id).await;
    assert_eq!(ds.len(), 1, "{ds:?}");
    assert_eq!(ds[0]["status"], "delivered");
    assert_eq!(ds[0]["attempts"], 1);
    assert_eq!(ds[0]["last_status_code"], 200);
    assert_eq!(ds[0]["task_id"], task.as_str());
    assert_eq!(ds[0]["id"], r.header("webhook-id"));
    assert!(ds[0]["last_latency_ms"].is_u64(), "{}", ds[0]);

    // By hand: the same delivery again, same id and body.
    let delivery = ds[0]["id"].as_str().unwrap();
    let again = api
        .post(
            &format!("/v1/webhooks/{id}/deliveries/{delivery}/redeliver"),
            json!({}),
        )
        .await;
    assert_eq!(again.status, 202, "{}", again.body);
    let got = rx.wait_for(2).await;
    assert_eq!(got[1].header("webhook-id"), delivery);
    assert_eq!(got[1].body, got[0].body);
    assert!(signed_with(&got[1], &secret));
    eventually("two attempts recorded", LONG, async || {
        deliveries(&api, &id).await[0]["attempts"] == 2
    })
    .await;
    let missing = api
        .post(
            &format!("/v1/webhooks/{id}/deliveries/msg_nope/redeliver"),
            json!({}),
        )
        .await;
    assert_eq!(missing.status, 404, "{}", missing.body);

    // Rotation: both secrets sign during the overlap.
    let rotated = api
        .post(&format!("/v1/webhooks/{id}/rotate"), json!({}))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    echo(&api, "two").await;
    let got = rx.wait_for(3).await;
    assert!(signed_with(&got[2], &new_secret), "{:?}", got[2]);
    assert!(signed_with(&got[2], &secret), "{:?}", got[2]);
    assert_eq!(got[2].header("webhook-signature").split(' ').count(), 2);

    // Deleted: no more deliveries, and it is gone.
    assert_eq!(api.delete(&format!("/v1/webhooks/{id}")).await.status, 204);
    assert_eq!(api.get(&format!("/v1/webhooks/{id}")).await.status, 404);
    echo(&api, "three").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.received().len(), 3);
}

/// A receiver that answers 500, then hangs past the timeout, then closes the connection
/// without answering, then answers 200: the delivery is retried each time with the same
/// `webhook-id`, and its history shows the four attempts and what became of each.
#[tokio::test]
async fn failed_attempts_are_retried_with_their_history() {
    let rx = Receiver::start(vec![
        Answer::Status(500),
        Answer::Hang,
        Answer::Close,
        Answer::Status(200),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start_configured(dir.path(), LOCAL, &[]);
    let api = Api::new(&baton.url);
    let hook = create_webhook(&api, json!({"url": rx.url, "events": ["task.failed"]})).await;
    let id = hook["id"].as_str().unwrap();
    let secret = hook["secret"].as_str().unwrap();
    let task = api
        .submit(json!({"tool": "baton__fail", "arguments": {}, "max_attempts": 1}))
        .await;
    assert_eq!(api.wait_final(&task).await["status"], "failed");
    let got = rx.wait_for(4).await;
    let ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert!(got.iter().all(|r| signed_with(r, secret)));
    assert_eq!(got[0].json()["type"], "task.failed");
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the body is fixed"
    );
    eventually("delivered after four attempts", LONG, async || {
        deliveries(&api, id).await[0]["status"] == "delivered"
    })
    .await;
    let d = &deliveries(&api, id).await[0];
    assert_eq!(d["attempts"], 4, "{d}");
    let log = d["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 4, "{d}");
    assert_eq!(log[0]["status_code"], 500, "{d}");
    assert!(log[1]["status_code"].is_null(), "{d}");
    assert!(
        log[1]["error"].as_str().unwrap().contains("timed out"),
        "{d}"
    );
    assert!(log[1]["latency_ms"].as_u64().unwrap() >= 900, "{d}");
    assert!(log[2]["status_code"].is_null(), "{d}");
    assert!(log[2]["error"].as_str().is_some(), "{d}");
    assert_eq!(log[3]["status_code"], 200, "{d}");
    assert!(d.get("next_attempt_at").is_none(), "{d}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(rx.received().len(), 4, "nothing after the success");
}

/// SSRF: without `allow_networks`, literal private addresses are refused when the webhook
/// is made (naming the address), and a name resolving to loopback is refused at delivery
/// (recorded, never connected). With loopback open, a redirect to a private or metadata
/// address is refused and recorded, and the redirect target is never reached.
#[tokio::test]
async fn private_addresses_are_never_reached() {
    let rx = Receiver::start(vec![]).await;
    let port = rx.url.split(':').nth(2).unwrap().split('/').next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start(&dir.path().join("data"), &[]);
    let api = Api::new(&baton.url);
    for (url, names) in [
        (rx.url.clone(), "127.0.0.1"),
        (
            "http://169.254.169.254/latest/meta-data".to_string(),
            "169.254.169.254",
        ),
        ("http://10.0.0.1/x".to_string(), "10.0.0.1"),
        ("http://[::1]:8080/x".to_string(), "::1"),
        ("http://100.64.1.1/x".to_string(), "100.64.1.1"),
    ] {
        let r = api
            .post(
                "/v1/webhooks",
                json!({"url": url, "events": ["task.completed"]}),
            )
            .await;
        assert_eq!(r.status, 400, "{url}: {}", r.body);
        assert!(r.error_message().contains(names), "{url}: {}", r.body);
        assert!(r.error_message().contains("allow_networks"), "{}", r.body);
    }
    // A name is checked after it resolves: localhost is loopback.
    let hook = create_webhook(
        &api,
        json!({"url": format!("http://localhost:{port}/hook"), "events": ["task.completed"]}),
    )
    .await;
    let id = hook["id"].as_str().unwrap();
    echo(&api, "ssrf").await;
    eventually("the refusal recorded", LONG, async || {
        deliveries(&api, id)
            .await
            .first()
            .is_some_and(|d| d["attempts"].as_u64() >= Some(1) && d["last_error"].is_string())
    })
    .await;
    let d = &deliveries(&api, id).await[0];
    let err = d["last_error"].as_str().unwrap();
    assert!(err.contains("blocked addresses"), "{d}");
    assert!(d["last_status_code"].is_null(), "{d}");
    assert!(rx.received().is_empty(), "the receiver was reached");
    drop(baton);

    // Loopback open; the receiver redirects to private and metadata addresses.
    let rx2 = Receiver::start(vec![
        Answer::Redirect("http://10.0.0.1/x".into()),
        Answer::Redirect("http://169.254.169.254/latest/meta-data".into()),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start_configured(dir.path(), LOCAL, &[]);
    let api = Api::new(&baton.url);
    let hook = create_webhook(&api, json!({"url": rx2.url, "events": ["task.completed"]})).await;
    let id = hook["id"].as_str().unwrap();
    echo(&api, "redirect").await;
    rx2.wait_for(3).await;
    eventually("delivered after the refused redirects", LONG, async || {
        deliveries(&api, id).await[0]["status"] == "delivered"
    })
    .await;
    let d = &deliveries(&api, id).await[0];
    let log = d["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 3, "{d}");
    for (attempt, target) in [(0, "10.0.0.1"), (1, "169.254.169.254")] {
        let e = log[attempt]["error"].as_str().unwrap_or_default();
        assert!(e.contains("refused redirect") && e.contains(target), "{d}");
        assert!(log[attempt]["status_code"].is_null(), "{d}");
    }
    assert_eq!(log[2]["status_code"], 200, "{d}");
}

/// Bad input is refused with a 400 naming the problem, and nothing is stored.
#[tokio::test]
async fn bad_webhooks_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start(&dir.path().join("data"), &[]);
    let api = Api::new(&baton.url);
    let ok = "https://hooks.example.com/x";
    for (body, needle) in [
        (
            json!({"url": "not a url", "events": ["task.completed"]}),
            "not a URL",
        ),
        (
            json!({"url": "ftp://hooks.example.com/x", "events": ["task.completed"]}),
            "scheme `ftp`",
        ),
        (
            json!({"url": "https://u:p@hooks.example.com/x", "events": ["task.completed"]}),
            "credentials",
        ),
        (
            json!({"url": ok, "events": ["task.done"]}),
            "unknown event `task.done`",
        ),
        (
            json!({"url": ok, "events": ["jobs.*"]}),
            "unknown event `jobs.*`",
        ),
        (json!({"url": ok, "events": []}), "at least one event"),
        (
            json!({"url": ok, "events": ["task.completed"], "secret": "hunter2"}),
            "whsec_",
        ),
        (
            json!({"url": ok, "events": ["task.completed"], "secret": "whsec_???"}),
            "not base64",
        ),
        (
            json!({"url": ok, "events": ["task.completed"], "secret": "whsec_c2hvcnQ="}),
            "24 to 64",
        ),
        (
            json!({"url": ok, "events": ["task.completed"], "tool": ""}),
            "tool is empty",
        ),
        (
            json!({"url": ok, "events": ["task.completed"], "colour": "red"}),
            "colour",
        ),
        (json!({"events": ["task.completed"]}), "url"),
    ] {
        let r = api.post("/v1/webhooks", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.error_message().contains(needle), "{body}: {}", r.body);
    }
    assert_eq!(
        api.get("/v1/webhooks").await.body["webhooks"],
        json!([]),
        "nothing stored"
    );
    // A secret of one's own is kept, and usable.
    let mine = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let hook = create_webhook(
        &api,
        json!({"url": ok, "events": ["workflow.*"], "secret": mine}),
    )
    .await;
    assert_eq!(hook["secret"], mine);
    let id = hook["id"].as_str().unwrap();
    let r = api
        .post(
            &format!("/v1/webhooks/{id}/rotate"),
            json!({"secret": "nope"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("whsec_"), "{}", r.body);
    let r = api
        .get(&format!("/v1/webhooks/{id}/deliveries?cursor=zzz"))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("cursor"), "{}", r.body);
    assert_eq!(api.get("/v1/webhooks/wh_nope").await.status, 404);
    // A task's callback URL is checked the same way.
    let r = api
        .post(
            "/v1/tasks",
            json!({"tool": "baton__echo", "callback_url": "http://169.254.169.254/x"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("169.254.169.254"), "{}", r.body);
    let r = api
        .post(
            "/v1/tasks",
            json!({"tool": "baton__echo", "callback_url": "nope"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.error_message().contains("callback_url"), "{}", r.body);
}

/// A task's `callback_url` gets one unsigned delivery when the task ends.
#[tokio::test]
async fn a_callback_url_hears_of_its_task() {
    let rx = Receiver::start(vec![Answer::Status(503)]).await;
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start_configured(dir.path(), LOCAL, &[]);
    let api = Api::new(&baton.url);
    let task = api
        .submit(json!({"tool": "baton__echo", "arguments": {}, "callback_url": rx.url}))
        .await;
    assert_eq!(api.wait_final(&task).await["status"], "completed");
    let got = rx.wait_for(2).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert!(
        !got[1].headers.contains_key("webhook-signature"),
        "{:?}",
        got[1]
    );
    let body = got[1].json();
    assert_eq!(body["type"], "task.completed");
    assert_eq!(body["data"]["task_id"], task.as_str());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.received().len(), 2, "retried once, then delivered once");
    // Another task without one makes nothing.
    echo(&api, "quiet").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(rx.received().len(), 2);
}

/// A node stopped while a delivery waits for its retry delivers it after it starts again.
#[tokio::test]
async fn pending_deliveries_survive_a_restart() {
    let rx = Receiver::start(vec![Answer::Status(500)]).await;
    let dir = tempfile::tempdir().unwrap();
    let slow = r#"
[webhooks]
allow_networks = ["127.0.0.0/8"]
timeout = "1s"
retry_base = "4s"
"#;
    let baton = Baton::start_configured(dir.path(), slow, &[]);
    let api = Api::new(&baton.url);
    let hook = create_webhook(&api, json!({"url": rx.url, "events": ["task.completed"]})).await;
    let id = hook["id"].as_str().unwrap().to_string();
    let task = echo(&api, "restart").await;
    rx.wait_for(1).await;
    eventually("the failure recorded", LONG, async || {
        deliveries(&api, &id).await[0]["last_status_code"] == 500
    })
    .await;
    assert_eq!(deliveries(&api, &id).await[0]["status"], "pending");
    baton.kill9();
    let baton = Baton::start_configured(dir.path(), slow, &[]);
    let api = Api::new(&baton.url);
    let got = rx.wait_for(2).await;
    assert_eq!(got[1].header("webhook-id"), got[0].header("webhook-id"));
    assert_eq!(got[1].json()["data"]["task_id"], task.as_str());
    eventually("delivered after the restart", LONG, async || {
        deliveries(&api, &id).await[0]["status"] == "delivered"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(rx.received().len(), 2);
}

/// Two nodes on one PostgreSQL schema: every event is delivered once, whichever node
/// finished the task and whichever claimed the delivery; a workflow's end is delivered
/// too.
#[tokio::test]
async fn two_postgres_nodes_deliver_each_event_once() {
    let rx = Receiver::start(vec![]).await;
    let pg = PgSchema::create();
    let env: Vec<(&str, String)> = pg.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = Baton::start_configured(a_dir.path(), LOCAL, &env);
    let b = Baton::start_configured(b_dir.path(), LOCAL, &env);
    let (api_a, api_b) = (Api::new(&a.url), Api::new(&b.url));
    let hook = create_webhook(
        &api_a,
        json!({"url": rx.url, "events": ["task.completed", "workflow.completed"]}),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        tasks.push(
            api.submit(json!({"tool": "baton__echo", "arguments": {"i": i}}))
                .await,
        );
    }
    for t in &tasks {
        assert_eq!(api_a.wait_final(t).await["status"], "completed");
    }
    let wf = api_b
        .post(
            "/v1/workflows",
            json!({"name": "w", "steps": [{"id": "a", "tool": "baton__echo"}]}),
        )
        .await;
    assert_eq!(wf.status, 202, "{}", wf.body);
    let wf_id = wf.body["workflow_id"].as_str().unwrap().to_string();
    // 20 tasks, the workflow's step task, and the workflow.
    let got = rx.wait_for(22).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let got_all = rx.received();
    assert_eq!(got_all.len(), 22, "{}", got_all.len());
    let mut ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 22, "a delivery was sent twice");
    assert!(got_all.iter().all(|r| signed_with(r, &secret)));
    let mut delivered: Vec<String> = got_all
        .iter()
        .filter(|r| r.json()["type"] == "task.completed")
        .map(|r| r.json()["data"]["task_id"].as_str().unwrap().to_string())
        .collect();
    delivered.sort();
    for t in &tasks {
        assert!(delivered.contains(t), "task {t} not delivered");
    }
    let wf_events: Vec<Value> = got_all
        .iter()
        .map(|r| r.json())
        .filter(|b| b["type"] == "workflow.completed")
        .collect();
    assert_eq!(wf_events.len(), 1, "{wf_events:?}");
    assert_eq!(wf_events[0]["data"]["workflow_id"], wf_id.as_str());
    drop((a, b));
}

/// The CLI and the MCP tools manage the same webhooks as the REST API.
#[tokio::test]
async fn webhooks_from_the_cli_and_mcp() {
    let rx = Receiver::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start_configured(dir.path(), LOCAL, &[]);
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
    let added: Value = serde_json::from_str(&run(&[
        "webhooks",
        "add",
        &rx.url,
        "-e",
        "task.completed",
        "-e",
        "workflow.*",
        "--description",
        "from the cli",
    ]))
    .unwrap();
    let id = added["id"].as_str().unwrap().to_string();
    let secret = added["secret"].as_str().unwrap().to_string();
    assert_eq!(added["events"].as_array().unwrap().len(), 4, "{added}");
    assert!(run(&["webhooks"]).contains(&id));
    assert!(run(&["webhooks", "show", &id]).contains("from the cli"));
    let task = echo(&api, "cli").await;
    let got = rx.wait_for(1).await;
    assert!(signed_with(&got[0], &secret));
    assert_eq!(got[0].json()["data"]["task_id"], task.as_str());
    eventually("listed as delivered", LONG, async || {
        run(&["webhooks", "deliveries", &id]).contains("delivered")
    })
    .await;
    let delivery = got[0].header("webhook-id").to_string();
    run(&["webhooks", "redeliver", &id, &delivery]);
    assert_eq!(rx.wait_for(2).await[1].header("webhook-id"), delivery);
    let rotated: Value =
        serde_json::from_str(&run(&["webhooks", "rotate", &id, "--overlap", "1h"])).unwrap();
    assert_ne!(rotated["secret"], secret.as_str());
    let bad = crate::common::cli(&url, &["webhooks", "add", &rx.url, "-e", "task.nope"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("task.nope"));

    let mcp = crate::mcp_protocol::Mcp::new(&baton.url);
    let session = mcp.initialize("2025-11-25", json!({})).await;
    let call = |rid: u64, name: &'static str, args: Value| mcp.call_tool(&session, rid, name, args);
    let r = call(2, "webhook_list", json!({})).await;
    assert_eq!(
        r["structuredContent"]["webhooks"][0]["id"],
        id.as_str(),
        "{r}"
    );
    let r = call(3, "webhook_get", json!({"id": id})).await;
    assert_eq!(r["structuredContent"]["url"], rx.url.as_str(), "{r}");
    let r = call(4, "webhook_deliveries", json!({"id": id})).await;
    assert_eq!(
        r["structuredContent"]["deliveries"][0]["id"],
        delivery.as_str(),
        "{r}"
    );
    let r = call(
        5,
        "webhook_redeliver",
        json!({"id": id, "delivery_id": delivery}),
    )
    .await;
    assert_eq!(r["structuredContent"]["id"], delivery.as_str(), "{r}");
    assert_eq!(rx.wait_for(3).await[2].header("webhook-id"), delivery);
    let r = call(6, "webhook_rotate", json!({"id": id})).await;
    assert!(
        r["structuredContent"]["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_"),
        "{r}"
    );
    let r = call(
        7,
        "webhook_create",
        json!({"url": "http://10.0.0.1/x", "events": ["task.completed"]}),
    )
    .await;
    assert_eq!(r["isError"], true, "{r}");
    assert!(r.to_string().contains("10.0.0.1"), "{r}");
    let r = call(
        8,
        "webhook_create",
        json!({"url": rx.url, "events": ["server.*"]}),
    )
    .await;
    assert!(
        r["structuredContent"]["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_"),
        "{r}"
    );
    let r = call(9, "webhook_delete", json!({"id": id})).await;
    assert_eq!(r["structuredContent"]["deleted"], true, "{r}");
    run(&["webhooks"]);
    assert_eq!(api.get(&format!("/v1/webhooks/{id}")).await.status, 404);
    let gone = crate::common::cli(&url, &["webhooks", "rm", &id]);
    assert!(!gone.status.success());
}

/// Two PostgreSQL nodes share an MCP server that dies and comes back: each change is
/// delivered once (`server.down`, then `server.up`), though both nodes notice it.
#[tokio::test]
async fn server_health_changes_are_delivered_once_across_nodes() {
    use crate::common::{HttpTestServer, free_port, wait_healthy};
    let rx = Receiver::start(vec![]).await;
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("state");
    let port = free_port();
    let mut upstream = HttpTestServer::start(port, &state);
    let toml = format!(
        "{LOCAL}\n[[servers]]\nname = \"flaky\"\nurl = \"{}\"\n",
        upstream.url
    );
    let pg = PgSchema::create();
    let mut env: Vec<(&str, String)> = pg.env();
    env.push(("BATON_UPSTREAM__HEALTH_INTERVAL", "300ms".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = Baton::start_configured(a_dir.path(), &toml, &env);
    let b = Baton::start_configured(b_dir.path(), &toml, &env);
    let (api_a, api_b) = (Api::new(&a.url), Api::new(&b.url));
    wait_healthy(&api_a, "flaky").await;
    wait_healthy(&api_b, "flaky").await;
    let hook = create_webhook(&api_a, json!({"url": rx.url, "events": ["server.*"]})).await;
    let secret = hook["secret"].as_str().unwrap().to_string();

    upstream.kill();
    let got = rx.wait_for(1).await;
    let body = got[0].json();
    assert_eq!(body["type"], "server.down", "{body}");
    assert_eq!(body["data"]["server"], "flaky", "{body}");
    assert!(signed_with(&got[0], &secret));
    // Both nodes see it down before it comes back.
    for api in [&api_a, &api_b] {
        eventually("the server seen down", LONG, async || {
            api.get("/v1/servers/flaky").await.body["state"] != "healthy"
        })
        .await;
    }
    let _upstream = HttpTestServer::start(port, &state);
    let got = rx.wait_for(2).await;
    assert_eq!(got[1].json()["type"], "server.up", "{:?}", got[1]);
    wait_healthy(&api_a, "flaky").await;
    wait_healthy(&api_b, "flaky").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let types: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, ["server.down", "server.up"], "each change once");
    drop((a, b));
}

/// A cancelled task is delivered as `task.cancelled`, to a webhook filtered on its tool;
/// a webhook filtered on another tool, or subscribed to other events, hears nothing.
#[tokio::test]
async fn a_cancelled_task_is_delivered_to_matching_webhooks_only() {
    let rx = Receiver::start(vec![]).await;
    let other = Receiver::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let baton = Baton::start_configured(dir.path(), LOCAL, &[]);
    let api = Api::new(&baton.url);
    create_webhook(
        &api,
        json!({"url": rx.url, "events": ["task.cancelled"], "tool": "baton__sleep"}),
    )
    .await;
    create_webhook(
        &api,
        json!({"url": other.url, "events": ["task.cancelled"], "tool": "baton__echo"}),
    )
    .await;
    create_webhook(
        &api,
        json!({"url": other.url, "events": ["task.completed", "workflow.*"]}),
    )
    .await;
    let task = api
        .submit(json!({"tool": "baton__sleep", "arguments": {"ms": 60000}}))
        .await;
    api.wait_status(&task, "running").await;
    let r = api.delete(&format!("/v1/tasks/{task}")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(api.wait_final(&task).await["status"], "cancelled");
    let got = rx.wait_for(1).await;
    let body = got[0].json();
    assert_eq!(body["type"], "task.cancelled", "{body}");
    assert_eq!(body["data"]["task_id"], task.as_str(), "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.received().len(), 1);
    assert!(other.received().is_empty(), "{:?}", other.received());
}
