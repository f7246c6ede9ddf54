//! The store key from `PARTNER_AUTH_STORE_KEY_FILE`, rolled on disk under running processes:
//! two stores opened by `open_store` on one file store, the key file swapped `OLD`, then
//! `NEW,OLD`, then `NEW`, with no restart and no entry that stops opening.

use std::sync::Arc;
use std::time::Duration;

use partner_auth::{STORE_KEY_FILE_VAR, open_store};
use token_provider::seal::{KeyFingerprint, SealKey};
use token_provider::testing::{SecretFile, TempDir, capture_logs, key, state};
use token_provider::{StoreKey, TokenStore};

fn b64(key: &SealKey) -> String {
    key.to_base64().to_string()
}

/// Saves `token` for `k` through `writer` (an hour's token, under its lock), then finds the
/// entry in `reader`'s listing: it opens, and this is the fingerprint of the key that sealed it.
async fn saved_sealed_by(
    writer: &Arc<dyn TokenStore>,
    reader: &Arc<dyn TokenStore>,
    k: &StoreKey,
    token: &str,
) -> KeyFingerprint {
    let lifetime = Duration::from_secs(3600);
    let lock = writer.lock(k).await.unwrap();
    writer
        .save(k, &state(token, None, lifetime), &lock)
        .await
        .unwrap();
    let listing = reader.listing().await.unwrap();
    let entry = listing.into_iter().find(|e| &e.key == k).unwrap();
    assert!(entry.state.is_ok(), "{:?}", entry.state);
    entry.sealed_by.unwrap().fingerprint
}

/// Before: the key file was read when the store was opened; after the swap to `NEW,OLD` each
/// store kept sealing under `OLD`, and after the swap to `NEW` alone neither read an entry.
#[tokio::test]
async fn a_key_file_rolled_on_disk_is_taken_up_without_a_restart() {
    let logs = capture_logs();
    let dir = TempDir::new("store-key-file");
    let path = dir.join("tokens.json");
    let (old, new) = (SealKey::generate().unwrap(), SealKey::generate().unwrap());
    let mut file = SecretFile::new("store-key", &b64(&old));
    let key_path = file.path().to_str().unwrap().to_owned();
    let lookup = |name: &str| (name == STORE_KEY_FILE_VAR).then(|| key_path.clone());
    let spec = path.to_str().unwrap();
    let a = open_store(lookup, spec, "store").unwrap();
    let b = open_store(lookup, spec, "store").unwrap();
    let (ka, kb) = (key("replica-a"), key("replica-b"));

    assert_eq!(
        saved_sealed_by(&a, &b, &ka, "at-a1").await,
        old.fingerprint()
    );

    // Step 2: the new key seals, the old one still opens.
    file.swap(&format!("{},{}", b64(&new), b64(&old)));
    assert_eq!(
        saved_sealed_by(&b, &a, &kb, "at-b1").await,
        new.fingerprint()
    );
    let read = a.load(&ka).await.unwrap().unwrap();
    assert_eq!(read.access_token.secret().expose_secret(), "at-a1");
    assert_eq!(
        saved_sealed_by(&a, &b, &ka, "at-a2").await,
        new.fingerprint()
    );

    // A half-written file keeps the keys read before (a warning names the file, not a key).
    file.replace("not-a-key");
    let read = b.load(&ka).await.unwrap().unwrap();
    assert_eq!(read.access_token.secret().expose_secret(), "at-a2");

    // Step 3: the new key alone; both entries were sealed under it.
    file.swap(&b64(&new));
    for (store, k, want) in [(&a, &kb, "at-b1"), (&b, &ka, "at-a2")] {
        let read = store.load(k).await.unwrap().unwrap();
        assert_eq!(read.access_token.secret().expose_secret(), want);
    }
    let text = logs.contents();
    assert!(
        text.contains("the store keys changed on disk and were read again"),
        "{text}"
    );
    assert!(text.contains("does not hold a key list"), "{text}");
    logs.assert_absent(&[&b64(&old), &b64(&new)]);
    let shown = format!("{a:?} {b:?}");
    assert!(
        !shown.contains(&b64(&old)) && !shown.contains(&b64(&new)),
        "{shown}"
    );
}
