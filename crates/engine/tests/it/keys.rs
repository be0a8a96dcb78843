//! API keys through the engine: every secret it hands out is accepted, and a change made
//! on this node is never undone by a refresh that read the store just before it.

use std::collections::BTreeSet;
use std::time::Duration;

use baton_core::auth::Scope;
use baton_engine::keys::{KeyRefused, NewKey};

use crate::common::*;

fn new_key(principal: &str) -> NewKey {
    NewKey {
        name: "k".into(),
        principal: principal.into(),
        scopes: BTreeSet::from([Scope::TasksRead]),
        expires_in: None,
        rate_limit: None,
        max_active: None,
    }
}

/// Random parts may contain `_` (URL-safe base64): rotated secrets must still parse.
#[tokio::test]
async fn every_made_or_rotated_secret_is_accepted() {
    let t = TestEngine::start(fast_config()).await;
    let made = t.engine.create_key(new_key("team-a")).await.unwrap();
    assert_eq!(
        t.engine
            .authenticate_key(&made.secret)
            .unwrap()
            .identity
            .principal,
        "team-a"
    );
    let mut previous = made.secret;
    for round in 0..300 {
        let rotated = t
            .engine
            .rotate_key(&made.key.key_id, Duration::from_secs(60))
            .await
            .unwrap();
        let auth = t.engine.authenticate_key(&rotated.secret);
        assert!(
            auth.is_ok(),
            "round {round}: {} refused",
            rotated.secret.len()
        );
        // The one before still works during its grace period; the one before that not.
        assert!(
            t.engine.authenticate_key(&previous).is_ok(),
            "round {round}"
        );
        previous = rotated.secret;
    }
    t.engine.shutdown().await;
}

/// The background refresh runs every second while keys change: what this node did
/// stays done.
#[tokio::test]
async fn refreshes_never_bring_an_old_key_back() {
    let t = TestEngine::start(fast_config()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut secrets = Vec::new();
    while std::time::Instant::now() < deadline {
        let made = t.engine.create_key(new_key("team-a")).await.unwrap();
        let rotated = t
            .engine
            .rotate_key(&made.key.key_id, Duration::ZERO)
            .await
            .unwrap();
        assert!(t.engine.authenticate_key(&rotated.secret).is_ok());
        t.engine.revoke_key(&made.key.key_id).await.unwrap();
        assert_eq!(
            t.engine.authenticate_key(&rotated.secret).unwrap_err(),
            KeyRefused::Revoked
        );
        secrets.push(rotated.secret);
    }
    // Another second for a refresh to pass over all of them: still all revoked.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for s in &secrets {
        assert_eq!(
            t.engine.authenticate_key(s).unwrap_err(),
            KeyRefused::Revoked
        );
    }
    let keys = t.engine.list_keys().await.unwrap();
    assert_eq!(keys.len(), secrets.len());
    assert!(keys.iter().all(|k| k.state == "revoked"));
    t.engine.shutdown().await;
}
