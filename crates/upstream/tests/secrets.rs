//! Secrets at rest through the real path: `Upstreams` on a real SQLite store, the
//! repository's test MCP server as a real stdio upstream, and a real TCP listener that
//! records what an HTTP upstream is sent.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_engine::tools::ToolRegistry;
use baton_store::Store;
use baton_store::sqlite::{SqliteOptions, SqliteStore};
use baton_upstream::secrets::{KEY_FILE, SecretKey};
use baton_upstream::{Secrets, SecretsConfig, ServerConfig, Settings, StoreScope, Upstreams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "hunter2-plain-token-7f3a";
/// `baton-testserver` lists its `effect` and `stubborn` tools only when this variable is
/// set in its environment: seeing them proves a sealed env value reached the process.
const CHAOS_TOOLS: &str = "BATON_TESTSERVER_CHAOS_TOOLS";
const WAIT: Duration = Duration::from_secs(30);

/// The `baton-testserver` binary, next to this test's target directory (built if a
/// narrower `cargo test` did not build it).
fn testserver() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("baton-testserver");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "baton-testserver"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok && bin.exists(), "could not build baton-testserver");
    }
    bin
}

async fn open_store(dir: &Path) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(&SqliteOptions::new(dir.join("baton.db")))
            .await
            .unwrap(),
    )
}

fn upstreams(store: Arc<dyn Store>, secrets: Secrets) -> Arc<Upstreams> {
    // A node id of its own: starting reaps the server processes a previous run of the
    // same node id left, and tests run at once in other processes.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let node = format!(
        "secrets-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    Upstreams::with_secrets(
        Arc::new(ToolRegistry::with_builtins("__")),
        store,
        &node,
        Settings::default(),
        Arc::new(secrets),
    )
}

fn local(dir: &Path) -> Secrets {
    Secrets::new(
        None,
        &SecretsConfig::default(),
        StoreScope::Local {
            data_dir: dir.to_path_buf(),
        },
    )
    .unwrap()
}

