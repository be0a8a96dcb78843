//! What each route is, for access control and the audit log: its action name, the scope
//! it needs, and the path segment it acts on. One table, so a new route without an entry
//! is noticed (a test walks the router's routes).

use axum::http::Method;
use baton_core::auth::Scope;

/// How a request is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// `tasks.submit`, `keys.revoke`…: what the audit log calls it.
    pub action: &'static str,
    /// Needed before the handler runs; `None`: any valid credential (MCP checks each
    /// JSON-RPC method itself), or nothing at all when `public`.
    pub scope: Option<Scope>,
    /// Served without a credential (health, discovery).
    pub public: bool,
    /// The index of the path segment the request acts on (`/v1/tasks/{id}` → 2).
    pub target: Option<usize>,
    /// It may create active tasks (counts against `max_active`).
    pub submits: bool,
}

const fn rule(action: &'static str, scope: Scope) -> Rule {
    Rule {
        action,
        scope: Some(scope),
        public: false,
        target: None,
        submits: false,
    }
}

const fn on(mut r: Rule, segment: usize) -> Rule {
    r.target = Some(segment);
    r
}

const fn submitting(mut r: Rule) -> Rule {
    r.submits = true;
    r
}

const PUBLIC: Rule = Rule {
    action: "public",
    scope: None,
    public: true,
    target: None,
    submits: false,
};

/// The rule of a request; `None` for a path the node does not serve (it still needs a
/// credential, so that a 404 tells a stranger nothing).
pub fn rule_for(method: &Method, path: &str) -> Option<Rule> {
    use Scope::*;
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let m = method.as_str();
    let r = match (m, segs.as_slice()) {
        ("GET" | "HEAD", ["healthz" | "readyz" | "openapi.json" | ""]) => PUBLIC,
        ("GET" | "HEAD", [".well-known", "oauth-protected-resource", ..]) => PUBLIC,
        // The dashboard's files hold no data; what the page reads needs credentials.
        ("GET" | "HEAD", ["ui"] | ["ui", "" | "app.js" | "app.css"]) => PUBLIC,
        (_, ["mcp"]) => Rule {
            action: "mcp",
            scope: None,
            public: false,
            target: None,
            submits: false,
        },
        ("POST", ["v1", "tasks"]) => submitting(rule("tasks.submit", TasksWrite)),
        ("GET", ["v1", "tasks"]) => rule("tasks.list", TasksRead),
        ("POST", ["v1", "tasks", "batch"]) => submitting(rule("tasks.submit_batch", TasksWrite)),
        ("GET", ["v1", "tasks", _]) => on(rule("tasks.get", TasksRead), 2),
        ("DELETE", ["v1", "tasks", _]) => on(rule("tasks.cancel", TasksWrite), 2),
        ("PATCH", ["v1", "tasks", _]) => on(rule("tasks.update", TasksWrite), 2),
        ("GET", ["v1", "tasks", _, "result"]) => on(rule("tasks.result", TasksRead), 2),
        ("GET", ["v1", "tasks", _, "events"]) => on(rule("tasks.events", TasksRead), 2),
        ("GET", ["v1", "tasks", _, "logs"]) => on(rule("tasks.logs", TasksRead), 2),
        ("POST", ["v1", "tasks", _, "retry"]) => submitting(on(rule("tasks.retry", TasksWrite), 2)),
        ("POST", ["v1", "tasks", _, "input"]) => on(rule("tasks.input", TasksWrite), 2),
        ("POST", ["v1", "workflows"]) => submitting(rule("workflows.submit", WorkflowsWrite)),
        ("GET", ["v1", "workflows"]) => rule("workflows.list", WorkflowsRead),
        ("GET", ["v1", "workflows", _]) => on(rule("workflows.get", WorkflowsRead), 2),
        ("DELETE", ["v1", "workflows", _]) => on(rule("workflows.cancel", WorkflowsWrite), 2),
        ("POST", ["v1", "workflows", _, "retry"]) => {
            submitting(on(rule("workflows.retry", WorkflowsWrite), 2))
        }
        ("GET", ["v1", "workflows", _, "dag" | "timeline" | "result"]) => {
            on(rule("workflows.get", WorkflowsRead), 2)
        }
        ("GET", ["v1", "queues"]) => rule("queues.list", TasksRead),
        ("POST", ["v1", "queues", _, "pause"]) => on(rule("queues.pause", QueuesAdmin), 2),
        ("POST", ["v1", "queues", _, "resume"]) => on(rule("queues.resume", QueuesAdmin), 2),
        ("POST", ["v1", "queues", _, "clear"]) => on(rule("queues.clear", QueuesAdmin), 2),
        // Cached results are shared by tool across principals: the operator's to drop.
        ("DELETE", ["v1", "cache"]) => rule("cache.invalidate", ServersAdmin),
        ("POST", ["v1", "schedules"]) => rule("schedules.create", TasksWrite),
        ("GET", ["v1", "schedules"]) => rule("schedules.list", TasksRead),
        ("GET", ["v1", "schedules", _]) => on(rule("schedules.get", TasksRead), 2),
        ("GET", ["v1", "schedules", _, "runs"]) => on(rule("schedules.runs", TasksRead), 2),
        ("PATCH", ["v1", "schedules", _]) => on(rule("schedules.update", TasksWrite), 2),
        ("DELETE", ["v1", "schedules", _]) => on(rule("schedules.delete", TasksWrite), 2),
        ("POST", ["v1", "schedules", _, "pause"]) => on(rule("schedules.pause", TasksWrite), 2),
        ("POST", ["v1", "schedules", _, "resume"]) => on(rule("schedules.resume", TasksWrite), 2),
        ("POST", ["v1", "webhooks"]) => rule("webhooks.create", TasksWrite),
        ("GET", ["v1", "webhooks"]) => rule("webhooks.list", TasksRead),
        ("GET", ["v1", "webhooks", _]) => on(rule("webhooks.get", TasksRead), 2),
        ("DELETE", ["v1", "webhooks", _]) => on(rule("webhooks.delete", TasksWrite), 2),
        ("POST", ["v1", "webhooks", _, "rotate"]) => on(rule("webhooks.rotate", TasksWrite), 2),
        ("GET", ["v1", "webhooks", _, "deliveries"]) => {
            on(rule("webhooks.deliveries", TasksRead), 2)
        }
        ("POST", ["v1", "webhooks", _, "deliveries", _, "redeliver"]) => {
            on(rule("webhooks.redeliver", TasksWrite), 2)
        }
        // Node-wide counters and the cluster's members: operators only.
        ("GET", ["v1", "stats"]) => rule("stats.get", Admin),
        ("GET", ["v1", "peers"]) => rule("peers.list", Admin),
        ("POST", ["v1", "peers", _, "drain"]) => on(rule("peers.drain", Admin), 2),
        ("GET", ["v1", "tools"]) => rule("tools.list", TasksRead),
        ("GET", ["v1", "analytics"]) => rule("analytics.get", TasksRead),
        ("GET", ["v1", "servers"]) => rule("servers.list", TasksRead),
        ("GET", ["v1", "servers", _]) => on(rule("servers.get", TasksRead), 2),
        ("POST", ["v1", "servers"]) => rule("servers.add", ServersAdmin),
        ("DELETE", ["v1", "servers", _]) => on(rule("servers.remove", ServersAdmin), 2),
        ("POST", ["v1", "keys"]) => rule("keys.create", KeysAdmin),
        ("GET", ["v1", "keys"]) => rule("keys.list", KeysAdmin),
        ("DELETE", ["v1", "keys", _]) => on(rule("keys.revoke", KeysAdmin), 2),
        ("POST", ["v1", "keys", _, "rotate"]) => on(rule("keys.rotate", KeysAdmin), 2),
        ("GET", ["v1", "audit"]) => rule("audit.list", AuditRead),
        ("GET" | "HEAD", ["metrics"]) => rule("metrics.get", MetricsRead),
        _ => return None,
    };
    Some(r)
}

