//! Bearer JWTs from an OpenID Connect / OAuth 2 issuer (`[auth.jwt]`).
//!
//! A node that trusts an identity provider (IdP) accepts its access tokens beside Baton's
//! own API keys: [`looks_like_jwt`] tells the two apart in the `Authorization` header, and
//! [`JwtVerifier::verify`] turns a token into an [`Identity`] or a [`JwtRefused`] reason
//! that is safe to show to the client.
//!
//! What is checked, in order, so that nothing about the claims is revealed before the
//! signature holds:
//!
//! 1. The header: `alg` must be RS256, ES256 or EdDSA. `none` and HMAC (`HS*`) are refused
//!    outright: HMAC needs a shared secret, and accepting it is the classic "sign with the
//!    public key as the HMAC secret" hole. So are critical extensions (`crit`), which we do
//!    not implement.
//! 2. The key: the token's `kid` in the issuer's key set (JWKS), and the key must be for
//!    the token's algorithm.
//! 3. Signature, then `exp` (required), `nbf` (if present), `iss` and `aud` (both
//!    required), with `leeway` for clock skew, by `jsonwebtoken`: no crypto is done here.
//! 4. The principal claim (a Baton principal), `sub` and the scopes claim.
//!
//! The key set is kept in memory and replaced wholesale on every successful fetch (so a
//! key the IdP withdraws stops working at the next refresh). It is fetched at start-up,
//! every `refresh` by [`JwtVerifier::spawn_refresh`], and when a token names a `kid` we
//! do not know, because that is how an IdP rotation first shows up. That last fetch is
//! rate limited ([`MIN_REFETCH_GAP`]) since anyone can send a made-up `kid`, and all
//! fetches are serialised, so a burst of such tokens costs the IdP one request. A failed
//! fetch never discards keys we already have: an IdP outage only stops *new* keys.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use baton_core::auth::{Identity, Scope};
use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use keyset::{error_chain, http_client, known_scopes, parse_jwks, read_header, refusal};

/// The least time between two fetches caused by unknown `kid`s. Anyone can send a token
/// with a made-up `kid`; this keeps a flood of them from becoming a flood on the IdP.
pub const MIN_REFETCH_GAP: Duration = Duration::from_secs(30);

/// The algorithms a token may be signed with.
const ACCEPTED: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
/// Longer tokens are refused before any parsing (real ones are a few KiB at most).
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// A `kid` longer than this is not a key id.
const MAX_KID_CHARS: usize = 256;
/// A key set larger than this is not one (real ones are a few KiB).
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Where `sub` ends up (`jwt:<sub>` in the audit log), it should stay printable and short.
const MAX_SUB_CHARS: usize = 255;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// While the key set cannot be fetched, background retries start this soon and back off.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// More leeway than this would keep expired tokens alive for too long.
const MAX_LEEWAY: Duration = Duration::from_secs(5 * 60);

/// `[auth.jwt]`: the issuer whose tokens this node accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The `iss` every token must carry, exactly (e.g. `https://idp.example.com/`).
    pub issuer: String,
    /// The `aud` every token must carry (one of its values, if it is a list).
    pub audience: String,
    /// Where the issuer publishes its key set (JWKS). `https://`, or `http://` to a
    /// loopback address only: keys fetched in the clear could be swapped in transit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// A key set on disk instead of `jwks_url` (re-read every `refresh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
    /// The claim that names the Baton principal (the tenant). Default `sub`.
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// The claim holding the scopes, a space-separated string or a list. Default `scope`.
    #[serde(default = "default_scopes_claim")]
    pub scopes_claim: String,
    /// Clock skew allowed on `exp` and `nbf`. Default 60 s, at most 5 min.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// How often the key set is fetched again. Default 10 min, at least 30 s.
    #[serde(default = "default_refresh", with = "humantime_serde")]
    pub refresh: Duration,
}

fn default_principal_claim() -> String {
    "sub".into()
}

fn default_scopes_claim() -> String {
    "scope".into()
}

