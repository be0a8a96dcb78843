//! Claims: order, leases granted once, delays, paused queues, concurrency limits.

use baton_core::{EventKind, TaskId, TaskStatus};

use super::support::{SEC, claim, claim_limited, claim_with, complete, create, get, new_task, t0};
use crate::{ClaimRequest, ConcurrencyLimit, CreateOutcome, RateLimit, Store, ToolSelector};

pub async fn claim_order(store: &dyn Store) {
    let low = new_task("t", 10, t0());
    let high_late = new_task("t", 90, t0().saturating_add(SEC));
    let high_early = new_task("t", 90, t0());
    let normal_a = new_task("t", 50, t0());
    let normal_b = new_task("t", 50, t0());
    // One owner: within a priority its tasks go in the order they were submitted, and
    // the due time breaks ties (see `fair_shares_rotate_between_groups`).
    create(
        store,
        vec![
            low.clone(),
            high_early.clone(),
            high_late.clone(),
            normal_a.clone(),
            normal_b.clone(),
        ],
    )
    .await;
    let now = t0().saturating_add(2 * SEC);
    let order: Vec<TaskId> = claim(store, "w1", 10, now, 7)
        .await
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(
        order,
        vec![
            high_early.id,
            high_late.id,
            normal_a.id,
            normal_b.id,
            low.id
        ]
    );
}

/// Within a priority, claims rotate between groups (owner and group key): a backlog of
/// 50 does not hold up a group of 3 that came after it, a group's own tasks keep their
/// order, an idle group rejoins at the head of the line, and priority still comes first.
pub async fn fair_shares_rotate_between_groups(store: &dyn Store) {
    let task = |owner: &str, group: Option<&str>| {
        let mut t = new_task("t", 50, t0());
        t.owner = owner.into();
        t.group_key = group.map(Into::into);
        t
    };
    let backlog = create(store, (0..50).map(|_| task("a", None)).collect()).await;
    let b = create(store, (0..3).map(|_| task("b", None)).collect()).await;
    let ax = create(store, (0..2).map(|_| task("a", Some("x"))).collect()).await;
    let got: Vec<TaskId> = claim(store, "w", 9, t0(), 1)
        .await
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(
        got,
        vec![
            backlog[0], b[0], ax[0], backlog[1], b[1], ax[1], backlog[2], b[2], backlog[3]
        ],
        "groups take turns, each in its own order"
    );
    // b was idle: its next task joins at the head of the line, not behind a's backlog.
    let b_again = create(store, vec![task("b", None)]).await;
    let got: Vec<TaskId> = claim(store, "w", 2, t0(), 2)
        .await
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(got, vec![backlog[4], b_again[0]]);
    let stored = get(store, b_again[0]).await;
    assert_eq!(stored.fair_key, get(store, backlog[4]).await.fair_key);
    assert_eq!(get(store, ax[0]).await.group_key.as_deref(), Some("x"));
    // Priority first: a's urgent task goes before every normal one.
    let mut urgent = task("a", None);
    urgent.priority = 90;
    let urgent = create(store, vec![urgent]).await;
    assert_eq!(claim(store, "w", 1, t0(), 3).await[0].id, urgent[0]);
}

/// `group_max`: at most that many tasks of one group run at once, across claims.
pub async fn group_max_limits_running_per_group(store: &dyn Store) {
    let task = |owner: &str, group: Option<&str>| {
        let mut t = new_task("t", 50, t0());
        t.owner = owner.into();
        t.group_key = group.map(Into::into);
        t
    };
    let mut tasks: Vec<_> = (0..10).map(|_| task("a", None)).collect();
    tasks.extend((0..10).map(|_| task("b", None)));
    tasks.extend((0..10).map(|_| task("a", Some("x"))));
    create(store, tasks).await;
    let claim_max = |token| claim_with(store, t0(), token, &[], Some(2));
    let got = claim_max(1).await;
    let of = |got: &[baton_core::Task], owner: &str, group: Option<&str>| {
        got.iter()
            .filter(|t| t.owner == owner && t.group_key.as_deref() == group)
            .count()
    };
    assert_eq!(got.len(), 6, "two of each group");
    assert_eq!(
        (
            of(&got, "a", None),
            of(&got, "b", None),
            of(&got, "a", Some("x"))
        ),
        (2, 2, 2)
    );
    assert!(claim_max(2).await.is_empty(), "every group is full");
    let a = got
        .iter()
        .find(|t| t.owner == "a" && t.group_key.is_none())
        .unwrap();
    store.finish(vec![complete(a.id, 1, t0())]).await.unwrap();
    let more = claim_max(3).await;
    assert_eq!(more.len(), 1);
    assert_eq!(
        (more[0].owner.as_str(), more[0].group_key.as_deref()),
        ("a", None)
    );
}

