//! Resources, prompts and completion of the upstream servers, relayed to MCP clients.
//! They are not tasks: reads are quick and idempotent, so they are forwarded as they are,
//! to servers that are connected and healthy.
//!
//! Names are qualified like tools: prompts as `server__prompt`, resource URIs as
//! `baton://server/<the server's URI>` (templates likewise), so that a request finds its
//! server again. The transparent server (`qualified = false`) keeps its own names.
//! Lists are paged one upstream page at a time; Baton's cursor says which server and
//! which of its cursors come next.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use baton_upstream::Server;
use baton_upstream::relay::{ForwardError, Notice, ServerNotice};
use serde_json::{Value, json};

use crate::protocol::{self, RpcError};
use crate::session::{Ctx, Session};
use crate::state::McpService;

/// The methods relayed to the servers.
pub const METHODS: &[&str] = &[
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
];

/// The scheme of a qualified resource URI.
pub const URI_PREFIX: &str = "baton://";

/// How names are qualified on this node.
struct Naming {
    separator: String,
    transparent: Option<String>,
    /// The servers there are (a qualified-looking name of none of them may be one of the
    /// transparent server's own).
    servers: Vec<String>,
}

impl Naming {
    fn of(service: &McpService) -> Naming {
        let upstreams = service.upstreams.as_ref();
        Naming {
            separator: service.engine.tools().separator().to_string(),
            transparent: service.transparent_server(),
            servers: upstreams
                .map(|u| u.list().iter().map(|s| s.name().to_string()).collect())
                .unwrap_or_default(),
        }
    }

    fn is_transparent(&self, server: &str) -> bool {
        self.transparent.as_deref() == Some(server)
    }

    fn qualifies(&self, server: &str) -> bool {
        !self.is_transparent(server) && self.servers.iter().any(|s| s == server)
    }

    fn name(&self, server: &str, name: &str) -> String {
        if self.is_transparent(server) {
            name.to_string()
        } else {
            format!("{server}{}{name}", self.separator)
        }
    }

    fn uri(&self, server: &str, uri: &str) -> String {
        if self.is_transparent(server) {
            uri.to_string()
        } else {
            format!("{URI_PREFIX}{server}/{uri}")
        }
    }

    /// The server a qualified name belongs to, and the server's own name for it.
    fn split_name<'a>(&self, name: &'a str) -> Option<(String, &'a str)> {
        if let Some((server, rest)) = baton_core::tool::split_qualified(name, &self.separator)
            && self.qualifies(server)
        {
            return Some((server.to_string(), rest));
        }
        Some((self.transparent.clone()?, name))
    }

    fn split_uri<'a>(&self, uri: &'a str) -> Option<(String, &'a str)> {
        if let Some(rest) = uri.strip_prefix(URI_PREFIX)
            && let Some((server, inner)) = rest.split_once('/')
            && self.qualifies(server)
        {
            return Some((server.to_string(), inner));
        }
        Some((self.transparent.clone()?, uri))
    }
}

/// Handles `resources/*`, `prompts/*` and `completion/complete`.
pub async fn handle(
    service: &Arc<McpService>,
    method: &str,
    params: Value,
    ctx: &Ctx,
) -> Result<Value, RpcError> {
    let mut result = relay(service, method, params, ctx).await?;
    // 2026-07-28 lists and reads say how long they may be cached: Baton's answers are
    // per caller and change with the servers, so not at all.
    if ctx.era.is_modern()
        && matches!(
            method,
            "resources/list" | "resources/templates/list" | "prompts/list" | "resources/read"
        )
        && let Some(o) = result.as_object_mut()
    {
        o.entry("ttlMs").or_insert(json!(0));
        o.entry("cacheScope").or_insert(json!("private"));
    }
    Ok(result)
}

