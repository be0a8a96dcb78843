//! Webhooks: stored per principal; their outbox written with the events that cause it,
//! claimed under a lease by one claimer at a time, retried, dead-lettered and redelivered.

use std::collections::HashSet;

use baton_core::Timestamp;

use super::support::{SEC, claim, complete, create, new_task, t0};
use crate::{AttemptRecord, Delivery, DeliveryNext, NewOwnerlessEvent, Store, StoredWebhook};

fn webhook(id: &str, owner: &str, events: &[&str]) -> StoredWebhook {
    StoredWebhook {
        id: id.into(),
        owner: owner.into(),
        url: format!("https://hooks.example/{id}"),
        events: events.iter().map(|e| e.to_string()).collect(),
        tool: None,
        queue: None,
        workflow: None,
        all_owners: false,
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        previous_secret: None,
        previous_until: None,
        description: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

async fn deliveries_of(store: &dyn Store, webhook_id: &str) -> Vec<Delivery> {
    store.list_deliveries(webhook_id, None, 100).await.unwrap()
}

fn record(d: &Delivery, at: Timestamp, code: Option<u16>, next: DeliveryNext) -> AttemptRecord {
    AttemptRecord {
        delivery_id: d.id.clone(),
        attempt: d.attempts,
        at,
        status_code: code,
        latency_ms: 12,
        error: code.is_none().then(|| "connection refused".to_string()),
        payload: Some(format!("{{\"id\":\"{}\"}}", d.id)),
        next,
    }
}

/// A task's end makes one delivery per matching webhook (owner, event type, tool filter;
/// an all-owners webhook sees everyone's) and one for its callback URL, with the event's
/// number and time; a finish refused by its fence makes none; nothing is enqueued before
/// any webhook exists. Webhooks are listed per owner, rotated and deleted with their
/// deliveries.
pub async fn webhook_deliveries_are_written_with_their_events(store: &dyn Store) {
    // No webhook yet: a finished task makes no delivery.
    let at = t0();
    let early = create(store, vec![new_task("s__tool", 0, at)]).await;
    claim(store, "node-a", 1, at, 1).await;
    store.finish(vec![complete(early[0], 1, at)]).await.unwrap();
    assert!(
        store
            .claim_deliveries(at, at.saturating_add(30 * SEC), 100)
            .await
            .unwrap()
            .is_empty()
    );

    let mine = webhook("wh_mine", "alice", &["task.completed", "task.failed"]);
    let bobs = webhook("wh_bob", "bob", &["task.completed"]);
    let mut filtered = webhook("wh_filtered", "alice", &["task.completed"]);
    filtered.tool = Some("other__tool".into());
    let mut admin = webhook("wh_admin", "root", &["task.completed"]);
    admin.all_owners = true;
    let cancels = webhook("wh_cancels", "alice", &["task.cancelled"]);
    for w in [&mine, &bobs, &filtered, &admin, &cancels] {
        store.insert_webhook(w).await.unwrap();
    }
    assert_eq!(store.get_webhook("wh_mine").await.unwrap().unwrap(), mine);
    let listed: Vec<String> = store
        .list_webhooks(Some("alice"))
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(listed, ["wh_cancels", "wh_filtered", "wh_mine"]);
    assert_eq!(store.list_webhooks(None).await.unwrap().len(), 5);

    let at = t0().saturating_add(SEC);
    let mut with_callback = new_task("s__tool", 0, at);
    with_callback.callback_url = Some("https://cb.example/done".into());
    let ids = create(store, vec![new_task("s__tool", 0, at), with_callback]).await;
    claim(store, "node-a", 2, at, 7).await;
    let done = at.saturating_add(SEC);
    // A finish under a stale token is refused: no event, no delivery.
    store
        .finish(vec![complete(ids[0], 999, done)])
        .await
        .unwrap();
    assert!(deliveries_of(store, "wh_mine").await.is_empty());
    let outcomes = store
        .finish(vec![complete(ids[0], 7, done), complete(ids[1], 7, done)])
        .await
        .unwrap();
    let seqs: Vec<i64> = outcomes
        .iter()
        .map(|o| match o {
            crate::FinishOutcome::Applied(ev) => ev.seq,
            other => panic!("finish not applied: {other:?}"),
        })
        .collect();

    let got = deliveries_of(store, "wh_mine").await;
    assert_eq!(got.len(), 2, "one delivery per completed task: {got:?}");
    for d in &got {
        assert_eq!(d.event_type, "task.completed");
        assert_eq!(d.owner, "alice");
        assert_eq!(d.status, "pending");
        assert_eq!(d.attempts, 0);
        assert_eq!(d.event_at, done);
        assert_eq!(d.next_attempt_at, done);
        assert!(d.url.is_none());
    }
    let mut expected: Vec<String> = seqs.iter().map(|s| format!("msg_{s}_wh_mine")).collect();
    expected.sort();
    let mut ids_got: Vec<String> = got.iter().map(|d| d.id.clone()).collect();
    ids_got.sort();
    assert_eq!(ids_got, expected, "ids name the event and the webhook");
    let tasks: HashSet<String> = got.iter().filter_map(|d| d.task_id.clone()).collect();
    assert_eq!(
        tasks,
        HashSet::from([ids[0].to_string(), ids[1].to_string()])
    );
    assert!(
        deliveries_of(store, "wh_bob").await.is_empty(),
        "other owner"
    );
    assert!(
        deliveries_of(store, "wh_filtered").await.is_empty(),
        "tool filter"
    );
    assert!(
        deliveries_of(store, "wh_cancels").await.is_empty(),
        "event type"
    );
    assert_eq!(
        deliveries_of(store, "wh_admin").await.len(),
        2,
        "all owners"
    );

    // The callback: one delivery, to its URL, for the task that named it.
    let due = store
        .claim_deliveries(done, done.saturating_add(30 * SEC), 100)
        .await
        .unwrap();
    assert_eq!(
        due.len(),
        5,
        "2 + 2 webhook deliveries and 1 callback: {due:?}"
    );
    let callbacks: Vec<&Delivery> = due.iter().filter(|d| d.webhook_id.is_none()).collect();
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].url.as_deref(), Some("https://cb.example/done"));
    assert_eq!(callbacks[0].task_id, Some(ids[1].to_string()));
    assert_eq!(callbacks[0].id, format!("msg_{}_callback", seqs[1]));

    // Rotation keeps the old secret for the overlap.
    let until = done.saturating_add(3600 * SEC);
    assert!(
        store
            .rotate_webhook_secret("alice", "wh_mine", "whsec_bmV3", until, done)
            .await
            .unwrap()
    );
    assert!(
        !store
            .rotate_webhook_secret("bob", "wh_mine", "whsec_bmV3", until, done)
            .await
            .unwrap(),
        "only its owner rotates a webhook"
    );
    let rotated = store.get_webhook("wh_mine").await.unwrap().unwrap();
    assert_eq!(rotated.secret, "whsec_bmV3");
    assert_eq!(rotated.previous_secret, Some(mine.secret.clone()));
    assert_eq!(rotated.previous_until, Some(until));

    // Deleting takes the deliveries along; another owner cannot delete it.
    assert!(!store.delete_webhook("bob", "wh_mine").await.unwrap());
    assert!(store.delete_webhook("alice", "wh_mine").await.unwrap());
    assert!(store.get_webhook("wh_mine").await.unwrap().is_none());
    assert!(deliveries_of(store, "wh_mine").await.is_empty());
    assert!(!store.delete_webhook("alice", "wh_mine").await.unwrap());
}

