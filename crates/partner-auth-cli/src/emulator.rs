//! `partner-auth emulator`: the built-in emulator in the foreground, so someone who installed
//! only the binary can try every command offline.

use std::io::Write;

use partner_auth_emulator::Emulator;

use crate::args::EmulatorArgs;
use crate::exit::{EXIT_UNAVAILABLE, Failure};

/// Serves the emulator on `127.0.0.1` until Ctrl-C (or SIGTERM), after printing the lines that
/// point the CLI at it.
pub(crate) async fn run(args: &EmulatorArgs) -> Result<(), Failure> {
    let emulator = Emulator::builder()
        .port(args.port)
        .start()
        .await
        .map_err(|e| {
            Failure::new(
                EXIT_UNAVAILABLE,
                None,
                format!("emulator: cannot listen on 127.0.0.1:{}: {e}", args.port),
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
