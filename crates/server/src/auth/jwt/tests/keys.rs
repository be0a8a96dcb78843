//! The key set over time: fetched again for an unknown `kid`, kept through an IdP
//! outage, read from a file; tokens that are not JWTs; no input makes the verifier panic.

use super::*;

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
