//! The value format: `<version>:<body>`. The version is decimal (no sign, no leading zero),
//! where the save script reads it; the body is the file store's entry encoding of the record
//! (`token_provider::encode_record`, which carries the version too), in clear, or sealed as the
//! file store seals its entries (`token_provider::seal`: `xc2:` + base64(nonce, ciphertext)
//! with `<version>:<entry key>` as associated data).
//!
//! So a sealed value opens only at its own key and with its own version in its prefix, and
//! both readings of the version must agree: a relabelled or altered value is refused.

use redis::Value;
use token_provider::seal::{SEALED_TAG, SealedBy, Sealer, split_version};
use token_provider::{Error, StoreRecord, decode_record, encode_record};
use zeroize::Zeroizing;

/// The largest value read or written, in bytes (a sealed record of a 16 KiB access token and
/// its refresh token is about 30 KiB); a larger one is refused unread.
pub const MAX_VALUE_SIZE: usize = 1024 * 1024;

/// What a read found at a key (see `scripts`).
#[derive(Debug)]
pub(crate) enum Stored {
    Nothing,
    Value(Zeroizing<Vec<u8>>),
    /// A value of another type, named.
    OtherType(String),
    /// A string of this many bytes, over [`MAX_VALUE_SIZE`], not read.
    TooLarge(i64),
}

/// A read's `{code, found, pttl}` triple: what is stored, and its remaining lifetime in ms
/// (negative without one). `None` for an answer no script gives.
pub(crate) fn stored(code: Value, found: Value, pttl: Value) -> Option<(Stored, i64)> {
    let pttl = match pttl {
        Value::Int(ms) => ms,
        _ => return None,
    };
    let stored = match (code, found) {
        (Value::Int(0), _) => Stored::Nothing,
        (Value::Int(1), Value::BulkString(bytes)) => Stored::Value(Zeroizing::new(bytes)),
        (Value::Int(2), found) => Stored::OtherType(text(found)?),
        (Value::Int(3), Value::Int(n)) => Stored::TooLarge(n),
        _ => return None,
    };
    Some((stored, pttl))
}

/// A short text answer (a type's name, a version).
pub(crate) fn text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s),
        Value::Okay => Some("OK".to_owned()),
        _ => None,
    }
}

/// The record stored at `name`, from what a read found there (`None`: nothing); the error says
/// what is wrong with it, never what it holds.
#[cfg(test)]
pub(crate) fn decode(
    name: &str,
    stored: Stored,
    sealer: Option<&Sealer>,
) -> Result<Option<StoreRecord>, Error> {
    decode_by(name, stored, sealer).map(|found| found.map(|(record, _)| record))
}

/// [`decode`], and the key that sealed the record (`None` in clear).
pub(crate) fn decode_by(
    name: &str,
    stored: Stored,
    sealer: Option<&Sealer>,
) -> Result<Option<(StoreRecord, Option<SealedBy>)>, Error> {
    let forget = "`partner-auth forget` removes it";
    let value = match stored {
        Stored::Nothing => return Ok(None),
        Stored::Value(value) => value,
        Stored::OtherType(kind) => {
            return Err(Error::store(
                format!("the entry {name} holds a {kind}, not a value of this store; {forget}"),
                None,
            ));
        }
        Stored::TooLarge(n) => {
            return Err(Error::store(
                format!(
                    "the entry {name} is {n} bytes, over this store's limit of {MAX_VALUE_SIZE}: \
                     refused unread; {forget}"
                ),
                None,
            ));
        }
    };
    let Some((version, body)) = split_version(&value) else {
        return Err(Error::store(
            format!(
                "the entry {name} has no readable version (a value this store writes starts \
                 `<version>:`); {forget}"
            ),
            None,
        ));
    };
    let decoded = match (body.strip_prefix(SEALED_TAG.as_bytes()), sealer) {
        (Some(_), Some(sealer)) => {
            return sealer
                .open_record_by(name, &value)
                .map(|(record, by)| Some((record, Some(by))));
        }
        (Some(_), None) => {
            return Err(Error::store(
                format!(
                    "the entry {name} is encrypted and no key is configured \
                     (set PARTNER_AUTH_STORE_KEY)"
                ),
                None,
            ));
        }
        (None, Some(_)) if body.starts_with(b"{") => {
            return Err(Error::store(
                format!(
                    "the entry {name} is stored in clear while encryption is on: refused; {forget}"
                ),
                None,
            ));
        }
        (None, None) if body.starts_with(b"{") => decode_record(body),
        (None, _) => {
            return Err(Error::store(
                format!("the entry {name} is not in this store's format; {forget}"),
                None,
            ));
        }
    };
    token_provider::store::record_at(name, version, decoded).map(|record| Some((record, None)))
}

/// `record` (at its version) as stored at `name`, sealed when there is a sealer.
pub(crate) fn encode(
    name: &str,
    record: &StoreRecord,
    sealer: Option<&Sealer>,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let out = match sealer {
        Some(sealer) => sealer.seal_record(name, record)?,
        None => {
            let mut out = Zeroizing::new(format!("{}:", record.version).into_bytes());
            out.extend_from_slice(&encode_record(record)?);
            out
        }
    };
    if out.len() > MAX_VALUE_SIZE {
        return Err(Error::store(
            format!(
                "the state of {name} is {} bytes stored, over this store's limit of \
                 {MAX_VALUE_SIZE}: not saved",
                out.len()
            ),
            None,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use token_provider::seal::SealKey;
    use token_provider::{AccessToken, TokenState};

    fn record(version: u64) -> StoreRecord {
        StoreRecord::new(TokenState::new(AccessToken::new("at-secret")), version)
    }

    #[test]
    fn records_round_trip_in_clear_and_sealed() {
        let sealer = Sealer::new(&SealKey::generate().unwrap());
        for sealer in [None, Some(&sealer)] {
            let bytes = encode("p:e:k", &record(9), sealer).unwrap();
            assert!(bytes.starts_with(b"9:"));
            let back = decode("p:e:k", Stored::Value(bytes.clone()), sealer).unwrap();
            assert_eq!(back, Some(record(9)));
            // Another version in the prefix.
            let mut relabelled = b"8".to_vec();
            relabelled.extend_from_slice(&bytes[1..]);
            let err = decode("p:e:k", Stored::Value(Zeroizing::new(relabelled)), sealer)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("does not decrypt") || err.contains("says version 8"),
                "{err}"
            );
            assert!(!err.contains("at-secret"), "{err}");
        }
        let sealed = encode("p:e:k", &record(1), Some(&sealer)).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("at-secret"));
        let err = decode("p:e:other", Stored::Value(sealed), Some(&sealer)).unwrap_err();
        assert!(err.to_string().contains("does not decrypt"), "{err}");
    }

    #[test]
    fn what_is_not_a_value_of_this_store_is_that_entrys_error() {
        let cases = [
            (Stored::OtherType("hash".into()), "holds a hash"),
            (Stored::TooLarge(50 << 20), "52428800 bytes"),
            (
                Stored::Value(Zeroizing::new(b"1:\xff\xfe".to_vec())),
                "format",
            ),
            (
                Stored::Value(Zeroizing::new(b"1:xc1:AAAA".to_vec())),
                "format",
            ),
            (
                Stored::Value(Zeroizing::new(b"{}".to_vec())),
                "no readable version",
            ),
        ];
        for (stored, says) in cases {
            let err = decode("p:e:k", stored, None).unwrap_err().to_string();
            assert!(err.contains(says) && err.contains("forget"), "{err}");
        }
        assert!(decode("p:e:k", Stored::Nothing, None).unwrap().is_none());
    }
}
