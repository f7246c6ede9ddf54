//! Encryption at rest, shared by the file store and the Redis store: XChaCha20-Poly1305 under a
//! 32-byte [`SealKey`], each value bound to its version and to where it is stored.
//!
//! A sealed value is `<version>:xc2:<base64 of nonce and ciphertext>`: the record's version in
//! decimal (no sign, no leading zero), the scheme's tag, and [`encode_record`]'s entry (which
//! repeats the version) sealed under a random 24-byte nonce with `<version>:<name>` as
//! associated data, where `name` is where the value is stored (the file store's key, the Redis
//! key). So a value copied to another entry, given another version, or altered does not open.
//!
//! The cipher is the `seal` feature's: without it a [`SealKey`] cannot be made (so nothing is
//! sealed and a sealed entry is refused as unreadable), and `chacha20poly1305`, `getrandom`
//! and `base64` are not compiled. The format's helpers ([`split_version`], [`record_at`]) are
//! always here.

use std::fmt;

#[cfg(feature = "seal")]
use base64::Engine;
#[cfg(feature = "seal")]
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
#[cfg(feature = "seal")]
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
#[cfg(feature = "seal")]
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::Error;
use crate::store::{StoreRecord, decode_record, encode_record};

/// What a sealed body starts with (after the version): the scheme and its revision. `xc1`,
/// bound to the key alone, was never released.
pub const SEALED_TAG: &str = "xc2:";
#[cfg(feature = "seal")]
const NONCE_LEN: usize = 24;

/// The key that seals stored states: 32 bytes, given as base64 (standard or URL-safe alphabet,
/// padded or not; `openssl rand -base64 32` makes one). Its `Debug` never shows it. Made only
/// with the `seal` feature.
#[derive(Clone)]
pub struct SealKey(KeyBytes);

#[cfg(feature = "seal")]
type KeyBytes = Zeroizing<[u8; 32]>;

/// Without the `seal` feature no key exists, and so no [`Sealer`].
#[cfg(not(feature = "seal"))]
#[derive(Clone)]
enum KeyBytes {}

#[cfg(feature = "seal")]
#[cfg_attr(docsrs, doc(cfg(feature = "seal")))]
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

/// Seals and opens stored values with one [`SealKey`] (see the [module docs](self)).
#[derive(Clone)]
pub struct Sealer(Cipher);

#[cfg(feature = "seal")]
type Cipher = XChaCha20Poly1305;

/// Without the `seal` feature no sealer exists.
#[cfg(not(feature = "seal"))]
#[derive(Clone)]
enum Cipher {}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

impl Sealer {
    /// `record` sealed for the entry `name`: `<version>:xc2:…`.
    pub fn seal_record(
        &self,
        name: &str,
        record: &StoreRecord,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let plain = Zeroizing::new(encode_record(record)?);
        let mut out = Zeroizing::new(format!("{}:", record.version).into_bytes());
        let aad = associated_data(record.version, name);
        out.extend_from_slice(self.seal(aad.as_bytes(), &plain)?.as_bytes());
        Ok(out)
    }

    /// The record in `value`, a value [`seal_record`](Self::seal_record) made for `name`; the
    /// error names `name` and the likely cause, never what the value holds.
    pub fn open_record(&self, name: &str, value: &[u8]) -> Result<StoreRecord, Error> {
        let forget = "`partner-auth forget` removes it";
        let Some((version, body)) = split_version(value) else {
            return Err(Error::store(
                format!(
                    "the entry {name} has no readable version (a sealed value starts \
                     `<version>:`); {forget}"
                ),
                None,
            ));
        };
        let Some(sealed) = body.strip_prefix(SEALED_TAG.as_bytes()) else {
            return Err(Error::store(
                format!("the entry {name} is not sealed in this store's format; {forget}"),
                None,
            ));
        };
        let aad = associated_data(version, name);
        let plain = self.open(name, aad.as_bytes(), sealed)?;
        record_at(name, version, decode_record(&plain))
    }
}

#[cfg(feature = "seal")]
impl Sealer {
    /// A sealer under `key`.
    pub fn new(key: &SealKey) -> Self {
        Self(XChaCha20Poly1305::new(key.0.as_ref().into()))
    }

