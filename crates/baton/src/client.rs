//! A small REST client for the CLI commands.

use std::time::Duration;

use serde_json::Value;

#[derive(Debug)]
pub enum ClientError {
    Connect {
        url: String,
        detail: String,
    },
    Api {
        status: u16,
        code: String,
        message: String,
    },
    Protocol(String),
    Usage(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect { url, detail } => write!(
                f,
                "cannot reach Baton at {url} ({detail}); is `baton serve` running? (set --server or BATON_URL)"
            ),
            ClientError::Api {
                status,
                code,
                message,
            } if *status == 401 => write!(
                f,
                "{message} [{code}, HTTP {status}] (pass an API key with --token or BATON_TOKEN)"
            ),
            ClientError::Api {
                status,
                code,
                message,
            } => write!(f, "{message} [{code}, HTTP {status}]"),
            ClientError::Protocol(m) => write!(f, "unexpected answer from the server: {m}"),
            ClientError::Usage(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ClientError {}

/// A non-2xx answer with Baton's `{"error": {"code", "message"}}` body.
fn api_error(status: u16, body: &Value) -> ClientError {
    ClientError::Api {
        status,
        code: body["error"]["code"]
            .as_str()
            .unwrap_or("unknown")
            .to_string(),
        message: body["error"]["message"]
            .as_str()
            .unwrap_or("request failed")
            .to_string(),
    }
}

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str) -> Self {
        Client::with_token(base, None)
    }

    /// A client that sends `Authorization: Bearer <token>` with every request.
    pub fn with_token(base: &str, token: Option<&str>) -> Self {
        Client::connect(base, token, None).expect("HTTP client")
    }

    /// A client for `base`, sending `token` as a bearer, and trusting `ca_pem` (a PEM
    /// certificate: a private CA, or a node's self-signed certificate) besides the
    /// system's roots for `https://`.
    pub fn connect(base: &str, token: Option<&str>, ca_pem: Option<&[u8]>) -> Result<Self, String> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token
            && let Ok(mut v) = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        {
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let mut http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .default_headers(headers);
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("--ca-cert: not a PEM certificate: {e}"))?;
            if certs.is_empty() {
                return Err("--ca-cert: no PEM certificate in the file".into());
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            http: http
                .build()
                .map_err(|e| format!("cannot build an HTTP client: {e}"))?,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn connect_error(&self, e: reqwest::Error) -> ClientError {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail = s.to_string();
            source = s.source();
        }
        ClientError::Connect {
            url: self.base.clone(),
            detail,
        }
    }

    /// Sends a request; a non-2xx answer becomes `ClientError::Api` with the server's
    /// message. Returns the status and the JSON body.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value), ClientError> {
        let resp = req.send().await.map_err(|e| self.connect_error(e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| self.connect_error(e))?;
        if status == 204 {
            return Ok((status, Value::Null));
        }
        let body: Value = serde_json::from_slice(&bytes).map_err(|_| {
            ClientError::Protocol(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ))
        })?;
        if (200..300).contains(&status) {
            Ok((status, body))
        } else {
            Err(api_error(status, &body))
        }
    }

    pub async fn submit(&self, body: &Value) -> Result<Value, ClientError> {
        Ok(self
            .send(self.http.post(self.url("/v1/tasks")).json(body))
            .await?
            .1)
    }

    pub async fn task(&self, id: &str) -> Result<Value, ClientError> {
        Ok(self
            .send(self.http.get(self.url(&format!("/v1/tasks/{id}"))))
            .await?
            .1)
    }

    /// Long-polls the result for up to `wait_secs`; `true` when the task has finished.
    pub async fn result(&self, id: &str, wait_secs: u64) -> Result<(bool, Value), ClientError> {
        let req = self
            .http
            .get(self.url(&format!("/v1/tasks/{id}/result")))
            .query(&[("wait", wait_secs)])
            .timeout(Duration::from_secs(wait_secs + 30));
        let (status, body) = self.send(req).await?;
        Ok((status == 200, body))
    }

    pub async fn cancel(&self, id: &str) -> Result<Value, ClientError> {
        Ok(self
            .send(self.http.delete(self.url(&format!("/v1/tasks/{id}"))))
            .await?
            .1)
    }

    pub async fn retry(&self, id: &str) -> Result<Value, ClientError> {
        Ok(self
            .send(self.http.post(self.url(&format!("/v1/tasks/{id}/retry"))))
            .await?
            .1)
    }

    pub async fn list(&self, query: &[(&str, String)]) -> Result<Value, ClientError> {
        Ok(self
            .send(self.http.get(self.url("/v1/tasks")).query(query))
            .await?
            .1)
    }

    pub async fn queues(&self) -> Result<Value, ClientError> {
        Ok(self.send(self.http.get(self.url("/v1/queues"))).await?.1)
    }

    pub async fn queue_action(&self, name: &str, action: &str) -> Result<Value, ClientError> {
        Ok(self
            .send(
                self.http
                    .post(self.url(&format!("/v1/queues/{name}/{action}"))),
            )
            .await?
            .1)
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        Ok(self.send(self.http.get(self.url(path))).await?.1)
    }

    pub async fn post(&self, path: &str) -> Result<Value, ClientError> {
        Ok(self.send(self.http.post(self.url(path))).await?.1)
    }

    /// Posts a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        Ok(self
            .send(self.http.post(self.url(path)).json(body))
            .await?
            .1)
    }

    /// Patches with a JSON body.
    pub async fn patch_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        Ok(self
            .send(self.http.patch(self.url(path)).json(body))
            .await?
            .1)
    }

    pub async fn get_query(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        Ok(self
            .send(self.http.get(self.url(path)).query(query))
            .await?
            .1)
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        Ok(self.send(self.http.delete(self.url(path))).await?.1)
    }

    /// Posts text (e.g. a YAML workflow definition) as is.
    pub async fn post_text(
        &self,
        path: &str,
        body: String,
        content_type: &str,
    ) -> Result<Value, ClientError> {
        Ok(self
            .send(
                self.http
                    .post(self.url(path))
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(body),
            )
            .await?
            .1)
    }

    /// A text resource (e.g. a DAG as DOT); errors as for [`Client::send`].
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let resp = self
            .http
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| self.connect_error(e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| self.connect_error(e))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let body: Value = serde_json::from_str(&text).unwrap_or_default();
        Err(api_error(status, &body))
    }

    pub async fn tools(&self) -> Result<Value, ClientError> {
        Ok(self.send(self.http.get(self.url("/v1/tools"))).await?.1)
    }
}
