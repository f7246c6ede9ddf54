//! `partner-auth forget`: the configured principal's stored state, or every entry, removed under
//! the store's lock (the file rewritten atomically), refresh tokens included.

use std::sync::Arc;

use partner_auth::{Error, StoreKey, TokenProvider};

use crate::args::ForgetArgs;
use crate::exit::Failure;
use crate::setup::{self, Lookup};

/// Removes what `args` names and returns the line that says what went.
pub(crate) async fn run(args: &ForgetArgs, lookup: Lookup<'_>) -> Result<String, Failure> {
    let store = setup::required_store(args.store.store.as_deref(), lookup, "forget")?;
    let Some(provider) = args.provider else {
        // --all
        let fail = |e: Error| Failure::from_error(None, &e);
        let (mut removed, mut refresh_tokens) = (0, 0);
        for (key, state) in store.entries().await.map_err(fail)? {
            let lock = store.lock(&key).await.map_err(fail)?;
            if store.remove(&key, &lock).await.map_err(fail)? {
                removed += 1;
                refresh_tokens += usize::from(state.refresh_token.is_some());
            }
        }
        let entries = if removed == 1 { "entry" } else { "entries" };
        return Ok(match (removed, refresh_tokens) {
            (0, _) => "the store held no entries\n".to_owned(),
            (_, 0) => format!("forgot {removed} {entries} (no refresh token was held)\n"),
            (_, 1) => format!("forgot {removed} {entries} and 1 refresh token\n"),
            (_, r) => format!("forgot {removed} {entries} and {r} refresh tokens\n"),
        });
    };
    let kind = provider.kind();
    let fail = |e: Error| Failure::from_error(Some(kind), &e);
    let options = setup::options(lookup, Some(Arc::clone(&store))).map_err(fail)?;
    let provider = setup::provider(kind, lookup, &options).map_err(fail)?;
    // The entries on either side of the removal say whether a refresh token went with it (the
    // provider alone knows which key is its principal's).
    let before = store.entries().await.map_err(fail)?;
    if !provider.forget().await.map_err(fail)? {
        return Ok(format!(
            "{kind}: nothing was stored for the configured principal\n"
        ));
    }
    let after: Vec<StoreKey> = store
        .entries()
        .await
        .map_err(fail)?
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let had_refresh_token = before
        .iter()
        .filter(|(key, _)| !after.contains(key))
        .any(|(_, state)| state.refresh_token.is_some());
    Ok(if had_refresh_token {
        format!(
            "{kind}: forgot the stored token and its refresh token (the next run signs in again)\n"
        )
    } else {
        format!("{kind}: forgot the stored token (no refresh token was held)\n")
    })
}
