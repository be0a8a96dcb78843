//! The cipher of secrets at rest: XChaCha20-Poly1305, a fresh random 24-byte nonce per
//! value (so random nonces never realistically repeat under one key), and the value's place
//! (server, field, name) as associated data, so that a ciphertext copied to another place
//! does not decrypt.
//!
//! A sealed value is `enc:v1:<key id>:<base64url(nonce || ciphertext)>`: still a string,
//! so a stored definition keeps its JSON shape, and it names the key that sealed it. The
//! key id is derived from the key (a truncated SHA-256), so it says nothing about the key
//! but lets a reader tell keys apart without a registry of ids.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// What every sealed value starts with (any `enc:` value is taken for a sealed one, so
/// that a future version is refused rather than used as a plain secret).
pub const SEALED: &str = "enc:";
const V1: &str = "enc:v1:";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// A 32-byte key. Its bytes are kept only inside the cipher; `Debug` shows the id.
#[derive(Clone)]
pub struct SecretKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey").field("id", &self.id).finish()
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> SecretKey {
        let digest = Sha256::new()
            .chain_update(b"baton secret key id\0")
            .chain_update(bytes)
            .finalize();
        SecretKey {
            id: digest[..8].iter().map(|b| format!("{b:02x}")).collect(),
            cipher: XChaCha20Poly1305::new(bytes.into()),
        }
    }

    /// A key from the operating system's random source, with its text form (what
    /// `BATON_SECRET_KEY` and key files hold).
    pub fn generate() -> (SecretKey, String) {
        let bytes: [u8; 32] = XChaCha20Poly1305::generate_key(&mut OsRng).into();
        (SecretKey::from_bytes(&bytes), STANDARD.encode(bytes))
    }

    /// Parses the text form: base64 (standard or URL-safe, padded or not) of 32 bytes,
    /// surrounding whitespace ignored. The error never repeats the text.
    pub fn parse(text: &str) -> Result<SecretKey, KeyFormatError> {
        let text = text.trim();
        let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or(KeyFormatError)?;
        let bytes: [u8; 32] = decoded.try_into().map_err(|_| KeyFormatError)?;
        Ok(SecretKey::from_bytes(&bytes))
    }

    /// 16 hex digits naming the key in sealed values and messages.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts `plain` for the place `aad` names.
    pub fn seal(&self, aad: &str, plain: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption only fails for inputs far beyond any environment value (≈ 256 GiB).
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut payload = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(&ciphertext);
        format!("{V1}{}:{}", self.id, URL_SAFE_NO_PAD.encode(payload))
    }

    /// Decrypts a value this key sealed for the place `aad` names.
    pub fn open(&self, aad: &str, sealed: &str) -> Result<String, OpenError> {
        let (key_id, payload) = parse(sealed)?;
        if key_id != self.id {
            return Err(OpenError::OtherKey(key_id.to_string()));
        }
        let (nonce, ciphertext) = payload.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError::Malformed)?;
        let plain = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| OpenError::Tampered)?;
        String::from_utf8(plain).map_err(|_| OpenError::Tampered)
    }
}

/// The key text is not the base64 of 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFormatError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Not `enc:v1:<16 hex digits>:<base64url>` of at least a nonce and a tag.
    Malformed,
    /// Sealed by another key (its id).
    OtherKey(String),
    /// The authentication failed: altered, moved to another place, or a forged key id.
    Tampered,
}

/// Whether a value is (meant to be) sealed.
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED)
}

/// The id of the key that sealed a value, if it is a well-formed sealed value.
pub fn key_id(value: &str) -> Option<&str> {
    parse(value).ok().map(|(id, _)| id)
}

