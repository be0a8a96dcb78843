//! Building and running a node.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use baton_engine::clock::Clock;
use baton_engine::tools::ToolRegistry;
use baton_engine::{Engine, EngineError};
use baton_mcp::McpService;
use baton_store::sqlite::{SqliteOptions, SqliteStore};
use baton_store::{Store, StoreError};
use baton_upstream::{Origin, Secrets, StoreScope, Upstreams};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::rest::AppState;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("data directory {path} is in use by another Baton process{}; stop it or choose another --data-dir", .pid.as_ref().map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { path: PathBuf, pid: Option<String> },
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot start the engine: {0}")]
    Engine(#[from] EngineError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Insecure(String),
    #[error("auth.jwt: {0}")]
    Jwt(String),
    #[error("secrets: {0}")]
    Secrets(String),
    #[error("{0}")]
    Archive(String),
    #[error("{0}")]
    Tls(String),
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("server `{name}` in the config file: {source}")]
    Upstream {
        name: String,
        #[source]
        source: Box<baton_upstream::UpstreamError>,
    },
}

/// The data directory holds the store, the node id and perhaps the key that encrypts
/// server secrets: owner-only (0700, files 0600). A failure is logged, not fatal (a
/// directory another user owns, a filesystem without modes).
fn secure_data_dir(dir: &Path) {
    let mut problems = Vec::new();
    if let Err(e) = baton_upstream::secrets::secure_dir(dir) {
        problems.push(e.to_string());
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file())
                && let Err(e) = baton_upstream::secrets::secure_file(&entry.path())
            {
                problems.push(format!("{}: {e}", entry.path().display()));
            }
        }
    }
    if !problems.is_empty() {
        tracing::warn!(
            path = %dir.display(),
            problems = problems.join("; "),
            "cannot make the data directory private to this user"
        );
    }
}

/// An exclusive lock on the data directory, held for the node's lifetime: two processes
/// writing one SQLite file through separate lease bookkeeping would re-run each other's
/// tasks.
struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    fn acquire(dir: &Path) -> Result<DataDirLock, AppError> {
        let path = dir.join("baton.lock");
        let io = |source| AppError::DataDir {
            path: dir.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim().to_string();
                return Err(AppError::Locked {
                    path: dir.to_path_buf(),
                    pid: (!pid.is_empty()).then_some(pid),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DataDirLock { _file: file })
    }
}

/// The node's name, generated on first start and kept in the data directory, so that a
/// restart recognises the leases its previous run held.
fn node_id(config: &Config) -> Result<String, AppError> {
    if let Some(id) = &config.node_id {
        return Ok(id.clone());
    }
    let path = config.data_dir.join("node-id");
    let io = |source| AppError::DataDir {
        path: config.data_dir.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => {
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "node".into());
            let id = format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff);
            std::fs::write(&path, &id).map_err(io)?;
            Ok(id)
        }
    }
}

/// The start-up rule of authentication: a node others can reach asks for credentials,
/// and one that asks for them has some to accept.
fn check_exposure(config: &Config, engine: &Engine, jwt: bool) -> Result<(), AppError> {
    let exposed = !config.listen.ip().is_loopback();
    let has_credentials = jwt || engine.has_usable_keys();
    let how = format!(
        "make the first admin key with `baton keys create --name admin --principal admin --scopes admin --data-dir {}` \
         (or --store URL for a shared store), or configure [auth.jwt]",
        config.data_dir.display()
    );
    if config.auth_required() {
        if !has_credentials {
            let why = if exposed {
                format!(
                    "listening on {}, which other machines can reach, needs credentials and there are none",
                    config.listen
                )
            } else {
                "auth.required is on and there are no credentials to accept".to_string()
            };
            return Err(AppError::Insecure(format!(
                "{why}: {how}; or set auth.required = false to serve without authentication (anyone who reaches the port can then run anything)"
            )));
        }
    } else if exposed {
        tracing::warn!(
            listen = %config.listen,
            "authentication is OFF (auth.required = false) on an address other machines can reach: anyone who reaches the port can act as any principal"
        );
    }
    Ok(())
}

/// What a process of Baton is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `baton serve`: the HTTP listener (REST, `/mcp`), and workers unless there are 0.
    Serve,
    /// `baton worker`: runs tasks; no listener.
    Worker,
    /// `baton mcp`: MCP on stdio; no listener.
    Stdio,
}

/// Opens the configured store: the shared PostgreSQL database, or the embedded SQLite
/// file (migrations are applied either way).
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(url) = config
        .store
        .url
        .as_deref()
        .filter(|_| config.store.is_postgres())
    {
        let opts = baton_store::postgres::PostgresOptions {
            max_connections: config.store.max_connections,
            acquire_timeout: config.store.acquire_timeout,
            schema: config.store.schema.clone(),
        };
        let store = baton_store::postgres::PostgresStore::connect(url, &opts).await?;
        tracing::info!(target = store.target(), "using the PostgreSQL store");
        return Ok(Arc::new(store));
    }
    Ok(Arc::new(
        SqliteStore::open(&SqliteOptions {
            path: config.database_path(),
            synchronous: config.store.synchronous,
            busy_timeout: config.store.busy_timeout,
            readers: 4,
            checkpoint: config.store.wal_checkpoint,
        })
        .await?,
    ))
}

