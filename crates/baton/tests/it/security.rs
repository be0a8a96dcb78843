//! Securing a node, as the README's "Securing a node" walks through it, on SQLite and on
//! PostgreSQL over TLS: the first admin key made offline, a node refused on a network
//! address without credentials, then started there with HTTPS; two teams' keys, each team
//! confined to its own work over REST, MCP (rmcp with a bearer token) and the CLI; a
//! revoked key refused; the audit log of all of it. Also: the certificate is reloaded
//! when its files change.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, JsonObject};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{Value, json};

use crate::common::{Baton, PgSchema, baton_bin, eventually, free_port, pg_url, wait_exit};

/// A self-signed certificate for 127.0.0.1 with common name `cn` (openssl, which every
/// machine with PostgreSQL has).
fn certificate(dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{cn}.crt"));
    let key = dir.join(format!("{cn}.key"));
    let config = dir.join(format!("{cn}.cnf"));
    std::fs::write(
        &config,
        format!(
            "[req]\ndistinguished_name = dn\nx509_extensions = leaf\nprompt = no\n\
             [dn]\nCN = {cn}\n\
             [leaf]\nbasicConstraints = critical, CA:FALSE\nsubjectAltName = IP:127.0.0.1\n\
             keyUsage = digitalSignature\nextendedKeyUsage = serverAuth\n"
        ),
    )
    .unwrap();
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-config",
        ])
        .arg(&config)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// The common name of the certificate the node at `port` presents now.
fn presented_cn(port: u16) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("subject="))
        .map(|s| s.replace(' ', ""))
        .unwrap_or_default()
}