async fn ten_deliveries(store: &dyn Store, at: Timestamp) {
    for i in 0..10 {
        let w = webhook(&format!("wh_{i}"), "alice", &["server.down", "server.up"]);
        store.insert_webhook(&w).await.unwrap();
    }
    let e = NewOwnerlessEvent {
        key: "srv_github_down_1".into(),
        event_type: "server.down".into(),
        subject: Some("github".into()),
        payload: "{}".into(),
        at,
    };
    assert_eq!(store.enqueue_ownerless_event(&e).await.unwrap(), 10);
    assert_eq!(
        store.enqueue_ownerless_event(&e).await.unwrap(),
        0,
        "an occurrence is enqueued once, whoever notices it again"
    );
}

/// Two claimers never get the same delivery; a leased delivery is not claimed again
/// until its lease expired, and then with the next attempt number, after which the first
/// claimer's outcome is refused.
pub async fn delivery_claims_are_leased_once(store: &dyn Store) {
    let at = t0();
    ten_deliveries(store, at).await;
    let lease = at.saturating_add(30 * SEC);
    let (a, b) = tokio::join!(
        store.claim_deliveries(at, lease, 6),
        store.claim_deliveries(at, lease, 6)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let ids_a: HashSet<String> = a.iter().map(|d| d.id.clone()).collect();
    let ids_b: HashSet<String> = b.iter().map(|d| d.id.clone()).collect();
    assert!(
        ids_a.is_disjoint(&ids_b),
        "claimed twice: {ids_a:?} {ids_b:?}"
    );
    assert_eq!(ids_a.len() + ids_b.len(), 10);
    assert!(
        a.iter()
            .chain(&b)
            .all(|d| d.attempts == 1 && d.lease_until == Some(lease))
    );
    assert!(
        store
            .claim_deliveries(at.saturating_add(SEC), lease, 100)
            .await
            .unwrap()
            .is_empty(),
        "leased deliveries are not claimed again"
    );

    // One is recorded delivered; the others' claimer dies. After the lease, they return.
    let first = a[0].clone();
    assert!(
        store
            .record_delivery_attempt(&record(
                &first,
                at.saturating_add(SEC),
                Some(204),
                DeliveryNext::Delivered
            ))
            .await
            .unwrap()
    );
    let later = lease.saturating_add(SEC);
    let again = store
        .claim_deliveries(later, later.saturating_add(30 * SEC), 100)
        .await
        .unwrap();
    assert_eq!(again.len(), 9);
    assert!(again.iter().all(|d| d.attempts == 2 && d.id != first.id));
    // The dead claimer wakes up: its attempt is no longer the latest claim.
    let stale = a.iter().chain(&b).find(|d| d.id == again[0].id).unwrap();
    assert!(
        !store
            .record_delivery_attempt(&record(stale, later, Some(200), DeliveryNext::Delivered))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_delivery_attempt(&record(
                &again[0],
                later,
                Some(200),
                DeliveryNext::Delivered
            ))
            .await
            .unwrap()
    );
    let d = store.get_delivery(&again[0].id).await.unwrap().unwrap();
    assert_eq!(d.status, "delivered");
    assert_eq!(d.lease_until, None);
    let attempts = store.delivery_attempts(&d.id).await.unwrap();
    assert_eq!(attempts.len(), 1, "only the recorded attempt: {attempts:?}");
    assert_eq!(attempts[0].attempt, 2);
    assert_eq!(attempts[0].status_code, Some(200));
}

/// A failed attempt waits for its backoff; attempts, status codes, errors and latency are
/// kept; a dead letter is never claimed, until redelivered by hand (same id, attempts
/// counted on); finished deliveries are purged when old.
pub async fn delivery_backoff_and_dead_letter(store: &dyn Store) {
    let at = t0();
    ten_deliveries(store, at).await;
    let lease = |t: Timestamp| t.saturating_add(30 * SEC);
    let d = store
        .claim_deliveries(at, lease(at), 1)
        .await
        .unwrap()
        .remove(0);
    let retry_at = at.saturating_add(5 * SEC);
    assert!(
        store
            .record_delivery_attempt(&record(&d, at, Some(500), DeliveryNext::RetryAt(retry_at)))
            .await
            .unwrap()
    );
    let d1 = store.get_delivery(&d.id).await.unwrap().unwrap();
    assert_eq!(
        (d1.status.as_str(), d1.attempts, d1.next_attempt_at),
        ("pending", 1, retry_at)
    );
    assert_eq!(d1.last_status_code, Some(500));
    assert_eq!(d1.last_latency_ms, Some(12));
    assert_eq!(
        d1.payload.as_deref(),
        Some("{}"),
        "a body fixed before is kept for every attempt"
    );
    // Before its time it is not due (the other nine are; leave them leased).
    let others = store.claim_deliveries(at, lease(at), 100).await.unwrap();
    assert_eq!(others.len(), 9);
    assert!(others.iter().all(|o| o.id != d.id));
    let t1 = retry_at;
    let d2 = store.claim_deliveries(t1, lease(t1), 100).await.unwrap();
    assert_eq!(d2.len(), 1);
    assert_eq!((d2[0].id.as_str(), d2[0].attempts), (d.id.as_str(), 2));
    assert!(
        store
            .record_delivery_attempt(&record(&d2[0], t1, None, DeliveryNext::Failed))
            .await
            .unwrap()
    );
    let dead = store.get_delivery(&d.id).await.unwrap().unwrap();
    assert_eq!(dead.status, "failed");
    assert_eq!(dead.last_error.as_deref(), Some("connection refused"));
    assert_eq!(dead.last_status_code, None);
    let far = t1.saturating_add(3600 * SEC);
    assert!(
        store
            .claim_deliveries(far, lease(far), 100)
            .await
            .unwrap()
            .iter()
            .all(|o| o.id != d.id),
        "a dead letter is never claimed"
    );
    let history = store.delivery_attempts(&d.id).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|a| (a.attempt, a.status_code))
            .collect::<Vec<_>>(),
        [(1, Some(500)), (2, None)]
    );

    // Redelivered by hand: due now, same id, the attempts go on.
    let webhook_id = d.webhook_id.clone().unwrap();
    assert!(!store.redeliver("wh_other", &d.id, far).await.unwrap());
    assert!(store.redeliver(&webhook_id, &d.id, far).await.unwrap());
    let d3 = store.claim_deliveries(far, lease(far), 100).await.unwrap();
    let d3: Vec<&Delivery> = d3.iter().filter(|o| o.id == d.id).collect();
    assert_eq!(d3.len(), 1);
    assert_eq!(d3[0].attempts, 3);
    assert!(
        store
            .record_delivery_attempt(&record(d3[0], far, Some(200), DeliveryNext::Delivered))
            .await
            .unwrap()
    );
    // The page of a webhook's history, then purging what is old and finished.
    assert_eq!(
        store
            .list_deliveries(&webhook_id, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .purge_deliveries(far.saturating_add(SEC), 100)
            .await
            .unwrap(),
        1,
        "only finished deliveries go"
    );
    assert!(store.get_delivery(&d.id).await.unwrap().is_none());
    assert!(store.delivery_attempts(&d.id).await.unwrap().is_empty());
}