    /// `SEALED_TAG` + base64(nonce || ciphertext), bound to `aad` (associated data).
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<String, Error> {
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
    /// the entry `name` and the likely cause. Never a partial or unauthenticated result.
    pub fn open(&self, name: &str, aad: &[u8], body: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let refused = || {
            Error::store(
                format!(
                    "the entry {name} does not decrypt: it was sealed under another key \
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

#[cfg(not(feature = "seal"))]
impl Sealer {
    /// A sealer under `key` (without the `seal` feature there is no key, so never called).
    pub fn new(key: &SealKey) -> Self {
        match key.0 {}
    }

    /// `SEALED_TAG` + base64(nonce || ciphertext) (never called without the `seal` feature).
    pub fn seal(&self, _aad: &[u8], _plain: &[u8]) -> Result<String, Error> {
        match self.0 {}
    }

    /// The plain bytes of a sealed body (never called without the `seal` feature).
    pub fn open(
        &self,
        _name: &str,
        _aad: &[u8],
        _body: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        match self.0 {}
    }
}

/// What a sealed value is bound to besides the key: its version and where it is stored.
/// The record decoded from the value stored at `name` under the readable `version`: refused
/// when the record says another version (a prefix tampered with, or a value moved), the error
/// naming `name` and never what the value holds.
pub fn record_at(
    name: &str,
    version: u64,
    decoded: Result<StoreRecord, Error>,
) -> Result<StoreRecord, Error> {
    let record = decoded.map_err(|e| Error::store(format!("the entry {name}: {e}"), None))?;
    if record.version != version {
        return Err(Error::store(
            format!(
                "the entry {name} says version {version} outside its record and {} inside: \
                 refused; `partner-auth forget` removes it",
                record.version
            ),
            None,
        ));
    }
    Ok(record)
}

fn associated_data(version: u64, name: &str) -> String {
    format!("{version}:{name}")
}

/// The version before a value's first `:` (at most 20 digits, no sign, no leading zero) and
/// the rest; `None` when the value does not start so.
pub fn split_version(value: &[u8]) -> Option<(u64, &[u8])> {
    let colon = value.iter().take(21).position(|&b| b == b':')?;
    let digits = std::str::from_utf8(&value[..colon]).ok()?;
    let canonical = digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.is_empty()
        && (digits == "0" || !digits.starts_with('0'));
    let version = digits.parse().ok().filter(|_| canonical)?;
    Some((version, &value[colon + 1..]))
}

#[cfg(all(test, feature = "seal"))]
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
    fn records_open_only_where_and_as_they_were_sealed() {
        use crate::{AccessToken, TokenState};
        let sealer = Sealer::new(&SealKey::generate().unwrap());
        let record = StoreRecord::new(TokenState::new(AccessToken::new("at-secret")), 9);
        let value = sealer.seal_record("k", &record).unwrap();
        assert!(value.starts_with(b"9:xc2:"));
        assert!(!String::from_utf8_lossy(&value).contains("at-secret"));
        assert_eq!(sealer.open_record("k", &value).unwrap(), record);
        let mut relabelled = b"8".to_vec();
        relabelled.extend_from_slice(&value[1..]);
        for (name, value) in [
            ("other", &value[..]),
            ("k", &relabelled[..]),
            ("k", b"9:{}"),
        ] {
            let err = sealer.open_record(name, value).unwrap_err().to_string();
            assert!(
                err.contains("forget") && !err.contains("at-secret"),
                "{err}"
            );
        }
    }

    #[test]
    fn versions_are_canonical_decimal() {
        assert_eq!(split_version(b"0:x"), Some((0, &b"x"[..])));
        assert_eq!(split_version(b"42:{}"), Some((42, &b"{}"[..])));
        let max = format!("{}:", u64::MAX);
        assert_eq!(split_version(max.as_bytes()), Some((u64::MAX, &b""[..])));
        for bad in [
            &b"007:x"[..],
            b":x",
            b"-1:x",
            b"+1:x",
            b"1e+20:x",
            b"18446744073709551616:x",
            b"123456789012345678901:x",
            b"12",
            b"",
        ] {
            assert_eq!(split_version(bad), None, "{}", String::from_utf8_lossy(bad));
        }
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
