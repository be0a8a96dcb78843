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
    keys_are_made_rotated_and_revoked,
    the_audit_log_records_changes_and_refusals,
    a_flood_of_bad_keys_changes_nothing,
    a_revoked_key_is_refused_by_every_node,
    mcp_asks_for_credentials_and_checks_scopes,
    jwts_from_the_issuer_are_identities,
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

async fn keys_are_made_rotated_and_revoked(backend: Backend) {
    let (node, admin) = secured(backend).await;
    let (id, first) = key(
        &node,
        &admin,
        json!({"name": "ci", "principal": "team-a", "scopes": ["tasks:read"], "expires_in": "90d", "rate_limit": "50/s"}),
    )
    .await;
    assert!(first.starts_with(&format!("bk_{id}_")));
    let listed = call(&node, "GET", "/v1/keys", Some(&admin), None).await;
    let text = listed.body.to_string();
    assert!(
        !text.contains(&first) && !text.contains("secret\""),
        "{text}"
    );
    let ci = listed.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(ci["state"], "active");
    assert_eq!(ci["rate_limit"], "50/s");
    assert!(ci["expires_at"].is_string());

    let works = |secret: String| {
        let node = &node;
        async move {
            call(node, "GET", "/v1/tasks", Some(&secret), None)
                .await
                .status
        }
    };
    // Rotate with a grace period: both secrets work.
    let r = call(
        &node,
        "POST",
        &format!("/v1/keys/{id}/rotate"),
        Some(&admin),
        Some(json!({"grace": "1h"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let second = r.body["secret"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert_eq!(works(first.clone()).await, StatusCode::OK);
    assert_eq!(works(second.clone()).await, StatusCode::OK);
    // Rotate with none: the previous one stops at once.
    let r = call(
        &node,
        "POST",
        &format!("/v1/keys/{id}/rotate"),
        Some(&admin),
        Some(json!({"grace": "0s"})),
    )
    .await;
    let third = r.body["secret"].as_str().unwrap().to_string();
    assert_eq!(works(second.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(works(first.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(works(third.clone()).await, StatusCode::OK);
    // Revoke.
    let r = call(
        &node,
        "DELETE",
        &format!("/v1/keys/{id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["state"], "revoked");
    assert_eq!(works(third).await, StatusCode::UNAUTHORIZED);
    let again = call(
        &node,
        "DELETE",
        &format!("/v1/keys/{id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
    let missing = call(
        &node,
        "DELETE",
        "/v1/keys/ffffffffffffffff",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // A keys:admin holder cannot hand out more than it has, nor keys of other tenants.
    let keeper = team(&node, &admin, "team-a", &["keys:admin", "tasks:read"]).await;
    let a = call(
        &node,
        "POST",
        "/v1/keys",
        Some(&keeper),
        Some(json!({"name": "x", "scopes": ["admin"]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{a:?}");
    let a = call(
        &node,
        "POST",
        "/v1/keys",
        Some(&keeper),
        Some(json!({"name": "x", "principal": "team-b", "scopes": ["tasks:read"]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{a:?}");
    let a = call(
        &node,
        "POST",
        "/v1/keys",
        Some(&keeper),
        Some(json!({"name": "x", "scopes": ["tasks:read"]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    assert_eq!(a.body["principal"], "team-a");
    let own = call(&node, "GET", "/v1/keys", Some(&keeper), None).await;
    assert!(
        own.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["principal"] == "team-a"),
        "{own:?}"
    );
    // Bad input names the problem.
    for (body, says) in [
        (
            json!({"name": "x", "scopes": ["tasks:fly"]}),
            "unknown scope `tasks:fly`",
        ),
        (json!({"name": "x", "scopes": []}), "at least one scope"),
        (
            json!({"name": "x", "scopes": ["tasks:read"], "expires_in": "soon"}),
            "expires_in",
        ),
        (
            json!({"name": "x", "scopes": ["tasks:read"], "rate_limit": "fast"}),
            "rate_limit",
        ),
        (json!({"name": "", "scopes": ["tasks:read"]}), "name"),
        (
            json!({"name": "x", "scopes": ["tasks:read"], "colour": 1}),
            "colour",
        ),
    ] {
        let a = call(&node, "POST", "/v1/keys", Some(&admin), Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {a:?}");
        assert!(
            a.body["error"]["message"].as_str().unwrap().contains(says),
            "{body}: {a:?}"
        );
    }
    node.engine.shutdown().await;
}

async fn the_audit_log_records_changes_and_refusals(backend: Backend) {
    let (node, admin) = secured(backend).await;
    let (writer_id, writer) = key(
        &node,
        &admin,
        json!({"name": "w", "principal": "team-a", "scopes": ["tasks:write", "tasks:read"], "rate_limit": "1/m"}),
    )
    .await;
    let submitted = call(
        &node,
        "POST",
        "/v1/tasks",
        Some(&writer),
        Some(echo("audited")),
    )
    .await;
    assert_eq!(submitted.status, StatusCode::ACCEPTED);
    let request_id = submitted.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let task = submitted.body["task_id"].as_str().unwrap().to_string();
    // Refusals: no credential, a missing scope, a rate limit.
    call(&node, "POST", "/v1/tasks", None, Some(echo("x"))).await;
    call(
        &node,
        "POST",
        "/v1/servers",
        Some(&writer),
        Some(json!({"name": "s", "url": "http://127.0.0.1:9/mcp"})),
    )
    .await;
    let limited = call(&node, "POST", "/v1/tasks", Some(&writer), Some(echo("y"))).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);

    let audit = |q: &'static str| {
        let (node, admin) = (&node, admin.clone());
        async move {
            call(node, "GET", &format!("/v1/audit{q}"), Some(&admin), None)
                .await
                .body
        }
    };
    eventually("the audit entries are written", || async {
        audit("?limit=100").await["entries"]
            .as_array()
            .is_some_and(|e| e.len() >= 5)
    })
    .await;
    let all = audit("?limit=100").await;
    let entries = all["entries"].as_array().unwrap();
    let find = |action: &str, outcome: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {action} {outcome} in {all}"))
            .clone()
    };
    let ok = find("tasks.submit", "ok");
    assert_eq!(ok["principal"], "team-a");
    assert_eq!(ok["credential"], format!("key:{writer_id}"));
    assert_eq!(ok["request_id"], request_id.as_str());
    assert_eq!(ok["status"], 202);
    let _ = task;
    assert_eq!(find("tasks.submit", "unauthenticated")["status"], 401);
    assert_eq!(find("servers.add", "denied")["status"], 403);
    assert_eq!(find("tasks.submit", "rate_limited")["status"], 429);
    assert_eq!(find("keys.create", "ok")["principal"], "ops");
    // No secret anywhere in the log.
    let text = all.to_string();
    assert!(
        !text.contains(&writer) && !text.contains(&admin),
        "a secret reached the audit log"
    );
    // Filters and the cursor.
    let submits = audit("?action=tasks.submit&principal=team-a").await;
    assert!(
        submits["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] == "tasks.submit" && e["principal"] == "team-a")
    );
    let first = audit("?limit=1").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let second = call(
        &node,
        "GET",
        &format!("/v1/audit?limit=1&cursor={cursor}"),
        Some(&admin),
        None,
    )
    .await
    .body;
    assert!(second["entries"][0]["seq"].as_i64() < first["entries"][0]["seq"].as_i64());
    let bad = call(
        &node,
        "GET",
        "/v1/audit?since=yesterday",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // A tenant's auditor sees only that tenant.
    let auditor = team(&node, &admin, "team-a", &["audit:read"]).await;
    let own = call(&node, "GET", "/v1/audit?limit=100", Some(&auditor), None).await;
    assert!(
        own.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["principal"] == "team-a"),
        "{own:?}"
    );
    let other = call(
        &node,
        "GET",
        "/v1/audit?principal=ops",
        Some(&auditor),
        None,
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    node.engine.shutdown().await;
}

async fn a_flood_of_bad_keys_changes_nothing(backend: Backend) {
    let (node, admin) = secured(backend).await;
    let good = team(&node, &admin, "team-a", &["tasks:read"]).await;
    let started = Instant::now();
    let mut bad_times = Vec::with_capacity(10_000);
    for i in 0..10_000u32 {
        let token = if i % 2 == 0 {
            // The shape of a key, an id no key has.
            format!("bk_{:016x}_{}", u64::from(i) * 7919, "B".repeat(43))
        } else {
            // The id of a real key, a wrong secret.
            format!("{}{}", &good[..20], "C".repeat(43))
        };
        let t = Instant::now();
        let a = call(&node, "GET", "/v1/tasks", Some(&token), None).await;
        bad_times.push(t.elapsed());
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    let mut good_times: Vec<Duration> = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        assert_eq!(
            call(&node, "GET", "/healthz", None, None).await.status,
            StatusCode::OK
        );
        good_times.push(t.elapsed());
    }
    assert_eq!(
        call(&node, "GET", "/v1/tasks", Some(&good), None)
            .await
            .status,
        StatusCode::OK
    );
    bad_times.sort();
    good_times.sort();
    println!(
        "10000 bad keys in {:?}: refusal p50 {:?} p99 {:?}; health p50 {:?} after",
        started.elapsed(),
        bad_times[5_000],
        bad_times[9_900],
        good_times[100]
    );
    // The audit log got a bounded number of entries, not ten thousand.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = call(
        &node,
        "GET",
        "/v1/audit?action=tasks.list&limit=1000",
        Some(&admin),
        None,
    )
    .await;
    let refused = log.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "unauthenticated")
        .count();
    assert!(
        (1..=20).contains(&refused),
        "{refused} entries for the flood"
    );
    node.engine.shutdown().await;
}

async fn a_revoked_key_is_refused_by_every_node(backend: Backend) {
    let (one, admin) = secured(backend).await;
    let two = Node::on_store(
        one.store.clone(),
        None,
        AuthSettings {
            required: true,
            ..Default::default()
        },
    )
    .await;
    let (id, secret) = key(&one, &admin, json!({"name": "k", "scopes": ["tasks:read"]})).await;
    eventually("the second node learns of the key", || async {
        call(&two, "GET", "/v1/tasks", Some(&secret), None)
            .await
            .status
            == StatusCode::OK
    })
    .await;
    let revoked_at = Instant::now();
    assert_eq!(
        call(
            &one,
            "DELETE",
            &format!("/v1/keys/{id}"),
            Some(&admin),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        call(&one, "GET", "/v1/tasks", Some(&secret), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    eventually("the second node refuses the revoked key", || async {
        call(&two, "GET", "/v1/tasks", Some(&secret), None)
            .await
            .status
            == StatusCode::UNAUTHORIZED
    })
    .await;
    println!(
        "revocation reached the other node in {:?}",
        revoked_at.elapsed()
    );
    two.engine.shutdown().await;
    one.engine.shutdown().await;
}

fn mcp(id: u64, method: &str, params: Value, token: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/mcp")
        .header("host", "127.0.0.1:7420")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if params.get("_meta").is_some() {
        b = b
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method);
        if let Some(name) = params
            .get("name")
            .or_else(|| params.get("taskId"))
            .and_then(Value::as_str)
        {
            b = b.header("mcp-name", name);
        }
    }
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
    ))
    .unwrap()
}

fn modern(mut params: Value) -> Value {
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                             "io.modelcontextprotocol/clientCapabilities": {},
                             "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"}});
    params
}

/// Declares the tasks extension (which `tasks/*` needs).
fn with_tasks(mut params: Value) -> Value {
    params["_meta"]["io.modelcontextprotocol/clientCapabilities"] =
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
    params
}

async fn mcp_asks_for_credentials_and_checks_scopes(backend: Backend) {
    let (node, admin) = secured(backend).await;
    let init = json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}});
    let a = send(&node, mcp(1, "initialize", init.clone(), None)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body["error"]["code"], -32001, "{a:?}");
    assert!(
        a.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("resource_metadata=")
    );

    let reader = team(&node, &admin, "team-a", &["tasks:read"]).await;
    let writer_a = team(&node, &admin, "team-a", &["tasks:read", "tasks:write"]).await;
    let writer_b = team(&node, &admin, "team-b", &["tasks:read", "tasks:write"]).await;
    let call_echo = json!({"name": "baton__echo", "arguments": {"greeting": "hi"}});
    let a = send(
        &node,
        mcp(2, "tools/call", modern(call_echo.clone()), Some(&reader)),
    )
    .await;
    assert_eq!(a.body["error"]["code"], -32003, "{a:?}");
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`tasks:write`")
    );

    // team-a makes a task through the orchestration tools; team-b cannot see it.
    let submit = json!({"name": "task_submit", "arguments": {"tool": "baton__sleep", "arguments": {"ms": 60000}}});
    let a = send(&node, mcp(3, "tools/call", modern(submit), Some(&writer_a))).await;
    let task = a.body["result"]["structuredContent"]["task_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{a:?}"))
        .to_string();
    let peek = json!({"name": "task_status", "arguments": {"task_id": task}});
    let own = send(
        &node,
        mcp(4, "tools/call", modern(peek.clone()), Some(&writer_a)),
    )
    .await;
    assert_eq!(own.body["result"]["isError"], json!(null), "{own:?}");
    let other = send(&node, mcp(5, "tools/call", modern(peek), Some(&writer_b))).await;
    assert_eq!(other.body["result"]["isError"], true, "{other:?}");
    let get = send(
        &node,
        mcp(
            6,
            "tasks/get",
            with_tasks(modern(json!({"taskId": task}))),
            Some(&writer_b),
        ),
    )
    .await;
    assert!(
        get.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown task"),
        "{get:?}"
    );
    // A child only attaches to a parent its caller may see.
    let mut child = modern(call_echo);
    child["_meta"]["baton/parentTask"] = json!(task);
    let a = send(&node, mcp(7, "tools/call", child, Some(&writer_b))).await;
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("baton/parentTask"),
        "{a:?}"
    );

    // A legacy session belongs to the principal that began it.
    let started = send(&node, mcp(8, "initialize", init, Some(&writer_a))).await;
    let sid = started.headers["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let mut list = mcp(9, "tools/list", json!({}), Some(&writer_b));
    list.headers_mut()
        .insert("mcp-session-id", sid.parse().unwrap());
    list.headers_mut()
        .insert("mcp-protocol-version", "2025-11-25".parse().unwrap());
    let a = send(&node, list).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{a:?}");
    let mut list = mcp(10, "tools/list", json!({}), Some(&writer_a));
    list.headers_mut()
        .insert("mcp-session-id", sid.parse().unwrap());
    list.headers_mut()
        .insert("mcp-protocol-version", "2025-11-25".parse().unwrap());
    assert_eq!(send(&node, list).await.status, StatusCode::OK);

    // MCP changes are audited per method.
    eventually("the MCP call is audited", || async {
        let log = call(
            &node,
            "GET",
            "/v1/audit?action=mcp.tools/call&limit=50",
            Some(&admin),
            None,
        )
        .await;
        log.body["entries"].as_array().is_some_and(|e| {
            e.iter()
                .any(|x| x["outcome"] == "denied" && x["principal"] == "team-a")
                && e.iter()
                    .any(|x| x["outcome"] == "ok" && x["target"] == "task_submit")
        })
    })
    .await;
    node.engine.shutdown().await;
}

async fn jwts_from_the_issuer_are_identities(backend: Backend) {
    use baton_server::auth::jwt::{JwtConfig, JwtVerifier};
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt");
    let mut jwk: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{fixtures}/test-only-ec-a.jwk.json")).unwrap(),
    )
    .unwrap();
    jwk["kid"] = json!("k1");
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [jwk]}).to_string()).unwrap();
    let verifier = JwtVerifier::new(JwtConfig {
        issuer: "https://idp.example".into(),
        audience: "baton".into(),
        jwks_file: Some(jwks),
        ..Default::default()
    })
    .await
    .unwrap();
    let (store, guard) = baton_store::fixtures::fresh(backend).await;
    let node = Node::on_store_with(
        store,
        Some(guard),
        AuthSettings {
            required: true,
            ..Default::default()
        },
        Some(verifier),
    )
    .await;
    let signing =
        EncodingKey::from_ec_pem(&std::fs::read(format!("{fixtures}/test-only-ec-a.pem")).unwrap())
            .unwrap();
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let token = |sub: &str, scope: &str, aud: &str, exp: i64| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        encode(
            &header,
            &json!({"iss": "https://idp.example", "aud": aud, "sub": sub, "scope": scope, "exp": exp}),
            &signing,
        )
        .unwrap()
    };
    let alice = token("alice", "tasks:read tasks:write", "baton", now + 600);
    let a = call(&node, "POST", "/v1/tasks", Some(&alice), Some(echo("jwt"))).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{a:?}");
    let task = a.body["task_id"].as_str().unwrap().to_string();
    let bob = token("bob", "tasks:read", "baton", now + 600);
    let seen = call(&node, "GET", &format!("/v1/tasks/{task}"), Some(&bob), None).await;
    assert_eq!(
        seen.status,
        StatusCode::NOT_FOUND,
        "another subject is another tenant"
    );
    let denied = call(&node, "POST", "/v1/tasks", Some(&bob), Some(echo("x"))).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{denied:?}");
    for (bad, says) in [
        (
            token("alice", "tasks:read", "someone-else", now + 600),
            "audience",
        ),
        (token("alice", "tasks:read", "baton", now - 3600), "expired"),
    ] {
        let a = call(&node, "GET", "/v1/tasks", Some(&bad), None).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{a:?}");
        assert!(
            a.body["error"]["message"].as_str().unwrap().contains(says),
            "{a:?}"
        );
    }
    node.engine.shutdown().await;
}
