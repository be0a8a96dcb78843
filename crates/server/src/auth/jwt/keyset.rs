//! The issuer's key set: reading a token's header, parsing a JWKS, picking the key
//! for a token, and the HTTP client that fetches it.

use super::*;

pub(super) fn known_scopes<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<Scope> {
    names
        .into_iter()
        .filter_map(|name| name.parse::<Scope>().ok())
        .collect()
}

impl KeySet {
    pub(super) fn lookup(&self, header: &TokenHeader) -> Lookup {
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
    pub(super) fn missing(&self, header: &TokenHeader) -> JwtRefused {
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
pub(super) fn ago(at: Instant) -> String {
    let secs = at.elapsed().as_secs();
    match secs {
        0..120 => format!("{secs} s ago"),
        120..7200 => format!("{} min ago", secs / 60),
        _ => format!("{} h ago", secs / 3600),
    }
}

/// Text from a token, fit to quote in a reason or a log line: escaped and cut short.
pub(super) fn shown(text: &str) -> String {
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
pub(super) fn read_header(token: &str) -> Result<TokenHeader, JwtRefused> {
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
pub(super) fn refusal(error: JwtError) -> JwtRefused {
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

pub(super) fn http_client() -> Result<reqwest::Client, String> {
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
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
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
pub(super) fn parse_jwks(body: &[u8]) -> Result<Vec<Arc<VerifyingKey>>, String> {
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

pub(super) fn usable_key(value: Value) -> Result<VerifyingKey, String> {
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
