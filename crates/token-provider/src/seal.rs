//! Encryption at rest, shared by the file store and the Redis store: XChaCha20-Poly1305 under a
//! 32-byte [`SealKey`], each value bound to its version and to where it is stored.
//!
//! A sealed value is `<version>:xc2:<base64 of nonce and ciphertext>`: the record's version in
//! decimal (no sign, no leading zero), the scheme's tag, and [`encode_record`](crate::store::encode_record)'s entry (which
//! repeats the version) sealed under a random 24-byte nonce with `<version>:<name>` as
//! associated data, where `name` is where the value is stored (the file store's key, the Redis
//! key). So a value copied to another entry, given another version, or altered does not open.
//!
//! The cipher is the `seal` feature's: without it keys can be read and fingerprinted, but
//! nothing is sealed or opened (an error says to enable the feature), and `chacha20poly1305`
//! and `getrandom` are not compiled. [`split_version`] is always here; records are sealed and
//! opened beside the stores ([`Sealer::seal_record`], [`record_at`](crate::store::record_at)).
//!
//! # Rotating the key
//!
//! A [`Sealer`] holds a current key, which seals every save, and older ones, which only open
//! ([`SealKeys`]); a value opened by an older key is sealed under the current one at its next
//! save. A fleet rolls a new key in three steps, each on every replica before the next:
//! `OLD,NEW` (the new key opens, seals nothing yet), `NEW,OLD`, then `NEW` once no entry is
//! sealed by an older key (`TokenStore::listing` says which key sealed each). A sealer made
//! from a key file ([`Sealer::from_source`]) reads it again when it changes, so the steps need
//! no restart; a file that changes to something that is not a key list keeps the keys read
//! before, with a warning.

use std::fmt;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
#[cfg(feature = "seal")]
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
#[cfg(feature = "seal")]
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use tracing::{info, warn};

use crate::{Error, Secret, SecretSource};

/// What a sealed body starts with (after the version): the scheme and its revision. `xc1`,
/// bound to the key alone, was never released.
pub const SEALED_TAG: &str = "xc2:";
#[cfg(feature = "seal")]
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
    #[cfg(feature = "seal")]
    #[cfg_attr(docsrs, doc(cfg(feature = "seal")))]
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

    /// A short name of this key that does not reveal it: the first 4 bytes of the SHA-256 of
    /// a fixed label and the key.
    pub fn fingerprint(&self) -> KeyFingerprint {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"partner-auth store key fingerprint\0")
            .chain_update(self.0.as_ref())
            .finalize();
        KeyFingerprint([digest[0], digest[1], digest[2], digest[3]])
    }
}

/// A short, public name of a [`SealKey`] ([`SealKey::fingerprint`]): 8 hex digits, enough to
/// tell a handful of keys apart, and nothing to learn a key from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyFingerprint([u8; 4]);

impl fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFingerprint({self})")
    }
}

/// The keys of a store: the current one, which seals every save, and older ones, which only
/// open (see [Rotating the key](self#rotating-the-key)).
///
/// ```
/// use token_provider::seal::{SealKey, SealKeys};
///
/// let (old, new) = (SealKey::generate()?, SealKey::generate()?);
/// let text = format!("{}, {}", new.to_base64().as_str(), old.to_base64().as_str());
/// let keys = SealKeys::from_base64_list(&text)?;
/// assert_eq!(keys.current().fingerprint(), new.fingerprint());
/// assert_eq!(keys.older().len(), 1);
/// # Ok::<(), token_provider::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct SealKeys {
    current: SealKey,
    older: Vec<SealKey>,
}

impl SealKeys {
    /// One key, sealing and opening.
    pub fn new(current: SealKey) -> Self {
        Self {
            current,
            older: Vec::new(),
        }
    }

    /// `key` opens values too (an older key, or while a fleet rolls, the next one); it never
    /// seals. A key given twice counts once.
    #[must_use]
    pub fn with_older(mut self, key: SealKey) -> Self {
        let known = self.keys().any(|k| k.0.as_ref() == key.0.as_ref());
        if !known {
            self.older.push(key);
        }
        self
    }

