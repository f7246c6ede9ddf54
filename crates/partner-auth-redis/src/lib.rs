//! A [`TokenStore`] on Redis (one server, or a cluster): a fleet of replicas shares one token
//! per principal.
//!
//! Give every replica's providers the same [`RedisStore`] and the fleet fetches once per
//! principal per expiry: the replica whose token comes due first takes the principal's lock,
//! fetches and saves; the others, at their own soft expiry, read the saved state and adopt it
//! without a request. What is saved is decided by versions, not by the lock: a save names the
//! version it read and is refused over a newer one, and a refresh token being presented is
//! recorded before it is sent (the cache's store protocol, see
//! [`StoreRecord`](token_provider::StoreRecord)). Hits never touch Redis: the in-process cache
//! ([`CachedTokenProvider`](token_provider::CachedTokenProvider)) stays the first level, and
//! Redis is read only when the local token comes due or after a 401.
//!
//! ```no_run
//! use std::sync::Arc;
//! use partner_auth_redis::{RedisStore, SealKey};
//! use token_provider::{CacheConfig, TokenStore};
//!
//! # fn main() -> Result<(), token_provider::Error> {
//! let store = RedisStore::builder("redis://10.0.0.5:6379/0")
//!     .password(std::env::var("PARTNER_AUTH_REDIS_PASSWORD").unwrap())
//!     .prefix("billing:")
//!     .seal_key(SealKey::from_base64(&std::env::var("PARTNER_AUTH_STORE_KEY").unwrap())?)
//!     .build()?;
//! let store: Arc<dyn TokenStore> = Arc::new(store);
//! let cache = CacheConfig::new().store(store); // hand it to every provider's builder
//! # let _ = cache; Ok(()) }
//! ```
//!
//! # URLs, passwords and permissions
//!
//! | URL | what it names |
//! | --- | --- |
//! | `redis://[USER@]HOST[:PORT][/DB]` | one server (or a primary); `rediss://` over TLS |
//! | `redis+unix:///PATH[?db=N][&user=NAME]` | a Unix socket (`unix://` is the same) |
//! | `redis+cluster://[USER@]HOST:PORT[,HOST:PORT…]` | a Redis Cluster, found from any of the nodes listed; `rediss+cluster://` over TLS |
//!
//! `valkey` may stand for `redis` in every scheme, and schemes are case-insensitive. The query
//! may give the database (`?db=N`, where the path does not); any other parameter, and a
//! fragment, is refused rather than ignored. A cluster has database 0 only.
//!
//! The password is given apart, with [`password`](RedisStoreBuilder::password) (the facade and
//! the CLI read `PARTNER_AUTH_REDIS_PASSWORD` or `PARTNER_AUTH_REDIS_PASSWORD_FILE`), so that
//! it is in no URL, command line or message; a URL that carries one is accepted when no
//! password is given apart. A password from a file
//! ([`password_source`](RedisStoreBuilder::password_source)) is rotated under a running store:
//! the file's metadata is checked before each call and a changed file is read and connected
//! with at once; after Redis refuses the password the file is read once more whatever its
//! metadata says, and the call is made again when it holds another. Connections Redis keeps
//! open stay authenticated, so a server may switch passwords before or after the file does
//! (ACL users can hold both for the switch). TLS roots are the system's, or those in
//! `SSL_CERT_FILE`.
//!
//! An ACL user needs, on the prefix's keys (`~partner-auth:*`): `+@read +@write +@keyspace
//! +@scripting` (the scripts, `SCAN`, `DEL`), `+config|get` (the eviction check, unless its
//! risk is accepted), `+wait` with [`wait_for_replicas`](RedisStoreBuilder::wait_for_replicas),
//! and `+cluster|slots` on a cluster.
//!
//! # Keys and values
//!
//! For the store key `K` (provider, environment, tenant, principal: see [`StoreKey`]), the
//! prefix `P` (default `partner-auth:`; it may not hold a brace) and `T`, the first 64 bits of
//! SHA-256 of `K` in hex:
//!
//! | Redis key | holds | lifetime |
//! | --- | --- | --- |
//! | `P{T}:e:K` | `<version>:<entry>`: the record's version in decimal, then the [`FileStore`](token_provider::FileStore) format's entry of the record (`token_provider::encode_record`: the state, its version, a presentation under way, a refusal), or, with a key, `xc2:` and that entry sealed | the token's expiry plus a slack (default 60 s); with a refresh token, at least [`refresh_token_ttl`](RedisStoreBuilder::refresh_token_ttl) (default 30 days) |
//! | `P{T}:l:K` | the lock: a random token of its holder | the lease (default 15 s), extended while held |
//!
//! `{T}` is the keys' Redis Cluster hash tag: a principal's two keys always hash to one slot,
//! whatever `K` holds (a brace included), so the scripts that touch both need no change of
//! layout in a cluster. A value over [`MAX_VALUE_SIZE`] (1 MiB) is neither written nor read.
//!
//! A state with a refresh token is kept longer than its access token because the refresh token
//! is the part worth keeping: dropping it with the access token would send a refresh-token-only
//! principal back to a person for a new login, and lose a rotated one. One with neither expiry
//! nor refresh token is kept 7 days (the cache never uses such a token longer than that). The
//! record a `forget` leaves is kept as long as a refresh token, so that it outlives the states
//! replicas hold from before it.
//!
//! Builds before this layout (never released) wrote `P e:K`, `P f:K` (a fence) and `P l:K`,
//! without a hash tag. They are not read: after an upgrade each principal is fetched anew (a
//! refresh-token-only principal signs in again). The listing shows such keys as unreadable
//! entries, and [`remove`](TokenStore::remove) (so `forget` and `forget --all`) deletes them.
//! Do not run such a build and this one on one store at once: they do not see each other's
//! entries or locks.
//!
//! # Versions decide; the lock saves duplicate work
//!
//! - [`save_record`](TokenStore::save_record) is one script: it writes only when the version in
//!   the stored value's prefix is the one the writer read, or nothing is stored (flushed,
//!   evicted, restarted without persistence, forgotten); otherwise [`Error::StoreFenced`], and
//!   the cache reads again. Versions are compared as text, never as Lua numbers. A new version
//!   is above the one read and at least the time in Unix milliseconds, so a record saved anew
//!   over nothing is above every version the record reached before it went.
//! - [`lock`](TokenStore::lock) runs one script: `SET l <random> NX PX <lease>`, and when that
//!   succeeds, the stored entry, in one round trip; the entry answers the
//!   [`load_record`](TokenStore::load_record) that follows. A value at the lock's key that no
//!   holder sets (another type, or no expiry) is replaced, with a warning.
//! - A lock that is taken is polled with a backoff of 5 ms doubling to 100 ms (never past the
//!   holder's remaining lease) for at most [`lock_timeout`](RedisStoreBuilder::lock_timeout)
//!   (default 30 s, longer than the lease, so a dead holder's lease always runs out within one
//!   wait); then [`Error::StoreBusy`]. While the lock is held a task extends the lease every
//!   third of it.
//! - The lock is released (compare and delete: only while it holds the holder's token) on every
//!   path: by the save of a record with no presentation under way (the end of a holder's work,
//!   in the same script), on drop, and when the lock script's answer never came (a timeout, a
//!   caller that gave up), since the script may have run. A drop never blocks: the release
//!   runs on a task of its own ([`settle`] lets a short-lived program wait for it).
//!
//! A lease can lapse (a pause, a flush, an eviction of the lock's key): then a second holder
//! finds the first one's presentation recorded and waits for its answer rather than presenting
//! the same refresh token, and the first one's save still succeeds, since the version it read is
//! still stored (or nothing is). So the replica that fetches makes 2 round trips per expiry
//! (lock, save-and-release), 3 with a refresh token (the presentation is recorded first), and
//! one that adopts makes 2 (lock, release), plus one per poll while another holds the lock.
//! Each script is loaded once per connection; a restart of Redis costs one reload.
//!
//! # Replicas whose clocks disagree
//!
//! Each saved entry records when its writer saved it (by the writer's clock) and the lifetime
//! Redis is asked to keep it for; a reader takes the entry's age from what is left of that
//! lifetime (Redis's clock) and moves the entry's times onto its own clock
//! ([`StoreRecord::rebased`](token_provider::StoreRecord::rebased)), so a replica 10 minutes
//! slow does not serve a token 10 minutes past the time a fast one saved it to die. The store's
//! [`clock`](crate::RedisStoreBuilder::clock) must be the cache's (both default to the system
//! clock). Assumed: Redis keeps expiries as absolute times, so a failover to a replica whose
//! clock differs from the primary's shifts every entry's age by the difference.
//!
//! # When Redis is down, refuses, or is set to lose data
//!
//! What Redis refuses is reported by Redis's own error code as [`Error::Config`] naming the
//! server (never its password): a missing or wrong password (`NOAUTH`, `WRONGPASS`), a
//! command the ACL user may not run (`NOPERM`), a TLS certificate the trusted roots do not
//! vouch for (the message names `SSL_CERT_FILE`), a full server (`OOM`), a value of another
//! type (`WRONGTYPE`), a cluster named as one server (`MOVED`, `CROSSSLOT`) or one server named
//! as a cluster, a replica (`READONLY`), a database out of range. No retry fixes these, and no
//! token is ever fetched around them.
//!
//! Every call is bounded by [`timeout`](RedisStoreBuilder::timeout) (default 2 s) and a connection
//! attempt by [`connect_timeout`](RedisStoreBuilder::connect_timeout); past it, and on a refused
//! or dropped connection, or a server still loading its data or a cluster not ready, the call
//! fails with [`Error::StoreUnavailable`] naming the server (never its password). Callers holding a valid token keep getting it (hits never touch Redis,
//! and a failed refresh in the soft window keeps serving the token). A caller with none gets one
//! fetched without the store only when the provider's grant is safe to repeat (client
//! credentials, a password grant, an application key:
//! [`Fetch::repeatable_without_store`](token_provider::Fetch::repeatable_without_store)); a
//! principal with only a refresh token, or a single-use session token, gets the error instead.
//! The connection is re-made in the background once Redis is back.
//!
//! When the connection is first made, the store reads `CONFIG GET maxmemory-policy` and refuses
//! a server that evicts keys (`allkeys-*`, or `volatile-*`: every key here has a lifetime) with
//! [`Error::Config`] naming `maxmemory-policy` and the fix (`noeviction`); a server where
//! `CONFIG` is refused is refused the same way. [`accept_eviction_risk`](RedisStoreBuilder::accept_eviction_risk)
//! takes either with one warning instead. A restart without persistence loses every entry
//! all the same: the records survive it (a save over nothing succeeds), the refresh tokens do
//! not.
//!
//! With [`wait_for_replicas`](RedisStoreBuilder::wait_for_replicas), each save is followed by
//! `WAIT` on the connection that wrote it (a script may not wait); a save the replicas did not
//! acknowledge in time fails with [`Error::StoreUnavailable`] (the cache keeps and serves the
//! state, and reports the failure through its `store_error`), and a presentation not
//! acknowledged stops that refresh before the refresh token is sent. The store's other calls
//! queue behind a `WAIT` on the shared connection, for at most its timeout.
//!
//! # Values this store did not write
//!
//! A value that is not this store's (no readable version, a garbled one, bytes that are not the
//! entry format, a hash or list at an entry's key, a value over [`MAX_VALUE_SIZE`], read by
//! length only) is that entry's error in every read and in the listing, never "no entry", and
//! is never overwritten by a save: `partner-auth forget` removes it, whatever it is. The
//! listing ([`entries`](TokenStore::entries), so `partner-auth status` and `forget --all`)
//! covers every key under the prefix that any build of this store writes; others are logged
//! and left alone, as is everything outside the prefix.
//!
//! # Encryption at rest
//!
//! With a [`SealKey`] (32 bytes in base64; the facade and the CLI read `PARTNER_AUTH_STORE_KEY`)
//! every stored entry is sealed with XChaCha20-Poly1305 (a random 24-byte nonce per save), bound
//! to its version and its full Redis key (`<version>:<key>` as associated data), and the sealed
//! record repeats the version. So a value copied to another principal's key, given another
//! version in its prefix, altered, or read under another key does not open, and the load fails
//! with an error saying so. It is never served, and nothing panics. With a key configured,
//! entries stored in clear are refused too (someone who can write Redis must not be able to
//! plant a token).
//!
//! The key can be rotated with [`SealKeys`] ([`RedisStoreBuilder::seal_keys`];
//! `PARTNER_AUTH_STORE_KEY` takes a list, the current key first): entries sealed under an older
//! key are read and sealed under the current one at their next save, and
//! [`listing`](TokenStore::listing) says which key sealed each (`partner-auth status` shows its
//! fingerprint). [Rotating the key](token_provider::seal#rotating-the-key) gives the three steps
//! that roll a new key through a fleet with no replica unable to read another's entries.
//!
//! What sealing cannot prevent: whoever can write Redis can delete, and can write back a value
//! this store sealed earlier for the same key (a rollback, even to a state from before a
//! `forget`). A store remembers the highest version it has read or written of each key (up to
//! 100,000 keys) and refuses a lower one as that entry's error, and after it removes a key, that
//! version too; a process that never saw the newer version (one just started) cannot tell. (Versions are at least the writer's clock in
//! milliseconds: a record saved anew over nothing, by a replica whose clock is behind, within
//! that lag of the last save another process saw, reads as older to that process until the
//! record is saved again.) A deletion reads as a flush: the next fetch starts over. **Without a key, whoever can read Redis (or its snapshots and replicas) can read
//! every access and refresh token in it.** Use `rediss://` (TLS) when the connection leaves the
//! host.
//!
//! # Why the `redis` crate
//!
//! `redis` (redis-rs) is the most used Rust client, kept by the Redis organisation, and has what
//! this store needs and no more: a tokio connection manager that reconnects by itself, response
//! and connection timeouts, server-side scripts with `EVALSHA` and a reload on `NOSCRIPT`, and
//! TLS through rustls (the workspace's one TLS stack; no OpenSSL), and the cluster protocol
//! (`cluster-async`: commands routed by their keys' slot). `fred` has more (pools, sentinel,
//! client-side caching) that a lock and two keys per principal do not use, and a larger build.
//!
//! On a cluster, a principal's keys share one slot (their hash tag), so every script runs on
//! one master; the listing scans every master (found with `CLUSTER SLOTS`) and reads one
//! principal a call, and a removal deletes the keys of the layout before hash tags one by one
//! (they lie in other slots). `wait_for_replicas` waits for the replicas of the master that
//! wrote.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod client;
mod codec;
mod errors;
mod keys;
mod lease;
mod scripts;
mod store;
mod target;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use crate::builder::{DEFAULT_PREFIX, RedisStoreBuilder};
pub use crate::codec::MAX_VALUE_SIZE;
pub use crate::lease::settle;
pub use crate::store::RedisStore;
pub use token_provider::seal::{SealKey, SealKeys};

#[cfg(doc)]
use token_provider::{Error, StoreKey, TokenStore};
