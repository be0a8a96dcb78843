//! API keys and the audit log.

use baton_core::Timestamp;
use serde_json::json;

use super::support::*;
use crate::{AuditQuery, NewAuditEntry, Store, StoredKey};

fn key(id: &str, at: Timestamp) -> StoredKey {
    StoredKey {
        key_id: id.into(),
        name: "ci".into(),
        principal: "team-a".into(),
        scopes: vec!["tasks:read".into(), "tasks:write".into()],
        secret_hash: format!("hash-of-{id}"),
        previous_hash: None,
        previous_until: None,
        rate_limit: Some("50/s".into()),
        max_active: Some(100),
        created_at: at,
        expires_at: Some(at.saturating_add(90 * 24 * 3600 * SEC)),
        revoked_at: None,
        updated_at: at,
    }
}

/// Keys are stored (only their hash), found by id, listed by what changed since a time,
/// rotated (the previous hash kept for a grace period) and revoked once.
pub async fn keys_lifecycle(store: &dyn Store) {
    let a = key("00000000000000aa", t0());
    store.put_key(a.clone()).await.unwrap();
    let err = store.put_key(a.clone()).await.unwrap_err();
    assert_eq!(err.code(), baton_core::ErrorCode::Conflict, "{err}");
    assert_eq!(store.get_key(&a.key_id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_key("ffffffffffffffff").await.unwrap(), None);
    let b = key("00000000000000bb", t0().saturating_add(SEC));
    store.put_key(b.clone()).await.unwrap();
    assert_eq!(
        store.list_keys(None).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(
        store
            .list_keys(Some(t0().saturating_add(SEC)))
            .await
            .unwrap(),
        vec![b.clone()]
    );
    let later = t0().saturating_add(10 * SEC);
    assert!(
        store
            .rotate_key(&a.key_id, "new-hash", later.saturating_add(60 * SEC), later)
            .await
            .unwrap()
    );
    let rotated = store.get_key(&a.key_id).await.unwrap().unwrap();
    assert_eq!(rotated.secret_hash, "new-hash");
    assert_eq!(
        rotated.previous_hash.as_deref(),
        Some("hash-of-00000000000000aa")
    );
    assert_eq!(rotated.previous_until, Some(later.saturating_add(60 * SEC)));
    assert_eq!(rotated.updated_at, later);
    assert!(store.revoke_key(&a.key_id, later).await.unwrap());
    assert!(!store.revoke_key(&a.key_id, later).await.unwrap(), "once");
    assert!(
        !store
            .rotate_key(&a.key_id, "x", later, later)
            .await
            .unwrap(),
        "a revoked key cannot be rotated"
    );
    let changed = store.list_keys(Some(later)).await.unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].revoked_at, Some(later));
}

/// The audit log is appended to, listed newest first with filters and a cursor, and
/// purged oldest first.
pub async fn audit_log_appends_lists_and_purges(store: &dyn Store) {
    let entry = |i: i64, principal: &str, action: &str| NewAuditEntry {
        at: t0().saturating_add(std::time::Duration::from_secs(i as u64)),
        principal: principal.into(),
        credential: format!("key:{principal}"),
        action: action.into(),
        target: Some(format!("t-{i}")),
        outcome: "ok".into(),
        status: Some(202),
        remote: Some("127.0.0.1:5000".into()),
        request_id: Some(format!("r-{i}")),
        detail: (i == 1).then(|| json!({"why": "x\u{0}y"})),
    };
    store
        .append_audit(vec![
            entry(1, "a", "tasks.submit"),
            entry(2, "b", "tasks.submit"),
            entry(3, "a", "keys.revoke"),
        ])
        .await
        .unwrap();
    let all = store
        .list_audit(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].entry.action, "keys.revoke", "newest first");
    assert_eq!(all[2].entry, entry(1, "a", "tasks.submit"));
    let of_a = store
        .list_audit(&AuditQuery {
            principal: Some("a".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(of_a.len(), 1);
    let next = store
        .list_audit(&AuditQuery {
            principal: Some("a".into()),
            before_seq: Some(of_a[0].seq),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].entry.target.as_deref(), Some("t-1"));
    let windowed = store
        .list_audit(&AuditQuery {
            since: Some(t0().saturating_add(2 * SEC)),
            until: Some(t0().saturating_add(3 * SEC)),
            action: Some("tasks.submit".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(windowed.len(), 1);
    assert_eq!(windowed[0].entry.principal, "b");
    assert_eq!(
        store
            .purge_audit(t0().saturating_add(3 * SEC), 100)
            .await
            .unwrap(),
        2
    );
    let left = store
        .list_audit(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
}
