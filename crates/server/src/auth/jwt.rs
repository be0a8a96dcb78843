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
fn known_scopes<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<Scope> {
    names
        .into_iter()
        .filter_map(|name| name.parse::<Scope>().ok())
        .collect()
}

impl KeySet {
    fn lookup(&self, header: &TokenHeader) -> Lookup {
        match &header.kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                    .peekable();
                let Some(first) = named.peek().map(|k| k.alg) else {
                    return Lookup::Missing;
                };
                match named.find(|k| k.alg == header.alg) {
                    Some(key) => Lookup::Found(Arc::clone(key)),
                    None => Lookup::Refused(JwtRefused::Unsupported(format!(
                        "the token says {:?} but the issuer's key `{}` is for {first:?}",
                        header.alg,
                        shown(kid)
                    ))),
                }
            }
            // Without a `kid`, only an unambiguous key will do.
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.alg == header.alg);
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Lookup::Found(Arc::clone(key)),
                    (None, _) => Lookup::Missing,
                    (Some(_), Some(_)) => Lookup::Refused(JwtRefused::Malformed(format!(
                        "the token names no key (`kid`) and the issuer has several {:?} keys",
                        header.alg
                    ))),
                }
            }
        }
    }

    /// Why a token's key is not there.
    fn missing(&self, header: &TokenHeader) -> JwtRefused {
        let Some(fetched_at) = self.fetched_at else {
            let tried = self
                .failed_at
                .map_or_else(String::new, |at| format!(" (last attempt {})", ago(at)));
            return JwtRefused::KeysUnavailable(format!(
                "the issuer's signing keys could not be fetched yet{tried}; try again shortly"
            ));
        };
        let failed = match self.failed_at {
            Some(at) => format!("; fetching it again failed {}", ago(at)),
            None => String::new(),
        };
        let which = match &header.kid {
            Some(kid) => format!("no key `{}`", shown(kid)),
            None => format!("no {:?} key", header.alg),
        };
        JwtRefused::UnknownKey(format!(
            "{which} in the issuer's key set (last fetched {}{failed})",
            ago(fetched_at)
        ))
    }
}

/// `12 s ago`, `3 min ago`, `2 h ago`.
fn ago(at: Instant) -> String {
    let secs = at.elapsed().as_secs();
    match secs {
        0..120 => format!("{secs} s ago"),
        120..7200 => format!("{} min ago", secs / 60),
        _ => format!("{} h ago", secs / 3600),
    }
}

/// Text from a token, fit to quote in a reason or a log line: escaped and cut short.
fn shown(text: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = text
        .chars()
        .take(MAX)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// Reads the header without trusting it: only to choose the key and refuse early.
fn read_header(token: &str) -> Result<TokenHeader, JwtRefused> {
    let malformed = |why: &str| JwtRefused::Malformed(why.to_string());
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed("the token is longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("a JWT has three parts separated by dots"));
    };
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| malformed("the header is not base64url"))?;

    /// Only what we need; a duplicated field is an error, so the header cannot say one
    /// thing to us and another to `jsonwebtoken`.
    #[derive(Deserialize)]
    struct RawHeader {
        alg: Option<Value>,
        kid: Option<Value>,
        crit: Option<Value>,
    }
    let raw: RawHeader =
        serde_json::from_slice(&json).map_err(|_| malformed("the header is not a JSON object"))?;

    let alg = match &raw.alg {
        Some(Value::String(alg)) => match ACCEPTED.iter().find(|a| format!("{a:?}") == *alg) {
            Some(alg) => *alg,
            None => {
                return Err(JwtRefused::Unsupported(format!(
                    "algorithm `{}`; this node accepts RS256, ES256 and EdDSA",
                    shown(alg)
                )));
            }
        },
        _ => return Err(malformed("the header has no `alg`")),
    };
    if raw.crit.is_some() {
        return Err(JwtRefused::Unsupported(
            "the header lists critical extensions (`crit`), which this node does not implement"
                .into(),
        ));
    }
    let kid = match raw.kid {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) if kid.chars().count() <= MAX_KID_CHARS => Some(kid),
        Some(Value::String(_)) => {
            return Err(malformed("the `kid` is longer than 256 characters"));
        }
        Some(_) => return Err(malformed("the `kid` is not a string")),
    };
    Ok(TokenHeader { alg, kid })
}