fn default_leeway() -> Duration {
    Duration::from_secs(60)
}

fn default_refresh() -> Duration {
    Duration::from_secs(10 * 60)
}

/// Every optional key at its default; `issuer`, `audience` and one of `jwks_url` or
/// `jwks_file` still have to be set (see [`JwtConfig::validate`]).
impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            issuer: String::new(),
            audience: String::new(),
            jwks_url: None,
            jwks_file: None,
            principal_claim: default_principal_claim(),
            scopes_claim: default_scopes_claim(),
            leeway: default_leeway(),
            refresh: default_refresh(),
        }
    }
}

impl JwtConfig {
    /// Checks what serde cannot; the message names the key to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.issuer.trim().is_empty() {
            return Err("auth.jwt.issuer: set the issuer (`iss`) tokens must carry".into());
        }
        if self.audience.trim().is_empty() {
            return Err("auth.jwt.audience: set the audience (`aud`) tokens must carry".into());
        }
        match (&self.jwks_url, &self.jwks_file) {
            (Some(url), None) => {
                jwks_url(url)?;
            }
            (None, Some(path)) if path.as_os_str().is_empty() => {
                return Err("auth.jwt.jwks_file: must not be empty".into());
            }
            (None, Some(_)) => {}
            _ => return Err("auth.jwt: set exactly one of jwks_url or jwks_file".into()),
        }
        if self.principal_claim.is_empty() {
            return Err("auth.jwt.principal_claim: must not be empty".into());
        }
        if self.scopes_claim.is_empty() {
            return Err("auth.jwt.scopes_claim: must not be empty".into());
        }
        if self.leeway > MAX_LEEWAY {
            return Err(format!(
                "auth.jwt.leeway: at most {}s (expired tokens are accepted for that long)",
                MAX_LEEWAY.as_secs()
            ));
        }
        if self.refresh < MIN_REFETCH_GAP {
            return Err(format!(
                "auth.jwt.refresh: at least {}s (the issuer's keys change rarely)",
                MIN_REFETCH_GAP.as_secs()
            ));
        }
        Ok(())
    }
}

/// Parses `auth.jwt.jwks_url`, refusing plain HTTP except to this machine.
fn jwks_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("auth.jwt.jwks_url: `{text}` is not a URL ({e})"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        _ => Err(format!(
            "auth.jwt.jwks_url: `{text}` must be https:// (http:// only to localhost), \
             since keys fetched in the clear could be replaced in transit"
        )),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Why a token was refused. The texts are meant for the client (they name what to fix
/// and reveal nothing about the node beyond the issuer's public key set).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtRefused {
    /// Not a well-formed JWT (shape, base64url, JSON).
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("expired (`exp` is past)")]
    Expired,
    #[error("not valid yet (`nbf` is in the future)")]
    NotYetValid,
    #[error("wrong audience: the token is not meant for this node (`aud`)")]
    WrongAudience,
    #[error("wrong issuer: the token comes from an issuer this node does not trust (`iss`)")]
    WrongIssuer,
    /// The token names a key the issuer's key set does not hold, even after fetching it
    /// again (or fetching again was not allowed yet). The text is the whole reason.
    #[error("{0}")]
    UnknownKey(String),
    #[error("bad signature: the token was not signed by the issuer's key")]
    BadSignature,
    /// An algorithm or header feature this node does not accept.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The issuer's key set has never been fetched successfully. The text is the whole
    /// reason. Unlike the others this is the node's problem, not the token's.
    #[error("{0}")]
    KeysUnavailable(String),
    /// A claim is missing or unusable (`exp`, `iss`, `aud`, `sub`, the principal or the
    /// scopes claim). The text is the whole reason.
    #[error("{0}")]
    BadClaims(String),
}

/// Whether a bearer token looks like a JWT (three base64url segments, the first two
/// non-empty), so API keys (`bk_…`, which have no dots) and JWTs can share the
/// `Authorization` header. An empty signature still counts, so that an unsigned
/// (`alg: none`) token is refused as such rather than as an unknown API key.
pub fn looks_like_jwt(token: &str) -> bool {
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => {
            !header.is_empty()
                && !payload.is_empty()
                && base64url(header)
                && base64url(payload)
                && base64url(signature)
        }
        _ => false,
    }
}

