//! The key lifecycle, the audit log, a flood of bad keys, revocation across nodes,
//! credentials on `/mcp`, and JWTs from an issuer.

use super::*;

on_both!(
    keys_are_made_rotated_and_revoked,
    the_audit_log_records_changes_and_refusals,
    a_flood_of_bad_keys_changes_nothing,
    a_revoked_key_is_refused_by_every_node,
    mcp_asks_for_credentials_and_checks_scopes,
    jwts_from_the_issuer_are_identities,
);

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
