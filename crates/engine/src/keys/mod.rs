//! API keys: made, listed, rotated and revoked through the engine, and checked on every
//! request against an in-memory copy of the store's keys.
//!
//! Checking a key never touches the store: a node keeps every key (their hashes) in
//! memory and re-reads what changed every [`REFRESH`], so a key revoked through any node
//! is refused by every node within about a second, and a flood of made-up keys costs a
//! hash map lookup each, not a query. A secret names its key id, so a check is one
//! lookup and one constant-time comparison of SHA-256 hashes.

use std::collections::BTreeSet;

use std::time::Duration;

use baton_core::Timestamp;
use baton_core::auth::{self, Identity, Rate, Scope};
use baton_store::{Store, StoredKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::EngineError;

pub(crate) mod cache;

/// How often a node re-reads the keys that changed.
pub const REFRESH: Duration = Duration::from_secs(1);

/// A key as the API shows it: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct KeyView {
    pub key_id: String,
    pub name: String,
    pub principal: String,
    pub scopes: Vec<String>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// After a rotation: until when the previous secret still works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_until: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_active: Option<u64>,
}

impl KeyView {
    fn new(k: &StoredKey, now: Timestamp) -> KeyView {
        let state = if k.revoked_at.is_some() {
            "revoked"
        } else if k.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        };
        KeyView {
            key_id: k.key_id.clone(),
            name: k.name.clone(),
            principal: k.principal.clone(),
            scopes: k.scopes.clone(),
            state: state.into(),
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            previous_secret_until: k.previous_until.filter(|u| *u > now),
            rate_limit: k.rate_limit.clone(),
            max_active: k.max_active,
        }
    }
}

/// A key just made or rotated, with its secret: shown once.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: KeyView,
    /// Send as `Authorization: Bearer <secret>`. It is not kept: it cannot be shown again.
    pub secret: String,
}

/// What a new key is.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub principal: String,
    pub scopes: BTreeSet<Scope>,
    pub expires_in: Option<Duration>,
    pub rate_limit: Option<Rate>,
    pub max_active: Option<u64>,
}

/// A request's key, checked: who it is and the limits that apply to it.
#[derive(Debug, Clone)]
pub struct KeyAuth {
    pub identity: Identity,
    pub key_id: String,
    pub rate_limit: Option<Rate>,
    pub max_active: Option<u64>,
}

/// Why a key was refused (the 401's reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefused {
    #[error("the API key is not valid")]
    Invalid,
    #[error("the API key has expired")]
    Expired,
    #[error("the API key was revoked")]
    Revoked,
}

fn invalid(field: &str, message: impl Into<String>) -> EngineError {
    EngineError::Invalid(baton_core::submit::InvalidRequest::new(field, message))
}

/// Makes a key in `store`; its secret is in the answer and nowhere else. (Also how
/// `baton keys create` makes the first key before any node runs.)
pub async fn create_in(
    store: &dyn Store,
    new: NewKey,
    now: Timestamp,
) -> Result<(CreatedKey, StoredKey), EngineError> {
    if new.name.trim().is_empty() || new.name.len() > 200 {
        return Err(invalid("name", "must be 1 to 200 characters"));
    }
    baton_core::value::check_text(&new.name).map_err(|m| invalid("name", m))?;
    baton_core::principal::from_header(Some(new.principal.as_bytes()))
        .map_err(|m| invalid("principal", m.replace("Baton-Principal", "a principal")))?;
    if new.scopes.is_empty() {
        return Err(invalid("scopes", "give at least one scope"));
    }
    let (key_id, secret) = auth::new_key_secret();
    let stored = StoredKey {
        key_id,
        name: new.name,
        principal: new.principal,
        scopes: new.scopes.iter().map(|s| s.as_str().to_string()).collect(),
        secret_hash: auth::hash_secret(&secret),
        previous_hash: None,
        previous_until: None,
        rate_limit: new.rate_limit.map(|r| r.to_string()),
        max_active: new.max_active,
        created_at: now,
        expires_at: new.expires_in.map(|d| now.saturating_add(d)),
        revoked_at: None,
        updated_at: now,
    };
    store.put_key(stored.clone()).await?;
    let key = KeyView::new(&stored, now);
    Ok((CreatedKey { key, secret }, stored))
}

/// Every key in `store`, newest first.
pub async fn list_in(store: &dyn Store, now: Timestamp) -> Result<Vec<KeyView>, EngineError> {
    let mut keys = store.list_keys(None).await?;
    keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
    Ok(keys.iter().map(|k| KeyView::new(k, now)).collect())
}

/// Revokes a key in `store`.
pub async fn revoke_in(
    store: &dyn Store,
    key_id: &str,
    now: Timestamp,
) -> Result<StoredKey, EngineError> {
    if !store.revoke_key(key_id, now).await? {
        return match store.get_key(key_id).await? {
            Some(_) => Err(EngineError::Conflict(format!(
                "key {key_id} was revoked already"
            ))),
            None => Err(EngineError::KeyNotFound(key_id.to_string())),
        };
    }
    store
        .get_key(key_id)
        .await?
        .ok_or_else(|| EngineError::KeyNotFound(key_id.to_string()))
}

