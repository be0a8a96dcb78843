//! The HTTP client of Streamable HTTP upstreams: reqwest's, as rmcp drives it, plus the
//! W3C `traceparent` of a tool call as an HTTP header. The call carries it in
//! `params._meta` already (see [`crate::call`]); HTTP services and proxies read trace
//! context from headers, so the header lets them join the task's trace too.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use sse_stream::{Error as SseError, Sse};

/// Redirects followed for one request, at most.
const MAX_REDIRECTS: usize = 10;

/// reqwest's client with a `traceparent` header on tool calls that carry one.
#[derive(Clone)]
pub(crate) struct TracingClient(reqwest::Client);

impl TracingClient {
    /// As rmcp's default: no idle connections kept (a half-read body must not stall the
    /// next request), and only redirects that keep the method, body and origin (a
    /// session id or credential header never goes to another host).
    pub(crate) fn new() -> Self {
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let keeps_body = matches!(attempt.status().as_u16(), 307 | 308);
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if !keeps_body || !same_origin {
                attempt.stop()
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .redirect(policy)
            .build()
            .unwrap_or_default();
        TracingClient(client)
    }
}

/// The `traceparent` in a tool call's `params._meta`, as a header value.
fn traceparent(message: &ClientJsonRpcMessage) -> Option<HeaderValue> {
    let JsonRpcMessage::Request(r) = message else {
        return None;
    };
    let ClientRequest::CallToolRequest(call) = &r.request else {
        return None;
    };
    let meta = serde_json::to_value(&call.params.meta).ok()?;
    let tp = meta.get("traceparent")?.as_str()?;
    HeaderValue::from_str(tp).ok()
}

fn add_traceparent(message: &ClientJsonRpcMessage, headers: &mut HashMap<HeaderName, HeaderValue>) {
    if let Some(tp) = traceparent(message) {
        headers.insert(HeaderName::from_static("traceparent"), tp);
    }
}

impl StreamableHttpClient for TracingClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        mut custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        add_traceparent(&message, &mut custom_headers);
        self.0
            .post_message(uri, message, session_id, auth_header, custom_headers)
            .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        mut custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        add_traceparent(&message, &mut custom_headers);
        self.0
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.0
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.0
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.0
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{
        CallToolRequest, CallToolRequestParams, JsonRpcRequest, NumberOrString, RequestMetaObject,
    };

    fn call(params: CallToolRequestParams) -> ClientJsonRpcMessage {
        JsonRpcMessage::Request(JsonRpcRequest::new(
            NumberOrString::Number(1),
            ClientRequest::CallToolRequest(CallToolRequest::new(params)),
        ))
    }

    #[test]
    fn a_tool_calls_traceparent_becomes_a_header() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut params = CallToolRequestParams::new("echo");
        let mut meta = RequestMetaObject::new();
        meta.insert("traceparent".into(), tp.into());
        params.meta = Some(meta);
        assert_eq!(traceparent(&call(params)).unwrap(), tp);
        assert!(traceparent(&call(CallToolRequestParams::new("echo"))).is_none());
    }
}
