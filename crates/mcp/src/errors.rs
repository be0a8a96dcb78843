//! Errors on the MCP wire, by the one table and rule of `baton_core::error`: a request
//! that fails is a JSON-RPC error (`data.code` names the Baton error code, and
//! `data.retryAfterSeconds` says when to retry where that helps); an orchestration tool
//! that fails answers an `isError` result the model can read, with the same code and
//! retry hint in its `structuredContent`.

use baton_engine::{EngineError, WireError};
use serde_json::{Value, json};

use crate::protocol::RpcError;

/// An engine error as a JSON-RPC error.
pub fn engine_error(e: EngineError) -> RpcError {
    wire_error(&e.to_wire())
}

/// A wire error as a JSON-RPC error.
pub fn wire_error(w: &WireError) -> RpcError {
    let mut data = json!({"code": w.code.as_str()});
    if let Some(after) = w.retry_after {
        data["retryAfterSeconds"] = json!(after.as_secs().max(1));
    }
    if let Some(details) = &w.details {
        data["details"] = details.clone();
    }
    RpcError::new(w.code.jsonrpc_code(), w.message.clone()).with_data(data)
}

/// An engine error as a tool's `isError` result (for the orchestration tools).
pub fn engine_error_result(e: EngineError) -> Value {
    let w = e.to_wire();
    let mut error = json!({"code": w.code.as_str(), "message": w.message});
    if let Some(after) = w.retry_after {
        error["retry_after_seconds"] = json!(after.as_secs().max(1));
    }
    let mut result = error_result(w.message);
    result["structuredContent"] = json!({"error": error});
    result
}

pub fn error_result(text: String) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn engine_errors_carry_their_code_and_retry_hint_to_both_shapes() {
        let busy = || EngineError::TooManyActive {
            active: 5,
            limit: 5,
            retry_after: Duration::from_secs(2),
        };
        let e = engine_error(busy());
        assert_eq!(e.code, -32603);
        assert_eq!(
            e.data,
            Some(json!({"code": "resource_exhausted", "retryAfterSeconds": 2}))
        );
        let r = engine_error_result(busy());
        assert_eq!(r["isError"], true);
        assert_eq!(
            r["structuredContent"]["error"]["code"],
            "resource_exhausted"
        );
        assert_eq!(r["structuredContent"]["error"]["retry_after_seconds"], 2);
        let e = engine_error(EngineError::TaskNotFound("t".into()));
        assert_eq!((e.code, e.message.as_str()), (-32602, "task t not found"));
        let hidden = engine_error_result(EngineError::Store(baton_store::StoreError::Database(
            "secret detail".into(),
        )));
        assert!(!hidden.to_string().contains("secret detail"));
    }
}
