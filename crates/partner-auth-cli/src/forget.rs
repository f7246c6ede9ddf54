//! `partner-auth forget`: the configured principal's stored state, or every entry, removed under
//! the store's lock (the file rewritten atomically), refresh tokens included.

use partner_auth::{Error, TokenProvider};

use crate::args::ForgetArgs;
use crate::exit::Failure;
use crate::setup::{self, Lookup};

/// Removes what `args` names and returns the line that says what went.
pub(crate) async fn run(args: &ForgetArgs, lookup: Lookup<'_>) -> Result<String, Failure> {
    let store = setup::required_store(args.store.store.as_deref(), lookup, "forget")?;
    let Some(provider) = args.provider else {
        // --all
        let fail = |e: Error| Failure::from_error(None, &e);
        let mut removed = 0;
        for (key, _) in store.entries().await.map_err(fail)? {
            let lock = store.lock(&key).await.map_err(fail)?;
            if store.remove(&key, &lock).await.map_err(fail)? {
                removed += 1;
            }
        }
        return Ok(match removed {
            0 => "the store held no entries\n".to_owned(),
            1 => "forgot 1 entry and any refresh token it held\n".to_owned(),
            n => format!("forgot {n} entries and any refresh tokens they held\n"),
        });
    };
    let kind = provider.kind();
    let fail = |e: Error| Failure::from_error(Some(kind), &e);
    let options = setup::options(lookup, Some(store)).map_err(fail)?;
    let provider = setup::provider(kind, lookup, &options).map_err(fail)?;
    Ok(if provider.forget().await.map_err(fail)? {
        format!("{kind}: forgot the stored token and any refresh token held with it\n")
    } else {
        format!("{kind}: nothing was stored for the configured principal\n")
    })
}
