//! `partner-auth-emulator [--port N]`: serves the emulator on `127.0.0.1` until Ctrl-C and
//! prints the `export` lines that point the `partner-auth` CLI and the examples at it.

use std::process::ExitCode;

use partner_auth_emulator::Emulator;

const USAGE: &str = "usage: partner-auth-emulator [--port N]
Serves the Aerion, Aurora UK and Aurora Solar emulator on 127.0.0.1 until Ctrl-C and prints
the `export` lines for the partner-auth CLI and the examples (emulator-only test credentials).
The port comes from --port, else PARTNER_AUTH_EMULATOR_PORT, else a free one.";

fn port_from(args: &[String], env: Option<String>) -> Result<u16, String> {
    let mut port = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--port" => args
                .next()
                .ok_or_else(|| "--port needs a value".to_owned())?
                .clone(),
            other => match other.strip_prefix("--port=") {
                Some(v) => v.to_owned(),
                None => return Err(format!("unknown argument {other:?}")),
            },
        };
        port = Some(value);
    }
    match port.or(env.filter(|v| !v.trim().is_empty())) {
        None => Ok(0),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("the port must be a number from 0 to 65535, not {v:?}")),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = match port_from(&args, std::env::var("PARTNER_AUTH_EMULATOR_PORT").ok()) {
        Ok(port) => port,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("partner-auth-emulator: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let emulator = match Emulator::builder().port(port).start().await {
        Ok(emulator) => emulator,
        Err(e) => {
            eprintln!("partner-auth-emulator: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::from(1);
        }
    };
    print!("{}", emulator.banner());
    eprintln!("serving until Ctrl-C");
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("partner-auth-emulator: cannot wait for Ctrl-C: {e}");
    }
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::port_from;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn port_comes_from_flag_then_env_then_zero() {
        assert_eq!(
            port_from(&args(&["--port", "8080"]), Some("9".into())),
            Ok(8080)
        );
        assert_eq!(port_from(&args(&["--port=81"]), None), Ok(81));
        assert_eq!(port_from(&args(&[]), Some("9090".into())), Ok(9090));
        assert_eq!(port_from(&args(&[]), Some(" ".into())), Ok(0));
        assert_eq!(port_from(&args(&[]), None), Ok(0));
        assert!(port_from(&args(&["--port", "x"]), None).is_err());
        assert!(port_from(&args(&["--port"]), None).is_err());
        assert!(port_from(&args(&["--bogus"]), None).is_err());
        assert_eq!(port_from(&args(&["--help"]), None), Err(String::new()));
    }
}