/// The refusal a `jsonwebtoken` error amounts to.
fn refusal(error: JwtError) -> JwtRefused {
    match error.kind() {
        ErrorKind::ExpiredSignature => JwtRefused::Expired,
        ErrorKind::ImmatureSignature => JwtRefused::NotYetValid,
        ErrorKind::InvalidIssuer => JwtRefused::WrongIssuer,
        ErrorKind::InvalidAudience => JwtRefused::WrongAudience,
        ErrorKind::InvalidSignature => JwtRefused::BadSignature,
        ErrorKind::MissingRequiredClaim(claim) => {
            JwtRefused::BadClaims(format!("the token has no `{claim}` claim"))
        }
        ErrorKind::InvalidClaimFormat(claim) => JwtRefused::BadClaims(format!(
            "the `{claim}` claim is not a time (seconds since 1970)"
        )),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName => {
            JwtRefused::Unsupported("the token's algorithm does not match the issuer's key".into())
        }
        ErrorKind::Base64(_) => JwtRefused::Malformed("a part is not base64url".into()),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            JwtRefused::Malformed("the header or the claims are not a JSON object".into())
        }
        ErrorKind::InvalidToken => JwtRefused::Malformed("not a JWT".into()),
        // Key problems (the key set is checked when loaded, so these should not happen).
        _ => JwtRefused::Unsupported(format!(
            "the issuer's key cannot check this token ({error})"
        )),
    }
}

fn http_client() -> Result<reqwest::Client, String> {
    // Follow redirects only to places we would accept as `jwks_url` in the first place.
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 5 {
            attempt.error("too many redirects")
        } else if jwks_url(attempt.url().as_str()).is_ok() {
            attempt.follow()
        } else {
            attempt.error("redirected to plain http://")
        }
    });
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .redirect(redirects)
        .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("auth.jwt: cannot make an HTTP client: {}", error_chain(&e)))
}

/// An error with its causes (`reqwest` puts the useful part, e.g. "connection refused",
/// in the source chain).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The usable keys of a JWKS document. Keys we cannot use (encryption keys, HMAC
/// secrets, other curves or algorithms) are skipped, not errors: IdPs publish them beside
/// their signing keys. A set with no usable key is an error, so that an IdP briefly
/// publishing an empty set does not wipe the keys we have.
fn parse_jwks(body: &[u8]) -> Result<Vec<Arc<VerifyingKey>>, String> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<Value>,
    }
    let document: Document = serde_json::from_slice(body)
        .map_err(|e| format!("not a JWK set (`{{\"keys\": [...]}}`): {e}"))?;
    let total = document.keys.len();
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    for (index, value) in document.keys.into_iter().enumerate() {
        let kid = value
            .get("kid")
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{index}"), |kid| format!("`{}`", shown(kid)));
        match usable_key(value) {
            Ok(key) => usable.push(Arc::new(key)),
            Err(why) => skipped.push(format!("{kid}: {why}")),
        }
    }
    if !skipped.is_empty() {
        tracing::debug!(skipped = ?skipped, "auth.jwt: ignored keys the node cannot use");
    }
    if usable.is_empty() {
        return Err(format!(
            "no usable RS256, ES256 or EdDSA signing key among its {total} keys ({})",
            skipped.join("; ")
        ));
    }
    Ok(usable)
}

