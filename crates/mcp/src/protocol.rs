//! JSON-RPC 2.0 and the MCP vocabulary Baton speaks.

use serde_json::{Value, json};

pub const V_2026: &str = "2026-07-28";
pub const V_2025_11: &str = "2025-11-25";
pub const V_2025_06: &str = "2025-06-18";
/// Every version Baton serves, newest first.
pub const SUPPORTED: &[&str] = &[V_2026, V_2025_11, V_2025_06, "2025-03-26", "2024-11-05"];
/// Versions that begin with `initialize` (everything before 2026-07-28).
pub const LEGACY: &[&str] = &[V_2025_11, V_2025_06, "2025-03-26", "2024-11-05"];

pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
pub const META_RELATED_TASK: &str = "io.modelcontextprotocol/related-task";
/// The tasks extension of 2026-07-28.
pub const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";
/// Baton's own `_meta` key: the parent task of a call an agent makes while running a task.
pub const META_PARENT_TASK: &str = "baton/parentTask";
/// Baton's own `_meta` key: what a call does with the result cache (`use`, `refresh`,
/// `bypass`).
pub const META_CACHE: &str = "baton/cache";

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// A resource that does not exist (MCP's own code).
pub const RESOURCE_NOT_FOUND: i64 = -32002;
pub const HEADER_MISMATCH: i64 = -32020;
pub const MISSING_CLIENT_CAPABILITY: i64 = -32021;
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// A JSON-RPC error to send back.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        RpcError::new(INVALID_PARAMS, message)
    }

    pub fn method_not_found(method: &str) -> Self {
        RpcError::new(METHOD_NOT_FOUND, format!("method not found: {method}"))
    }

    pub fn to_json(&self) -> Value {
        let mut e = json!({"code": self.code, "message": self.message});
        if let Some(d) = &self.data {
            e["data"] = d.clone();
        }
        e
    }
}

pub fn response(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

pub fn error_response(id: Option<&Value>, e: &RpcError) -> Value {
    match id {
        Some(id) => json!({"jsonrpc": "2.0", "id": id, "error": e.to_json()}),
        None => json!({"jsonrpc": "2.0", "id": null, "error": e.to_json()}),
    }
}

pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

pub fn request(id: &Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// One message from the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    /// An answer to a request Baton sent (e.g. an elicitation).
    Response {
        id: Value,
        result: Result<Value, Value>,
    },
}

/// Parses one JSON-RPC message; the error is what to answer (with the id when known).
pub fn parse(bytes: &[u8]) -> Result<Incoming, (Option<Value>, RpcError)> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        (
            None,
            RpcError::new(PARSE_ERROR, format!("parse error: {e}")),
        )
    })?;
    parse_value(v)
}

pub fn parse_value(v: Value) -> Result<Incoming, (Option<Value>, RpcError)> {
    let Value::Object(mut m) = v else {
        let what = if v.is_array() {
            "batches are not supported (one JSON-RPC message per request)"
        } else {
            "a JSON-RPC message must be a JSON object"
        };
        return Err((None, RpcError::new(INVALID_REQUEST, what)));
    };
    let id = m.remove("id");
    if let Some(id) = &id
        && !(id.is_string() || id.is_i64() || id.is_u64())
    {
        return Err((
            None,
            RpcError::new(INVALID_REQUEST, "id must be a string or an integer"),
        ));
    }
    if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err((
            id,
            RpcError::new(INVALID_REQUEST, "`jsonrpc` must be \"2.0\""),
        ));
    }
    match (m.remove("method"), id) {
        (Some(Value::String(method)), Some(id)) => {
            let params = m.remove("params").unwrap_or(json!({}));
            if !params.is_object() {
                return Err((
                    Some(id),
                    RpcError::new(INVALID_REQUEST, "`params` must be an object"),
                ));
            }
            Ok(Incoming::Request { id, method, params })
        }
        (Some(Value::String(method)), None) => Ok(Incoming::Notification {
            method,
            params: m.remove("params").unwrap_or(json!({})),
        }),
        (Some(_), id) => Err((
            id,
            RpcError::new(INVALID_REQUEST, "`method` must be a string"),
        )),
        (None, Some(id)) => {
            if let Some(result) = m.remove("result") {
                Ok(Incoming::Response {
                    id,
                    result: Ok(result),
                })
            } else if let Some(error) = m.remove("error") {
                Ok(Incoming::Response {
                    id,
                    result: Err(error),
                })
            } else {
                Err((
                    Some(id),
                    RpcError::new(
                        INVALID_REQUEST,
                        "a message with an id needs `method`, `result` or `error`",
                    ),
                ))
            }
        }
        (None, None) => Err((
            None,
            RpcError::new(
                INVALID_REQUEST,
                "not a JSON-RPC request, notification or response",
            ),
        )),
    }
}

