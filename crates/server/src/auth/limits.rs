//! Rate limits per credential: a token bucket (GCRA, `governor`) for each API key or
//! token principal that has a rate. Buckets live in the node's memory, so in a cluster a
//! limit applies per node (N nodes behind a balancer allow up to N times the rate).
//!
//! Answers carry the IETF `RateLimit-Policy` and `RateLimit` headers
//! (draft-ietf-httpapi-ratelimit-headers); a refusal is `429` with `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use baton_core::auth::Rate;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// Most buckets kept; beyond it the idle ones are dropped (a bucket refills anyway).
const MAX_BUCKETS: usize = 100_000;

/// The buckets of a node.
#[derive(Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<String, (Rate, Arc<Bucket>)>>,
    clock: DefaultClock,
}

/// What a bucket said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed { remaining: u32 },
    Refused { retry_after: Duration },
}

fn quota(rate: Rate) -> Quota {
    let burst = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
    let period = rate.per / rate.count.max(1);
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst)
}

impl RateLimits {
    /// Takes one request from `who`'s bucket (made, or remade if its rate changed).
    pub fn check(&self, who: &str, rate: Rate) -> Verdict {
        let bucket = {
            let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() >= MAX_BUCKETS && !map.contains_key(who) {
                // Full buckets are the idle ones: forgetting them changes nothing.
                map.retain(|_, (r, b)| {
                    b.check_n(NonZeroU32::new(r.count).unwrap_or(NonZeroU32::MIN))
                        .is_err()
                });
            }
            let entry = map.entry(who.to_string()).or_insert_with(|| {
                (
                    rate,
                    Arc::new(RateLimiter::direct(quota(rate)).with_middleware()),
                )
            });
            if entry.0 != rate {
                *entry = (
                    rate,
                    Arc::new(RateLimiter::direct(quota(rate)).with_middleware()),
                );
            }
            entry.1.clone()
        };
        match bucket.check() {
            Ok(state) => Verdict::Allowed {
                remaining: state.remaining_burst_capacity(),
            },
            Err(not_until) => Verdict::Refused {
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        }
    }
}

/// Adds the `RateLimit-Policy` and `RateLimit` headers of `rate` and `verdict`.
pub fn headers(headers: &mut HeaderMap, rate: Rate, verdict: Verdict) {
    let window = rate.per.as_secs().max(1);
    let (remaining, reset) = match verdict {
        Verdict::Allowed { remaining } => {
            // Time until the bucket is full again, at most one window.
            let used = rate.count.saturating_sub(remaining);
            let per_token = rate.per.as_secs_f64() / f64::from(rate.count.max(1));
            (remaining, (f64::from(used) * per_token).ceil() as u64)
        }
        Verdict::Refused { retry_after } => (0, retry_after.as_secs_f64().ceil() as u64),
    };
    let policy = format!("\"default\";q={};w={window}", rate.count);
    let state = format!("\"default\";r={remaining};t={}", reset.min(window));
    if let Ok(v) = HeaderValue::from_str(&policy) {
        headers.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&state) {
        headers.insert("ratelimit", v);
    }
    if let Verdict::Refused { retry_after } = verdict
        && let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
    {
        headers.insert(axum::http::header::RETRY_AFTER, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses() {
        let limits = RateLimits::default();
        let rate: Rate = "5/m".parse().unwrap();
        for i in 0..5 {
            match limits.check("key:a", rate) {
                Verdict::Allowed { remaining } => assert_eq!(remaining, 4 - i),
                v => panic!("request {i}: {v:?}"),
            }
        }
        let Verdict::Refused { retry_after } = limits.check("key:a", rate) else {
            panic!("the sixth request within a minute must be refused");
        };
        assert!(retry_after > Duration::from_secs(1) && retry_after <= Duration::from_secs(12));
        // Another credential has its own bucket.
        assert!(matches!(
            limits.check("key:b", rate),
            Verdict::Allowed { .. }
        ));
        // A new rate makes a new bucket.
        assert!(matches!(
            limits.check("key:a", "10/m".parse().unwrap()),
            Verdict::Allowed { .. }
        ));
    }

    #[test]
    fn headers_follow_the_draft() {
        let rate: Rate = "50/s".parse().unwrap();
        let mut h = HeaderMap::new();
        headers(&mut h, rate, Verdict::Allowed { remaining: 49 });
        assert_eq!(h["ratelimit-policy"], "\"default\";q=50;w=1");
        assert_eq!(h["ratelimit"], "\"default\";r=49;t=1");
        assert!(h.get("retry-after").is_none());
        let mut h = HeaderMap::new();
        headers(
            &mut h,
            rate,
            Verdict::Refused {
                retry_after: Duration::from_millis(20),
            },
        );
        assert_eq!(h["ratelimit"], "\"default\";r=0;t=1");
        assert_eq!(h["retry-after"], "1");
    }
}
