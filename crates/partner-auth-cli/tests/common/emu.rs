//! The emulator side of the tests: its variables per provider, its secrets, and runs of the
//! binary against it.

use base64::Engine;
use partner_auth::ProviderKind;
use partner_auth_emulator::{Emulator, Endpoint, RunningEmulator};

use super::{Run, command, run_async};

pub const PROVIDERS: [&str; 4] = ["aerion", "aurora-uk", "aurora-solar", "aurora-solar-sdk"];

/// The endpoint that issues each provider's token.
pub fn token_endpoint(provider: &str) -> Endpoint {
    match provider {
        "aerion" => Endpoint::AerionToken,
        "aurora-uk" => Endpoint::AuroraUkToken,
        "aurora-solar" => Endpoint::AuroraSolarCreateToken,
        "aurora-solar-sdk" => Endpoint::AuroraSolarGenerateToken,
        other => panic!("unknown provider {other}"),
    }
}

/// The emulator's variables for `provider` (only those the provider reads).
pub fn vars(emu: &RunningEmulator, provider: &str) -> Vec<(&'static str, String)> {
    let kind: ProviderKind = provider.parse().expect("a provider name");
    let names: Vec<&str> = kind.settings().iter().map(|(_, var)| *var).collect();
    let vars: Vec<_> = emu
        .env_vars()
        .into_iter()
        .filter(|(name, _)| names.contains(name))
        .collect();
    assert!(!vars.is_empty());
    vars
}

pub fn set(vars: &mut Vec<(&'static str, String)>, name: &'static str, value: &str) {
    vars.retain(|(n, _)| *n != name);
    vars.push((name, value.to_owned()));
}

pub fn unset(vars: &mut Vec<(&'static str, String)>, name: &str) {
    let before = vars.len();
    vars.retain(|(n, _)| *n != name);
    assert_eq!(before, vars.len() + 1, "{name} was not set");
}

/// Every credential the emulator's variables carry.
pub fn secrets(emu: &RunningEmulator) -> Vec<String> {
    let secret_vars = [
        "AERION_PASSWORD",
        "AERION_CLIENT_SECRET",
        "AERION_REFRESH_TOKEN",
        "AURORA_UK_CLIENT_SECRET",
        "AURORA_SOLAR_APPLICATION_KEY",
        "AURORA_SOLAR_API_KEY",
        "AURORA_SOLAR_SESSION_TOKEN",
    ];
    emu.env_vars()
        .into_iter()
        .filter(|(n, _)| secret_vars.contains(n))
        .map(|(_, v)| v)
        .collect()
}

/// Runs `partner-auth token <provider> <extra>` with exactly `vars`.
pub async fn partner_auth(provider: &str, vars: &[(&'static str, String)], extra: &[&str]) -> Run {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut args = vec!["token", provider];
    args.extend_from_slice(extra);
    run_async(command(&args, &vars)).await
}

/// Asserts a failure with one clean line that leaks none of `secrets`.
#[track_caller]
pub fn assert_failed(out: &Run, code: i32, provider: &str, needles: &[&str], secrets: &[String]) {
    out.assert_failure(code, provider, needles);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    out.assert_no_secret_in_stderr(&secrets);
}

pub fn token_of(out: &Run) -> String {
    out.assert_code(0);
    assert_eq!(out.stderr, "");
    let token = out
        .stdout
        .strip_suffix('\n')
        .expect("a newline after the token");
    assert!(!token.is_empty() && !token.contains(char::is_whitespace));
    token.to_owned()
}

/// Whether the emulator accepts `token` as one it issued for `provider` (its protected
/// resource answers 200; a Client SDK JWT's claims name the configured user).
pub async fn emulator_issued(emu: &RunningEmulator, provider: &str, token: &str) -> bool {
    let url = match provider {
        "aerion" => format!("{}/v1/users/me", emu.aerion_base()),
        "aurora-uk" => format!("{}/Accounts", emu.aurora_uk_api_base()),
        "aurora-solar" => format!(
            "{}/tenants/{}/projects",
            emu.aurora_solar_base(),
            emu.aurora_solar_tenant()
        ),
        "aurora-solar-sdk" => {
            let claims = jwt_claims(token);
            let email = &emu.config().aurora_solar_users[0].email;
            return claims["email"] == email.as_str() && claims["exp"].is_i64();
        }
        other => panic!("unknown provider {other}"),
    };
    let client = partner_auth::HttpClient::new().expect("a client");
    let response = client
        .reqwest()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("the emulator answers");
    response.status().as_u16() == 200
}

pub fn jwt_claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// [`emulator`], and a new scratch folder named after `name`.
pub async fn emulator_and_folder(name: &str) -> (RunningEmulator, super::TempDir) {
    (emulator().await, super::TempDir::new(name))
}

/// [`emulator_and_folder`], and the path of the store file `file` in that folder.
pub async fn emulator_and_store(
    name: &str,
    file: &str,
) -> (RunningEmulator, super::TempDir, std::path::PathBuf) {
    let (emu, dir) = emulator_and_folder(name).await;
    let store = dir.join(file);
    (emu, dir, store)
}

pub async fn emulator() -> RunningEmulator {
    Emulator::builder()
        .start()
        .await
        .expect("the emulator starts")
}
