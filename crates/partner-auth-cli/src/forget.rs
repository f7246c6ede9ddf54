//! `partner-auth forget`: the configured principal's stored state, or every entry, removed under
//! the store's lock (the file rewritten atomically), refresh tokens included.

use std::sync::Arc;

use partner_auth::{Error, StoreKey, TokenProvider};

use crate::args::ForgetArgs;
use crate::exit::Failure;
use crate::setup::{self, Lookup};

/// Removes what `args` names and returns the line that says what went.
pub(crate) async fn run(args: &ForgetArgs, lookup: Lookup<'_>) -> Result<String, Failure> {
    let store = setup::required_store(
        lookup,
        args.store.store.as_deref(),
        "forget",
        args.provider.map(|p| p.kind()),
    )?;
    let Some(provider) = args.provider else {
        // --all
        let fail = |e: Error| Failure::from_error(None, &e);
        let (mut removed, mut refresh_tokens, mut unreadable) = (0, 0, 0);
        // An entry whose state cannot be read (sealed under another key, damaged) goes too: its
        // key is all a removal needs.
        for (key, state) in store.entries().await.map_err(fail)? {
            let lock = store.lock(&key).await.map_err(fail)?;
            if store.remove(&key, &lock).await.map_err(fail)? {
                removed += 1;
                match state {
                    Ok(state) => refresh_tokens += usize::from(state.refresh_token.is_some()),
                    Err(_) => unreadable += 1,
                }
            }
        }
        let entries = if removed == 1 { "entry" } else { "entries" };
        // What an unreadable entry held is unknown: refresh tokens are counted among the others.
        return Ok(match (removed, unreadable, refresh_tokens) {
            (0, _, _) => "the store held no entries\n".to_owned(),
            (_, 0, 0) => format!("forgot {removed} {entries} (no refresh token was held)\n"),
            (_, 0, 1) => format!("forgot {removed} {entries} and 1 refresh token\n"),
            (_, 0, r) => format!("forgot {removed} {entries} and {r} refresh tokens\n"),
            (_, u, 0) => format!("forgot {removed} {entries} ({u} unreadable)\n"),
            (_, u, 1) => format!(
                "forgot {removed} {entries} ({u} unreadable) and 1 refresh token among the others\n"
            ),
            (_, u, r) => format!(
                "forgot {removed} {entries} ({u} unreadable) and {r} refresh tokens among the others\n"
            ),
        });
    };
    let kind = provider.kind();
    let fail = |e: Error| Failure::from_error(Some(kind), &e);
    let options = setup::options(lookup, Some(Arc::clone(&store))).map_err(fail)?;
    let provider = setup::provider(lookup, kind, &options).map_err(fail)?;
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
    // What the entries that went held: a refresh token, none, or a state that could not be read.
    let gone: Vec<_> = before
        .iter()
        .filter(|(key, _)| !after.contains(key))
        .map(|(_, state)| state.as_ref().map(|s| s.refresh_token.is_some()))
        .collect();
    Ok(if gone.iter().any(|held| matches!(held, Ok(true))) {
        format!(
            "{kind}: forgot the stored token and its refresh token (the next run signs in again)\n"
        )
    } else if gone.iter().any(Result::is_err) {
        format!("{kind}: forgot the stored entry (its state could not be read)\n")
    } else {
        format!("{kind}: forgot the stored token (no refresh token was held)\n")
    })
}
