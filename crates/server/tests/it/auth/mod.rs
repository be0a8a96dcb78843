//! Identity, access and audit, through the real router on SQLite and on PostgreSQL:
//! credentials refused with a reason and nothing changed, scopes, tenants confined to
//! their own tasks, queues and sessions, rate limits and quotas, runtime commands, the
//! key lifecycle, and the audit log of all of it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use baton_core::auth::Scope;
use baton_engine::keys::NewKey;
use baton_server::auth::AuthSettings;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::node::{Backend, Node};

/// Runs each scenario on both stores.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await } )*
        }
    };
}

on_both!(
    credentials_are_required_and_refusals_say_why,
    scopes_are_enforced,
    tenants_see_only_their_own,
    rate_limits_and_quotas,
    runtime_commands_need_permission,
);

/// An answer: status, headers, JSON body (`Null` when none).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

async fn send(node: &Node, req: Request<Body>) -> Answer {
    let resp = node.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn request(method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:7420");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

async fn call(
    node: &Node,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    send(node, request(method, path, token, body)).await
}

/// A node that requires credentials, and the secret of its first admin key (made as
/// `baton keys create` makes it, on the store).
async fn secured(backend: Backend) -> (Node, String) {
    let node = Node::start_with(
        backend,
        AuthSettings {
            required: true,
            ..Default::default()
        },
    )
    .await;
    let admin = node
        .engine
        .create_key(NewKey {
            name: "first admin".into(),
            principal: "ops".into(),
            scopes: BTreeSet::from([Scope::Admin]),
            expires_in: None,
            rate_limit: None,
            max_active: None,
        })
        .await
        .unwrap();
    (node, admin.secret)
}

/// Makes a key through the API; returns (key id, secret).
async fn key(node: &Node, admin: &str, body: Value) -> (String, String) {
    let a = call(node, "POST", "/v1/keys", Some(admin), Some(body)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    (
        a.body["key_id"].as_str().unwrap().to_string(),
        a.body["secret"].as_str().unwrap().to_string(),
    )
}

async fn team(node: &Node, admin: &str, principal: &str, scopes: &[&str]) -> String {
    key(
        node,
        admin,
        json!({"name": format!("{principal} key"), "principal": principal, "scopes": scopes}),
    )
    .await
    .1
}

fn echo(greeting: &str) -> Value {
    json!({"tool": "baton__echo", "arguments": {"greeting": greeting}})
}

/// Polls `check` until it holds (the audit writer and key refresh are asynchronous).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn credentials_are_required_and_refusals_say_why(backend: Backend) {
    let (node, admin) = secured(backend).await;
    // Public routes need nothing.
    for path in ["/healthz", "/openapi.json", "/"] {
        let a = call(&node, "GET", path, None, None).await;
        assert!(a.status.is_success(), "{path}: {a:?}");
    }
    let meta = call(
        &node,
        "GET",
        "/.well-known/oauth-protected-resource/mcp",
        None,
        None,
    )
    .await;
    assert_eq!(meta.status, StatusCode::OK);
    assert_eq!(meta.body["resource"], "http://127.0.0.1:7420/mcp");
    assert!(
        meta.body["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("tasks:write"))
    );

    let a = call(&node, "GET", "/v1/tasks", None, None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body["error"]["code"], "unauthenticated");
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requires a credential")
    );
    let challenge = a.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"baton\""),
        "{challenge}"
    );
    assert!(
        challenge.contains(
            "resource_metadata=\"http://127.0.0.1:7420/.well-known/oauth-protected-resource/mcp\""
        ),
        "{challenge}"
    );

    let expired = node
        .engine
        .create_key(NewKey {
            name: "short".into(),
            principal: "team-a".into(),
            scopes: BTreeSet::from([Scope::TasksWrite]),
            expires_in: Some(Duration::from_millis(1)),
            rate_limit: None,
            max_active: None,
        })
        .await
        .unwrap()
        .secret;
    let (revoked_id, revoked) = key(
        &node,
        &admin,
        json!({"name": "gone", "scopes": ["tasks:write"]}),
    )
    .await;
    assert_eq!(
        call(
            &node,
            "DELETE",
            &format!("/v1/keys/{revoked_id}"),
            Some(&admin),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let forged = format!("bk_{}_{}", "0123456789abcdef", "A".repeat(43));
    let cases: Vec<(String, &str)> = vec![
        ("Basic dXNlcjpwYXNz".into(), "`Basic` scheme"),
        ("Bearer".into(), "empty"),
        ("Bearer a b".into(), "characters a token cannot have"),
        (format!("Bearer {forged}"), "not valid"),
        (
            format!("Bearer {}x", &admin[..admin.len() - 1]),
            "not valid",
        ),
        (format!("Bearer {expired}"), "expired"),
        (format!("Bearer {revoked}"), "revoked"),
        (
            "Bearer eyJhbGciOiJub25lIn0.e30.".into(),
            "not a Baton API key",
        ),
    ];
    for (header, reason) in cases {
        let req = Request::post("/v1/tasks")
            .header("host", "127.0.0.1:7420")
            .header("content-type", "application/json")
            .header("authorization", header.as_str())
            .body(Body::from(echo("never").to_string()))
            .unwrap();
        let a = send(&node, req).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{header}: {a:?}");
        let message = a.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{header}: {message}");
        assert!(
            !message.contains("dXNlcjpwYXNz"),
            "a refusal never echoes a credential"
        );
        assert!(
            a.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("error=\"invalid_token\"")
        );
    }
    // Nothing was stored by any of them.
    let all = call(&node, "GET", "/v1/tasks", Some(&admin), None).await;
    assert_eq!(all.body["tasks"], json!([]), "{all:?}");
    node.engine.shutdown().await;
}

async fn scopes_are_enforced(backend: Backend) {
    let (node, admin) = secured(backend).await;
    let reader = team(&node, &admin, "team-a", &["tasks:read"]).await;
    let writer = team(&node, &admin, "team-a", &["tasks:read", "tasks:write"]).await;
    let a = call(&node, "POST", "/v1/tasks", Some(&reader), Some(echo("x"))).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.body["error"]["code"], "permission_denied");
    assert_eq!(
        a.body["error"]["message"],
        "this credential lacks the `tasks:write` scope"
    );
    assert_eq!(
        call(&node, "GET", "/v1/tasks", Some(&reader), None)
            .await
            .status,
        StatusCode::OK
    );
    let a = call(&node, "POST", "/v1/tasks", Some(&writer), Some(echo("x"))).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{a:?}");
    for (method, path, scope) in [
        ("POST", "/v1/servers", "servers:admin"),
        ("DELETE", "/v1/servers/everything", "servers:admin"),
        ("GET", "/v1/keys", "keys:admin"),
        ("GET", "/v1/audit", "audit:read"),
        ("POST", "/v1/queues/default/pause", "queues:admin"),
        ("GET", "/v1/stats", "admin"),
        ("GET", "/v1/peers", "admin"),
        ("POST", "/v1/workflows", "workflows:write"),
        ("GET", "/v1/workflows", "workflows:read"),
        ("GET", "/metrics", "metrics:read"),
    ] {
        let body = (method == "POST").then(|| json!({}));
        let a = call(&node, method, path, Some(&writer), body).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{method} {path}: {a:?}");
        assert!(
            a.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{scope}`")),
            "{method} {path}: {a:?}"
        );
    }
    // A scraper's key reads the metrics and nothing else.
    let scraper = team(&node, &admin, "prometheus", &["metrics:read"]).await;
    let a = call(&node, "GET", "/metrics", Some(&scraper), None).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let a = call(&node, "GET", "/v1/tasks", Some(&scraper), None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{a:?}");
    node.engine.shutdown().await;
}

async fn tenants_see_only_their_own(backend: Backend) {
    let (node, admin) = secured(backend).await;
    let rw = [
        "tasks:read",
        "tasks:write",
        "workflows:read",
        "workflows:write",
        "queues:admin",
    ];
    let a_key = team(&node, &admin, "team-a", &rw).await;
    let b_key = team(&node, &admin, "team-b", &rw).await;
    let mut submit = echo("from a");
    submit["idempotency_key"] = json!("nightly");
    let a = call(
        &node,
        "POST",
        "/v1/tasks",
        Some(&a_key),
        Some(submit.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{a:?}");
    let a_task = a.body["task_id"].as_str().unwrap().to_string();
    // The same idempotency key is another tenant's own.
    let b = call(&node, "POST", "/v1/tasks", Some(&b_key), Some(submit)).await;
    assert_eq!(b.status, StatusCode::ACCEPTED, "{b:?}");
    let b_task = b.body["task_id"].as_str().unwrap().to_string();
    assert_ne!(a_task, b_task);

    for (method, path) in [
        ("GET", format!("/v1/tasks/{a_task}")),
        ("GET", format!("/v1/tasks/{a_task}/result")),
        ("GET", format!("/v1/tasks/{a_task}/events")),
        ("DELETE", format!("/v1/tasks/{a_task}")),
        ("POST", format!("/v1/tasks/{a_task}/retry")),
    ] {
        let a = call(&node, method, &path, Some(&b_key), None).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{method} {path}: {a:?}");
    }
    // A forged Baton-Principal is ignored once credentials are on.
    let req = Request::get("/v1/tasks")
        .header("host", "127.0.0.1:7420")
        .header("authorization", format!("Bearer {b_key}"))
        .header("baton-principal", "team-a")
        .body(Body::empty())
        .unwrap();
    let listed = send(&node, req).await;
    let ids: Vec<&str> = listed.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![b_task.as_str()], "{listed:?}");

    // Analytics: a tenant's own tasks; an admin's view holds every tenant.
    let path = "/v1/analytics?since=1h&group_by=principal";
    let mine = call(&node, "GET", path, Some(&b_key), None).await;
    assert_eq!(mine.status, StatusCode::OK, "{mine:?}");
    let keys = |a: &Answer| -> Vec<String> {
        a.body["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(&mine), vec!["team-b"], "{mine:?}");
    assert_eq!(mine.body["totals"]["total"], 1);
    let all = call(&node, "GET", path, Some(&admin), None).await;
    let mut every = keys(&all);
    every.sort();
    assert_eq!(every, vec!["team-a", "team-b"], "{all:?}");

    // Queues: pausing is per tenant; a queue that does not exist is not made.
    let p = call(
        &node,
        "POST",
        "/v1/queues/default/pause",
        Some(&a_key),
        None,
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{p:?}");
    let nope = call(
        &node,
        "POST",
        "/v1/queues/no-such-queue/pause",
        Some(&a_key),
        None,
    )
    .await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND, "{nope:?}");
    let queues = |key: String| {
        let node = &node;
        async move { call(node, "GET", "/v1/queues", Some(&key), None).await.body }
    };
    let a_view = queues(a_key.clone()).await;
    let b_view = queues(b_key.clone()).await;
    let paused = |v: &Value| {
        v["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == "default")
            .map(|q| q["paused"].clone())
    };
    assert_eq!(paused(&a_view), Some(json!(true)), "{a_view}");
    assert_eq!(paused(&b_view), Some(json!(false)), "{b_view}");
    assert!(
        !b_view["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "no-such-queue"),
        "{b_view}"
    );

    // Workflows too.
    let wf = json!({"name": "w", "steps": [{"id": "s", "tool": "baton__echo", "arguments": {}}]});
    let w = call(&node, "POST", "/v1/workflows", Some(&a_key), Some(wf)).await;
    assert_eq!(w.status, StatusCode::ACCEPTED, "{w:?}");
    let wid = w.body["workflow_id"].as_str().unwrap();
    let seen = call(
        &node,
        "GET",
        &format!("/v1/workflows/{wid}"),
        Some(&b_key),
        None,
    )
    .await;
    assert_eq!(seen.status, StatusCode::NOT_FOUND, "{seen:?}");

    // An admin acts for a tenant explicitly; no one else may.
    let act = |key: String, principal: &'static str| {
        Request::get(format!("/v1/tasks/{a_task}"))
            .header("host", "127.0.0.1:7420")
            .header("authorization", format!("Bearer {key}"))
            .header("baton-act-as", principal)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        send(&node, act(admin.clone(), "team-a")).await.status,
        StatusCode::OK
    );
    let refused = send(&node, act(b_key.clone(), "team-a")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused:?}");
    node.engine.shutdown().await;
}

async fn rate_limits_and_quotas(backend: Backend) {
    let (node, admin) = secured(backend).await;
    let (_, limited) = key(
        &node,
        &admin,
        json!({"name": "slow", "principal": "team-r", "scopes": ["tasks:read"], "rate_limit": "3/m"}),
    )
    .await;
    for i in 0..3 {
        let a = call(&node, "GET", "/v1/tasks", Some(&limited), None).await;
        assert_eq!(a.status, StatusCode::OK, "request {i}");
        assert_eq!(a.headers["ratelimit-policy"], "\"default\";q=3;w=60");
        assert!(
            a.headers["ratelimit"]
                .to_str()
                .unwrap()
                .starts_with(&format!("\"default\";r={}", 2 - i))
        );
    }
    let a = call(&node, "GET", "/v1/tasks", Some(&limited), None).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{a:?}");
    let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert!(a.headers["ratelimit"].to_str().unwrap().contains("r=0"));
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit of 3/m")
    );

    let (_, capped) = key(
        &node,
        &admin,
        json!({"name": "capped", "principal": "team-q", "scopes": ["tasks:write", "tasks:read"], "max_active": 3}),
    )
    .await;
    let sleep = json!({"tool": "baton__sleep", "arguments": {"ms": 600000}});
    let batch = |n: usize| json!({"tasks": vec![sleep.clone(); n]});
    let over = call(
        &node,
        "POST",
        "/v1/tasks/batch",
        Some(&capped),
        Some(batch(4)),
    )
    .await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS, "{over:?}");
    assert!(
        over.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 3 active tasks")
    );
    let fits = call(
        &node,
        "POST",
        "/v1/tasks/batch",
        Some(&capped),
        Some(batch(3)),
    )
    .await;
    assert!(fits.status.is_success(), "{fits:?}");
    let one_more = call(
        &node,
        "POST",
        "/v1/tasks",
        Some(&capped),
        Some(sleep.clone()),
    )
    .await;
    assert_eq!(
        one_more.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{one_more:?}"
    );
    assert!(one_more.headers.contains_key("retry-after"));
    // Another tenant is not held back by team-q's quota.
    let other = team(&node, &admin, "team-z", &["tasks:write"]).await;
    let a = call(&node, "POST", "/v1/tasks", Some(&other), Some(echo("z"))).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{a:?}");
    node.engine.shutdown().await;
}

async fn runtime_commands_need_permission(backend: Backend) {
    let (node, admin) = secured(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let stdio = json!({"name": "evil", "command": "touch", "args": [marker.to_str().unwrap()]});
    let a = call(&node, "POST", "/v1/servers", Some(&admin), Some(stdio)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{a:?}");
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allow_runtime_commands")
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!marker.exists(), "a refused registration ran its command");
    // HTTP servers need only servers:admin; without it, 403 before anything is tried.
    let writer = team(&node, &admin, "team-a", &["tasks:write"]).await;
    let http = json!({"name": "remote", "url": "http://127.0.0.1:9/mcp"});
    let a = call(
        &node,
        "POST",
        "/v1/servers",
        Some(&writer),
        Some(http.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{a:?}");
    let ops = team(&node, &admin, "ops", &["servers:admin"]).await;
    let a = call(&node, "POST", "/v1/servers", Some(&ops), Some(http)).await;
    assert_ne!(
        a.status,
        StatusCode::FORBIDDEN,
        "servers:admin may register HTTP servers: {a:?}"
    );
    node.engine.shutdown().await;
}

mod keys;