    /// The keys from their base64 forms, current first, separated by commas, blanks or line
    /// breaks (`PARTNER_AUTH_STORE_KEY`'s form). The error names which key is wrong (by its
    /// place in the list), never what it is.
    pub fn from_base64_list(text: &str) -> Result<Self, Error> {
        let mut keys = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .enumerate()
            .map(|(at, part)| {
                SealKey::from_base64(part).map_err(|e| match e {
                    Error::Config { field, reason, .. } if at > 0 => {
                        Error::config(field, format!("(key {} of the list) {reason}", at + 1))
                    }
                    other => other,
                })
            });
        let current = keys.next().unwrap_or_else(|| {
            Err(Error::config(
                "PARTNER_AUTH_STORE_KEY",
                "holds no key (give 32 random bytes in base64, e.g. from `openssl rand -base64 \
                 32`)",
            ))
        })?;
        keys.try_fold(Self::new(current), |keys, key| Ok(keys.with_older(key?)))
    }

    /// The keys `source` holds, in [`from_base64_list`](Self::from_base64_list)'s form; an
    /// error about a file names its setting and path, never a key.
    pub fn from_source(source: &SecretSource) -> Result<Self, Error> {
        Self::read(source, &source.current())
    }

    /// The keys in `text`, read from `source`.
    fn read(source: &SecretSource, text: &Secret) -> Result<Self, Error> {
        Self::from_base64_list(text.expose_secret()).map_err(|e| {
            match (e, source.setting(), source.path()) {
                (Error::Config { reason, .. }, Some(setting), Some(path)) => {
                    Error::config(setting, format!("(the file {}) {reason}", path.display()))
                }
                (other, ..) => other,
            }
        })
    }

    /// The key that seals.
    pub fn current(&self) -> &SealKey {
        &self.current
    }

    /// The keys that only open.
    pub fn older(&self) -> &[SealKey] {
        &self.older
    }

    /// Every key, the current one first.
    fn keys(&self) -> impl Iterator<Item = &SealKey> {
        std::iter::once(&self.current).chain(&self.older)
    }
}

impl From<SealKey> for SealKeys {
    fn from(key: SealKey) -> Self {
        Self::new(key)
    }
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey([redacted])")
    }
}

/// Seals stored values with the current [`SealKey`] and opens them with it or an older one
/// (see the [module docs](self)). Made from a file ([`from_source`](Self::from_source)), it
/// reads the file again when it changes, so a key rolled out on disk is taken up without a
/// restart. Clones share the keys.
#[derive(Clone)]
pub struct Sealer {
    keys: Arc<Mutex<Keys>>,
    /// Where the keys come from when they can change.
    source: Option<Arc<SecretSource>>,
}

/// The keys in force, and the text they were read from (for a sealer made from a source).
struct Keys {
    /// Each key's cipher and fingerprint, the current key first.
    ciphers: Arc<[(Cipher, KeyFingerprint)]>,
    read: Option<Secret>,
}

fn ciphers(keys: &SealKeys) -> Arc<[(Cipher, KeyFingerprint)]> {
    keys.keys()
        .map(|key| (cipher(key), key.fingerprint()))
        .collect()
}

#[cfg(feature = "seal")]
type Cipher = XChaCha20Poly1305;

/// Without the `seal` feature a sealer holds its keys' fingerprints and no cipher.
#[cfg(not(feature = "seal"))]
#[derive(Clone)]
struct Cipher;

#[cfg(feature = "seal")]
fn cipher(key: &SealKey) -> Cipher {
    XChaCha20Poly1305::new(key.0.as_ref().into())
}

#[cfg(not(feature = "seal"))]
fn cipher(_: &SealKey) -> Cipher {
    Cipher
}

/// What sealing or opening answers in a build without the `seal` feature.
#[cfg(not(feature = "seal"))]
fn no_seal() -> Error {
    Error::config(
        "PARTNER_AUTH_STORE_KEY",
        "is set, but this build cannot seal or open stored values: enable the `seal` feature",
    )
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys();
        let fingerprints: Vec<_> = keys.iter().map(|(_, fp)| fp).collect();
        f.debug_struct("Sealer")
            .field("keys", &fingerprints)
            .finish_non_exhaustive()
    }
}