/// Gives a key in `store` a new secret; the old one keeps working for `grace`.
pub async fn rotate_in(
    store: &dyn Store,
    key_id: &str,
    grace: Duration,
    now: Timestamp,
) -> Result<(CreatedKey, StoredKey), EngineError> {
    let secret = match store.get_key(key_id).await? {
        Some(k) if k.revoked_at.is_some() => {
            return Err(EngineError::Conflict(format!(
                "key {key_id} is revoked; make a new one"
            )));
        }
        Some(_) => {
            // The same key id, a new random part (which may itself contain `_`).
            let (fresh_id, fresh) = auth::new_key_secret();
            let tail = &fresh[auth::KEY_PREFIX.len() + fresh_id.len() + 1..];
            format!("{}{key_id}_{tail}", auth::KEY_PREFIX)
        }
        None => return Err(EngineError::KeyNotFound(key_id.to_string())),
    };
    let until = now.saturating_add(grace);
    if !store
        .rotate_key(key_id, &auth::hash_secret(&secret), until, now)
        .await?
    {
        return Err(EngineError::KeyNotFound(key_id.to_string()));
    }
    let stored = store
        .get_key(key_id)
        .await?
        .ok_or_else(|| EngineError::KeyNotFound(key_id.to_string()))?;
    Ok((
        CreatedKey {
            key: KeyView::new(&stored, now),
            secret,
        },
        stored,
    ))
}

impl Engine {
    /// Makes a key; its secret is in the answer and nowhere else.
    pub async fn create_key(&self, new: NewKey) -> Result<CreatedKey, EngineError> {
        let (created, stored) = create_in(self.store().as_ref(), new, self.now()).await?;
        self.inner().keys.upsert(vec![stored]);
        Ok(created)
    }

    /// Every key, newest first.
    pub async fn list_keys(&self) -> Result<Vec<KeyView>, EngineError> {
        list_in(self.store().as_ref(), self.now()).await
    }

    /// Revokes a key, on every node within [`REFRESH`].
    pub async fn revoke_key(&self, key_id: &str) -> Result<KeyView, EngineError> {
        let now = self.now();
        let stored = revoke_in(self.store().as_ref(), key_id, now).await?;
        self.inner().keys.upsert(vec![stored.clone()]);
        Ok(KeyView::new(&stored, now))
    }

    /// Gives a key a new secret; the old one keeps working for `grace`.
    pub async fn rotate_key(
        &self,
        key_id: &str,
        grace: Duration,
    ) -> Result<CreatedKey, EngineError> {
        let (created, stored) = rotate_in(self.store().as_ref(), key_id, grace, self.now()).await?;
        self.inner().keys.upsert(vec![stored]);
        Ok(created)
    }

    /// Checks a secret against the node's copy of the keys (no store round trip).
    pub fn authenticate_key(&self, secret: &str) -> Result<KeyAuth, KeyRefused> {
        let key_id = auth::key_id_of(secret).ok_or(KeyRefused::Invalid)?;
        let Some(k) = self.inner().keys.get(key_id) else {
            // Hash anyway, so an unknown id takes as long as a wrong secret.
            let _ = auth::secret_matches(secret, "");
            return Err(KeyRefused::Invalid);
        };
        let now = self.now();
        let current = auth::secret_matches(secret, &k.secret_hash);
        let previous = k.previous_until.is_some_and(|u| u > now)
            && k.previous_hash
                .as_deref()
                .is_some_and(|h| auth::secret_matches(secret, h));
        if !(current || previous) {
            return Err(KeyRefused::Invalid);
        }
        if k.revoked_at.is_some() {
            return Err(KeyRefused::Revoked);
        }
        if k.expires_at.is_some_and(|e| e <= now) {
            return Err(KeyRefused::Expired);
        }
        Ok(KeyAuth {
            identity: Identity {
                principal: k.principal.clone(),
                credential: format!("key:{}", k.key_id),
                scopes: k.scopes.iter().filter_map(|s| s.parse().ok()).collect(),
            },
            key_id: k.key_id.clone(),
            rate_limit: k.rate_limit.as_deref().and_then(|r| r.parse().ok()),
            max_active: k.max_active,
        })
    }

    /// Whether any key is usable (not revoked, not expired).
    pub fn has_usable_keys(&self) -> bool {
        let now = self.now();
        self.inner()
            .keys
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .any(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > now))
    }

    /// How many keys the node knows of.
    pub fn known_keys(&self) -> usize {
        self.inner().keys.len()
    }
}

/// How far back each refresh looks before the newest change it saw: a change made on
/// another node commits a little after its `updated_at` (and clocks differ a little), so
/// reading only from the newest change on could miss it.
const LOOKBACK: Duration = Duration::from_secs(10);

/// Every this many refreshes, all keys are read again, whatever happened.
const FULL_EVERY: u32 = 60;

/// Reads the keys that changed lately (all of them the first time, and now and then).
pub(crate) async fn refresh(engine: &Engine, full: bool) -> Result<(), EngineError> {
    let cache = &engine.inner().keys;
    let since = if full {
        None
    } else {
        cache
            .seen_until
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .map(|t| t.saturating_sub(LOOKBACK))
    };
    let changed = engine.store().list_keys(since).await?;
    cache.upsert(changed);
    Ok(())
}

/// Keeps the node's copy of the keys current until the engine stops.
pub(crate) async fn refresh_loop(engine: Engine) {
    let stop = engine.inner().stop_background.clone();
    let mut round = 0u32;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = stop.cancelled() => return,
        }
        round = round.wrapping_add(1);
        if let Err(e) = refresh(&engine, round.is_multiple_of(FULL_EVERY)).await {
            tracing::debug!(error = %e, "cannot refresh the API keys now");
        }
    }
}
