//! Records sealed: a [`StoreRecord`] sealed for the entry it is stored at, and opened again
//! ([`Sealer::seal_record`], [`Sealer::open_record_by`]). The cipher is in [`crate::seal`],
//! which knows bytes only; the format's record is here, beside the stores that keep it.

use zeroize::Zeroizing;

use super::{StoreRecord, decode_record, encode_record};
use crate::Error;
use crate::seal::{SEALED_TAG, SealedBy, Sealer, split_version};

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
        self.open_record_by(name, value).map(|(record, _)| record)
    }

    /// [`open_record`](Self::open_record), and which key opened it.
    pub fn open_record_by(
        &self,
        name: &str,
        value: &[u8],
    ) -> Result<(StoreRecord, SealedBy), Error> {
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
        let (plain, by) = self.open_by(name, aad.as_bytes(), sealed)?;
        record_at(name, version, decode_record(&plain)).map(|record| (record, by))
    }
}

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

/// What a sealed value is bound to besides the key: its version and where it is stored.
fn associated_data(version: u64, name: &str) -> String {
    format!("{version}:{name}")
}