/// Which key opened a sealed value: its fingerprint, and whether it is the current key (a
/// value opened by an older one is sealed under the current key at its next save).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SealedBy {
    /// The key's fingerprint.
    pub fingerprint: KeyFingerprint,
    /// Whether it is the key saves are sealed with now.
    pub current: bool,
}

impl Sealer {
    /// A sealer under `key` alone.
    pub fn new(key: &SealKey) -> Self {
        Self::with_keys(&SealKeys::new(key.clone()))
    }

    /// A sealer that seals under `keys`' current key and opens with any of them.
    pub fn with_keys(keys: &SealKeys) -> Self {
        Self {
            keys: Arc::new(Mutex::new(Keys {
                ciphers: ciphers(keys),
                read: None,
            })),
            source: None,
        }
    }

    /// A sealer under the keys `source` holds ([`SealKeys::from_base64_list`]'s form), read
    /// again whenever its file changes. A change that does not parse keeps the keys read
    /// before, with a warning naming the setting and the file (never a key); the first read
    /// must parse. Errors name the setting and the file.
    pub fn from_source(source: SecretSource) -> Result<Self, Error> {
        let text = source.current();
        let keys = SealKeys::read(&source, &text)?;
        Ok(Self {
            keys: Arc::new(Mutex::new(Keys {
                ciphers: ciphers(&keys),
                read: Some(text),
            })),
            source: source.is_file().then(|| Arc::new(source)),
        })
    }