/// Whether a request changes state (and so is always audited).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_have_rules() {
        let r = rule_for(&Method::DELETE, "/v1/tasks/abc").unwrap();
        assert_eq!(
            (r.action, r.scope, r.target),
            ("tasks.cancel", Some(Scope::TasksWrite), Some(2))
        );
        assert!(rule_for(&Method::GET, "/healthz").unwrap().public);
        assert!(rule_for(&Method::GET, "/").unwrap().public);
        assert!(
            rule_for(&Method::GET, "/.well-known/oauth-protected-resource/mcp")
                .unwrap()
                .public
        );
        assert!(!rule_for(&Method::POST, "/healthz").is_some_and(|r| r.public));
        assert_eq!(rule_for(&Method::GET, "/v1/nope"), None);
        assert!(rule_for(&Method::POST, "/v1/tasks/batch").unwrap().submits);
        assert_eq!(
            rule_for(&Method::POST, "/v1/servers").unwrap().scope,
            Some(Scope::ServersAdmin)
        );
        assert_eq!(rule_for(&Method::GET, "/mcp").unwrap().scope, None);
    }

    /// Every documented operation has a rule, and the documented public ones are public:
    /// a route added without deciding who may call it fails here.
    #[test]
    fn every_documented_route_has_a_rule() {
        let doc = crate::openapi::document();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            let concrete = path
                .replace("{id}", "x")
                .replace("{name}", "x")
                .replace("{key_id}", "x");
            for (method, op) in ops.as_object().unwrap() {
                let m: Method = method.to_uppercase().parse().unwrap();
                let rule = rule_for(&m, &concrete)
                    .unwrap_or_else(|| panic!("{method} {path} has no access rule"));
                let documented_public = op.get("security") == Some(&serde_json::json!([]));
                assert_eq!(rule.public, documented_public, "{method} {path}");
                if !rule.public && concrete != "/mcp" {
                    assert!(rule.scope.is_some(), "{method} {path} needs a scope");
                }
            }
        }
    }
}
