//! `examples/prometheus.rs` against the emulator: the text a scrape gets names every metric the
//! fetches recorded, with the counts they made, and nothing secret or principal.

use partner_auth_emulator::Emulator;

#[allow(dead_code)]
#[path = "../examples/prometheus.rs"]
mod prometheus;

#[tokio::test]
async fn the_prometheus_example_renders_the_metrics_of_its_fetches() {
    let handle = prometheus::install().unwrap();
    let emulator = Emulator::start().await.unwrap();
    let text = prometheus::run(&emulator, &handle).await.unwrap();

    for line in [
        r#"partner_auth_fetches_total{provider="aurora-uk",outcome="ok"} 1"#,
        r#"partner_auth_fetches_total{provider="aurora-solar",outcome="ok"} 1"#,
        r#"partner_auth_fetches_total{provider="aerion",outcome="rejected"} 1"#,
        r#"partner_auth_hits_total{provider="aurora-uk"} 9"#,
        r#"partner_auth_hits_total{provider="aurora-solar"} 4"#,
        r#"partner_auth_http_retries_total{provider="aurora-uk",outcome="unavailable"} 1"#,
        r#"partner_auth_principals_cached{provider="aurora-uk"} 1"#,
        r#"partner_auth_principals_cached{provider="aurora-solar"} 1"#,
        r#"partner_auth_fetch_duration_seconds_count{provider="aurora-uk",outcome="ok"} 1"#,
        "# TYPE partner_auth_fetches_total counter",
        "# TYPE partner_auth_principals_cached gauge",
        "# HELP partner_auth_fetches_total Token fetches ended, by provider and outcome.",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }

    // Nothing of a principal or a credential: the tenant, the users, the secrets.
    let c = emulator.config();
    let mut never = vec![
        emulator.aurora_solar_tenant().to_owned(),
        emulator.aerion_tenant().to_owned(),
    ];
    never.extend(
        c.aerion_users
            .iter()
            .flat_map(|u| [u.username.clone(), u.password.clone()]),
    );
    never.extend(
        emulator
            .env_vars()
            .into_iter()
            .filter(|(name, _)| {
                name.ends_with("_SECRET") || name.ends_with("_KEY") || name.ends_with("_PASSWORD")
            })
            .map(|(_, value)| value),
    );
    for value in never {
        assert!(
            !value.is_empty() && !text.contains(&value),
            "`{value}` in:\n{text}"
        );
    }
    emulator.shutdown().await;
}
