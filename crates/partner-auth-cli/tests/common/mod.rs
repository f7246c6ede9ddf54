//! Runs the built `partner-auth` binary with a clean environment and checks what it printed.

#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod emu;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub use token_provider::testing::TempDir;

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Asserts the exit code, showing the output when it is not that.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit status: {self:#?}");
        self
    }

    /// Asserts a successful run printed exactly `token` and a newline, and nothing on stderr.
    #[track_caller]
    pub fn assert_token(&self, token: &str) -> &Self {
        self.assert_code(0);
        assert_eq!(self.stdout, format!("{token}\n"));
        assert_eq!(self.stderr, "");
        self
    }

    /// Asserts a failed run: nothing on stdout, one line on stderr starting
    /// `partner-auth: <provider>: ` and containing every one of `needles`.
    #[track_caller]
    pub fn assert_failure(&self, code: i32, provider: &str, needles: &[&str]) -> &Self {
        self.assert_code(code);
        assert_eq!(self.stdout, "", "stdout must stay empty on failure");
        assert_one_line(&self.stderr);
        let prefix = format!("partner-auth: {provider}: ");
        assert!(
            self.stderr.starts_with(&prefix),
            "stderr does not start with {prefix:?}: {:?}",
            self.stderr
        );
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr lacks {needle:?}: {:?}",
                self.stderr
            );
        }
        self
    }

    /// Asserts neither stream carries any of `secrets` (stdout is checked only when it must not
    /// hold a token).
    #[track_caller]
    pub fn assert_no_secret_in_stderr(&self, secrets: &[&str]) -> &Self {
        for secret in secrets {
            assert!(!secret.is_empty());
            assert!(
                !self.stderr.contains(secret),
                "stderr leaks a secret: {:?}",
                self.stderr
            );
        }
        self
    }
}

/// Asserts `stderr` is exactly one non-empty line.
#[track_caller]
pub fn assert_one_line(stderr: &str) {
    assert!(
        stderr.ends_with('\n'),
        "stderr must end with a newline: {stderr:?}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "stderr must be one line: {stderr:?}"
    );
    assert!(!stderr.trim().is_empty());
}

/// The binary with `args` and an empty environment plus `vars`.
pub fn command(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_partner-auth"));
    // The developer's own variables (a real AERION_PASSWORD, say) must never reach a test.
    cmd.env_clear();
    cmd.args(args);
    for (name, value) in vars {
        cmd.env(name, value);
    }
    cmd
}

/// Runs `cmd` to completion.
pub fn run(mut cmd: Command) -> Run {
    // The wall time of a child process is what is measured; no injected clock applies to it.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let out = cmd.output().expect("the partner-auth binary runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        elapsed: started.elapsed(),
    }
}

/// `run` off the async runtime, so an in-process server keeps serving meanwhile.
pub async fn run_async(cmd: Command) -> Run {
    tokio::task::spawn_blocking(move || run(cmd))
        .await
        .expect("the run task completes")
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("a local address").port()
}

/// The mode bits of a file.
#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}