/// Verifies the configured issuer's tokens; share it as `Arc<JwtVerifier>`.
pub struct JwtVerifier {
    config: JwtConfig,
    source: KeySource,
    /// What `exp`, `nbf`, `iss` and `aud` are checked against; `algorithms` is set per
    /// token to the one its key is for.
    validation: Validation,
    /// The current key set. Readers clone the `Arc` and let go at once, so verification
    /// never waits for a fetch.
    keys: RwLock<Arc<KeySet>>,
    /// Held during every fetch, so fetches never overlap and tokens that miss the cache
    /// together wait for one fetch instead of starting one each. It holds when the last
    /// fetch caused by an unknown `kid` started.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

enum KeySource {
    Url {
        client: reqwest::Client,
        url: reqwest::Url,
    },
    File(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Url { url, .. } => write!(f, "{url}"),
            KeySource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The issuer's keys as last fetched.
#[derive(Default)]
struct KeySet {
    keys: Vec<Arc<VerifyingKey>>,
    /// When the keys were fetched (`None`: never).
    fetched_at: Option<Instant>,
    /// When the last attempt failed, if it did (cleared by a success).
    failed_at: Option<Instant>,
}

/// One usable key of the set.
struct VerifyingKey {
    kid: Option<String>,
    /// The one algorithm this key verifies (from its `alg`, or implied by its type).
    alg: Algorithm,
    key: DecodingKey,
}

/// What a token's header says, read before anything is verified.
struct TokenHeader {
    alg: Algorithm,
    kid: Option<String>,
}

enum Lookup {
    Found(Arc<VerifyingKey>),
    Missing,
    Refused(JwtRefused),
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .field("keys_from", &self.source.to_string())
            .field("keys", &self.current().keys.len())
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Checks the configuration and loads the key set once.
    ///
    /// Fails only for a bad configuration or a `jwks_file` that cannot be read or holds
    /// no usable key: both are the operator's to fix before the node starts. An
    /// unreachable `jwks_url` is *not* an error (the IdP may simply be starting too): it
    /// is logged, tokens are refused with [`JwtRefused::KeysUnavailable`] meanwhile, and
    /// [`JwtVerifier::spawn_refresh`] keeps trying.
    pub async fn new(config: JwtConfig) -> Result<Arc<JwtVerifier>, String> {
        config.validate()?;
        // jsonwebtoken picks its crypto from its crate features and panics at the first
        // verification if another crate in the build enables a second backend. Naming
        // ours (the aws-lc-rs that rustls uses too) makes that impossible; an `Err` only
        // means a provider is installed already, which is as good.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();

        let source = match (&config.jwks_url, &config.jwks_file) {
            (Some(url), _) => KeySource::Url {
                client: http_client()?,
                url: jwks_url(url)?,
            },
            (None, Some(path)) => KeySource::File(path.clone()),
            (None, None) => return Err("auth.jwt: set exactly one of jwks_url or jwks_file".into()),
        };

        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);

        let verifier = Arc::new(JwtVerifier {
            config,
            source,
            validation,
            keys: RwLock::new(Arc::new(KeySet::default())),
            fetching: tokio::sync::Mutex::new(None),
        });

        let first = {
            let _fetching = verifier.fetching.lock().await;
            verifier.reload().await
        };
        match (first, &verifier.source) {
            (Ok(count), _) => {
                tracing::info!(
                    keys = count,
                    from = %verifier.source,
                    "auth.jwt: loaded the issuer's keys"
                );
            }
            (Err(why), KeySource::File(_)) => return Err(format!("auth.jwt.jwks_file: {why}")),
            (Err(why), KeySource::Url { .. }) => tracing::warn!(
                from = %verifier.source,
                error = %why,
                "auth.jwt: could not fetch the issuer's keys; tokens are refused until they \
                 can be fetched (retrying in the background)"
            ),
        }
        Ok(verifier)
    }

    /// The identity a token proves, or why it proves none.
    pub async fn verify(&self, token: &str) -> Result<Identity, JwtRefused> {
        let header = read_header(token)?;
        let key = self.key_for(&header).await?;
        let mut validation = self.validation.clone();
        validation.algorithms = vec![key.alg];
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(refusal)?;
        self.identity(&data.claims)
    }

    /// Fetches the key set every `refresh` until `stop` is cancelled (or the verifier is
    /// dropped). While fetching fails, it retries sooner, backing off from 1 s to 1 min,
    /// so a node that started before its IdP begins accepting tokens soon after the IdP
    /// is up. Call it once, from within the Tokio runtime; without it the keys are only
    /// fetched again when a token names an unknown `kid`.
    pub fn spawn_refresh(self: &Arc<Self>, stop: CancellationToken) {
        let verifier = Arc::downgrade(self);
        let every = self.config.refresh;
        tokio::spawn(async move {
            let mut retry = FIRST_RETRY;
            loop {
                let healthy = match verifier.upgrade() {
                    Some(v) => v.current().failed_at.is_none() && !v.current().keys.is_empty(),
                    None => return,
                };
                let wait = if healthy { every } else { retry };
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                let Some(v) = verifier.upgrade() else { return };
                let outcome = tokio::select! {
                    () = stop.cancelled() => return,
                    outcome = v.reload_exclusive() => outcome,
                };
                match outcome {
                    Ok(count) => {
                        if !healthy {
                            tracing::info!(
                                keys = count,
                                from = %v.source,
                                "auth.jwt: fetched the issuer's keys"
                            );
                        }
                        retry = FIRST_RETRY;
                    }
                    Err(why) => {
                        // The first retry comes soon (the keys may be needed now), later
                        // ones back off.
                        retry = if healthy {
                            FIRST_RETRY
                        } else {
                            (retry * 2).min(MAX_RETRY)
                        }
                        .min(every);
                        tracing::warn!(
                            from = %v.source,
                            error = %why,
                            retry_in = ?retry,
                            cached_keys = v.current().keys.len(),
                            "auth.jwt: could not fetch the issuer's keys; \
                             the cached ones stay in use"
                        );
                    }
                }
            }
        });
    }

    fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn install(&self, set: KeySet) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
    }