pub async fn claim_leases_once(store: &dyn Store) {
    let ids = create(store, (0..5).map(|_| new_task("t", 50, t0())).collect()).await;
    let first = claim(store, "w1", 3, t0(), 11).await;
    assert_eq!(first.len(), 3);
    for t in &first {
        assert_eq!(t.status, TaskStatus::Running);
        assert_eq!(t.attempt, 1);
        let lease = t.lease.as_ref().unwrap();
        assert_eq!((lease.owner.as_str(), lease.token), ("w1", 11));
        assert_eq!(lease.expires_at, t0().saturating_add(30 * SEC));
        assert_eq!(t.started_at, Some(t0()));
    }
    let second = claim(store, "w2", 10, t0(), 12).await;
    assert_eq!(second.len(), 2);
    assert!(claim(store, "w3", 10, t0(), 13).await.is_empty());
    let mut all: Vec<TaskId> = first.iter().chain(&second).map(|t| t.id).collect();
    all.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(all, expected, "every task claimed exactly once");
    let events = store.task_events(ids[0], 0, 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::Created, EventKind::Started]
    );
    assert_eq!(events[1].attempt, Some(1));
}

pub async fn delayed_tasks_wait(store: &dyn Store) {
    let later = new_task("t", 90, t0().saturating_add(60 * SEC));
    create(store, vec![later.clone()]).await;
    assert!(claim(store, "w", 10, t0(), 1).await.is_empty());
    assert!(
        claim(store, "w", 10, t0().saturating_add(59 * SEC), 1)
            .await
            .is_empty()
    );
    let got = claim(store, "w", 10, t0().saturating_add(60 * SEC), 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, later.id);
}

pub async fn paused_queues_are_skipped(store: &dyn Store) {
    let mut a = new_task("t", 50, t0());
    a.queue = "reports".into();
    let b = new_task("t", 10, t0());
    create(store, vec![a.clone(), b.clone()]).await;
    store
        .set_queue_paused("alice", "reports", true, t0())
        .await
        .unwrap();
    let got = claim(store, "w", 10, t0(), 1).await;
    assert_eq!(got.iter().map(|t| t.id).collect::<Vec<_>>(), vec![b.id]);
    assert!(claim(store, "w", 10, t0(), 1).await.is_empty());
    let stats = store.queue_stats(t0(), Some("alice")).await.unwrap();
    assert!(stats.iter().any(|q| q.name == "reports" && q.paused));
    store
        .set_queue_paused("alice", "reports", false, t0())
        .await
        .unwrap();
    let got = claim(store, "w", 10, t0(), 1).await;
    assert_eq!(got.iter().map(|t| t.id).collect::<Vec<_>>(), vec![a.id]);
}

/// A queue belongs to the principal whose tasks it holds: pausing it stops only theirs,
/// and each principal's statistics count only their tasks.
pub async fn queues_belong_to_their_principal(store: &dyn Store) {
    let mut alice = new_task("t", 50, t0());
    alice.queue = "reports".into();
    let mut bob = new_task("t", 50, t0());
    bob.queue = "reports".into();
    bob.owner = "bob".into();
    create(store, vec![alice.clone(), bob.clone()]).await;
    store
        .set_queue_paused("alice", "reports", true, t0())
        .await
        .unwrap();
    let got = claim(store, "w", 10, t0(), 1).await;
    assert_eq!(got.iter().map(|t| t.id).collect::<Vec<_>>(), vec![bob.id]);
    let of = |stats: Vec<crate::QueueStats>| {
        stats
            .into_iter()
            .find(|q| q.name == "reports")
            .map(|q| (q.paused, q.counts["pending"], q.counts["running"]))
    };
    assert_eq!(
        of(store.queue_stats(t0(), Some("alice")).await.unwrap()),
        Some((true, 1, 0))
    );
    assert_eq!(
        of(store.queue_stats(t0(), Some("bob")).await.unwrap()),
        Some((false, 0, 1))
    );
    assert_eq!(
        of(store.queue_stats(t0(), Some("carol")).await.unwrap()),
        None
    );
    assert_eq!(
        of(store.queue_stats(t0(), None).await.unwrap()),
        Some((true, 1, 1))
    );
}

pub async fn concurrency_limits(store: &dyn Store) {
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(new_task("slow__a", 90, t0()));
    }
    for _ in 0..4 {
        tasks.push(new_task("slow__b", 80, t0()));
    }
    for _ in 0..2 {
        tasks.push(new_task("fast__x", 10, t0()));
    }
    create(store, tasks).await;
    let limits = vec![
        ConcurrencyLimit {
            selector: ToolSelector::Tool("slow__a".into()),
            max: 2,
        },
        ConcurrencyLimit {
            selector: ToolSelector::Prefix("slow__".into()),
            max: 3,
        },
    ];
    let got = claim_limited(store, "w", 100, t0(), 1, &limits).await;
    let count = |tool: &str| got.iter().filter(|t| t.tool == tool).count();
    assert_eq!(count("slow__a"), 2, "tool limit");
    assert_eq!(count("slow__b"), 1, "prefix limit counts both tools");
    assert_eq!(count("fast__x"), 2, "unlimited tools are not starved");
    // Nothing more while those run; once one finishes, exactly one more slot opens.
    assert!(
        claim_limited(store, "w", 100, t0(), 2, &limits)
            .await
            .is_empty()
    );
    let a = got.iter().find(|t| t.tool == "slow__a").unwrap();
    store.finish(vec![complete(a.id, 1, t0())]).await.unwrap();
    let more = claim_limited(store, "w", 100, t0(), 3, &limits).await;
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].tool, "slow__a");
}