/// Every file of the data directory (database, WAL, key) as bytes.
fn files_contain(dir: &Path, needle: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            std::fs::read(p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

/// The node's log (everything at debug and above) while the guard lives. Tests run on a
/// current-thread runtime, so the tasks they spawn log here too.
fn capture_logs() -> (tracing::subscriber::DefaultGuard, Arc<Mutex<Vec<u8>>>) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || LogWriter(sink.clone()))
        .finish();
    (tracing::subscriber::set_default(subscriber), buffer)
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged(buffer: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}

fn tools(upstreams: &Upstreams, name: &str) -> Vec<String> {
    upstreams
        .get(name)
        .unwrap()
        .upstream_tools()
        .iter()
        .map(|t| t.name.clone())
        .collect()
}

#[tokio::test]
async fn stdio_env_is_stored_sealed_and_reaches_the_server_after_a_restart() {
    let (_guard, log) = capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let config: ServerConfig = serde_json::from_value(json!({
        "name": "secretive",
        "command": testserver(),
        "args": ["--name", "secretive"],
        "env": {CHAOS_TOOLS: "1", "API_TOKEN": TOKEN, "FROM_ENV": "${env:CARGO_PKG_NAME}"},
    }))
    .unwrap();

    // First run: registered through the API path, on a fresh SQLite data directory
    // without a configured key (one is generated in it).
    let store = open_store(dir.path()).await;
    let up = upstreams(store.clone(), local(dir.path()));
    let server = up.register(config).await.unwrap();
    assert!(
        tools(&up, "secretive").contains(&"effect".to_string()),
        "the sealed env reached the process"
    );
    let key_id = up.secrets().key_id().unwrap();
    assert!(dir.path().join(KEY_FILE).exists());

    // What callers see: no value.
    let view = serde_json::to_string(&server.status()).unwrap();
    assert!(!view.contains(TOKEN), "{view}");
    assert!(view.contains("\"API_TOKEN\":\"***\""), "{view}");
    let debug = format!("{:?}", server.config);
    assert!(!debug.contains(TOKEN), "{debug}");

    // The raw row: sealed under the generated key, the reference as written.
    let row = store.list_servers().await.unwrap().remove(0).config;
    let sealed = row["env"]["API_TOKEN"].as_str().unwrap();
    assert!(sealed.starts_with(&format!("enc:v1:{key_id}:")), "{row}");
    assert!(
        row["env"][CHAOS_TOOLS]
            .as_str()
            .unwrap()
            .starts_with("enc:v1:")
    );
    assert_eq!(row["env"]["FROM_ENV"], "${env:CARGO_PKG_NAME}");
    assert!(!row.to_string().contains(TOKEN), "{row}");
    up.shutdown().await;
    store.close().await;
    assert_eq!(
        files_contain(dir.path(), TOKEN),
        Vec::<PathBuf>::new(),
        "no file of the data directory holds the plain value"
    );

    // Second run, same data directory: the stored server starts with its env.
    let store = open_store(dir.path()).await;
    let up = upstreams(store.clone(), local(dir.path()));
    up.load_stored().await.unwrap();
    up.get("secretive")
        .unwrap()
        .first_attempt(WAIT)
        .await
        .unwrap();
    assert!(tools(&up, "secretive").contains(&"effect".to_string()));
    up.shutdown().await;

    // Another key only: the server is there, down, and says why (server and key named).
    let stranger = SecretKey::from_bytes(&[42; 32]);
    let up = upstreams(store.clone(), Secrets::with_key(stranger.clone()));
    up.load_stored().await.unwrap();
    let server = up.get("secretive").expect("kept, not dropped");
    let why = server.first_attempt(WAIT).await.unwrap_err();
    assert!(
        why.contains("server `secretive`, env `API_TOKEN`")
            && why.contains(&format!("encrypted with key `{key_id}`")),
        "{why}"
    );
    let status = server.status();
    assert_eq!(status.state, "down");
    assert_eq!(status.last_error.as_deref(), Some(why.as_str()));
    up.shutdown().await;
    store.close().await;
    let log = logged(&log);
    assert!(log.contains("secretive"), "the log was captured: {log}");
    assert!(!log.contains(TOKEN), "{log}");
}

#[tokio::test]
async fn rotation_reseals_every_value_once_and_the_new_key_alone_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let old = Secrets::with_key(SecretKey::from_bytes(&[1; 32]));
    // Two servers stored as a node would (sealed), one with only a reference, and one left
    // plain by an older Baton.
    for (name, env) in [
        ("one", json!({CHAOS_TOOLS: "1", "A": "a-secret"})),
        ("two", json!({"B": "b-secret"})),
        ("refs", json!({"C": "${env:HOME}"})),
    ] {
        let config: ServerConfig =
            serde_json::from_value(json!({"name": name, "command": testserver(), "env": env}))
                .unwrap();
        let sealed = old.seal_server(&config).unwrap();
        store
            .put_server(
                name,
                serde_json::to_value(&sealed).unwrap(),
                baton_core::Timestamp::now(),
            )
            .await
            .unwrap();
    }
    store
        .put_server(
            "legacy",
            json!({"name": "legacy", "command": "x", "env": {"D": "d-secret"}}),
            baton_core::Timestamp::now(),
        )
        .await
        .unwrap();

    let new = SecretKey::from_bytes(&[2; 32]);
    let dry = old.rotate(&*store, &new, false).await.unwrap();
    assert_eq!((dry.servers, dry.resealed, dry.plain), (3, 3, 1));
    let first = old.rotate(&*store, &new, true).await.unwrap();
    assert_eq!(first, dry);
    assert!(first.failures.is_empty());
    // Interrupted or not, a second pass finds everything under the new key.
    let second = old.rotate(&*store, &new, true).await.unwrap();
    assert_eq!(
        (
            second.servers,
            second.resealed,
            second.plain,
            second.current
        ),
        (0, 0, 0, 4)
    );

    let rows = store.list_servers().await.unwrap();
    let all = serde_json::to_string(&rows.iter().map(|r| &r.config).collect::<Vec<_>>()).unwrap();
    for plain in ["a-secret", "b-secret", "d-secret"] {
        assert!(!all.contains(plain), "{all}");
    }
    assert!(!all.contains(&format!("enc:v1:{}:", SecretKey::from_bytes(&[1; 32]).id())));
    assert!(all.contains("${env:HOME}"));

    // A process with the new key alone starts the servers.
    let up = upstreams(store.clone(), Secrets::with_key(new.clone()));
    up.load_stored().await.unwrap();
    up.get("one").unwrap().first_attempt(WAIT).await.unwrap();
    assert!(tools(&up, "one").contains(&"effect".to_string()));
    up.shutdown().await;

    // A value under a key the rotation does not have is reported, its server untouched.
    let unknown = Secrets::with_key(SecretKey::from_bytes(&[3; 32]));
    let report = unknown
        .rotate(&*store, &SecretKey::from_bytes(&[4; 32]), true)
        .await
        .unwrap();
    assert_eq!(report.failures.len(), 3, "{report:?}");
    assert!(
        report.failures.iter().all(|f| f.contains(new.id())),
        "{report:?}"
    );
    store.close().await;
}

