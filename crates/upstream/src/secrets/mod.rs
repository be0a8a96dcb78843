//! Secrets at rest: the `env` and `headers` values of servers registered at runtime.
//!
//! Before a definition reaches the store, each value is either sealed
//! ([`cipher`]: `enc:v1:<key id>:…`) or kept as written because it is a template of
//! references ([`reference`]: `${env:NAME}`, `${file:PATH}`). Values are opened and
//! references resolved only when a server's transport is built for a connection
//! ([`Secrets::resolve`]), never written back resolved. Plain text is never stored: with no
//! key, a process on its own SQLite store generates `<data dir>/secret.key`; a process on a
//! shared store refuses (every process must hold the same key, so none may invent one).
//!
//! The key: `BATON_SECRET_KEY` (base64 of 32 bytes), else `[secrets] key_file`, else
//! `<data dir>/secret.key` on a local store. All of them that are present can open values
//! (so a node whose operator set a key after the generated one still reads older values);
//! the first seals. `baton secrets rotate` re-seals every stored value under a new key.

pub mod cipher;
mod files;
pub mod reference;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use baton_core::{ErrorCode, Timestamp};
use serde::{Deserialize, Serialize};

pub use cipher::SecretKey;
pub use files::{secure_dir, secure_file};

use crate::config::{ServerConfig, Transport};

/// The key, as the base64 of 32 bytes (`baton secrets new-key` prints one).
pub const KEY_ENV: &str = "BATON_SECRET_KEY";
/// The key `baton secrets rotate --new-key` re-encrypts with.
pub const NEW_KEY_ENV: &str = "BATON_NEW_SECRET_KEY";
/// The key generated in the data directory of a node on its own SQLite store.
pub const KEY_FILE: &str = "secret.key";

/// `[secrets]` of the node configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// A file holding the key (base64 of 32 bytes), readable by Baton only. Used when
    /// `BATON_SECRET_KEY` is not set; default: none (`<data dir>/secret.key` on SQLite).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

/// What the process knows about its store, which decides what happens when a secret must
/// be sealed and no key is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreScope {
    /// The process's own store (SQLite in `data_dir`): a key is generated in
    /// `<data_dir>/secret.key` on first need.
    Local { data_dir: PathBuf },
    /// A store other processes share (PostgreSQL): no key is ever generated; storing a
    /// plain secret without `BATON_SECRET_KEY` is refused.
    Shared,
}

/// Which map of a definition a value is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Env,
    Header,
}

impl Field {
    fn key(self) -> &'static str {
        match self {
            Field::Env => "env",
            Field::Header => "headers",
        }
    }
}

/// Where a value sits: server, field and key. Messages name it; it is also what a sealed
/// value is bound to (the cipher's associated data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub server: String,
    pub field: Field,
    pub name: String,
}

impl Slot {
    fn new(server: &str, field: Field, name: &str) -> Slot {
        Slot {
            server: server.to_string(),
            field,
            name: name.to_string(),
        }
    }

    fn aad(&self) -> String {
        format!(
            "baton/v1\0{}\0{}\0{}",
            self.server,
            self.field.key(),
            self.name
        )
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = match self.field {
            Field::Env => "env",
            Field::Header => "header",
        };
        write!(f, "server `{}`, {field} `{}`", self.server, self.name)
    }
}

