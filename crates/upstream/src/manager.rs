//! All upstream servers of a node: adding and removing them, groups, and the catalog.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use baton_core::ErrorCode;
use baton_engine::tools::ToolRegistry;

use crate::config::ServerConfig;
use crate::group::Group;
use crate::process;
use crate::secrets::{Secrets, SecretsConfig, SecretsError, StoreScope};
use crate::server::{Origin, Server, Settings};

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("invalid server definition: {0}")]
    Invalid(String),
    #[error("{0}")]
    Exists(String),
    #[error("no server named `{0}`")]
    NotFound(String),
    #[error("server `{0}` is defined in the config file; remove it there")]
    FromConfig(String),
    #[error("cannot reach server `{name}`: {why}")]
    Unreachable { name: String, why: String },
    #[error(transparent)]
    Store(baton_store::StoreError),
    /// A value cannot be sealed or opened (names the server and the key, never a value).
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

impl UpstreamError {
    pub fn code(&self) -> ErrorCode {
        match self {
            UpstreamError::Invalid(_) | UpstreamError::Unreachable { .. } => {
                ErrorCode::InvalidArgument
            }
            UpstreamError::Exists(_) | UpstreamError::FromConfig(_) => ErrorCode::Conflict,
            UpstreamError::NotFound(_) => ErrorCode::NotFound,
            UpstreamError::Store(e) => e.code(),
            UpstreamError::Secrets(e) => e.code(),
        }
    }
}

pub struct Upstreams {
    registry: Arc<ToolRegistry>,
    /// Where servers registered at runtime are kept (see `registration`).
    store: Arc<dyn baton_store::Store>,
    node_id: String,
    settings: Settings,
    /// Seals the env and header values of servers before they are stored; opens them for
    /// each connection.
    secrets: Arc<Secrets>,
    servers: Mutex<BTreeMap<String, Arc<Server>>>,
    groups: Mutex<BTreeMap<String, Arc<Group>>>,
    /// Every server's resource and prompt change notices.
    notices: crate::connection::Notices,
    /// Every server's health changes, as this process sees them.
    health: tokio::sync::broadcast::Sender<crate::HealthChange>,
    schema_changes: tokio::sync::broadcast::Sender<crate::server::SchemaChange>,
}

impl Upstreams {
    /// Like [`Upstreams::with_secrets`], with only `BATON_SECRET_KEY` as a key (none
    /// generated): a node should pass its [`Secrets`] instead.
    pub fn new(
        registry: Arc<ToolRegistry>,
        store: Arc<dyn baton_store::Store>,
        node_id: &str,
        settings: Settings,
    ) -> Arc<Upstreams> {
        let secrets =
            Secrets::load(&SecretsConfig::default(), StoreScope::Shared).unwrap_or_else(|e| {
                tracing::error!(error = %e, "server secrets cannot be stored or read");
                Secrets::without_key()
            });
        Upstreams::with_secrets(registry, store, node_id, settings, Arc::new(secrets))
    }

    /// Also stops the process groups a crashed previous run of this node left behind.
    pub fn with_secrets(
        registry: Arc<ToolRegistry>,
        store: Arc<dyn baton_store::Store>,
        node_id: &str,
        settings: Settings,
        secrets: Arc<Secrets>,
    ) -> Arc<Upstreams> {
        let reaped = process::reap_orphans(node_id);
        if reaped > 0 {
            tracing::warn!(
                groups = reaped,
                "stopped upstream processes left by this node's previous run"
            );
        }
        let notices = tokio::sync::broadcast::channel(256).0;
        let health = tokio::sync::broadcast::channel(256).0;
        let schema_changes = tokio::sync::broadcast::channel(256).0;
        let mut settings = settings;
        settings.notices = Some(notices.clone());
        settings.health = Some(health.clone());
        settings.schema_changes = Some(schema_changes.clone());
        Arc::new(Upstreams {
            registry,
            store,
            node_id: node_id.to_string(),
            settings,
            notices,
            health,
            schema_changes,
            secrets,
            servers: Mutex::new(BTreeMap::new()),
            groups: Mutex::new(BTreeMap::new()),
        })
    }