    /// The key a token names, fetching the key set again (at most once per
    /// [`MIN_REFETCH_GAP`]) when it is not there: the IdP may have rotated.
    async fn key_for(&self, header: &TokenHeader) -> Result<Arc<VerifyingKey>, JwtRefused> {
        let seen = self.current();
        match seen.lookup(header) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Refused(why) => return Err(why),
            Lookup::Missing => {}
        }
        let set = {
            let mut last_refetch = self.fetching.lock().await;
            let now = self.current();
            // Someone fetched while we waited: look in what they got instead of fetching.
            let fetched_meanwhile = !Arc::ptr_eq(&seen, &now);
            let too_soon = last_refetch.is_some_and(|at| at.elapsed() < MIN_REFETCH_GAP);
            if fetched_meanwhile || too_soon {
                now
            } else {
                *last_refetch = Some(Instant::now());
                if let Err(why) = self.reload().await {
                    tracing::warn!(
                        from = %self.source,
                        error = %why,
                        "auth.jwt: a token names a key we do not have, \
                         and fetching the issuer's keys again failed"
                    );
                }
                self.current()
            }
        };
        match set.lookup(header) {
            Lookup::Found(key) => Ok(key),
            Lookup::Refused(why) => Err(why),
            Lookup::Missing => Err(set.missing(header)),
        }
    }

    /// [`Self::reload`] after waiting for any fetch under way.
    async fn reload_exclusive(&self) -> Result<usize, String> {
        let _fetching = self.fetching.lock().await;
        self.reload().await
    }