/// A claim with rate limits: the buckets start full, each started task takes a token,
/// they refill with time up to their size, and a clock that goes back refills nothing.
pub async fn rate_limits_hold_across_claims(store: &dyn Store) {
    let mut tasks = Vec::new();
    for _ in 0..30 {
        tasks.push(new_task("api__search", 50, t0()));
    }
    for _ in 0..3 {
        tasks.push(new_task("other__x", 40, t0()));
    }
    create(store, tasks).await;
    let rates = vec![RateLimit {
        selector: ToolSelector::Prefix("api__".into()),
        rate: "4/s".parse().unwrap(),
    }];
    let claim_at = |at, token| claim_with(store, at, token, &rates, None);
    let count =
        |got: &[baton_core::Task], tool: &str| got.iter().filter(|t| t.tool == tool).count();
    let first = claim_at(t0(), 1).await;
    assert_eq!(
        count(&first, "api__search"),
        4,
        "a full bucket: one burst of 4"
    );
    assert_eq!(
        count(&first, "other__x"),
        3,
        "tools without a limit are not held back"
    );
    assert!(claim_at(t0(), 2).await.is_empty(), "the bucket is empty");
    // 250 ms refill one token; 249 ms do not.
    assert!(claim_at(t0().saturating_add(ms(249)), 3).await.is_empty());
    assert_eq!(claim_at(t0().saturating_add(ms(250)), 4).await.len(), 1);
    // A clock that went back (another node's) refills nothing and does not move the
    // bucket back either.
    assert!(claim_at(t0().saturating_add(ms(100)), 5).await.is_empty());
    assert_eq!(claim_at(t0().saturating_add(ms(500)), 6).await.len(), 1);
    // A long pause refills up to the size of the bucket, no more.
    assert_eq!(claim_at(t0().saturating_add(60 * SEC), 7).await.len(), 4);
    let buckets = store.rate_buckets().await.unwrap();
    assert_eq!(buckets.len(), 1);
    assert_eq!(buckets[0].key, "prefix:api__");
    assert_eq!(buckets[0].milli_tokens, 0);
    assert_eq!(buckets[0].at, t0().saturating_add(60 * SEC));
    // Claims every 100 ms from an empty bucket: the other 20 start at 4 a second, so the
    // last of them after 5 s, and at no point more than 4 per second have started.
    let mut started = 0;
    let mut done_at = None;
    for i in 1..=100 {
        started += claim_at(t0().saturating_add(60 * SEC + ms(i * 100)), 10 + i as i64)
            .await
            .len();
        assert!(
            started as u64 <= 4 * i / 10,
            "{started} started after {i}00 ms"
        );
        if started == 20 && done_at.is_none() {
            done_at = Some(i * 100);
        }
    }
    assert_eq!(started, 20);
    assert_eq!(
        done_at,
        Some(5000),
        "the backlog starts at the rate, not slower"
    );
}

fn ms(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(n)
}

pub async fn create_and_claim_in_order(store: &dyn Store) {
    // A backlog with a high-priority task, then a submission with a claim for two slots.
    let old = create(
        store,
        vec![new_task("t", 90, t0()), new_task("t", 10, t0())],
    )
    .await;
    let fresh = new_task("t", 50, t0());
    let claim = ClaimRequest {
        owner: "w",
        limit: 2,
        now: t0(),
        lease_until: t0().saturating_add(30 * SEC),
        token: 3,
        limits: &[],
        rates: &[],
        group_max: None,
    };
    let r = store
        .create_and_claim(vec![fresh.clone()], Some(claim))
        .await
        .unwrap();
    assert!(matches!(&r.outcomes[0], CreateOutcome::Created(t) if t.id == fresh.id));
    let claimed: Vec<TaskId> = r.claimed.iter().map(|t| t.id).collect();
    assert_eq!(
        claimed,
        vec![old[0], fresh.id],
        "the usual order: the new task jumps no queue"
    );
    let kinds: Vec<EventKind> = r.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::Created, EventKind::Started, EventKind::Started]
    );
    let fresh_events = store.task_events(fresh.id, 0, 10).await.unwrap();
    assert_eq!(
        fresh_events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::Created, EventKind::Started]
    );
    assert_eq!(get(store, old[1]).await.status, TaskStatus::Pending);
    // Without a claim it only stores.
    let later = new_task("t", 99, t0());
    let r = store
        .create_and_claim(vec![later.clone()], None)
        .await
        .unwrap();
    assert!(r.claimed.is_empty());
    assert_eq!(get(store, later.id).await.status, TaskStatus::Pending);
}
