//! Encryption at rest: XChaCha20-Poly1305 under a 32-byte key, bound to the entry's Redis key
//! and version (the associated data the codec gives).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use token_provider::Error;
use zeroize::Zeroizing;

/// What a sealed body starts with (after the version): the scheme and its revision. `xc1`,
/// bound to the key alone, was never released.
pub(crate) const SEALED_TAG: &str = "xc2:";
const NONCE_LEN: usize = 24;

/// The key that seals stored states: 32 bytes, given as base64 (standard or URL-safe alphabet,
/// padded or not; `openssl rand -base64 32` makes one). Its `Debug` never shows it.
#[derive(Clone)]
pub struct SealKey(Zeroizing<[u8; 32]>);

impl SealKey {
    /// A key from its base64 form. The error says what is wrong without quoting the value.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        let text = Zeroizing::new(text.trim().to_owned());
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.as_bytes())
                .or_else(|_| URL_SAFE.decode(text.as_bytes()))
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.as_bytes()))
                .or_else(|_| STANDARD.decode(format!("{}=", text.as_str())))
                .map_err(|_| {
                    Error::config(
                        "PARTNER_AUTH_STORE_KEY",
                        "is not base64 (give 32 random bytes in base64, e.g. from `openssl rand -base64 32`)",
                    )
                })?,
        );
        Self::from_bytes(&bytes)
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::config(
                "PARTNER_AUTH_STORE_KEY",
                format!("must be 32 bytes, not {}", bytes.len()),
            )
        })?;
        Ok(Self(Zeroizing::new(key)))
    }

    /// A new random key.
    pub fn generate() -> Result<Self, Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut())
            .map_err(|e| Error::store(format!("no random numbers for a key: {e}"), None))?;
        Ok(Self(key))
    }

    /// The key in standard base64, for writing into a secret manager.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey([redacted])")
    }
}

/// Seals and opens values with one key.
#[derive(Clone)]
pub(crate) struct Sealer(XChaCha20Poly1305);

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

impl Sealer {
    pub(crate) fn new(key: &SealKey) -> Self {
        Self(XChaCha20Poly1305::new(key.0.as_ref().into()))
    }

    /// `SEALED_TAG` + base64(nonce || ciphertext), bound to `aad` (associated data).
    pub(crate) fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<String, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|e| Error::store(format!("no random numbers for a nonce: {e}"), None))?;
        let sealed = self
            .0
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| Error::store("cannot encrypt a stored entry", None))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED_TAG}{}", STANDARD.encode(out)))
    }

    /// The plain bytes of a sealed body (after `SEALED_TAG`) bound to `aad`, or an error naming
    /// the entry `redis_key` and the likely cause. Never a partial or unauthenticated result.
    pub(crate) fn open(
        &self,
        redis_key: &str,
        aad: &[u8],
        body: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let refused = || {
            Error::store(
                format!(
                    "the entry {redis_key} does not decrypt: it was sealed under another key \
                     (check PARTNER_AUTH_STORE_KEY) or for another entry or version, or it was \
                     altered; `partner-auth forget` removes it"
                ),
                None,
            )
        };
        let raw = STANDARD.decode(body).map_err(|_| refused())?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(refused());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        self.0
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad })
            .map(Zeroizing::new)
            .map_err(|_| refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_under_its_key_and_associated_data() {
        let key = SealKey::generate().unwrap();
        let sealer = Sealer::new(&key);
        let sealed = sealer.seal(b"7:p:e:a", b"secret-token").unwrap();
        let body = sealed.strip_prefix(SEALED_TAG).unwrap().as_bytes();
        assert_eq!(
            sealer.open("p:e:a", b"7:p:e:a", body).unwrap().as_slice(),
            b"secret-token"
        );
        assert!(!sealed.contains("secret-token"));
        // Moved to another entry, or relabelled with another version.
        for aad in [&b"7:p:e:b"[..], b"8:p:e:a"] {
            let err = sealer.open("p:e:a", aad, body).unwrap_err().to_string();
            assert!(err.contains("does not decrypt"), "{err}");
        }
        // Another key.
        let other = Sealer::new(&SealKey::generate().unwrap());
        assert!(other.open("p:e:a", b"7:p:e:a", body).is_err());
        // Garbage and truncation.
        assert!(sealer.open("p:e:a", b"7:p:e:a", b"!!").is_err());
        assert!(sealer.open("p:e:a", b"7:p:e:a", &body[..10]).is_err());
    }

    #[test]
    fn keys_parse_from_base64_and_never_show() {
        let key = SealKey::generate().unwrap();
        let text = key.to_base64();
        let back = SealKey::from_base64(&text).unwrap();
        assert_eq!(back.0.as_ref(), key.0.as_ref());
        assert_eq!(format!("{back:?}"), "SealKey([redacted])");
        let short = SealKey::from_base64("c2hvcnQ=").unwrap_err().to_string();
        assert!(short.contains("32 bytes"), "{short}");
        let bad = SealKey::from_base64("not base64 at all!")
            .unwrap_err()
            .to_string();
        assert!(!bad.contains("not base64 at all"), "{bad}");
    }
}