async fn relay(
    service: &Arc<McpService>,
    method: &str,
    params: Value,
    ctx: &Ctx,
) -> Result<Value, RpcError> {
    let naming = Naming::of(service);
    match method {
        "resources/list" => list(service, &naming, method, "resources", "uri", &params).await,
        "resources/templates/list" => {
            list(
                service,
                &naming,
                method,
                "resourceTemplates",
                "uriTemplate",
                &params,
            )
            .await
        }
        "prompts/list" => list(service, &naming, method, "prompts", "name", &params).await,
        "resources/read" => {
            let uri = text(&params, "uri")?;
            let (server, inner) = route_uri(&naming, uri)?;
            let mut forwarded = params.clone();
            forwarded["uri"] = json!(inner);
            let mut result = forward(service, &server, method, forwarded).await?;
            if let Some(contents) = result.get_mut("contents").and_then(Value::as_array_mut) {
                for c in contents {
                    if let Some(u) = c.get("uri").and_then(Value::as_str) {
                        c["uri"] = json!(naming.uri(&server, u));
                    }
                }
            }
            Ok(result)
        }
        "resources/subscribe" | "resources/unsubscribe" => {
            let uri = text(&params, "uri")?.to_string();
            let (server, inner) = route_uri(&naming, &uri)?;
            let subscribe = method == "resources/subscribe";
            let changed = {
                let mut mine = lock(&ctx.session.subscriptions);
                if subscribe {
                    mine.insert(uri.clone())
                } else {
                    mine.remove(&uri)
                }
            };
            // The server is asked once per resource, however many sessions watch it.
            let first_or_last = changed && service.count_subscription(&uri, subscribe);
            if first_or_last {
                let mut forwarded = params.clone();
                forwarded["uri"] = json!(inner);
                if let Err(e) = forward(service, &server, method, forwarded).await {
                    if subscribe {
                        lock(&ctx.session.subscriptions).remove(&uri);
                        service.count_subscription(&uri, false);
                    }
                    return Err(e);
                }
            }
            Ok(json!({}))
        }
        "prompts/get" => {
            let name = text(&params, "name")?;
            let (server, inner) = naming
                .split_name(name)
                .ok_or_else(|| unknown("prompt", name))?;
            let mut forwarded = params.clone();
            forwarded["name"] = json!(inner);
            forward(service, &server, method, forwarded).await
        }
        "completion/complete" => {
            let reference = params
                .get("ref")
                .ok_or_else(|| RpcError::invalid_params("completion/complete needs `ref`"))?;
            let mut forwarded = params.clone();
            let server = match reference.get("type").and_then(Value::as_str) {
                Some("ref/prompt") => {
                    let name = text(reference, "name")?;
                    let (server, inner) = naming
                        .split_name(name)
                        .ok_or_else(|| unknown("prompt", name))?;
                    forwarded["ref"]["name"] = json!(inner);
                    server
                }
                Some("ref/resource") => {
                    let uri = text(reference, "uri")?;
                    let (server, inner) = route_uri(&naming, uri)?;
                    forwarded["ref"]["uri"] = json!(inner);
                    server
                }
                _ => {
                    return Err(RpcError::invalid_params(
                        "`ref.type` must be `ref/prompt` or `ref/resource`",
                    ));
                }
            };
            forward(service, &server, method, forwarded).await
        }
        other => Err(RpcError::method_not_found(other)),
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn text<'a>(params: &'a Value, field: &str) -> Result<&'a str, RpcError> {
    params
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params(format!("`{field}` (a string) is required")))
}

fn unknown(what: &str, name: &str) -> RpcError {
    RpcError::invalid_params(format!(
        "unknown {what} `{name}`: {what}s are named after their server (server__name)"
    ))
}

fn route_uri<'a>(naming: &Naming, uri: &'a str) -> Result<(String, &'a str), RpcError> {
    naming.split_uri(uri).ok_or_else(|| {
        RpcError::new(
            protocol::RESOURCE_NOT_FOUND,
            format!("unknown resource `{uri}`: resources are named {URI_PREFIX}<server>/<uri>"),
        )
        .with_data(json!({"uri": uri}))
    })
}

fn server(service: &McpService, name: &str) -> Result<Arc<Server>, RpcError> {
    service
        .upstreams
        .as_ref()
        .and_then(|u| u.get(name))
        .ok_or_else(|| RpcError::invalid_params(format!("no server named `{name}`")))
}

/// Sends a request to one server; its errors pass through with their codes.
async fn forward(
    service: &McpService,
    name: &str,
    method: &str,
    params: Value,
) -> Result<Value, RpcError> {
    let server = server(service, name)?;
    server
        .forward(method, params)
        .await
        .map_err(|e| forward_error(name, e))
}

fn forward_error(server: &str, e: ForwardError) -> RpcError {
    match e {
        ForwardError::Unavailable(m) => {
            RpcError::new(baton_core::ErrorCode::Unavailable.jsonrpc_code(), m)
                .with_data(json!({"code": "unavailable", "server": server}))
        }
        ForwardError::Rpc {
            code,
            message,
            data,
        } => {
            let e = RpcError::new(i64::from(code), message);
            match data {
                Some(d) => e.with_data(d),
                None => e,
            }
        }
        ForwardError::Invalid(m) => RpcError::invalid_params(m),
    }
}

/// A page of a list across servers: where it goes on.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    /// The server to ask next.
    s: String,
    /// Its own cursor, if it is part-way through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(s: &str) -> Option<Cursor> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()
    }
}

