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

mod keys;