/// `params._meta` of a request.
pub fn meta(params: &Value) -> Option<&serde_json::Map<String, Value>> {
    params.get("_meta")?.as_object()
}

/// The MCP logging levels, least severe first (one list for the whole product).
pub use baton_core::log::LEVELS;

/// The version to answer `initialize` with: the client's if Baton speaks it with a
/// handshake, else the newest handshake version.
pub fn negotiate(asked: &str) -> &'static str {
    LEGACY
        .iter()
        .find(|v| **v == asked)
        .copied()
        .unwrap_or(V_2025_11)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any JSON value, a few levels deep.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("jsonrpc".to_string()),
                        Just("id".to_string()),
                        Just("method".to_string()),
                        Just("params".to_string()),
                        Just("result".to_string()),
                        Just("error".to_string()),
                        "[a-z]{1,6}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn check(outcome: Result<Incoming, (Option<Value>, RpcError)>) -> Result<(), TestCaseError> {
        match outcome {
            Ok(Incoming::Request { method, .. } | Incoming::Notification { method, .. }) => {
                prop_assert!(!method.is_empty());
            }
            Ok(Incoming::Response { id, .. }) => {
                prop_assert!(id.is_string() || id.is_i64() || id.is_u64());
            }
            Err((_, e)) => {
                prop_assert!((-32768..=-32000).contains(&e.code), "{}", e.code);
                prop_assert!(!e.message.is_empty());
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_bytes_get_a_message_or_a_json_rpc_error(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            check(parse(&bytes))?;
        }

        #[test]
        fn any_json_gets_a_message_or_a_json_rpc_error(v in json()) {
            check(parse_value(v.clone()))?;
            check(parse(v.to_string().as_bytes()))?;
        }

        #[test]
        fn well_formed_requests_are_read_as_such(
            id in prop_oneof![any::<i64>().prop_map(Value::from), "[a-z0-9-]{1,12}".prop_map(Value::String)],
            method in "[a-z]{1,8}(/[a-zA-Z_]{1,10})?",
        ) {
            let msg = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {}});
            match parse(msg.to_string().as_bytes()) {
                Ok(Incoming::Request { method: m, .. }) => prop_assert_eq!(m, method),
                other => prop_assert!(false, "{other:?}"),
            }
        }
    }

    #[test]
    fn parses_the_three_kinds_and_refuses_junk() {
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            Ok(Incoming::Request { .. })
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Incoming::Notification { .. })
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#),
            Ok(Incoming::Response { .. })
        ));
        assert_eq!(parse(b"{nope").unwrap_err().1.code, PARSE_ERROR);
        assert_eq!(parse(b"[1]").unwrap_err().1.code, INVALID_REQUEST);
        assert_eq!(
            parse(br#"{"id":1,"method":"x"}"#).unwrap_err().1.code,
            INVALID_REQUEST
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#)
                .unwrap_err()
                .1
                .code,
            INVALID_REQUEST
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#)
                .unwrap_err()
                .1
                .code,
            INVALID_REQUEST
        );
        let (id, e) = parse(br#"{"jsonrpc":"1.0","id":7,"method":"x"}"#).unwrap_err();
        assert_eq!((id, e.code), (Some(json!(7)), INVALID_REQUEST));
    }
}