fn parse(value: &str) -> Result<(&str, Vec<u8>), OpenError> {
    let rest = value.strip_prefix(V1).ok_or(OpenError::Malformed)?;
    let (key_id, encoded) = rest.split_once(':').ok_or(OpenError::Malformed)?;
    if key_id.len() != 16 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(OpenError::Malformed);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| OpenError::Malformed)?;
    if payload.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenError::Malformed);
    }
    Ok((key_id, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let (key, text) = SecretKey::generate();
        let a = key.seal("place", "hunter2");
        let b = key.seal("place", "hunter2");
        assert_ne!(a, b, "a fresh nonce per value");
        assert!(a.starts_with(&format!("enc:v1:{}:", key.id())), "{a}");
        assert!(!a.contains("hunter2"));
        assert_eq!(key.open("place", &a).unwrap(), "hunter2");
        assert_eq!(key.open("place", &b).unwrap(), "hunter2");
        assert_eq!(key_id(&a), Some(key.id()));
        // The text form gives the same key back.
        let again = SecretKey::parse(&format!("  {text}\n")).unwrap();
        assert_eq!(again.id(), key.id());
        assert_eq!(again.open("place", &a).unwrap(), "hunter2");
        assert_eq!(key.open("place", &key.seal("place", "")).unwrap(), "");
    }

    #[test]
    fn a_changed_byte_anywhere_is_detected() {
        let key = SecretKey::from_bytes(&[7; 32]);
        let sealed = key.seal("place", "a secret value");
        let (head, body) = sealed.rsplit_once(':').unwrap();
        let raw = URL_SAFE_NO_PAD.decode(body).unwrap();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            let forged = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&bad));
            assert_eq!(
                key.open("place", &forged),
                Err(OpenError::Tampered),
                "byte {i}"
            );
        }
        // Truncated: too short for a nonce and a tag, or a tag cut off.
        let short = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&raw[..30]));
        assert_eq!(key.open("place", &short), Err(OpenError::Malformed));
        let cut = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]));
        assert_eq!(key.open("place", &cut), Err(OpenError::Tampered));
    }

    #[test]
    fn a_value_moved_to_another_place_does_not_open() {
        let key = SecretKey::from_bytes(&[7; 32]);
        let sealed = key.seal("server a, env TOKEN", "x");
        assert_eq!(
            key.open("server b, env TOKEN", &sealed),
            Err(OpenError::Tampered)
        );
    }

    #[test]
    fn another_key_is_named_and_a_forged_id_fails() {
        let one = SecretKey::from_bytes(&[1; 32]);
        let two = SecretKey::from_bytes(&[2; 32]);
        assert_ne!(one.id(), two.id());
        let sealed = one.seal("p", "x");
        assert_eq!(
            two.open("p", &sealed),
            Err(OpenError::OtherKey(one.id().to_string()))
        );
        // The id rewritten to the wrong key's: the wrong key cannot decrypt it.
        let forged = sealed.replace(one.id(), two.id());
        assert_eq!(two.open("p", &forged), Err(OpenError::Tampered));
    }

    #[test]
    fn malformed_values_and_keys_are_refused() {
        let key = SecretKey::from_bytes(&[1; 32]);
        for bad in [
            "enc:v1:",
            "enc:v2:0123456789abcdef:AAAA",
            "enc:v1:nothex0123456789:AAAA",
            "enc:v1:0123456789abcdef:not base64!",
            "enc:v1:0123456789abcdef",
            "plain",
        ] {
            assert_eq!(key.open("p", bad), Err(OpenError::Malformed), "{bad}");
        }
        assert!(is_sealed("enc:v9:whatever") && !is_sealed("hunter2"));
        assert_eq!(
            SecretKey::parse("dG9vIHNob3J0").unwrap_err(),
            KeyFormatError
        );
        assert_eq!(
            SecretKey::parse("not base64 at all!").unwrap_err(),
            KeyFormatError
        );
        assert!(SecretKey::parse(&URL_SAFE_NO_PAD.encode([9u8; 32])).is_ok());
        assert_eq!(
            format!("{key:?}"),
            format!("SecretKey {{ id: {:?} }}", key.id())
        );
    }
}