/// Every message names the server and the key, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "{slot}: no secret key to encrypt the value with; set {KEY_ENV} (base64 of 32 bytes; `baton secrets new-key` makes one) to the same key on every node sharing the store, or give the value as a reference (${{env:NAME}} or ${{file:PATH}})"
    )]
    NoKey { slot: Slot },
    #[error(
        "{slot}: encrypted with key `{key_id}`, which this node does not have (it has: {known}); give it that key ({KEY_ENV} or [secrets] key_file), or re-encrypt with `baton secrets rotate`"
    )]
    UnknownKey {
        slot: Slot,
        key_id: String,
        known: String,
    },
    #[error(
        "{slot}: the encrypted value does not decrypt with key `{key_id}` (it was altered, or copied from another server or key)"
    )]
    Tampered { slot: Slot, key_id: String },
    #[error("{slot}: not a valid encrypted value (expected enc:v1:<key id>:<base64url>)")]
    Malformed { slot: Slot },
    #[error("{slot}: cannot resolve {reference}: {why}")]
    Reference {
        slot: Slot,
        reference: String,
        why: String,
    },
    #[error("{slot}: the resolved value is not a valid HTTP header value")]
    BadHeader { slot: Slot },
    #[error(
        "{what} is not a valid secret key: expected the base64 of 32 bytes (`baton secrets new-key` makes one)"
    )]
    BadKey { what: String },
    #[error("cannot {action} the secret key file {}: {source}", path.display())]
    KeyFile {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SecretsError {
    pub fn code(&self) -> ErrorCode {
        match self {
            SecretsError::BadKey { .. } | SecretsError::KeyFile { .. } => ErrorCode::Internal,
            _ => ErrorCode::InvalidArgument,
        }
    }
}

#[derive(Default)]
struct Ring {
    /// Seals new values.
    primary: Option<SecretKey>,
    /// Open values (the primary included).
    keys: Vec<SecretKey>,
}

impl Ring {
    fn add(&mut self, key: SecretKey) {
        if !self.keys.iter().any(|k| k.id() == key.id()) {
            self.keys.push(key.clone());
        }
        self.primary.get_or_insert(key);
    }
}

/// A process's keys and the rules for sealing and opening server secrets.
pub struct Secrets {
    scope: StoreScope,
    ring: Mutex<Ring>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("scope", &self.scope)
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

impl Secrets {
    /// The keys of this process: `BATON_SECRET_KEY`, then `config.key_file`, then (on a
    /// local store) `<data dir>/secret.key` if it exists.
    pub fn load(config: &SecretsConfig, scope: StoreScope) -> Result<Secrets, SecretsError> {
        let key = match std::env::var(KEY_ENV) {
            Ok(text) if text.trim().is_empty() => None,
            Ok(text) => Some(SecretKey::parse(&text).map_err(|_| SecretsError::BadKey {
                what: KEY_ENV.into(),
            })?),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(SecretsError::BadKey {
                    what: KEY_ENV.into(),
                });
            }
        };
        Secrets::new(key, config, scope)
    }

    /// Like [`Secrets::load`] with `key` in place of `BATON_SECRET_KEY`.
    pub fn new(
        key: Option<SecretKey>,
        config: &SecretsConfig,
        scope: StoreScope,
    ) -> Result<Secrets, SecretsError> {
        let mut ring = Ring::default();
        if let Some(key) = key {
            ring.add(key);
        }
        if let Some(path) = &config.key_file {
            ring.add(read_key_file(path)?);
        }
        if let StoreScope::Local { data_dir } = &scope {
            let path = data_dir.join(KEY_FILE);
            if path.exists() {
                ring.add(read_key_file(&path)?);
            }
        }
        if let Some(k) = &ring.primary {
            tracing::info!(
                key_id = k.id(),
                "server secrets at rest are encrypted with this key"
            );
        }
        Ok(Secrets {
            scope,
            ring: Mutex::new(ring),
        })
    }

    /// No key, and none generated: plain secrets cannot be stored (references can).
    pub fn without_key() -> Secrets {
        Secrets {
            scope: StoreScope::Shared,
            ring: Mutex::new(Ring::default()),
        }
    }

    /// Only `key` (tests, rotation).
    pub fn with_key(key: SecretKey) -> Secrets {
        let mut ring = Ring::default();
        ring.add(key);
        Secrets {
            scope: StoreScope::Shared,
            ring: Mutex::new(ring),
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id of the key new values are sealed with, if there is one yet.
    pub fn key_id(&self) -> Option<String> {
        self.ring().primary.as_ref().map(|k| k.id().to_string())
    }

    /// The ids of every key that can open values.
    pub fn key_ids(&self) -> Vec<String> {
        self.ring()
            .keys
            .iter()
            .map(|k| k.id().to_string())
            .collect()
    }

    /// The sealing key; on a local store without one, generates `<data dir>/secret.key`.
    fn sealing_key(&self, slot: &Slot) -> Result<SecretKey, SecretsError> {
        let mut ring = self.ring();
        if let Some(k) = &ring.primary {
            return Ok(k.clone());
        }
        let StoreScope::Local { data_dir } = &self.scope else {
            return Err(SecretsError::NoKey { slot: slot.clone() });
        };
        let path = data_dir.join(KEY_FILE);
        let (generated, text) = SecretKey::generate();
        let key = match files::create_private(&path, &format!("{text}\n")) {
            Ok(()) => {
                tracing::warn!(
                    path = %path.display(),
                    key_id = generated.id(),
                    "generated a key for server secrets at rest; back it up: without it the stored env and header values cannot be read"
                );
                generated
            }
            // Another process of this data directory won the race (`baton secrets` while a
            // node starts): use its key.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(&path)?,
            Err(source) => {
                return Err(SecretsError::KeyFile {
                    action: "create",
                    path,
                    source,
                });
            }
        };
        ring.add(key.clone());
        Ok(key)
    }

    /// Decrypts a sealed value with whichever of the keys sealed it.
    pub fn open(&self, slot: &Slot, value: &str) -> Result<String, SecretsError> {
        let Some(key_id) = cipher::key_id(value) else {
            return Err(SecretsError::Malformed { slot: slot.clone() });
        };
        let key = {
            let ring = self.ring();
            match ring.keys.iter().find(|k| k.id() == key_id) {
                Some(k) => k.clone(),
                None => {
                    let known: Vec<&str> = ring.keys.iter().map(|k| k.id()).collect();
                    return Err(SecretsError::UnknownKey {
                        slot: slot.clone(),
                        key_id: key_id.to_string(),
                        known: if known.is_empty() {
                            "no key".into()
                        } else {
                            known.join(", ")
                        },
                    });
                }
            }
        };
        key.open(&slot.aad(), value).map_err(|e| match e {
            cipher::OpenError::Malformed => SecretsError::Malformed { slot: slot.clone() },
            cipher::OpenError::OtherKey(_) | cipher::OpenError::Tampered => {
                SecretsError::Tampered {
                    slot: slot.clone(),
                    key_id: key_id.to_string(),
                }
            }
        })
    }

    /// The definition as it may be stored: every plain `env` and `headers` value sealed,
    /// templates of references kept, sealed values kept if they open here (so that a
    /// value copied from elsewhere fails now rather than at every connection).
    pub fn seal_server(&self, config: &ServerConfig) -> Result<ServerConfig, SecretsError> {
        let mut sealed = config.clone();
        let server = config.name.clone();
        for (field, name, value) in values_mut(&mut sealed) {
            let slot = Slot::new(&server, field, name);
            if reference::has_references(value) {
                continue;
            }
            if cipher::is_sealed(value) {
                self.open(&slot, value)?;
                continue;
            }
            *value = self.sealing_key(&slot)?.seal(&slot.aad(), value);
        }
        Ok(sealed)
    }

    /// How to reach the server now: sealed values opened, references resolved. Called for
    /// each connection; the result is never stored.
    pub fn resolve(&self, server: &str, transport: &Transport) -> Result<Transport, SecretsError> {
        self.resolve_with(server, transport, &|name| std::env::var(name))
    }

    fn resolve_with(
        &self,
        server: &str,
        transport: &Transport,
        env: &dyn Fn(&str) -> Result<String, std::env::VarError>,
    ) -> Result<Transport, SecretsError> {
        let resolve_map = |field: Field, map: &BTreeMap<String, String>| {
            map.iter()
                .map(|(name, value)| {
                    let slot = Slot::new(server, field, name);
                    let plain = if cipher::is_sealed(value) {
                        self.open(&slot, value)?
                    } else if reference::has_references(value) {
                        reference::resolve(value, env).map_err(|u| SecretsError::Reference {
                            slot: slot.clone(),
                            reference: u.reference,
                            why: u.why,
                        })?
                    } else {
                        value.clone()
                    };
                    if field == Field::Header && http::HeaderValue::from_str(&plain).is_err() {
                        return Err(SecretsError::BadHeader { slot });
                    }
                    Ok((name.clone(), plain))
                })
                .collect::<Result<BTreeMap<_, _>, SecretsError>>()
        };
        Ok(match transport {
            Transport::Stdio {
                command,
                args,
                env: vars,
                cwd,
            } => Transport::Stdio {
                command: command.clone(),
                args: args.clone(),
                env: resolve_map(Field::Env, vars)?,
                cwd: cwd.clone(),
            },
            Transport::Http { url, headers } => Transport::Http {
                url: url.clone(),
                headers: resolve_map(Field::Header, headers)?,
            },
        })
    }

    /// Re-seals every stored server's values under `new` in one pass: values already under
    /// `new` are skipped (so an interrupted run can be run again), plain values left by an
    /// older Baton are sealed, templates of references stay. A server whose values cannot
    /// all be opened is left as it is and reported. With `write` false, only counts.
    pub async fn rotate(
        &self,
        store: &dyn baton_store::Store,
        new: &SecretKey,
        write: bool,
    ) -> Result<Rotation, baton_store::StoreError> {
        let mut report = Rotation::default();
        for stored in store.list_servers().await? {
            let mut config = match serde_json::from_value::<ServerConfig>(stored.config) {
                Ok(c) => c,
                Err(e) => {
                    report.failures.push(format!(
                        "server `{}`: unreadable stored definition: {e}",
                        stored.name
                    ));
                    continue;
                }
            };
            let server = config.name.clone();
            let (mut resealed, mut plain, mut current) = (0, 0, 0);
            let mut failure = None;
            for (field, name, value) in values_mut(&mut config) {
                let slot = Slot::new(&server, field, name);
                if reference::has_references(value) {
                    continue;
                }
                let opened = if cipher::is_sealed(value) {
                    if cipher::key_id(value) == Some(new.id()) {
                        current += 1;
                        continue;
                    }
                    match self.open(&slot, value) {
                        Ok(v) => {
                            resealed += 1;
                            v
                        }
                        Err(e) => {
                            failure = Some(e.to_string());
                            break;
                        }
                    }
                } else {
                    plain += 1;
                    value.clone()
                };
                *value = new.seal(&slot.aad(), &opened);
            }
            if let Some(f) = failure {
                report.failures.push(f);
                continue;
            }
            report.current += current;
            if resealed + plain == 0 {
                continue;
            }
            if write {
                let definition = serde_json::to_value(&config)
                    .map_err(|e| baton_store::StoreError::Decode(e.to_string()))?;
                store
                    .put_server(&stored.name, definition, Timestamp::now())
                    .await?;
            }
            report.servers += 1;
            report.resealed += resealed;
            report.plain += plain;
        }
        Ok(report)
    }
}

/// What [`Secrets::rotate`] did (or would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Servers rewritten.
    pub servers: usize,
    /// Values re-encrypted from another key.
    pub resealed: usize,
    /// Plain values (stored by an older Baton) encrypted.
    pub plain: usize,
    /// Values already under the new key, left alone.
    pub current: usize,
    /// One message per server left unchanged because a value could not be opened.
    pub failures: Vec<String>,
}

/// Whether a definition holds values that are neither sealed nor templates (stored by an
/// older Baton, or not yet sealed).
pub fn has_plain_values(config: &ServerConfig) -> bool {
    config
        .env
        .values()
        .chain(config.headers.values())
        .any(|v| !cipher::is_sealed(v) && !reference::has_references(v))
}

fn values_mut(config: &mut ServerConfig) -> impl Iterator<Item = (Field, &str, &mut String)> {
    let env = config
        .env
        .iter_mut()
        .map(|(k, v)| (Field::Env, k.as_str(), v));
    let headers = config
        .headers
        .iter_mut()
        .map(|(k, v)| (Field::Header, k.as_str(), v));
    env.chain(headers)
}

fn read_key_file(path: &Path) -> Result<SecretKey, SecretsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretsError::KeyFile {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    if files::readable_by_others(path) {
        tracing::warn!(path = %path.display(), "the secret key file is readable by others than its owner; chmod 600 it");
    }
    SecretKey::parse(&text).map_err(|_| SecretsError::BadKey {
        what: format!("the content of {}", path.display()),
    })
}

/// Writes a new key file (owner-only; refuses to overwrite), for `baton secrets new-key`.
pub fn write_key_file(path: &Path, key_text: &str) -> Result<(), SecretsError> {
    files::create_private(path, &format!("{}\n", key_text.trim())).map_err(|source| {
        SecretsError::KeyFile {
            action: "create",
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Reads a key file (for `baton secrets rotate --new-key-file`).
pub fn read_key(path: &Path) -> Result<SecretKey, SecretsError> {
    read_key_file(path)
}

#[cfg(test)]
mod tests;