/// One page of `method` (`key`: the list's field; `field`: what is qualified in each
/// item), from the server the cursor names, or the first one.
async fn list(
    service: &McpService,
    naming: &Naming,
    method: &str,
    key: &str,
    field: &str,
    params: &Value,
) -> Result<Value, RpcError> {
    let capability = if key == "prompts" {
        "prompts"
    } else {
        "resources"
    };
    let servers: Vec<Arc<Server>> = service
        .upstreams
        .as_ref()
        .map(|u| u.list())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.offers(capability))
        .collect();
    let mut cursor = match params.get("cursor").and_then(Value::as_str) {
        Some(c) => Some(
            Cursor::decode(c)
                .ok_or_else(|| RpcError::invalid_params("`cursor` is not one Baton issued"))?,
        ),
        None => None,
    };
    let start = match &cursor {
        Some(c) => servers.partition_point(|s| s.name() < c.s.as_str()),
        None => 0,
    };
    for (i, server) in servers.iter().enumerate().skip(start) {
        let upstream_cursor = cursor
            .take()
            .filter(|c| c.s == server.name())
            .and_then(|c| c.c);
        let mut p = json!({});
        if let Some(c) = &upstream_cursor {
            p["cursor"] = json!(c);
        }
        let page = match server.forward(method, p).await {
            Ok(page) => page,
            Err(e) => {
                // A server that cannot answer now is left out of the list, not the
                // whole list failed.
                tracing::warn!(server = server.name(), method, error = %e, "left a server out of a list");
                continue;
            }
        };
        let mut items = page
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for item in &mut items {
            if let Some(v) = item.get(field).and_then(Value::as_str) {
                let qualified = if field == "name" {
                    naming.name(server.name(), v)
                } else {
                    naming.uri(server.name(), v)
                };
                item[field] = json!(qualified);
            }
        }
        let next = match page.get("nextCursor").and_then(Value::as_str) {
            Some(c) => Some(Cursor {
                s: server.name().to_string(),
                c: Some(c.to_string()),
            }),
            None => servers.get(i + 1).map(|s| Cursor {
                s: s.name().to_string(),
                c: None,
            }),
        };
        let mut result = json!({ key: items });
        if let Some(n) = next {
            result["nextCursor"] = json!(n.encode());
        }
        return Ok(result);
    }
    Ok(json!({ key: [] }))
}

/// Ends a session's subscriptions (its connection ended).
pub async fn forget_subscriptions(service: &Arc<McpService>, session: &Session) {
    let uris: Vec<String> = lock(&session.subscriptions).drain().collect();
    let naming = Naming::of(service);
    for uri in uris {
        if service.count_subscription(&uri, false)
            && let Some((server, inner)) = naming.split_uri(&uri)
        {
            let _ = forward(
                service,
                &server,
                "resources/unsubscribe",
                json!({"uri": inner}),
            )
            .await;
        }
    }
}

/// How an MCP client names a server's resource.
pub(crate) fn client_uri(service: &McpService, server: &str, uri: &str) -> String {
    Naming::of(service).uri(server, uri)
}

/// Passes servers' change notices on to the sessions that should hear them.
pub(crate) fn relay_notice(service: &McpService, notice: &ServerNotice) {
    let (method, params, uri) = match &notice.notice {
        Notice::ResourcesChanged => ("notifications/resources/list_changed", json!({}), None),
        Notice::PromptsChanged => ("notifications/prompts/list_changed", json!({}), None),
        Notice::ResourceUpdated { uri } => {
            let qualified = Naming::of(service).uri(&notice.server, uri);
            (
                "notifications/resources/updated",
                json!({ "uri": qualified }),
                Some(qualified),
            )
        }
    };
    for session in service.sessions.all() {
        if let Some(u) = &uri
            && !lock(&session.subscriptions).contains(u)
        {
            continue;
        }
        session.notify(protocol::notification(method, params.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naming(transparent: Option<&str>) -> Naming {
        Naming {
            separator: "__".into(),
            transparent: transparent.map(String::from),
            servers: vec!["ev".into(), "fx".into()],
        }
    }

    #[test]
    fn names_and_uris_find_their_server_again() {
        let n = naming(None);
        assert_eq!(n.name("ev", "simple"), "ev__simple");
        assert_eq!(n.split_name("ev__simple"), Some(("ev".into(), "simple")));
        let uri = n.uri("ev", "demo://resource/static/1");
        assert_eq!(uri, "baton://ev/demo://resource/static/1");
        assert_eq!(
            n.split_uri(&uri),
            Some(("ev".into(), "demo://resource/static/1"))
        );
        assert_eq!(n.split_uri("demo://resource/static/1"), None);
        assert_eq!(n.split_name("simple"), None);
    }

    #[test]
    fn the_transparent_server_keeps_its_names() {
        let n = naming(Some("fx"));
        assert_eq!(n.name("fx", "test_prompt"), "test_prompt");
        assert_eq!(n.uri("fx", "test://static-text"), "test://static-text");
        assert_eq!(
            n.split_uri("test://static-text"),
            Some(("fx".into(), "test://static-text"))
        );
        assert_eq!(
            n.split_name("test_prompt"),
            Some(("fx".into(), "test_prompt"))
        );
        // Other servers stay qualified beside it.
        assert_eq!(n.name("ev", "p"), "ev__p");
        assert_eq!(n.split_name("ev__p"), Some(("ev".into(), "p")));
        // A name that only looks qualified is the transparent server's own.
        assert_eq!(n.split_name("my__p"), Some(("fx".into(), "my__p")));
        assert_eq!(
            n.split_uri("baton://ev/demo://x"),
            Some(("ev".into(), "demo://x"))
        );
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            s: "ev".into(),
            c: Some("page-2".into()),
        };
        let back = Cursor::decode(&c.encode()).unwrap();
        assert_eq!((back.s.as_str(), back.c.as_deref()), ("ev", Some("page-2")));
        assert!(Cursor::decode("not a cursor").is_none());
    }
}
