//! Field-level protection of personal data. Citizen IDs and sensitive fields
//! (ethnicity, health) are stored as AES-256-GCM ciphertext bound to the record
//! and field they belong to; a keyed HMAC of the citizen ID serves uniqueness and
//! lookup without ever storing the number in the clear.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: &str = "v1:";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("stored ciphertext is malformed")]
    Malformed,
    #[error("stored ciphertext does not decrypt with the configured key")]
    Decrypt,
}

/// Seals with the current key; opens with it or, for what was sealed before
/// a rotation, with a previous one (AES-GCM's tag tells a wrong key at once).
#[derive(Clone)]
pub struct FieldCipher {
    aead: Aes256Gcm,
    previous: Vec<Aes256Gcm>,
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FieldCipher(..)")
    }
}

impl FieldCipher {
    pub fn new(key: &[u8; 32]) -> FieldCipher {
        FieldCipher::with_previous(key, &[])
    }

    /// Sealing with `key`, opening also with the keys rotated away from.
    pub fn with_previous(key: &[u8; 32], previous: &[[u8; 32]]) -> FieldCipher {
        FieldCipher {
            aead: Aes256Gcm::new(key.into()),
            previous: previous.iter().map(|k| Aes256Gcm::new(k.into())).collect(),
        }
    }

    /// True when `stored` was sealed with the current key: nothing to seal again.
    pub fn is_current(&self, stored: &str, context: &str) -> bool {
        stored
            .strip_prefix(VERSION)
            .and_then(|body| B64.decode(body).ok())
            .is_some_and(|bytes| self.open_with(&self.aead, &bytes, context).is_ok())
    }

    /// True when the binary `bytes` were sealed with the current key.
    pub fn seals_current(&self, bytes: &[u8], context: &str) -> bool {
        self.open_with(&self.aead, bytes, context).is_ok()
    }

    /// Encrypts `plaintext`; `context` (e.g. `member/<id>/citizen_id`) is bound as
    /// associated data, so a ciphertext copied to another row or field fails to open.
    pub fn encrypt(&self, plaintext: &str, context: &str) -> String {
        format!(
            "{VERSION}{}",
            B64.encode(self.seal(plaintext.as_bytes(), context))
        )
    }

    pub fn decrypt(&self, stored: &str, context: &str) -> Result<String, CryptoError> {
        let body = stored.strip_prefix(VERSION).ok_or(CryptoError::Malformed)?;
        let bytes = B64.decode(body).map_err(|_| CryptoError::Malformed)?;
        String::from_utf8(self.open(&bytes, context)?).map_err(|_| CryptoError::Malformed)
    }

    /// Binary form of [`FieldCipher::encrypt`]: nonce followed by ciphertext.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let nonce_bytes: [u8; 12] = rand::random();
        let nonce = Nonce::from_slice(&nonce_bytes);
        let sealed = self
            .aead
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(12 + sealed.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, bytes: &[u8], context: &str) -> Result<Vec<u8>, CryptoError> {
        match self.open_with(&self.aead, bytes, context) {
            Err(CryptoError::Decrypt) => self
                .previous
                .iter()
                .find_map(|aead| self.open_with(aead, bytes, context).ok())
                .ok_or(CryptoError::Decrypt),
            other => other,
        }
    }

    fn open_with(
        &self,
        aead: &Aes256Gcm,
        bytes: &[u8],
        context: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        if bytes.len() < 12 + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(12);
        aead.decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: context.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::Decrypt)
    }
}

/// Keyed hash for equality lookups on values that are stored encrypted.
/// Hashes with the current key; a lookup also tries the keys rotated away
/// from, until the rows hashed with them are hashed again.
#[derive(Clone)]
pub struct LookupHasher {
    key: [u8; 32],
    previous: Vec<[u8; 32]>,
}

impl std::fmt::Debug for LookupHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LookupHasher(..)")
    }
}

impl LookupHasher {
    pub fn new(key: &[u8; 32]) -> LookupHasher {
        LookupHasher::with_previous(key, &[])
    }

    pub fn with_previous(key: &[u8; 32], previous: &[[u8; 32]]) -> LookupHasher {
        LookupHasher {
            key: *key,
            previous: previous.to_vec(),
        }
    }

    /// The hash stored from now on.
    pub fn hash(&self, value: &str) -> String {
        keyed(&self.key, value)
    }

    /// Every hash `value` may be stored under: the current key's first.
    pub fn hashes(&self, value: &str) -> Vec<String> {
        std::iter::once(&self.key)
            .chain(&self.previous)
            .map(|k| keyed(k, value))
            .collect()
    }
}

fn keyed(key: &[u8; 32], value: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_cipher_opens_what_the_old_key_sealed_and_seals_with_the_new() {
        let old = FieldCipher::new(&[7; 32]);
        let sealed = old.encrypt("020085001234", "member/a/citizen_id");
        let rotated = FieldCipher::with_previous(&[9; 32], &[[7; 32]]);
        assert_eq!(
            rotated.decrypt(&sealed, "member/a/citizen_id").as_deref(),
            Ok("020085001234")
        );
        assert!(!rotated.is_current(&sealed, "member/a/citizen_id"));
        let again = rotated.encrypt("020085001234", "member/a/citizen_id");
        assert!(rotated.is_current(&again, "member/a/citizen_id"));
        assert!(
            old.decrypt(&again, "member/a/citizen_id").is_err(),
            "the new key seals"
        );
        let hasher = LookupHasher::with_previous(&[2; 32], &[[1; 32]]);
        assert_eq!(hasher.hashes("x")[1], LookupHasher::new(&[1; 32]).hash("x"));
        assert_eq!(hasher.hashes("x")[0], hasher.hash("x"));
    }

    #[test]
    fn round_trips_and_binds_context() {
        let cipher = FieldCipher::new(&[7; 32]);
        let sealed = cipher.encrypt("020085001234", "member/a/citizen_id");
        assert!(!sealed.contains("020085001234"));
        assert_eq!(
            cipher.decrypt(&sealed, "member/a/citizen_id").as_deref(),
            Ok("020085001234")
        );
        assert_eq!(
            cipher.decrypt(&sealed, "member/b/citizen_id"),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(
            FieldCipher::new(&[8; 32]).decrypt(&sealed, "member/a/citizen_id"),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(cipher.decrypt("garbage", "x"), Err(CryptoError::Malformed));
    }

    #[test]
    fn encryption_is_randomised_but_lookup_hash_is_stable() {
        let cipher = FieldCipher::new(&[7; 32]);
        assert_ne!(cipher.encrypt("x", "c"), cipher.encrypt("x", "c"));
        let h = LookupHasher::new(&[1; 32]);
        assert_eq!(h.hash("020085001234"), h.hash("020085001234"));
        assert_ne!(
            h.hash("020085001234"),
            LookupHasher::new(&[2; 32]).hash("020085001234")
        );
    }
}
