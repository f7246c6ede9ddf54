//! An embedded Aurora Solar app: Aurora loads your frontend with `aurora_session_token`, and
//! your backend exchanges it, with the application key, for the tenant's temporary key.
//!
//! ```sh
//! cargo run --example embedded_aurora_solar
//! ```
//!
//! A session token is single use: the provider sends it once, never retries it after it may
//! have reached Aurora, and refuses locally to send it again (a new one is needed, from a new
//! load of the app). Offline, the emulator issues the session token.

use partner_auth::aurora_solar::PartnerApp;
use partner_auth_emulator::Emulator;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = Emulator::start().await?;
    let config = emulator.config();
    let tenant = emulator.aurora_solar_tenant().to_owned();

    let app = PartnerApp::builder()
        .base_url(emulator.aurora_solar_base())
        .application_id(config.aurora_solar_application_id.clone())
        .application_key(config.aurora_solar_application_key.clone())
        .build()?;

    // What the frontend received from Aurora for this load of the app.
    let session_token = emulator.issue_session_token(&tenant);

    let key = app.embedded(&tenant, session_token.clone())?;
    let temporary = key.get().await?;
    println!("temporary key for tenant {tenant}: {temporary:?}");
    println!(
        "second call, from the cache: same key = {}",
        key.get().await? == temporary
    );

    // The same session token again (say, a second request handled by another provider value):
    // the emulator, like Aurora, refuses a spent token; the error says what the user must do.
    let again = app.embedded(&tenant, session_token)?;
    match again.get().await {
        Ok(_) => println!("unexpected: a spent session token was accepted"),
        Err(e) => println!(
            "spent session token: {e} (needs user action: {})",
            e.needs_user_action()
        ),
    }
    emulator.shutdown().await;
    Ok(())
}