/// A webhook's deliveries page newest first, continuing strictly after the cursor.
pub async fn deliveries_page_newest_first(store: &dyn Store) {
    store
        .insert_webhook(&webhook("wh_p", "alice", &["server.down"]))
        .await
        .unwrap();
    for i in 0..5u32 {
        let e = NewOwnerlessEvent {
            key: format!("k{i}"),
            event_type: "server.down".into(),
            subject: None,
            payload: "{}".into(),
            at: t0().saturating_add(SEC * (i / 2)),
        };
        store.enqueue_ownerless_event(&e).await.unwrap();
    }
    let first = store.list_deliveries("wh_p", None, 3).await.unwrap();
    assert_eq!(first.len(), 3);
    let last = first.last().unwrap();
    let rest = store
        .list_deliveries("wh_p", Some((last.event_at, last.id.clone())), 3)
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);
    let all: Vec<(Timestamp, String)> = first
        .iter()
        .chain(&rest)
        .map(|d| (d.event_at, d.id.clone()))
        .collect();
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(all, sorted, "newest first, no repeats");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 5);
}

/// A server's health change is enqueued once, however many processes report it at once;
/// reporting the same health again is no news; a server first seen up is no news, first
/// seen down is.
pub async fn server_health_changes_are_enqueued_once(store: &dyn Store) {
    let w = webhook("wh_srv", "alice", &["server.down", "server.up"]);
    store.insert_webhook(&w).await.unwrap();
    let server_event = |name: &str, up: bool, at: Timestamp| NewOwnerlessEvent {
        key: format!("srv_{name}_{}", if up { "up" } else { "down" }),
        event_type: if up { "server.up" } else { "server.down" }.into(),
        subject: Some(name.into()),
        payload: "{}".into(),
        at,
    };
    let event = |up: bool, at: Timestamp| server_event("github", up, at);
    let at = t0();
    assert_eq!(
        store
            .record_server_health("github", true, &event(true, at))
            .await
            .unwrap(),
        0,
        "first seen up"
    );
    // Three processes notice it go down at once.
    let down = at.saturating_add(SEC);
    let (e1, e2) = (event(false, down), event(false, down.saturating_add(SEC)));
    let (a, b, c) = tokio::join!(
        store.record_server_health("github", false, &e1),
        store.record_server_health("github", false, &e2),
        store.record_server_health("github", false, &e1)
    );
    assert_eq!(a.unwrap() + b.unwrap() + c.unwrap(), 1, "one delivery");
    let up = down.saturating_add(10 * SEC);
    assert_eq!(
        store
            .record_server_health("github", true, &event(true, up))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .record_server_health("github", true, &event(true, up.saturating_add(SEC)))
            .await
            .unwrap(),
        0,
        "still up"
    );
    assert_eq!(
        store
            .record_server_health("gitlab", false, &server_event("gitlab", false, up))
            .await
            .unwrap(),
        1,
        "first seen down"
    );
    let got = deliveries_of(store, "wh_srv").await;
    let mut types: Vec<(&str, Option<&str>)> = got
        .iter()
        .map(|d| (d.event_type.as_str(), d.subject.as_deref()))
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            ("server.down", Some("github")),
            ("server.down", Some("gitlab")),
            ("server.up", Some("github"))
        ]
    );
}
