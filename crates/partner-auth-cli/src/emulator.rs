//! `partner-auth emulator`: the built-in emulator in the foreground, so someone who installed
//! only the binary can try every command offline.

use std::io::Write;

use partner_auth_emulator::Emulator;

use partner_auth::Error;

use crate::args::EmulatorArgs;
use crate::exit::{EXIT_UNAVAILABLE, Failure};
use crate::setup::{Lookup, var};

/// The variable the emulator's port comes from when `--port` is not given (the same one the
/// `partner-auth-emulator` program reads).
pub(crate) const PORT_VAR: &str = "PARTNER_AUTH_EMULATOR_PORT";

/// Serves the emulator on `127.0.0.1` until Ctrl-C (or SIGTERM), after printing the lines that
/// point the CLI at it.
pub(crate) async fn run(args: &EmulatorArgs, lookup: Lookup<'_>) -> Result<(), Failure> {
    let port = match args.port {
        Some(port) => port,
        None => port_from(var(lookup, PORT_VAR).as_deref())
            .map_err(|e| Failure::from_error(None, &e))?,
    };
    let emulator = Emulator::builder().port(port).start().await.map_err(|e| {
        Failure::new(
            EXIT_UNAVAILABLE,
            None,
            format!("emulator: cannot listen on 127.0.0.1:{port}: {e}"),
        )
    })?;
    let mut stdout = std::io::stdout().lock();
    // Printed in one piece and flushed: a script reading the lines through a pipe gets them
    // while the emulator runs.
    let printed = write!(stdout, "{}", emulator.banner()).and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(e) = printed {
        emulator.shutdown().await;
        return Err(Failure::new(
            EXIT_UNAVAILABLE,
            None,
            format!("emulator: cannot write to stdout: {e}"),
        ));
    }
    eprintln!(
        "partner-auth: emulator: serving on {} until Ctrl-C",
        emulator.url()
    );
    stopped().await;
    emulator.shutdown().await;
    Ok(())
}

/// `PARTNER_AUTH_EMULATOR_PORT` read: unset is 0 (a free port), a number up to 65535 that port;
/// anything else an error naming the variable (the value is not quoted).
fn port_from(value: Option<&str>) -> Result<u16, Error> {
    match value.map(str::trim) {
        None => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| Error::config(PORT_VAR, "must be a port number from 0 to 65535")),
    }
}

/// Waits for Ctrl-C, or SIGTERM where there is one.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