fn usable_key(value: Value) -> Result<VerifyingKey, String> {
    let jwk: Jwk = serde_json::from_value(value)
        .map_err(|_| "an unsupported key type or curve".to_string())?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Err("not a signing key (`use`)".into());
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err("not for verifying (`key_ops`)".into());
    }
    let decoded_len = |b64: &str| URL_SAFE_NO_PAD.decode(b64).map(|b| b.len()).ok();
    let (alg, key_alg) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let bits = URL_SAFE_NO_PAD
                .decode(&rsa.n)
                .map(|n| n.iter().skip_while(|b| **b == 0).count() * 8)
                .unwrap_or(0);
            if !(2048..=8192).contains(&bits) {
                return Err("an RSA key must have 2048 to 8192 bits".into());
            }
            (Algorithm::RS256, KeyAlgorithm::RS256)
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            if decoded_len(&ec.x) != Some(32) || decoded_len(&ec.y) != Some(32) {
                return Err("a P-256 key needs 32-byte `x` and `y`".into());
            }
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            if decoded_len(&okp.x) != Some(32) {
                return Err("an Ed25519 key needs a 32-byte `x`".into());
            }
            (Algorithm::EdDSA, KeyAlgorithm::EdDSA)
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("a shared secret (HMAC); only public keys are trusted".into());
        }
        _ => return Err("an unsupported curve".into()),
    };
    if let Some(declared) = jwk.common.key_algorithm
        && declared != key_alg
    {
        return Err(format!(
            "its `alg` is {declared}; this node accepts RS256, ES256 and EdDSA"
        ));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unreadable ({e})"))?;
    Ok(VerifyingKey {
        kid: jwk.common.key_id,
        alg,
        key,
    })
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::extract::State;
    use axum::routing::get;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://idp.test/";
    const AUDIENCE: &str = "baton-test";

    /// A signing key from `tests/fixtures/jwt` (test-only keys made with openssl).
    struct TestKey {
        kid: String,
        alg: Algorithm,
        signing: EncodingKey,
        public: Value,
    }

    fn key(name: &str, kid: &str) -> TestKey {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt");
        let pem = std::fs::read(format!("{dir}/test-only-{name}.pem")).unwrap();
        let public: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{dir}/test-only-{name}.jwk.json")).unwrap(),
        )
        .unwrap();
        let (alg, signing) = if name.starts_with("rsa") {
            (Algorithm::RS256, EncodingKey::from_rsa_pem(&pem).unwrap())
        } else if name.starts_with("ec") {
            (Algorithm::ES256, EncodingKey::from_ec_pem(&pem).unwrap())
        } else {
            (Algorithm::EdDSA, EncodingKey::from_ed_pem(&pem).unwrap())
        };
        TestKey {
            kid: kid.into(),
            alg,
            signing,
            public,
        }
    }

    impl TestKey {
        fn jwk(&self) -> Value {
            let mut jwk = self.public.clone();
            jwk["kid"] = json!(self.kid);
            jwk
        }

        fn sign(&self, claims: &Value) -> String {
            let mut header = Header::new(self.alg);
            header.kid = Some(self.kid.clone());
            encode(&header, claims, &self.signing).unwrap()
        }

        /// Signed by this key, but naming another key.
        fn sign_as(&self, kid: &str, claims: &Value) -> String {
            let mut header = Header::new(self.alg);
            header.kid = Some(kid.into());
            encode(&header, claims, &self.signing).unwrap()
        }
    }

    fn jwks(keys: &[&TestKey]) -> Value {
        json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice@example.com",
            "iat": now(),
            "exp": now() + 600,
            "scope": "tasks:read tasks:write calendar:read",
        })
    }

    fn with(mut claims: Value, changes: Value) -> Value {
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    }

    fn unsigned(header: &Value, claims: &Value) -> String {
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        format!("{}.{}.", part(header), part(claims))
    }

    /// A real JWKS endpoint on 127.0.0.1 that counts its requests.
    struct Idp {
        addr: SocketAddr,
        jwks: Arc<Mutex<Value>>,
        hits: Arc<AtomicUsize>,
        stop: CancellationToken,
        served: tokio::task::JoinHandle<()>,
    }

    #[derive(Clone)]
    struct IdpState {
        jwks: Arc<Mutex<Value>>,
        hits: Arc<AtomicUsize>,
    }

    async fn serve_jwks(State(state): State<IdpState>) -> axum::Json<Value> {
        state.hits.fetch_add(1, Ordering::SeqCst);
        axum::Json(state.jwks.lock().unwrap().clone())
    }

    impl Idp {
        async fn start(keys: &[&TestKey]) -> Idp {
            Idp::start_on("127.0.0.1:0".parse().unwrap(), keys).await
        }

        async fn start_on(addr: SocketAddr, keys: &[&TestKey]) -> Idp {
            let jwks = Arc::new(Mutex::new(jwks(keys)));
            let hits = Arc::new(AtomicUsize::new(0));
            let state = IdpState {
                jwks: jwks.clone(),
                hits: hits.clone(),
            };
            let router = Router::new()
                .route("/jwks", get(serve_jwks))
                .with_state(state);
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            let addr = listener.local_addr().unwrap();
            let stop = CancellationToken::new();
            let shutdown = stop.clone().cancelled_owned();
            let served = tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await
                    .unwrap();
            });
            Idp {
                addr,
                jwks,
                hits,
                stop,
                served,
            }
        }

        fn url(&self) -> String {
            format!("http://{}/jwks", self.addr)
        }

        fn publish(&self, keys: &[&TestKey]) {
            *self.jwks.lock().unwrap() = jwks(keys);
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }

        /// Stops listening and closes every connection.
        async fn shut_down(self) {
            self.stop.cancel();
            self.served.await.unwrap();
        }
    }

    fn config_for(url: &str) -> JwtConfig {
        JwtConfig {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            jwks_url: Some(url.into()),
            ..JwtConfig::default()
        }
    }

    async fn verifier_for(idp: &Idp) -> Arc<JwtVerifier> {
        JwtVerifier::new(config_for(&idp.url())).await.unwrap()
    }

    fn scopes(names: &[Scope]) -> BTreeSet<Scope> {
        names.iter().copied().collect()
    }

    #[test]
    fn config_has_defaults_and_names_the_bad_key() {
        let parsed: JwtConfig = serde_json::from_value(json!({
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks_url": "https://idp.test/jwks",
        }))
        .unwrap();
        assert_eq!(parsed.principal_claim, "sub");
        assert_eq!(parsed.scopes_claim, "scope");
        assert_eq!(parsed.leeway, Duration::from_secs(60));
        assert_eq!(parsed.refresh, Duration::from_secs(600));
        assert_eq!(parsed.validate(), Ok(()));

        let custom: JwtConfig = serde_json::from_value(json!({
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks_file": "/etc/baton/jwks.json",
            "principal_claim": "email",
            "scopes_claim": "scp",
            "leeway": "30s",
            "refresh": "1h",
        }))
        .unwrap();
        assert_eq!(custom.leeway, Duration::from_secs(30));
        assert_eq!(custom.refresh, Duration::from_secs(3600));
        assert_eq!(custom.validate(), Ok(()));

        let unknown = serde_json::from_value::<JwtConfig>(json!({
            "issuer": ISSUER, "audience": AUDIENCE, "jwks_uri": "https://idp.test/jwks",
        }))
        .unwrap_err();
        assert!(unknown.to_string().contains("jwks_uri"), "{unknown}");
        assert!(
            serde_json::from_value::<JwtConfig>(json!({ "issuer": ISSUER }))
                .unwrap_err()
                .to_string()
                .contains("audience")
        );

        let base = config_for("https://idp.test/jwks");
        let bad = |config: JwtConfig| config.validate().unwrap_err();
        assert_eq!(
            bad(JwtConfig {
                jwks_file: Some("/k.json".into()),
                ..base.clone()
            }),
            "auth.jwt: set exactly one of jwks_url or jwks_file"
        );
        assert_eq!(
            bad(JwtConfig {
                jwks_url: None,
                ..base.clone()
            }),
            "auth.jwt: set exactly one of jwks_url or jwks_file"
        );
        for (config, key) in [
            (
                JwtConfig {
                    issuer: " ".into(),
                    ..base.clone()
                },
                "auth.jwt.issuer",
            ),
            (
                JwtConfig {
                    audience: String::new(),
                    ..base.clone()
                },
                "auth.jwt.audience",
            ),
            (
                config_for("http://idp.example.com/jwks"),
                "auth.jwt.jwks_url",
            ),
            (config_for("not a url"), "auth.jwt.jwks_url"),
            (
                JwtConfig {
                    principal_claim: String::new(),
                    ..base.clone()
                },
                "auth.jwt.principal_claim",
            ),
            (
                JwtConfig {
                    leeway: Duration::from_secs(3600),
                    ..base.clone()
                },
                "auth.jwt.leeway",
            ),
            (
                JwtConfig {
                    refresh: Duration::from_secs(1),
                    ..base.clone()
                },
                "auth.jwt.refresh",
            ),
        ] {
            let why = bad(config);
            assert!(why.starts_with(key), "{why}");
        }
        // Plain http is fine to this machine (a sidecar, tests).
        assert_eq!(config_for("http://127.0.0.1:8080/jwks").validate(), Ok(()));
        assert_eq!(config_for("http://localhost/jwks").validate(), Ok(()));
        assert_eq!(config_for("http://[::1]/jwks").validate(), Ok(()));
    }

    #[tokio::test]
    async fn valid_tokens_of_each_algorithm_give_an_identity() {
        let (rsa, ec, ed) = (
            key("rsa-a", "r1"),
            key("ec-a", "e1"),
            key("ed25519-a", "d1"),
        );
        let idp = Idp::start(&[&rsa, &ec, &ed]).await;
        let verifier = verifier_for(&idp).await;

        for signer in [&rsa, &ec, &ed] {
            let identity = verifier.verify(&signer.sign(&claims())).await.unwrap();
            assert_eq!(
                identity,
                Identity {
                    principal: "alice@example.com".into(),
                    credential: "jwt:alice@example.com".into(),
                    // `calendar:read` belongs to another service: ignored.
                    scopes: scopes(&[Scope::TasksRead, Scope::TasksWrite]),
                },
                "{:?}",
                signer.alg
            );
        }

        // The list form, and a token with no scopes at all.
        let listed = with(
            claims(),
            json!({ "scope": ["workflows:read", "admin", "x"] }),
        );
        let identity = verifier.verify(&ec.sign(&listed)).await.unwrap();
        assert_eq!(
            identity.scopes,
            scopes(&[Scope::WorkflowsRead, Scope::Admin])
        );
        let none = with(claims(), json!({ "scope": null }));
        assert!(
            verifier
                .verify(&ed.sign(&none))
                .await
                .unwrap()
                .scopes
                .is_empty()
        );
        // An audience list that includes ours.
        let auds = with(claims(), json!({ "aud": ["other", AUDIENCE] }));
        assert!(verifier.verify(&rsa.sign(&auds)).await.is_ok());
        assert_eq!(idp.hits(), 1, "verifying known keys fetches nothing");

        // Another principal claim: the credential still names the subject.
        let by_email = JwtVerifier::new(JwtConfig {
            principal_claim: "email".into(),
            scopes_claim: "scp".into(),
            ..config_for(&idp.url())
        })
        .await
        .unwrap();
        let okta = with(
            claims(),
            json!({ "sub": "00u1abc", "email": "bob@example.com", "scp": ["tasks:read"] }),
        );
        assert_eq!(
            by_email.verify(&rsa.sign(&okta)).await.unwrap(),
            Identity {
                principal: "bob@example.com".into(),
                credential: "jwt:00u1abc".into(),
                scopes: scopes(&[Scope::TasksRead]),
            }
        );
        // No `sub`: the credential names the principal.
        let no_sub = with(okta, json!({ "sub": null }));
        assert_eq!(
            by_email
                .verify(&rsa.sign(&no_sub))
                .await
                .unwrap()
                .credential,
            "jwt:bob@example.com"
        );
    }

    #[tokio::test]
    async fn time_claims_are_checked_with_the_leeway() {
        let rsa = key("rsa-a", "r1");
        let idp = Idp::start(&[&rsa]).await;
        let verifier = verifier_for(&idp).await;
        let check = |changes: Value| {
            let token = rsa.sign(&with(claims(), changes));
            let verifier = verifier.clone();
            async move { verifier.verify(&token).await }
        };

        assert_eq!(
            check(json!({ "exp": now() - 120 })).await,
            Err(JwtRefused::Expired)
        );
        assert!(
            check(json!({ "exp": now() - 30 })).await.is_ok(),
            "within the leeway"
        );
        assert_eq!(
            check(json!({ "nbf": now() + 300 })).await,
            Err(JwtRefused::NotYetValid)
        );
        assert!(
            check(json!({ "nbf": now() + 30 })).await.is_ok(),
            "within the leeway"
        );
        assert_eq!(
            check(json!({ "exp": null })).await,
            Err(JwtRefused::BadClaims("the token has no `exp` claim".into()))
        );
        assert_eq!(
            check(json!({ "exp": "tomorrow" })).await,
            Err(JwtRefused::BadClaims("the token has no `exp` claim".into()))
        );
        let expired = check(json!({ "exp": now() - 120 })).await.unwrap_err();
        assert_eq!(expired.to_string(), "expired (`exp` is past)");
    }

    #[tokio::test]
    async fn issuer_and_audience_must_be_ours() {
        let ec = key("ec-a", "e1");
        let idp = Idp::start(&[&ec]).await;
        let verifier = verifier_for(&idp).await;
        let check = |changes: Value| {
            let token = ec.sign(&with(claims(), changes));
            let verifier = verifier.clone();
            async move { verifier.verify(&token).await }
        };
        assert_eq!(
            check(json!({ "aud": "another-api" })).await,
            Err(JwtRefused::WrongAudience)
        );
        assert_eq!(
            check(json!({ "aud": ["a", "b"] })).await,
            Err(JwtRefused::WrongAudience)
        );
        assert_eq!(
            check(json!({ "iss": "https://evil.test/" })).await,
            Err(JwtRefused::WrongIssuer)
        );
        assert_eq!(
            check(json!({ "iss": null })).await,
            Err(JwtRefused::BadClaims("the token has no `iss` claim".into()))
        );
        assert_eq!(
            check(json!({ "aud": null })).await,
            Err(JwtRefused::BadClaims("the token has no `aud` claim".into()))
        );
    }

    #[tokio::test]
    async fn a_signature_by_another_key_with_the_same_kid_is_refused() {
        let pairs = [
            (key("rsa-a", "r1"), key("rsa-b", "r1")),
            (key("ec-a", "e1"), key("ec-b", "e1")),
            (key("ed25519-a", "d1"), key("ed25519-b", "d1")),
        ];
        let published: Vec<&TestKey> = pairs.iter().map(|(good, _)| good).collect();
        let idp = Idp::start(&published).await;
        let verifier = verifier_for(&idp).await;
        for (good, impostor) in &pairs {
            assert!(verifier.verify(&good.sign(&claims())).await.is_ok());
            assert_eq!(
                verifier.verify(&impostor.sign(&claims())).await,
                Err(JwtRefused::BadSignature),
                "{:?}",
                good.alg
            );
        }
        // Claims changed after signing.
        let token = pairs[0].0.sign(&claims());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&with(claims(), json!({ "sub": "mallory" }))).unwrap());
        parts[1] = &forged;
        assert_eq!(
            verifier.verify(&parts.join(".")).await,
            Err(JwtRefused::BadSignature)
        );
        // An expired forgery says "bad signature", not "expired": nothing is told about
        // claims whose signature does not hold.
        let old = with(claims(), json!({ "exp": now() - 3600 }));
        assert_eq!(
            verifier.verify(&pairs[0].1.sign(&old)).await,
            Err(JwtRefused::BadSignature)
        );
    }

    #[tokio::test]
    async fn none_hmac_and_mismatched_algorithms_are_refused() {
        let (rsa, ec) = (key("rsa-a", "r1"), key("ec-a", "e1"));
        let idp = Idp::start(&[&rsa, &ec]).await;
        let verifier = verifier_for(&idp).await;

        let none = unsigned(
            &json!({ "alg": "none", "typ": "JWT", "kid": "r1" }),
            &claims(),
        );
        assert!(looks_like_jwt(&none));
        let refused = verifier.verify(&none).await.unwrap_err();
        assert!(
            matches!(&refused, JwtRefused::Unsupported(m) if m.contains("`none`")),
            "{refused}"
        );

        // HS256, keyed with the RSA key's public JWK text: the classic confusion attack.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("r1".into());
        let secret = serde_json::to_vec(&rsa.jwk()).unwrap();
        let hs = encode(&header, &claims(), &EncodingKey::from_secret(&secret)).unwrap();
        let refused = verifier.verify(&hs).await.unwrap_err();
        assert_eq!(
            refused,
            JwtRefused::Unsupported(
                "algorithm `HS256`; this node accepts RS256, ES256 and EdDSA".into()
            )
        );
        for alg in ["RS384", "PS256", "ES384", "HS512"] {
            let token = unsigned(&json!({ "alg": alg, "kid": "r1" }), &claims());
            assert!(matches!(
                verifier.verify(&token).await,
                Err(JwtRefused::Unsupported(_))
            ));
        }

        // A token that says ES256 but names the RSA key.
        let confused = ec.sign_as("r1", &claims());
        assert_eq!(
            verifier.verify(&confused).await,
            Err(JwtRefused::Unsupported(
                "the token says ES256 but the issuer's key `r1` is for RS256".into()
            ))
        );

        let crit = unsigned(
            &json!({ "alg": "RS256", "kid": "r1", "crit": ["b64"], "b64": false }),
            &claims(),
        );
        assert!(matches!(
            verifier.verify(&crit).await,
            Err(JwtRefused::Unsupported(m)) if m.contains("crit")
        ));
        // A header that says RS256 twice, once as something else.
        let twice = format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","alg":"none"}"#),
            URL_SAFE_NO_PAD.encode("{}")
        );
        assert!(matches!(
            verifier.verify(&twice).await,
            Err(JwtRefused::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn the_principal_claim_must_name_a_usable_principal() {
        let rsa = key("rsa-a", "r1");
        let idp = Idp::start(&[&rsa]).await;
        let verifier = verifier_for(&idp).await;
        let check = |changes: Value| {
            let token = rsa.sign(&with(claims(), changes));
            let verifier = verifier.clone();
            async move { verifier.verify(&token).await.unwrap_err().to_string() }
        };
        assert_eq!(
            check(json!({ "sub": null })).await,
            "the token has no `sub` claim to name the principal"
        );
        assert_eq!(
            check(json!({ "sub": "" })).await,
            "the `sub` claim (the principal) is empty"
        );
        assert_eq!(
            check(json!({ "sub": "alice\u{0}admin" })).await,
            "the `sub` claim is not a usable principal: \
             it may hold letters, digits and . _ - @ : only (found '\\0')"
        );
        assert_eq!(
            check(json!({ "sub": "a b" })).await,
            "the `sub` claim is not a usable principal: \
             it may hold letters, digits and . _ - @ : only (found ' ')"
        );
        assert_eq!(
            check(json!({ "sub": "x".repeat(201) })).await,
            "the `sub` claim is not a usable principal: it must be 1 to 200 characters"
        );
        assert_eq!(
            check(json!({ "sub": 42 })).await,
            "the `sub` claim (the principal) is not a string"
        );
        assert_eq!(
            check(json!({ "scope": 7 })).await,
            "the `scope` claim must be a space-separated string or a list of strings"
        );
        assert_eq!(
            check(json!({ "scope": ["tasks:read", 7] })).await,
            "the `scope` claim must be a space-separated string or a list of strings"
        );

        // With another principal claim, `sub` still has to be printable.
        let by_email = JwtVerifier::new(JwtConfig {
            principal_claim: "email".into(),
            ..config_for(&idp.url())
        })
        .await
        .unwrap();
        let token = rsa.sign(&with(
            claims(),
            json!({ "email": "a@example.com", "sub": "line\nbreak" }),
        ));
        assert!(matches!(
            by_email.verify(&token).await,
            Err(JwtRefused::BadClaims(m)) if m.contains("`sub`")
        ));
    }

    #[tokio::test]
    async fn an_unknown_kid_fetches_the_keys_again_and_finds_a_rotated_key() {
        let (old, new) = (key("rsa-a", "2024"), key("ed25519-a", "2025"));
        let idp = Idp::start(&[&old]).await;
        let verifier = verifier_for(&idp).await;
        assert_eq!(idp.hits(), 1);

        // The IdP rotates: it publishes the new key and starts signing with it.
        idp.publish(&[&old, &new]);
        let identity = verifier.verify(&new.sign(&claims())).await.unwrap();
        assert_eq!(identity.principal, "alice@example.com");
        assert_eq!(idp.hits(), 2, "one fetch for the new kid");
        // Both keys now verify without fetching.
        assert!(verifier.verify(&old.sign(&claims())).await.is_ok());
        assert!(verifier.verify(&new.sign(&claims())).await.is_ok());
        assert_eq!(idp.hits(), 2);
    }

    #[tokio::test]
    async fn cached_keys_outlive_the_idp_and_new_kids_are_refused_with_a_reason() {
        let (known, later) = (key("ec-a", "e1"), key("ec-b", "e2"));
        let idp = Idp::start(&[&known]).await;
        let verifier = verifier_for(&idp).await;
        idp.shut_down().await;

        assert!(verifier.verify(&known.sign(&claims())).await.is_ok());
        let refused = verifier.verify(&later.sign(&claims())).await.unwrap_err();
        assert!(matches!(refused, JwtRefused::UnknownKey(_)), "{refused:?}");
        let reason = refused.to_string();
        assert!(
            reason.starts_with(
                "no key `e2` in the issuer's key set \
                 (last fetched 0 s ago; fetching it again failed 0 s ago)"
            ),
            "{reason}"
        );
        // Still fine, and the refetch that failed did not drop the cached key.
        assert!(verifier.verify(&known.sign(&claims())).await.is_ok());
    }

    #[tokio::test]
    async fn a_flood_of_made_up_kids_costs_the_idp_one_fetch() {
        let rsa = key("rsa-a", "r1");
        let idp = Idp::start(&[&rsa]).await;
        let verifier = verifier_for(&idp).await;
        let tokens: Vec<String> = (0..1000)
            .map(|_| rsa.sign_as(&format!("kid-{:016x}", rand::random::<u64>()), &claims()))
            .collect();
        let outcomes = futures::future::join_all(tokens.iter().map(|t| verifier.verify(t))).await;
        for outcome in outcomes {
            assert!(
                matches!(outcome, Err(JwtRefused::UnknownKey(_))),
                "{outcome:?}"
            );
        }
        assert!(
            idp.hits() <= 2,
            "{} fetches: the start-up one and at most one for the flood",
            idp.hits()
        );
        // And the IdP is spared later too, until the gap has passed.
        let more = rsa.sign_as("kid-late", &claims());
        assert!(verifier.verify(&more).await.is_err());
        assert!(idp.hits() <= 2);
        assert!(verifier.verify(&rsa.sign(&claims())).await.is_ok());
    }

    #[tokio::test]
    async fn an_unreachable_idp_at_start_up_is_retried_in_the_background() {
        // A port nobody listens on (yet).
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let verifier = JwtVerifier::new(config_for(&format!("http://{addr}/jwks")))
            .await
            .expect("an unreachable IdP does not stop the node");
        let stop = CancellationToken::new();
        verifier.spawn_refresh(stop.clone());

        let rsa = key("rsa-a", "r1");
        let token = rsa.sign(&claims());
        let refused = verifier.verify(&token).await.unwrap_err();
        assert!(
            matches!(refused, JwtRefused::KeysUnavailable(_)),
            "{refused:?}"
        );
        assert!(
            refused
                .to_string()
                .starts_with("the issuer's signing keys could not be fetched yet"),
            "{refused}"
        );

        let idp = Idp::start_on(addr, &[&rsa]).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match verifier.verify(&token).await {
                Ok(identity) => {
                    assert_eq!(identity.principal, "alice@example.com");
                    break;
                }
                Err(why) if Instant::now() < deadline => {
                    assert!(matches!(why, JwtRefused::KeysUnavailable(_)), "{why:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(why) => panic!("the keys never arrived: {why}"),
            }
        }
        stop.cancel();
        assert!(idp.hits() >= 1);
    }

    #[tokio::test]
    async fn a_jwks_file_is_read_and_its_unusable_keys_are_skipped() {
        let (rsa, ed) = (key("rsa-a", "r1"), key("ed25519-a", "d1"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let mut document = jwks(&[&rsa, &ed]);
        let keys = document["keys"].as_array_mut().unwrap();
        // What IdPs publish beside their signing keys.
        keys.push(json!({ "kty": "oct", "kid": "h1", "k": "c2VjcmV0" }));
        keys.push(
            json!({ "kty": "RSA", "kid": "enc", "use": "enc", "n": rsa.public["n"], "e": "AQAB" }),
        );
        keys.push(
            json!({ "kty": "RSA", "kid": "ps", "alg": "PS256", "n": rsa.public["n"], "e": "AQAB" }),
        );
        keys.push(json!({ "kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA" }));
        keys.push(json!({ "kty": "OKP", "kid": "x25519", "crv": "X25519", "x": "AA" }));
        keys.push(json!({ "kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB" }));
        std::fs::write(&path, serde_json::to_vec(&document).unwrap()).unwrap();

        let config = JwtConfig {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            jwks_file: Some(path.clone()),
            ..JwtConfig::default()
        };
        let verifier = JwtVerifier::new(config.clone()).await.unwrap();
        assert_eq!(verifier.current().keys.len(), 2);
        assert!(verifier.verify(&rsa.sign(&claims())).await.is_ok());
        assert!(verifier.verify(&ed.sign(&claims())).await.is_ok());
        let kids: Vec<_> = verifier
            .current()
            .keys
            .iter()
            .map(|k| k.kid.clone())
            .collect();
        assert_eq!(kids, [Some("r1".to_string()), Some("d1".to_string())]);

        // A rotation on disk is picked up like one at an IdP.
        let ec = key("ec-a", "e1");
        std::fs::write(&path, serde_json::to_vec(&jwks(&[&ec])).unwrap()).unwrap();
        assert!(verifier.verify(&ec.sign(&claims())).await.is_ok());
        assert!(
            matches!(
                verifier.verify(&rsa.sign(&claims())).await,
                Err(JwtRefused::UnknownKey(_))
            ),
            "a key withdrawn from the set stops working"
        );

        let missing = JwtVerifier::new(JwtConfig {
            jwks_file: Some(dir.path().join("nope.json")),
            ..config.clone()
        })
        .await
        .unwrap_err();
        assert!(
            missing.starts_with("auth.jwt.jwks_file: cannot read"),
            "{missing}"
        );
        std::fs::write(
            &path,
            b"{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}",
        )
        .unwrap();
        let useless = JwtVerifier::new(config.clone()).await.unwrap_err();
        assert!(
            useless.contains("no usable RS256, ES256 or EdDSA signing key"),
            "{useless}"
        );
        std::fs::write(&path, b"<html>").unwrap();
        let garbage = JwtVerifier::new(config).await.unwrap_err();
        assert!(garbage.contains("not a JWK set"), "{garbage}");
    }

    #[test]
    fn looks_like_jwt_tells_jwts_from_api_keys() {
        let (_, api_key) = baton_core::auth::new_key_secret();
        assert!(!looks_like_jwt(&api_key));
        assert!(looks_like_jwt(&key("rsa-a", "r1").sign(&claims())));
        assert!(looks_like_jwt("eyJhbGciOiJub25lIn0.e30."));
        for not in [
            "",
            "a.b",
            "a.b.c.d",
            ".b.c",
            "a..c",
            "a.b.c d",
            "a+b.c.d",
            "Bearer a.b.c",
        ] {
            assert!(!looks_like_jwt(not), "{not}");
        }
    }

    #[test]
    fn malformed_tokens_are_refused_with_a_reason() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let verifier = rt.block_on(file_verifier());
        let check = |token: &str| rt.block_on(verifier.verify(token)).unwrap_err().to_string();
        assert_eq!(
            check("abc"),
            "malformed: a JWT has three parts separated by dots"
        );
        assert_eq!(check("!!.e30.x"), "malformed: the header is not base64url");
        assert_eq!(check("e30.e30.x"), "malformed: the header has no `alg`");
        assert_eq!(
            check(&"a".repeat(20_000)),
            "malformed: the token is longer than 16 KiB"
        );
        // Well signed, but the claims are not JSON (only seen once the signature holds).
        let rsa = key("rsa-a", "r1");
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"r1"}"#),
            URL_SAFE_NO_PAD.encode("not json")
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &rsa.signing, Algorithm::RS256).unwrap();
        assert_eq!(
            check(&format!("{message}.{signature}")),
            "malformed: the header or the claims are not a JSON object"
        );
        assert_eq!(
            check(&format!("{message}.c2ln")),
            "bad signature: the token was not signed by the issuer's key"
        );
    }

    /// A verifier whose keys came from a file that is gone (so a refetch fails).
    async fn file_verifier() -> Arc<JwtVerifier> {
        let rsa = key("rsa-a", "r1");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, serde_json::to_vec(&jwks(&[&rsa])).unwrap()).unwrap();
        JwtVerifier::new(JwtConfig {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            jwks_file: Some(path),
            ..JwtConfig::default()
        })
        .await
        .unwrap()
    }

    /// Tokens whose parts are base64url of arbitrary text, so that inputs get past the
    /// shape check and into the header and claims parsing.
    fn token_like() -> impl Strategy<Value = String> {
        let header = prop_oneof![
            Just(r#"{"alg":"RS256","kid":"r1"}"#.to_string()),
            Just(r#"{"alg":"RS256"}"#.to_string()),
            Just(r#"{"alg":"none"}"#.to_string()),
            "\\PC{0,40}",
            "\\{\"alg\":\"(RS256|ES256|EdDSA)\",\"kid\":\\PC{0,10}\\}",
        ];
        let payload = prop_oneof![
            Just(claims().to_string()),
            "\\PC{0,60}",
            "\\{\"exp\":-?[0-9e.]{1,25},\"sub\":\\PC{0,10}\\}",
        ];
        (header, payload, "[A-Za-z0-9_-]{0,400}").prop_map(|(h, p, s)| {
            format!(
                "{}.{}.{s}",
                URL_SAFE_NO_PAD.encode(h),
                URL_SAFE_NO_PAD.encode(p)
            )
        })
    }

    #[test]
    fn verify_and_looks_like_jwt_never_panic() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let verifier = rt.block_on(file_verifier());
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let input = prop_oneof![any::<String>(), "[A-Za-z0-9_.-]{0,200}", token_like()];
        runner
            .run(&input, |token| {
                let _ = looks_like_jwt(&token);
                let outcome = rt.block_on(verifier.verify(&token));
                prop_assert!(outcome.is_err(), "accepted {token:?}");
                Ok(())
            })
            .unwrap();
    }
}
