//! An Aerion service that keeps its refresh token in a file store, so a restart neither logs in
//! again nor loses the rotated refresh token.
//!
//! ```sh
//! cargo run --example aerion_file_store
//! ```
//!
//! Aerion answers every refresh with a new refresh token and revokes the old one. The store
//! writes each new one (atomically, mode 0600) before it can be used again, and its lock keeps
//! two processes sharing the file from spending the same one. Offline, the emulator plays Aerion.

use std::sync::Arc;

use partner_auth::aerion::Aerion;
use partner_auth::{FileStore, TokenProvider, TokenStore};
use partner_auth_emulator::Emulator;

fn service(
    emulator: &partner_auth_emulator::RunningEmulator,
    store: Arc<dyn TokenStore>,
) -> Result<Aerion, partner_auth::Error> {
    let user = &emulator.config().aerion_users[0];
    Aerion::builder()
        .base_url(emulator.aerion_base())
        .company_url(emulator.aerion_tenant())
        .username(user.username.clone())
        .password(user.password.clone())
        .store(store)
        .build()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = Emulator::start().await?;
    let dir = std::env::temp_dir().join(format!("partner-auth-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("aerion-tokens.json");
    let store: Arc<dyn TokenStore> = Arc::new(FileStore::new(&path));

    // First start: a password login; the state is saved.
    let first = service(&emulator, Arc::clone(&store))?;
    let token = first.get().await?;
    println!("first start: logged in, {token:?}");
    println!("  me: {:?}", first.me().await?);

    // A restart (a new provider on the same file): the saved token is used, no request sent.
    let before = emulator.requests_to("/aerion/oauth2/token").len();
    let restarted = service(&emulator, Arc::clone(&store))?;
    restarted.get().await?;
    println!(
        "restart: token from {}, {} token request(s)",
        path.display(),
        emulator.requests_to("/aerion/oauth2/token").len() - before
    );

    // The token is refused (as after a server-side revocation): the next one comes from the
    // stored refresh token, and the rotated refresh token is saved.
    restarted.invalidate(&restarted.get().await?);
    restarted.get().await?;
    let grants: Vec<_> = emulator
        .requests_to("/aerion/oauth2/token")
        .iter()
        .filter_map(|r| r.form_param("grant_type"))
        .collect();
    println!("grants sent so far: {grants:?}");
    std::fs::remove_dir_all(&dir)?;
    emulator.shutdown().await;
    Ok(())
}