    /// The keys in force, read again first when they come from a file that changed.
    fn keys(&self) -> Arc<[(Cipher, KeyFingerprint)]> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(source) = &self.source {
            let text = source.current();
            if keys.read.as_ref() != Some(&text) {
                let (setting, path) = (
                    source.setting().unwrap_or_default(),
                    source
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                );
                match SealKeys::from_base64_list(text.expose_secret()) {
                    Ok(read) => {
                        keys.ciphers = ciphers(&read);
                        info!(
                            setting,
                            path,
                            current = %read.current().fingerprint(),
                            older = read.older().len(),
                            "the store keys changed on disk and were read again"
                        );
                    }
                    Err(e) => warn!(
                        setting,
                        path,
                        "the store keys' file changed and does not hold a key list ({}): the \
                         keys read before are kept",
                        match &e {
                            Error::Config { reason, .. } => reason.as_str(),
                            _ => "unreadable",
                        }
                    ),
                }
                keys.read = Some(text);
            }
        }
        Arc::clone(&keys.ciphers)
    }

    /// The fingerprint of the key that seals.
    pub fn current(&self) -> KeyFingerprint {
        self.keys()[0].1
    }

    /// `SEALED_TAG` + base64(nonce || ciphertext), bound to `aad` (associated data).
    #[cfg(not(feature = "seal"))]
    pub fn seal(&self, _aad: &[u8], _plain: &[u8]) -> Result<String, Error> {
        Err(no_seal())
    }

    /// `SEALED_TAG` + base64(nonce || ciphertext), bound to `aad` (associated data).
    #[cfg(feature = "seal")]
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<String, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|e| Error::store(format!("no random numbers for a nonce: {e}"), None))?;
        let sealed = self.keys()[0]
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
        self.open_by(name, aad, body).map(|(plain, _)| plain)
    }

    #[cfg(not(feature = "seal"))]
    pub(crate) fn open_by(
        &self,
        _name: &str,
        _aad: &[u8],
        _body: &[u8],
    ) -> Result<(Zeroizing<Vec<u8>>, SealedBy), Error> {
        Err(no_seal())
    }

    /// [`open`](Self::open), and which key opened it: each key is tried, the current one
    /// first (AEAD refuses a wrong key, so the one that opens is the one that sealed).
    #[cfg(feature = "seal")]
    pub(crate) fn open_by(
        &self,
        name: &str,
        aad: &[u8],
        body: &[u8],
    ) -> Result<(Zeroizing<Vec<u8>>, SealedBy), Error> {
        let keys = self.keys();
        let refused = || {
            let keys = match keys.len() {
                1 => "another key (check PARTNER_AUTH_STORE_KEY)".to_owned(),
                n => format!("none of the {n} keys in PARTNER_AUTH_STORE_KEY"),
            };
            Error::store(
                format!(
                    "the entry {name} does not decrypt: it was sealed under {keys} or for \
                     another entry or version, or it was altered; `partner-auth forget` \
                     removes it"
                ),
                None,
            )
        };
        let raw = STANDARD.decode(body).map_err(|_| refused())?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(refused());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        keys.iter()
            .enumerate()
            .find_map(|(at, (cipher, fingerprint))| {
                let plain = cipher
                    .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad })
                    .ok()?;
                let by = SealedBy {
                    fingerprint: *fingerprint,
                    current: at == 0,
                };
                Some((Zeroizing::new(plain), by))
            })
            .ok_or_else(refused)
    }
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
    use crate::store::StoreRecord;

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

    /// A value sealed under an older key opens, and says so; a save seals under the current
    /// key; a store without the older key cannot open what it sealed.
    #[test]
    fn older_keys_open_and_the_current_key_seals() {
        use crate::{AccessToken, TokenState};
        let (old, new) = (SealKey::generate().unwrap(), SealKey::generate().unwrap());
        let record = StoreRecord::new(TokenState::new(AccessToken::new("at-rotated")), 3);
        let by_old = Sealer::new(&old).seal_record("k", &record).unwrap();
        let rotated = Sealer::with_keys(&SealKeys::new(new.clone()).with_older(old.clone()));
        let (opened, by) = rotated.open_record_by("k", &by_old).unwrap();
        assert_eq!(opened, record);
        assert_eq!(
            by,
            SealedBy {
                fingerprint: old.fingerprint(),
                current: false
            }
        );
        let resealed = rotated.seal_record("k", &record).unwrap();
        let (_, by) = rotated.open_record_by("k", &resealed).unwrap();
        assert_eq!((by.fingerprint, by.current), (new.fingerprint(), true));
        let err = Sealer::new(&old)
            .open_record("k", &resealed)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not decrypt"), "{err}");
        let err = Sealer::with_keys(&SealKeys::new(SealKey::generate().unwrap()).with_older(old))
            .open_record("k", &resealed)
            .unwrap_err()
            .to_string();
        assert!(err.contains("none of the 2 keys"), "{err}");
    }

    #[test]
    fn fingerprints_are_short_stable_and_reveal_nothing() {
        let key = SealKey::from_bytes(&[7u8; 32]).unwrap();
        let fp = key.fingerprint().to_string();
        assert_eq!(fp.len(), 8);
        assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()), "{fp}");
        assert_eq!(
            SealKey::from_bytes(&[7u8; 32]).unwrap().fingerprint(),
            key.fingerprint()
        );
        assert_ne!(
            SealKey::from_bytes(&[8u8; 32]).unwrap().fingerprint(),
            key.fingerprint()
        );
        assert!(!key.to_base64().contains(&fp));
        let sealer = Sealer::new(&key);
        assert_eq!(
            format!("{sealer:?}"),
            format!("Sealer {{ keys: [KeyFingerprint({fp})], .. }}")
        );
    }

    #[test]
    fn key_lists_put_the_current_key_first_and_name_a_bad_one_by_place() {
        let (a, b) = (SealKey::generate().unwrap(), SealKey::generate().unwrap());
        let text = format!(
            "{}\n {} ,{}",
            a.to_base64().as_str(),
            b.to_base64().as_str(),
            a.to_base64().as_str()
        );
        let keys = SealKeys::from_base64_list(&text).unwrap();
        assert_eq!(keys.current().fingerprint(), a.fingerprint());
        assert_eq!(keys.older().len(), 1, "a key given twice counts once");
        assert_eq!(keys.older()[0].fingerprint(), b.fingerprint());
        let err = SealKeys::from_base64_list(&format!("{}, c2hvcnQ=", a.to_base64().as_str()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key 2 of the list") && err.contains("32 bytes"),
            "{err}"
        );
        let err = SealKeys::from_base64_list(" , ").unwrap_err().to_string();
        assert!(err.contains("holds no key"), "{err}");
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