    /// Fetches and installs the key set; on failure keeps the keys we have and notes the
    /// failure. Callers hold `fetching`.
    async fn reload(&self) -> Result<usize, String> {
        let outcome = match self.fetch().await {
            Ok(body) => parse_jwks(&body),
            Err(why) => Err(why),
        };
        let old = self.current();
        match outcome {
            Ok(keys) => {
                let count = keys.len();
                self.install(KeySet {
                    keys,
                    fetched_at: Some(Instant::now()),
                    failed_at: None,
                });
                Ok(count)
            }
            Err(why) => {
                self.install(KeySet {
                    keys: old.keys.clone(),
                    fetched_at: old.fetched_at,
                    failed_at: Some(Instant::now()),
                });
                Err(why)
            }
        }
    }

    async fn fetch(&self) -> Result<Vec<u8>, String> {
        match &self.source {
            KeySource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("cannot read {}: {e}", path.display())),
            KeySource::Url { client, url } => {
                let mut response = client
                    .get(url.clone())
                    .header(reqwest::header::ACCEPT, "application/json")
                    .send()
                    .await
                    .map_err(|e| error_chain(&e))?;
                if !response.status().is_success() {
                    return Err(format!("{url} answered {}", response.status()));
                }
                let too_big = || format!("{url} sent more than {MAX_JWKS_BYTES} bytes");
                if response
                    .content_length()
                    .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
                {
                    return Err(too_big());
                }
                let mut body = Vec::new();
                while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
                    if body.len() + chunk.len() > MAX_JWKS_BYTES {
                        return Err(too_big());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            }
        }
    }

    /// The identity the (verified) claims name.
    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, JwtRefused> {
        let claim = &self.config.principal_claim;
        let principal = match claims.get(claim) {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::String(_)) => {
                return Err(JwtRefused::BadClaims(format!(
                    "the `{claim}` claim (the principal) is empty"
                )));
            }
            None | Some(Value::Null) => {
                return Err(JwtRefused::BadClaims(format!(
                    "the token has no `{claim}` claim to name the principal"
                )));
            }
            Some(_) => {
                return Err(JwtRefused::BadClaims(format!(
                    "the `{claim}` claim (the principal) is not a string"
                )));
            }
        };
        let principal =
            baton_core::principal::from_header(Some(principal.as_bytes())).map_err(|why| {
                // Its texts speak of the header; say which claim instead.
                JwtRefused::BadClaims(match why.strip_prefix("Baton-Principal ") {
                    Some(rule) => {
                        format!("the `{claim}` claim is not a usable principal: it {rule}")
                    }
                    None => format!("the `{claim}` claim is not a usable principal: {why}"),
                })
            })?;

        let subject = match claims.get("sub") {
            None | Some(Value::Null) => principal.clone(),
            Some(Value::String(s))
                if !s.is_empty()
                    && s.chars().count() <= MAX_SUB_CHARS
                    && !s.chars().any(char::is_control) =>
            {
                s.clone()
            }
            Some(_) => {
                return Err(JwtRefused::BadClaims(format!(
                    "the `sub` claim must be a string of 1 to {MAX_SUB_CHARS} printable characters"
                )));
            }
        };

        let claim = &self.config.scopes_claim;
        let not_scopes = || {
            JwtRefused::BadClaims(format!(
                "the `{claim}` claim must be a space-separated string or a list of strings"
            ))
        };
        let scopes = match claims.get(claim) {
            None | Some(Value::Null) => BTreeSet::new(),
            Some(Value::String(s)) => known_scopes(s.split_whitespace()),
            Some(Value::Array(items)) => {
                let names = items
                    .iter()
                    .map(Value::as_str)
                    .collect::<Option<Vec<&str>>>()
                    .ok_or_else(not_scopes)?;
                known_scopes(names)
            }
            Some(_) => return Err(not_scopes()),
        };

        Ok(Identity {
            principal,
            credential: format!("jwt:{subject}"),
            scopes,
        })
    }
}

/// The Baton scopes among `names`. Others are ignored, not refused: one token often
/// carries scopes for several services.
mod keyset;
#[cfg(test)]
mod tests;