pub struct App {
    config: Config,
    /// `None` for a node without HTTP (`baton mcp` on stdio).
    listener: Option<TcpListener>,
    /// `[telemetry] metrics_listen`: a listener serving `/metrics` alone.
    metrics_only: Option<(TcpListener, axum::Router)>,
    tls: Option<Arc<crate::tls::Tls>>,
    router: axum::Router,
    engine: Engine,
    upstreams: Arc<Upstreams>,
    mcp: Arc<McpService>,
    shutdown: CancellationToken,
    node_id: String,
    _lock: DataDirLock,
}

impl App {
    /// Opens the data directory, the store (applying migrations) and the engine, and
    /// binds the listener. Nothing is served until [`App::run_until_stopped`].
    pub async fn build(config: Config) -> Result<App, AppError> {
        App::build_with(config, Mode::Serve).await
    }

    /// Like [`App::build`], for a process of the given kind: only [`Mode::Serve`] binds
    /// the HTTP listener.
    pub async fn build_with(config: Config, mode: Mode) -> Result<App, AppError> {
        let listen = mode == Mode::Serve;
        if listen || config.telemetry.metrics_listen.is_some() {
            // Before anything records: the engine and upstreams start counting at once.
            crate::metrics::handle();
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|source| AppError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let lock = DataDirLock::acquire(&config.data_dir)?;
        let node_id = node_id(&config)?;
        let store = open_store(&config).await?;
        let mut engine_config = config.engine_config(node_id.clone());
        engine_config.archive = config
            .archive_objects()
            .map_err(|e| AppError::Archive(e.to_string()))?;
        // Large results: in the archive's object storage, else beside an embedded store.
        engine_config.payloads = baton_engine::payloads::PayloadConfig {
            objects: match &engine_config.archive {
                Some(o) => Some(o.clone()),
                None if !config.store.is_postgres() => {
                    let dir = std::fs::canonicalize(&config.data_dir).map_err(|source| {
                        AppError::DataDir {
                            path: config.data_dir.clone(),
                            source,
                        }
                    })?;
                    let local = baton_engine::objects::ObjectsConfig {
                        url: format!("file://{}", dir.display()),
                        ..Default::default()
                    };
                    Some(
                        baton_engine::objects::Objects::open(&local)
                            .map_err(|e| AppError::Archive(e.to_string()))?,
                    )
                }
                None => None,
            },
            offload_above: config.tasks.offload_above,
            max_result_bytes: config.tasks.max_result_bytes,
        };
        let tools = Arc::new(ToolRegistry::with_builtins(engine_config.separator.clone()));
        secure_data_dir(&config.data_dir);
        let scope = if config.store.is_postgres() {
            StoreScope::Shared
        } else {
            StoreScope::Local {
                data_dir: config.data_dir.clone(),
            }
        };
        let secrets =
            Secrets::load(&config.secrets, scope).map_err(|e| AppError::Secrets(e.to_string()))?;
        let upstreams = Upstreams::with_secrets(
            tools.clone(),
            store.clone(),
            &node_id,
            config.upstream.settings(),
            Arc::new(secrets),
        );
        // Subscribed before any server starts, so no health change is missed.
        let health = upstreams.health_changes();
        let schema_changes = upstreams.schema_changes();
        for server in &config.servers {
            upstreams
                .add(server.clone(), Origin::Config)
                .map_err(|source| AppError::Upstream {
                    name: server.name.clone(),
                    source: Box::new(source),
                })?;
        }
        // Servers registered through the API; a name the config file now uses wins.
        upstreams
            .load_stored()
            .await
            .map_err(|source| AppError::Upstream {
                name: "(stored servers)".into(),
                source: Box::new(source),
            })?;
        let tls = match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) if listen => {
                Some(crate::tls::Tls::load(cert, key).map_err(AppError::Tls)?)
            }
            _ => None,
        };
        let metrics_listener = match config.telemetry.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| AppError::Bind { addr, source })?,
            ),
            None => None,
        };
        let listener = if listen {
            Some(
                TcpListener::bind(config.listen)
                    .await
                    .map_err(|source| AppError::Bind {
                        addr: config.listen,
                        source,
                    })?,
            )
        } else {
            None
        };
        engine_config.presence.role = match mode {
            Mode::Serve if config.workers.concurrency == 0 => "api",
            Mode::Serve => "node",
            Mode::Worker => "worker",
            Mode::Stdio => "mcp",
        }
        .into();
        engine_config.presence.address = listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| format!("http://{a}"));
        let engine = Engine::start(engine_config, store, tools, Clock::system()).await?;
        tokio::spawn(forward_health(engine.clone(), health));
        tokio::spawn(forward_schema_changes(
            engine.clone(),
            schema_changes,
            config.tool_separator.clone(),
        ));
        let shutdown = CancellationToken::new();
        let jwt = match &config.auth.jwt {
            Some(j) => {
                let verifier = crate::auth::jwt::JwtVerifier::new(j.clone())
                    .await
                    .map_err(AppError::Jwt)?;
                verifier.spawn_refresh(shutdown.clone());
                Some(verifier)
            }
            None => None,
        };
        if listen {
            check_exposure(&config, &engine, jwt.is_some())?;
        }
        let mcp = McpService::new(
            engine.clone(),
            Some(upstreams.clone()),
            config.mcp_settings(),
        );
        mcp.share_state().await?;
        let state = AppState {
            engine: engine.clone(),
            shutdown: shutdown.clone(),
            upstreams: upstreams.clone(),
            mcp: mcp.clone(),
            allow_runtime_commands: config.allow_runtime_commands(),
        };
        let metrics_only = metrics_listener.map(|l| (l, crate::metrics::router(state.clone())));
        let router = crate::routes::router(
            state,
            config.http.max_body_bytes,
            config.http.body_read_timeout,
            config.browser_guard(),
            Arc::new(crate::auth::Auth::new(
                engine.clone(),
                config.auth_settings(),
                jwt,
            )),
        );
        Ok(App {
            config,
            listener,
            metrics_only,
            tls,
            router,
            engine,
            upstreams,
            mcp,
            shutdown,
            node_id,
            _lock: lock,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .unwrap_or(self.config.listen)
    }

    /// The node's MCP front door (served at `/mcp`; also usable on stdio).
    pub fn mcp(&self) -> &Arc<McpService> {
        &self.mcp
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn upstreams(&self) -> &Arc<Upstreams> {
        &self.upstreams
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serves until `signal` completes, then: ends long polls and event streams, stops
    /// accepting requests, lets running tasks finish within the grace period, hands the
    /// rest back to the queue, and closes the store.
    pub async fn run_until_stopped(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let App {
            config,
            listener,
            metrics_only,
            tls,
            router,
            engine,
            upstreams,
            shutdown,
            _lock,
            ..
        } = self;
        if let Some(tls) = &tls {
            tokio::spawn(tls.clone().watch(shutdown.clone()));
        }
        if config.store.is_postgres() {
            tokio::spawn(upstreams.clone().follow_store(shutdown.clone()));
        }
        if let Some((listener, router)) = metrics_only {
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::warn!(error = %e, "the metrics listener stopped");
                }
            });
        }
        let token = shutdown.clone();
        let served = match listener {
            Some(listener) => {
                let limits = crate::listener::Limits {
                    max_connections: config.http.max_connections,
                    header_read_timeout: config.http.header_read_timeout,
                };
                crate::listener::serve(listener, router, limits, tls, async move {
                    signal.await;
                    tracing::info!("shutting down: no new requests; draining");
                    token.cancel();
                })
                .await
            }
            None => {
                signal.await;
                tracing::info!("shutting down");
                Ok(())
            }
        };
        shutdown.cancel();
        // Running tasks finish (or are handed back) before their servers go away.
        engine.shutdown().await;
        upstreams.shutdown().await;
        tracing::info!("stopped");
        served.map_err(AppError::Serve)
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Drops the cached results of tools whose input schema changed: a result of the old tool
/// must not answer a call of the new one.
async fn forward_schema_changes(
    engine: Engine,
    mut changes: tokio::sync::broadcast::Receiver<baton_upstream::server::SchemaChange>,
    separator: String,
) {
    loop {
        match changes.recv().await {
            Ok(c) => {
                let tool = format!("{}{separator}{}", c.server, c.tool);
                match engine.invalidate_cache(Some(&tool)).await {
                    Ok(n) => {
                        tracing::info!(%tool, dropped = n, "a tool's schema changed; its cached results answer no more")
                    }
                    Err(e) => {
                        tracing::warn!(%tool, error = %e, "a tool's schema changed, but its cached results could not be dropped")
                    }
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                // Changes were missed: drop every entry rather than keep a stale one.
                tracing::warn!(
                    missed = n,
                    "tool schema changes were missed; dropping the whole result cache"
                );
                if let Err(e) = engine.invalidate_cache(None).await {
                    tracing::warn!(error = %e, "could not drop the result cache");
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Hands the servers' health changes this process sees to the engine, for `server.down`
/// and `server.up` webhooks.
async fn forward_health(
    engine: Engine,
    mut changes: tokio::sync::broadcast::Receiver<baton_upstream::HealthChange>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match changes.recv().await {
            Ok(c) => {
                if let Err(e) = engine
                    .server_health_changed(&c.server, c.up, c.error.as_deref())
                    .await
                {
                    tracing::warn!(server = %c.server, error = %e, "a server's health change could not be recorded");
                }
            }
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "server health changes were missed");
            }
            Err(RecvError::Closed) => return,
        }
    }
}