#[tokio::test]
async fn a_failing_server_s_stderr_stays_in_the_log() {
    let (_guard, log) = capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let up = upstreams(store.clone(), local(dir.path()));
    // The test server refuses an unknown flag: clap prints why on stderr and exits 2.
    let config: ServerConfig = serde_json::from_value(json!({
        "name": "broken",
        "command": testserver(),
        "args": ["--no-such-flag", "--token", "tok-in-args"],
    }))
    .unwrap();
    let Err(e) = up.register(config).await else {
        panic!("registered a server that cannot start");
    };
    let e = e.to_string();
    assert!(
        e.contains("the server exited (code 2)") && e.contains("its stderr is in the node's log"),
        "{e}"
    );
    assert!(
        !e.contains("no-such-flag") && !e.contains("tok-in-args"),
        "{e}"
    );
    assert!(up.get("broken").is_none(), "nothing kept");
    assert!(store.list_servers().await.unwrap().is_empty());
    store.close().await;
    let log = logged(&log);
    assert!(
        log.contains("the last lines of its stderr") && log.contains("--no-such-flag"),
        "the log keeps the tail: {log}"
    );
}

/// Reads one HTTP request's head from each connection and answers 500; sends the heads.
async fn recording_listener() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
                let _ = socket
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn http_headers_are_stored_sealed_and_sent_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "file-token-9c2e\n").unwrap();
    let (url, mut requests) = recording_listener().await;
    let secrets = Secrets::with_key(SecretKey::from_bytes(&[5; 32]));
    let config: ServerConfig = serde_json::from_value(json!({
        "name": "remote",
        "url": format!("{url}?access_token=query-secret"),
        "headers": {
            "Authorization": format!("Bearer {TOKEN}"),
            "X-From-File": format!("${{file:{}}}", token_file.display()),
        },
    }))
    .unwrap();
    let sealed = secrets.seal_server(&config).unwrap();
    assert!(!serde_json::to_string(&sealed).unwrap().contains(TOKEN));
    let store = open_store(dir.path()).await;
    store
        .put_server(
            "remote",
            serde_json::to_value(&sealed).unwrap(),
            baton_core::Timestamp::now(),
        )
        .await
        .unwrap();

    let up = upstreams(store.clone(), secrets);
    up.load_stored().await.unwrap();
    let head = tokio::time::timeout(WAIT, requests.recv())
        .await
        .unwrap()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        head.contains(&format!("authorization: bearer {TOKEN}")),
        "{head}"
    );
    assert!(head.contains("x-from-file: file-token-9c2e\r\n"), "{head}");
    // The server is not an MCP server: it is down, and neither its view nor its error
    // shows a credential of the URL or the headers.
    let server = up.get("remote").unwrap();
    let _ = server.first_attempt(WAIT).await;
    let view = serde_json::to_string(&server.status()).unwrap();
    for secret in [TOKEN, "query-secret", "file-token"] {
        assert!(!view.contains(secret), "{secret} in {view}");
    }
    assert!(view.contains("access_token=***"), "{view}");
    up.shutdown().await;
    store.close().await;
}
