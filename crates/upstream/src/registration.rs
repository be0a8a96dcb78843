//! Servers registered at runtime: validated, probed, stored so they survive restarts and
//! reach every process of a cluster, and removed everywhere. The REST API and the CLI
//! call these; nothing else writes server definitions to the store.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use baton_core::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::manager::{UpstreamError, Upstreams};
use crate::secrets;
use crate::server::{Origin, Server};

/// How long registering waits for the new server to answer.
const FIRST_CONNECT: Duration = Duration::from_secs(30);
/// How often a process re-reads the stored servers (other nodes add and remove them).
const SYNC_EVERY: Duration = Duration::from_secs(5);

impl Upstreams {
    /// Registers a server, waits until it answers (or says why it cannot), then stores it
    /// so that it survives restarts and starts on every process sharing the store. Nothing
    /// is kept of a server that did not answer or could not be stored. Its env and header
    /// values are sealed first (references kept): the server runs from, and the store
    /// holds, the sealed definition only.
    pub async fn register(&self, config: ServerConfig) -> Result<Arc<Server>, UpstreamError> {
        // Header values are checked as given, before sealing hides them.
        config.validate().map_err(UpstreamError::Invalid)?;
        let config = self.secrets().seal_server(&config)?;
        let name = config.name.clone();
        let server = self.add(config.clone(), Origin::Api)?;
        if let Err(why) = server.first_attempt(FIRST_CONNECT).await {
            let _ = self.remove(&name).await;
            return Err(UpstreamError::Unreachable { name, why });
        }
        let definition = serde_json::to_value(&config)
            .map_err(|e| UpstreamError::Invalid(format!("cannot store the definition: {e}")))?;
        if let Err(e) = self
            .store()
            .put_server(&name, definition, Timestamp::now())
            .await
        {
            let _ = self.remove(&name).await;
            return Err(UpstreamError::Store(e));
        }
        Ok(server)
    }

    /// Stops a server registered at runtime and forgets it (on every process).
    pub async fn unregister(&self, name: &str) -> Result<(), UpstreamError> {
        let server = self
            .get(name)
            .ok_or_else(|| UpstreamError::NotFound(name.to_string()))?;
        if server.origin == Origin::Config {
            return Err(UpstreamError::FromConfig(name.to_string()));
        }
        self.remove(name).await?;
        self.store()
            .delete_server(name)
            .await
            .map_err(UpstreamError::Store)?;
        Ok(())
    }

    /// Starts the servers registered through the API (at start-up); a name the config
    /// file now uses wins. A server whose secrets cannot be opened here still starts, and
    /// shows as down with the reason. Plain values stored by an older Baton are sealed
    /// and written back.
    pub async fn load_stored(&self) -> Result<(), UpstreamError> {
        for stored in self
            .store()
            .list_servers()
            .await
            .map_err(UpstreamError::Store)?
        {
            match serde_json::from_value::<ServerConfig>(stored.config) {
                Ok(s) if self.get(&s.name).is_none() => {
                    let s = self.seal_stored(s).await;
                    if let Err(e) = self.add(s, Origin::Api) {
                        tracing::warn!(server = %stored.name, error = %e, "skipping a stored server");
                    }
                }
                Ok(_) => {
                    tracing::warn!(server = %stored.name, "a stored server has the name of a server in the config file; the config file wins")
                }
                Err(e) => {
                    tracing::warn!(server = %stored.name, error = %e, "skipping an unreadable stored server")
                }
            }
        }
        Ok(())
    }

    /// Seals and writes back the plain values of a stored definition (an older Baton
    /// stored them so); on failure, says so and goes on with the definition as stored.
    async fn seal_stored(&self, config: ServerConfig) -> ServerConfig {
        if !secrets::has_plain_values(&config) {
            return config;
        }
        let sealed = match self.secrets().seal_server(&config) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(server = %config.name, error = %e, "a stored server keeps plain secrets");
                return config;
            }
        };
        let written = match serde_json::to_value(&sealed) {
            Ok(definition) => self
                .store()
                .put_server(&sealed.name, definition, Timestamp::now())
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match written {
            Ok(()) => {
                tracing::info!(server = %sealed.name, "encrypted the plain secrets of a stored server");
            }
            Err(e) => {
                tracing::warn!(server = %sealed.name, error = %e, "could not write back the encrypted secrets of a stored server");
            }
        }
        sealed
    }

    /// Keeps the servers registered through the API (on any node) in step with the store
    /// until `stop`: servers another node added start here, servers another node removed
    /// stop here.
    pub async fn follow_store(self: Arc<Self>, stop: CancellationToken) {
        // Servers seen in the store: only those are removed when they disappear from it
        // (a server being added here is not stored until it answered).
        let mut seen = HashSet::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(SYNC_EVERY) => {}
                _ = stop.cancelled() => return,
            }
            let stored = match self.store().list_servers().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the stored servers now");
                    continue;
                }
            };
            let names: HashSet<String> = stored.iter().map(|s| s.name.clone()).collect();
            for s in stored {
                seen.insert(s.name.clone());
                if self.get(&s.name).is_some() {
                    continue;
                }
                match serde_json::from_value::<ServerConfig>(s.config) {
                    Ok(config) => match self.add(config, Origin::Api) {
                        Ok(_) => {
                            tracing::info!(server = %s.name, "server registered through another node")
                        }
                        Err(e) => {
                            tracing::warn!(server = %s.name, error = %e, "cannot start a server registered through another node")
                        }
                    },
                    Err(e) => {
                        tracing::warn!(server = %s.name, error = %e, "skipping an unreadable stored server")
                    }
                }
            }
            for server in self.list() {
                let name = &server.config.name;
                if server.origin == Origin::Api && seen.contains(name) && !names.contains(name) {
                    seen.remove(name);
                    if self.remove(name).await.is_ok() {
                        tracing::info!(server = %name, "server removed through another node");
                    }
                }
            }
        }
    }
}
