//! The whole HTTP surface of a node assembled: the REST handlers ([`crate::rest`]),
//! `/mcp`, the OpenAPI document and health, behind the browser guard and authentication.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{delete, get, post};

use crate::error::ApiError;
use crate::guard::BrowserGuard;
use crate::rest::{
    AppState, health, keys, queues, schedules, servers, sse, tasks, webhooks, workflows,
};

/// The whole HTTP surface of a node: REST, `/mcp` and health, behind the browser guard
/// (see [`crate::guard`]), which every route passes first, then authentication and
/// access control (see [`crate::auth`]).
pub fn router(
    state: AppState,
    max_body_bytes: usize,
    body_read_timeout: std::time::Duration,
    guard: BrowserGuard,
    auth: std::sync::Arc<crate::auth::Auth>,
) -> Router {
    let metadata = get(crate::auth::resource_metadata).with_state(auth.clone());
    Router::new()
        .route("/v1/tasks", post(tasks::submit).get(tasks::list))
        .route("/v1/tasks/batch", post(tasks::submit_batch))
        .route(
            "/v1/tasks/{id}",
            get(tasks::get_task)
                .delete(tasks::cancel)
                .patch(tasks::update),
        )
        .route("/v1/tasks/{id}/result", get(tasks::result))
        .route("/v1/tasks/{id}/retry", post(tasks::retry))
        .route("/v1/tasks/{id}/input", post(tasks::input))
        .route("/v1/tasks/{id}/events", get(sse::events))
        .route("/v1/tasks/{id}/logs", get(tasks::logs))
        .route(
            "/v1/workflows",
            post(workflows::submit).get(workflows::list),
        )
        .route(
            "/v1/workflows/{id}",
            get(workflows::get_workflow).delete(workflows::cancel),
        )
        .route("/v1/workflows/{id}/retry", post(workflows::retry))
        .route("/v1/workflows/{id}/dag", get(workflows::dag))
        .route("/v1/workflows/{id}/timeline", get(workflows::timeline))
        .route("/v1/workflows/{id}/result", get(workflows::result))
        .route("/v1/queues", get(queues::list))
        .route("/v1/stats", get(queues::stats))
        .route("/v1/analytics", get(queues::analytics))
        .route("/v1/peers", get(queues::peers))
        .route("/v1/peers/{id}/drain", post(queues::drain_peer))
        .route("/v1/queues/{name}/pause", post(queues::pause))
        .route("/v1/queues/{name}/resume", post(queues::resume))
        .route("/v1/queues/{name}/clear", post(queues::clear))
        .route("/v1/cache", delete(queues::invalidate_cache))
        .route(
            "/v1/schedules",
            post(schedules::create).get(schedules::list),
        )
        .route(
            "/v1/schedules/{name}",
            get(schedules::get_schedule)
                .patch(schedules::update)
                .delete(schedules::delete),
        )
        .route("/v1/schedules/{name}/pause", post(schedules::pause))
        .route("/v1/schedules/{name}/resume", post(schedules::resume))
        .route("/v1/schedules/{name}/runs", get(schedules::runs))
        .route("/v1/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get_webhook).delete(webhooks::delete),
        )
        .route("/v1/webhooks/{id}/rotate", post(webhooks::rotate))
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/v1/tools", get(tasks::tools))
        .route("/v1/servers", get(servers::list).post(servers::add))
        .route(
            "/v1/servers/{name}",
            get(servers::get_server).delete(servers::remove),
        )
        .route("/v1/keys", post(keys::create).get(keys::list))
        .route("/v1/keys/{key_id}", axum::routing::delete(keys::revoke))
        .route("/v1/keys/{key_id}/rotate", post(keys::rotate))
        .route("/v1/audit", get(keys::audit))
        .route_service("/mcp", baton_mcp::http::router(state.mcp.clone()))
        .route("/.well-known/oauth-protected-resource", metadata.clone())
        .route("/.well-known/oauth-protected-resource/mcp", metadata)
        .route(
            "/openapi.json",
            get(|| async { axum::Json(crate::openapi::document().clone()) }),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(crate::metrics::scrape))
        .route("/ui", get(crate::ui::to_index))
        .route("/ui/", get(crate::ui::index))
        .route("/ui/app.js", get(crate::ui::app_js))
        .route("/ui/app.css", get(crate::ui::app_css))
        .route("/", get(health::index))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(crate::rest::extract::BodyLimit(
            max_body_bytes,
        )))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            body_read_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            auth,
            crate::auth::enforce,
        ))
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(guard),
            crate::guard::enforce,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut resp =
        ApiError::invalid(format!("{method} is not supported on {}", uri.path())).into_response();
    *resp.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    resp
}
