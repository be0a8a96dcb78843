//! What Baton relays of a server besides its tools: resources, prompts and completion,
//! forwarded as they are (they are quick and idempotent, so not tasks), and the changes
//! the server announces.

use std::time::Duration;

use rmcp::model::{ClientRequest, ServerResult};
use rmcp::service::ServiceError;
use serde_json::{Value, json};

use crate::server::Server;

/// A change a server announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    ResourcesChanged,
    PromptsChanged,
    /// A resource the server was asked to watch (`resources/subscribe`) changed.
    ResourceUpdated {
        uri: String,
    },
}

#[derive(Debug, Clone)]
pub struct ServerNotice {
    pub server: String,
    pub notice: Notice,
}

/// Why a forwarded request got no result.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The server cannot take requests now (connecting, down, circuit open).
    #[error("{0}")]
    Unavailable(String),
    /// The server answered with a JSON-RPC error: passed on as it is.
    #[error("{message}")]
    Rpc {
        code: i32,
        message: String,
        data: Option<Value>,
    },
    /// The request is not one Baton relays, or its params are malformed.
    #[error("{0}")]
    Invalid(String),
}

/// How long a relayed request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(60);

impl Server {
    /// Whether the server declared the capability `what` (`resources`, `prompts`,
    /// `completions`; `resources.subscribe` for subscriptions).
    pub fn offers(&self, what: &str) -> bool {
        let Some(conn) = self.connection() else {
            return false;
        };
        let mut at = &conn.capabilities;
        for part in what.split('.') {
            match at.get(part) {
                Some(v) => at = v,
                None => return false,
            }
        }
        !at.is_null() && at != &json!(false)
    }

    /// Sends `method` with `params` to the server and returns its result as JSON.
    pub async fn forward(&self, method: &str, params: Value) -> Result<Value, ForwardError> {
        self.is_available().map_err(ForwardError::Unavailable)?;
        let conn = self.connection().ok_or_else(|| {
            ForwardError::Unavailable(format!("server `{}` is not connected", self.name()))
        })?;
        let request: ClientRequest =
            serde_json::from_value(json!({"method": method, "params": params}))
                .map_err(|e| ForwardError::Invalid(format!("invalid {method} params: {e}")))?;
        // While it is in flight, a question the server asks cannot be told apart from
        // one of a tool call's.
        let handler = conn.handler.clone();
        handler
            .forwarding
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let answer = tokio::time::timeout(FORWARD_TIMEOUT, conn.peer().send_request(request)).await;
        handler
            .forwarding
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let answer = answer.map_err(|_| {
            ForwardError::Unavailable(format!(
                "server `{}` did not answer {method} within {} s",
                self.name(),
                FORWARD_TIMEOUT.as_secs()
            ))
        })?;
        match answer {
            Ok(ServerResult::CustomResult(c)) => Ok(c.0),
            Ok(other) => Ok(serde_json::to_value(other).unwrap_or_default()),
            Err(ServiceError::McpError(e)) => Err(ForwardError::Rpc {
                code: e.code.0,
                message: e.message.to_string(),
                data: e.data,
            }),
            Err(e) => Err(ForwardError::Unavailable(format!(
                "server `{}`: {}",
                self.name(),
                crate::call::service_error(e, || conn.death_note()).message
            ))),
        }
    }
}