    /// Servers coming up or going down, as this process sees them, from now on.
    pub fn health_changes(&self) -> tokio::sync::broadcast::Receiver<crate::HealthChange> {
        self.health.subscribe()
    }

    /// Tools whose input schema changed (or that went away), from now on.
    pub fn schema_changes(&self) -> tokio::sync::broadcast::Receiver<crate::server::SchemaChange> {
        self.schema_changes.subscribe()
    }

    /// Resource and prompt changes of every server, from now on.
    pub fn notices(&self) -> tokio::sync::broadcast::Receiver<crate::relay::ServerNotice> {
        self.notices.subscribe()
    }

    /// The server whose tools, prompts and resources MCP clients see under their own
    /// names (`qualified = false`), if any.
    pub fn transparent(&self) -> Option<Arc<Server>> {
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|s| !s.config.qualified)
            .cloned()
    }

    pub(crate) fn store(&self) -> &Arc<dyn baton_store::Store> {
        &self.store
    }

    pub fn secrets(&self) -> &Arc<Secrets> {
        &self.secrets
    }

    /// Validates the definition and starts supervising the server (connecting happens in
    /// the background; see [`Server::first_attempt`]).
    pub fn add(&self, config: ServerConfig, origin: Origin) -> Result<Arc<Server>, UpstreamError> {
        let transport = config.validate().map_err(UpstreamError::Invalid)?;
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if servers.contains_key(&config.name) {
            return Err(UpstreamError::Exists(format!(
                "a server named `{}` already exists",
                config.name
            )));
        }
        if groups.contains_key(&config.name) {
            return Err(UpstreamError::Exists(format!(
                "`{}` is already the name of a group",
                config.name
            )));
        }
        if !config.qualified
            && let Some(other) = servers.values().find(|s| !s.config.qualified)
        {
            return Err(UpstreamError::Invalid(format!(
                "qualified: servers `{}` and `{}` both have qualified = false; their names could clash, so at most one server may be transparent",
                other.config.name, config.name
            )));
        }
        if let Some(g) = &config.group
            && servers.contains_key(g)
        {
            return Err(UpstreamError::Invalid(format!(
                "group: `{g}` is already the name of a server"
            )));
        }
        let server = Server::start(
            config.clone(),
            transport,
            origin,
            self.settings.clone(),
            self.secrets.clone(),
            &self.node_id,
        );
        self.registry.register(&config.name, server.clone());
        if let Some(g) = &config.group {
            let group = groups
                .entry(g.clone())
                .or_insert_with(|| Group::new(g))
                .clone();
            group.add(server.clone());
            self.registry.register(g, group);
        }
        servers.insert(config.name.clone(), server.clone());
        // The server's tool list changes reach the catalog's watchers.
        let mut changes = server.catalog_changes();
        let registry = Arc::downgrade(&self.registry);
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                match registry.upgrade() {
                    Some(r) => r.notify_changed(),
                    None => break,
                }
            }
        });
        Ok(server)
    }

    /// Stops a server (and its process group) and removes its tools.
    pub async fn remove(&self, name: &str) -> Result<ServerConfig, UpstreamError> {
        let server = {
            let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
            let server = servers
                .remove(name)
                .ok_or_else(|| UpstreamError::NotFound(name.to_string()))?;
            self.registry.unregister(name);
            if let Some(g) = &server.config.group {
                let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
                if groups.get(g).is_some_and(|grp| grp.remove(name)) {
                    groups.remove(g);
                    self.registry.unregister(g);
                }
            }
            server
        };
        server.stop().await;
        tracing::info!(server = name, "removed MCP server");
        Ok(server.config.clone())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Server>> {
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub fn list(&self) -> Vec<Arc<Server>> {
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(g, grp)| {
                (
                    g.clone(),
                    grp.members().iter().map(|m| m.name().to_string()).collect(),
                )
            })
            .collect()
    }

    /// Stops every server and its processes.
    pub async fn shutdown(&self) {
        let all: Vec<String> = self
            .servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        let stops = all.iter().map(|n| self.remove(n));
        futures::future::join_all(stops).await;
    }
}
