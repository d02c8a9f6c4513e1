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

#[derive(Clone)]
pub struct FieldCipher {
    aead: Aes256Gcm,
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FieldCipher(..)")
    }
}

impl FieldCipher {
    pub fn new(key: &[u8; 32]) -> FieldCipher {
        FieldCipher {
            aead: Aes256Gcm::new(key.into()),
        }
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
        if bytes.len() < 12 + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(12);
        self.aead
            .decrypt(
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
#[derive(Clone)]
pub struct LookupHasher {
    key: [u8; 32],
}

impl std::fmt::Debug for LookupHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LookupHasher(..)")
    }
}

impl LookupHasher {
    pub fn new(key: &[u8; 32]) -> LookupHasher {
        LookupHasher { key: *key }
    }

    pub fn hash(&self, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
