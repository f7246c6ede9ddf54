//! Metrics exported to Prometheus: the `metrics` feature reports through the `metrics` facade,
//! and `metrics-exporter-prometheus` renders what it recorded as Prometheus text, against the
//! built-in emulator on loopback.
//!
//! ```sh
//! cargo run --example prometheus --features metrics
//! ```
//!
//! It installs the exporter's recorder (before building any provider: a gauge counts up and down
//! from what the recorder saw), then fetches through three providers: Aurora UK, whose token
//! endpoint answers one 503 first (one HTTP retry), an Aurora Solar partner app's tenant, and
//! Aerion with a wrong password (one rejected fetch; the failure is held, so the calls after it
//! send nothing). It prints what a scrape would get. A service serves `handle.render()` on its
//! own `/metrics` route, or turns on the exporter's `http-listener` feature instead.

use std::collections::HashMap;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use partner_auth::TokenProvider;
use partner_auth::aerion::Aerion;
use partner_auth::aurora_solar::PartnerAppBuilder;
use partner_auth::aurora_uk::AuroraUkBuilder;
use partner_auth::token_provider::{BoxError, metrics as auth_metrics};
use partner_auth_emulator::{Emulator, Endpoint, Fault, RunningEmulator};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let handle = install()?;
    let emulator = Emulator::start().await?;
    print!("{}", run(&emulator, &handle).await?);
    emulator.shutdown().await;
    Ok(())
}

/// Installs the Prometheus recorder for the whole process and describes the metrics to it (the
/// `# HELP` lines).
pub(crate) fn install() -> Result<PrometheusHandle, BoxError> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    auth_metrics::describe();
    Ok(handle)
}

/// The fetches against `emulator`, then the text a scrape would get.
pub(crate) async fn run(
    emulator: &RunningEmulator,
    handle: &PrometheusHandle,
) -> Result<String, BoxError> {
    let vars: HashMap<&str, String> = emulator.env_vars().into_iter().collect();
    let lookup = |name: &str| vars.get(name).cloned();

    // Aurora UK: one 503 from the token endpoint (retried), then a token; ten calls, nine hits.
    emulator.inject(Endpoint::AuroraUkToken, Fault::Status(503), 1);
    let aurora_uk = AuroraUkBuilder::from_env_with(lookup)?.build()?;
    for _ in 0..10 {
        aurora_uk.get().await?;
    }

    // Aurora Solar: one tenant of a partner app; five calls, four hits.
    let app = PartnerAppBuilder::from_env_with(lookup)?.build()?;
    let tenant = app.tenant(emulator.aurora_solar_tenant())?;
    for _ in 0..5 {
        tenant.get().await?;
    }

    // Aerion with a wrong password: one rejected fetch, its failure held for the calls after it.
    let user = &emulator.config().aerion_users[0];
    let refused = Aerion::builder()
        .base_url(emulator.aerion_base())
        .company_url(emulator.aerion_tenant())
        .username(user.username.clone())
        .password("not-the-password")
        .build()?;
    for _ in 0..3 {
        if refused.get().await.is_ok() {
            return Err("the emulator accepted a wrong password".into());
        }
    }

    // Hits are published from slow paths (a fetch, a sweep); `publish` makes them exact now,
    // as a service would before each scrape.
    auth_metrics::publish();
    Ok(handle.render())
}