fn https_client(cert: &Path) -> reqwest::Client {
    let pem = std::fs::read(cert).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

struct Reply {
    status: u16,
    body: Value,
}

async fn call(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = http.request(method.parse().unwrap(), format!("{url}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// Where a walk-through keeps its state: a data directory, or a PostgreSQL schema
/// reached over TLS.
enum Backend {
    Sqlite,
    Postgres(PgSchema),
}

impl Backend {
    fn env(&self) -> Vec<(String, String)> {
        match self {
            Backend::Sqlite => Vec::new(),
            Backend::Postgres(schema) => vec![
                (
                    "BATON_STORE".into(),
                    format!(
                        "{}?sslmode=require&application_name=baton_tls_it",
                        schema.url
                    ),
                ),
                ("BATON_STORE__SCHEMA".into(), schema.name.clone()),
            ],
        }
    }
}

/// Runs the CLI with `backend`'s store and `data` as its data directory.
fn baton(backend: &Backend, data: &Path, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(baton_bin());
    cmd.args(args)
        .env("BATON_DATA_DIR", data)
        .env_remove("BATON_URL")
        .env_remove("BATON_TOKEN");
    for (k, v) in backend.env() {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().expect("run baton")
}

/// The secret `baton keys create` printed: alone on its last stdout line.
fn secret_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("a secret")
        .trim()
        .to_string()
}

/// An MCP client (rmcp) that sends `token` as its bearer over HTTPS.
async fn mcp_client(
    url: &str,
    token: &str,
    cert: &Path,
) -> rmcp::service::RunningService<rmcp::RoleClient, Handler> {
    let transport = StreamableHttpClientTransport::with_client(
        https_client(cert),
        StreamableHttpClientTransportConfig::with_uri(format!("{url}/mcp")).auth_header(token),
    );
    Handler
        .serve(transport)
        .await
        .expect("the MCP client connects")
}

#[derive(Clone)]
struct Handler;

impl ClientHandler for Handler {}

async fn mcp_tool(
    client: &rmcp::service::RunningService<rmcp::RoleClient, Handler>,
    name: &str,
    args: Value,
) -> Result<Value, String> {
    let Value::Object(args) = args else {
        panic!("arguments are an object")
    };
    let params = CallToolRequestParams::new(name.to_string()).with_arguments(args as JsonObject);
    match client.call_tool(params).await {
        Ok(result) => {
            let v = serde_json::to_value(&result).unwrap();
            if v["isError"] == json!(true) {
                Err(v.to_string())
            } else {
                Ok(v["structuredContent"].clone())
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

async fn walk_through(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");

    // 1. On a network address without credentials, the node refuses to start, and says
    //    what to do.
    let mut cmd = Command::new(baton_bin());
    cmd.args(["serve", "--listen", &listen])
        .env("BATON_DATA_DIR", &data);
    for (k, v) in backend.env() {
        cmd.env(k, v);
    }
    let refused = cmd.output().unwrap();
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("baton keys create") || why.contains("auth.required"),
        "{why}"
    );

    // 2. The first admin key, offline, before the node starts.
    let mut offline = vec![
        "keys",
        "create",
        "--name",
        "ops",
        "--principal",
        "ops",
        "--scopes",
        "admin",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    match &backend {
        Backend::Sqlite => {
            offline.push("--data-dir".into());
            offline.push(data.to_string_lossy().into());
        }
        Backend::Postgres(_) => {
            let url = backend.env()[0].1.clone();
            offline.push("--store".into());
            offline.push(url);
        }
    }
    let offline: Vec<&str> = offline.iter().map(String::as_str).collect();
    let admin = secret_of(&baton(&backend, &data, &offline, &[]));

    // 3. The node on the network address, with HTTPS.
    let (cert, key) = certificate(dir.path(), "baton-one");
    let mut cmd = Command::new(baton_bin());
    cmd.args(["serve", "--listen", &listen])
        .env("BATON_DATA_DIR", &data)
        .env("BATON_TLS__CERT", &cert)
        .env("BATON_TLS__KEY", &key);
    for (k, v) in backend.env() {
        cmd.env(k, v);
    }
    let node = Baton::spawn(cmd, &dir.path().join("node.log"));
    assert!(node.url.starts_with("https://"), "{}", node.url);
    let url = format!("https://127.0.0.1:{port}");
    let http = https_client(&cert);
    // Plain HTTP gets no answer from an HTTPS listener.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/v1/tasks")).await;
    assert!(
        plain.is_err() || plain.as_ref().unwrap().status().is_client_error(),
        "{plain:?}"
    );
    // Without a key: 401, with the reason.
    let anon = call(&http, &url, "GET", "/v1/tasks", None, None).await;
    assert_eq!(anon.status, 401, "{}", anon.body);

    // 4. A key per team, through the API with the admin key.
    let mut team = Vec::new();
    for name in ["team-a", "team-b"] {
        let r = call(
            &http,
            &url,
            "POST",
            "/v1/keys",
            Some(&admin),
            Some(json!({"name": name, "principal": name,
                        "scopes": ["tasks:read", "tasks:write", "workflows:read", "workflows:write"]})),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let secret = r.body["secret"]
            .as_str()
            .expect("the secret, once")
            .to_string();
        let id = r.body["key_id"].as_str().expect("the key's id").to_string();
        team.push((secret, id));
    }
    let (a, a_id) = team[0].clone();
    let (b, _) = team[1].clone();

    // 5. REST: each team sees only its own tasks.
    let r = call(
        &http,
        &url,
        "POST",
        "/v1/tasks",
        Some(&a),
        Some(json!({"tool": "baton__echo", "arguments": {"team": "a"}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let a_task = r.body["task_id"].as_str().unwrap().to_string();
    let seen_by_b = call(
        &http,
        &url,
        "GET",
        &format!("/v1/tasks/{a_task}"),
        Some(&b),
        None,
    )
    .await;
    assert_eq!(seen_by_b.status, 404, "{}", seen_by_b.body);
    let listed = call(&http, &url, "GET", "/v1/tasks", Some(&b), None).await;
    assert_eq!(listed.status, 200);
    assert!(
        listed.body["tasks"].as_array().unwrap().is_empty(),
        "{}",
        listed.body
    );
    let own = call(
        &http,
        &url,
        "GET",
        &format!("/v1/tasks/{a_task}"),
        Some(&a),
        None,
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.body);

    // 6. MCP, a real SDK client with a bearer token: the same confinement.
    let mcp_a = mcp_client(&url, &a, &cert).await;
    let mcp_b = mcp_client(&url, &b, &cert).await;
    let submitted = mcp_tool(
        &mcp_b,
        "task_submit",
        json!({"tool": "baton__echo", "arguments": {"team": "b"}}),
    )
    .await
    .expect("team b submits over MCP");
    let b_task = submitted["task_id"]
        .as_str()
        .expect("a task id")
        .to_string();
    let b_list = mcp_tool(&mcp_b, "task_list", json!({})).await.unwrap();
    let ids: Vec<&str> = b_list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["task_id"].as_str())
        .collect();
    assert_eq!(ids, vec![b_task.as_str()], "{b_list}");
    let foreign = mcp_tool(&mcp_b, "task_status", json!({"task_id": a_task})).await;
    assert!(foreign.is_err(), "{foreign:?}");
    let mine = mcp_tool(&mcp_a, "task_status", json!({"task_id": a_task})).await;
    assert!(mine.is_ok(), "{mine:?}");
    mcp_a.cancel().await.unwrap();
    mcp_b.cancel().await.unwrap();
    // A stdio host bridged to the node (`baton mcp --server https://… --token …`) is the
    // key's principal too.
    let cmd = tokio::process::Command::new(baton_bin()).configure(|c| {
        c.args(["mcp", "--server", &url, "--token", &b, "--ca-cert"])
            .arg(&cert)
            .env("BATON_LOG", "warn")
            .env_remove("BATON_TOKEN")
            .env_remove("BATON_URL");
    });
    let bridged = Handler
        .serve(TokioChildProcess::new(cmd).expect("spawn baton mcp --server"))
        .await
        .expect("the bridged client connects");
    let b_list = mcp_tool(&bridged, "task_list", json!({})).await.unwrap();
    let ids: Vec<&str> = b_list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["task_id"].as_str())
        .collect();
    assert_eq!(ids, vec![b_task.as_str()], "{b_list}");
    bridged.cancel().await.unwrap();

    // 7. The CLI with --token (and the node's certificate to trust).
    let cli = |token: &str, args: &[&str]| {
        let mut cmd = Command::new(baton_bin());
        cmd.args(["--server", &url, "--token", token, "--ca-cert"])
            .arg(&cert)
            .args(args)
            .env_remove("BATON_URL")
            .env_remove("BATON_TOKEN");
        cmd.output().unwrap()
    };
    let listed = cli(&a, &["list", "--json"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains(&a_task) && !text.contains(&b_task), "{text}");
    let foreign = cli(&a, &["status", &b_task]);
    assert!(!foreign.status.success());
    let no_token = Command::new(baton_bin())
        .args(["--server", &url, "--ca-cert"])
        .arg(&cert)
        .args(["list"])
        .env_remove("BATON_TOKEN")
        .output()
        .unwrap();
    assert!(!no_token.status.success());
    assert!(
        String::from_utf8_lossy(&no_token.stderr).contains("--token"),
        "{}",
        String::from_utf8_lossy(&no_token.stderr)
    );

    // 8. Revoking team a's key: refused at once.
    let r = call(
        &http,
        &url,
        "DELETE",
        &format!("/v1/keys/{a_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert!(
        r.status == 200 || r.status == 204,
        "{} {}",
        r.status,
        r.body
    );
    let after = call(&http, &url, "GET", "/v1/tasks", Some(&a), None).await;
    assert_eq!(after.status, 401, "{}", after.body);

    // 9. The audit log holds all of it: the keys made and revoked, the submissions, the
    //    refusals.
    let audit = call(
        &http,
        &url,
        "GET",
        "/v1/audit?limit=500",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let entries = audit.body["entries"].as_array().unwrap();
    let has = |what: &dyn Fn(&Value) -> bool| entries.iter().any(what);
    let text = audit.body.to_string();
    assert!(
        has(&|e| e["principal"] == "ops" && e["action"].as_str().unwrap_or("").contains("key")),
        "{text}"
    );
    assert!(
        has(&|e| e["principal"] == "team-a" && e["outcome"] == "ok"),
        "{text}"
    );
    assert!(
        has(&|e| e["principal"] == "team-b" && e["outcome"] == "ok"),
        "{text}"
    );
    assert!(
        has(&|e| e["outcome"] == "denied" || e["outcome"] == "unauthenticated"),
        "{text}"
    );
    assert!(
        !text.contains(&a) && !text.contains(&admin),
        "no secret in the audit log"
    );

    // On PostgreSQL, the node's connections are encrypted.
    if let Backend::Postgres(schema) = &backend {
        let ssl = schema.query(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'baton_tls_it'",
        );
        assert_eq!(ssl, vec!["t"], "the node's connections use TLS");
    }
    assert!(node.terminate().success(), "the node stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn securing_a_node_on_sqlite() {
    walk_through(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn securing_a_node_on_postgres_over_tls() {
    walk_through(Backend::Postgres(PgSchema::create())).await;
}

/// `sslmode` in the store URL is honoured: verifying the server's certificate against
/// roots that do not hold it stops the node with the reason.
#[test]
fn postgres_sslmode_verify_full_checks_the_certificate() {
    let schema = PgSchema::create();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(baton_bin())
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .env("BATON_STORE", format!("{}?sslmode=verify-full", pg_url()))
        .env("BATON_STORE__SCHEMA", &schema.name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        !status.success(),
        "a self-signed server certificate is not trusted"
    );
    assert!(
        stderr.to_lowercase().contains("certificate") || stderr.contains("tls"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_is_reloaded_when_its_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "baton-one");
    let live_cert = dir.path().join("live.crt");
    let live_key = dir.path().join("live.key");
    std::fs::copy(&cert, &live_cert).unwrap();
    std::fs::copy(&key, &live_key).unwrap();
    let port = free_port();
    let mut cmd = Command::new(baton_bin());
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(dir.path().join("data"))
    .env("BATON_TLS__CERT", &live_cert)
    .env("BATON_TLS__KEY", &live_key);
    let node = Baton::spawn(cmd, &dir.path().join("node.log"));
    assert!(presented_cn(port).contains("CN=baton-one"));
    let r = https_client(&cert)
        .get(format!("https://127.0.0.1:{port}/v1/tasks"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A renewal: new files, no restart.
    let (cert2, key2) = certificate(dir.path(), "baton-two");
    std::fs::copy(&key2, &live_key).unwrap();
    std::fs::copy(&cert2, &live_cert).unwrap();
    eventually("the new certificate", Duration::from_secs(20), async || {
        presented_cn(port).contains("CN=baton-two")
    })
    .await;
    // A broken file (a renewal half-written) keeps the last good pair in use.
    std::fs::write(&live_cert, "not a certificate").unwrap();
    eventually("the failure logged", Duration::from_secs(20), async || {
        node.log_text().contains("do not load")
    })
    .await;
    assert!(presented_cn(port).contains("CN=baton-two"));
    let r = https_client(&cert2)
        .get(format!("https://127.0.0.1:{port}/v1/tasks"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
