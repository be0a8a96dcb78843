//! What front doors share across a deployment about their client sessions: secrets made
//! once for everyone (the key that signs MCP session ids), and the sessions clients
//! ended, so that every node refuses them.

use base64::Engine as _;
use baton_core::Timestamp;

use crate::EngineError;
use crate::engine::Engine;

impl Engine {
    /// The 32-byte secret `name`, the same for every process sharing the store: made
    /// (randomly) by the first process that asks.
    pub async fn shared_secret(&self, name: &str) -> Result<[u8; 32], EngineError> {
        let candidate =
            base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        let stored = self
            .inner()
            .store
            .shared_secret(name, &candidate, self.now())
            .await?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&stored)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                EngineError::Conflict(format!(
                    "the stored secret `{name}` is not 32 bytes of base64"
                ))
            })?;
        Ok(bytes)
    }

    /// Records that a client ended its session (`id_hash`: a hash of the session id).
    pub async fn end_client_session(&self, id_hash: &str) -> Result<(), EngineError> {
        Ok(self.inner().store.end_session(id_hash, self.now()).await?)
    }

    /// Sessions ended at `since` or later, oldest first.
    pub async fn client_sessions_ended_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, EngineError> {
        Ok(self.inner().store.ended_sessions(since).await?)
    }

    /// Forgets sessions ended before `before`.
    pub async fn forget_client_sessions_ended_before(
        &self,
        before: Timestamp,
    ) -> Result<u64, EngineError> {
        Ok(self.inner().store.forget_ended_sessions(before).await?)
    }
}
