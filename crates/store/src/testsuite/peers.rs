//! Runtime servers, peers and singleton roles.

use baton_core::Timestamp;
use serde_json::json;

use super::support::{SEC, t0};
use crate::Store;

pub async fn servers_crud(store: &dyn Store) {
    assert!(store.list_servers().await.unwrap().is_empty());
    store
        .put_server("b", json!({"url": "http://b"}), t0())
        .await
        .unwrap();
    store
        .put_server("a", json!({"command": "x"}), t0())
        .await
        .unwrap();
    store
        .put_server("a", json!({"command": "y"}), t0().saturating_add(SEC))
        .await
        .unwrap();
    let all = store.list_servers().await.unwrap();
    assert_eq!(
        all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    assert_eq!(all[0].config, json!({"command": "y"}));
    assert_eq!(
        (all[0].created_at, all[0].updated_at),
        (t0(), t0().saturating_add(SEC))
    );
    assert!(store.delete_server("a").await.unwrap());
    assert!(!store.delete_server("a").await.unwrap());
    assert_eq!(store.list_servers().await.unwrap().len(), 1);
}

fn peer_report(id: &str, at: Timestamp) -> crate::PeerReport {
    crate::PeerReport {
        id: id.to_string(),
        role: "worker".into(),
        address: None,
        version: "1.2.3".into(),
        started_at: t0(),
        now: at,
        running: 3,
        finished: 10,
        throughput: 2.5,
    }
}

pub async fn peers_lifecycle(store: &dyn Store) {
    use crate::PeerState;
    store.report_peer(&peer_report("b", t0())).await.unwrap();
    let mut a = peer_report("a", t0());
    a.role = "node".into();
    a.address = Some("http://127.0.0.1:1".into());
    store.report_peer(&a).await.unwrap();
    // A later heartbeat replaces the figures.
    a.now = t0().saturating_add(5 * SEC);
    a.running = 7;
    store.report_peer(&a).await.unwrap();
    let peers = store.list_peers().await.unwrap();
    assert_eq!(
        peers.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    assert_eq!(peers[0].role, "node");
    assert_eq!(peers[0].address.as_deref(), Some("http://127.0.0.1:1"));
    assert_eq!(peers[0].running, 7);
    assert_eq!(peers[0].last_heartbeat, t0().saturating_add(5 * SEC));
    assert_eq!(peers[0].state, PeerState::Live);
    assert_eq!((peers[1].finished, peers[1].throughput), (10, 2.5));

    // Draining: a live peer keeps the flag across its heartbeats; a new start clears it.
    assert!(!peers[0].draining);
    assert!(store.drain_peer("a").await.unwrap());
    assert!(!store.drain_peer("zz").await.unwrap(), "no such peer");
    a.now = t0().saturating_add(5 * SEC);
    store.report_peer(&a).await.unwrap();
    assert!(store.list_peers().await.unwrap()[0].draining);
    let mut restarted = a.clone();
    restarted.started_at = t0().saturating_add(5 * SEC);
    store.report_peer(&restarted).await.unwrap();
    assert!(!store.list_peers().await.unwrap()[0].draining);
    store.report_peer(&a).await.unwrap();

    // The caller is never lost, however stale its own last heartbeat: it is asking.
    assert!(
        store
            .mark_lost_peers(t0().saturating_add(SEC), Timestamp::ZERO, "b")
            .await
            .unwrap()
            .is_empty()
    );
    // b stops heartbeating: only b is lost, once.
    let lost = store
        .mark_lost_peers(t0().saturating_add(SEC), Timestamp::ZERO, "c")
        .await
        .unwrap();
    assert_eq!(
        lost.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        vec!["b"]
    );
    assert_eq!(lost[0].state, PeerState::Lost);
    assert!(
        store
            .mark_lost_peers(t0().saturating_add(SEC), Timestamp::ZERO, "c")
            .await
            .unwrap()
            .is_empty()
    );
    // a stops cleanly; a heartbeat makes a peer live again.
    assert!(
        store
            .peer_stopped("a", t0().saturating_add(6 * SEC))
            .await
            .unwrap()
    );
    assert!(!store.peer_stopped("zz", t0()).await.unwrap());
    store
        .report_peer(&peer_report("b", t0().saturating_add(7 * SEC)))
        .await
        .unwrap();
    let peers = store.list_peers().await.unwrap();
    assert_eq!(
        peers.iter().map(|p| p.state).collect::<Vec<_>>(),
        vec![PeerState::Stopped, PeerState::Live]
    );
    assert_eq!(peers[0].running, 0);
    // Peers gone for long are forgotten; live ones never are.
    store
        .mark_lost_peers(Timestamp::ZERO, t0().saturating_add(60 * SEC), "c")
        .await
        .unwrap();
    let peers = store.list_peers().await.unwrap();
    assert_eq!(
        peers.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        vec!["b"]
    );
}

pub async fn singleton_is_held(store: &dyn Store) {
    let guard = store
        .try_singleton("maintenance")
        .await
        .unwrap()
        .expect("the first taker gets the role");
    assert!(guard.held().await);
}

/// A shared secret is made once, by the first caller; ended sessions are listed from a
/// time on, once each, and forgotten by age.
pub async fn shared_secrets_and_ended_sessions(store: &dyn Store) {
    let first = store.shared_secret("k", "one", t0()).await.unwrap();
    assert_eq!(first, "one");
    let again = store
        .shared_secret("k", "two", t0().saturating_add(SEC))
        .await
        .unwrap();
    assert_eq!(again, "one", "the first value stays");
    assert_eq!(store.shared_secret("other", "x", t0()).await.unwrap(), "x");

    store.end_session("h1", t0()).await.unwrap();
    store
        .end_session("h2", t0().saturating_add(2 * SEC))
        .await
        .unwrap();
    // Ending it again changes nothing.
    store
        .end_session("h1", t0().saturating_add(3 * SEC))
        .await
        .unwrap();
    let all = store.ended_sessions(t0()).await.unwrap();
    assert_eq!(
        all,
        vec![
            ("h1".to_string(), t0()),
            ("h2".to_string(), t0().saturating_add(2 * SEC))
        ]
    );
    let later = store
        .ended_sessions(t0().saturating_add(SEC))
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(
        store
            .forget_ended_sessions(t0().saturating_add(SEC))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.ended_sessions(t0()).await.unwrap().len(), 1);
}
