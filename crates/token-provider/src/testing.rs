//! Test support shared by every crate of the workspace (feature `testing`): a capturing
//! `tracing` subscriber that proves no secret is ever logged.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let logs = token_provider::testing::capture_logs();
//! tracing::info!(user = "me", "fetched");
//! assert!(logs.contents().contains("fetched"));
//! logs.assert_absent(&["hunter2"]);
//! # }
//! ```

use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::fmt::MakeWriter;

/// A handle on the process-wide log capture.
#[derive(Clone, Debug)]
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl LogCapture {
    /// Everything logged so far in this process, at every level down to TRACE.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Panics, naming the line, if any secret appears in any captured line. Also panics if
    /// nothing at all was captured, so the check cannot pass vacuously.
    pub fn assert_absent(&self, secrets: &[&str]) {
        let contents = self.contents();
        assert!(!contents.is_empty(), "no log line was captured at all");
        for secret in secrets {
            assert!(!secret.is_empty(), "an empty string is not a test secret");
            if let Some(line) = contents.lines().find(|l| l.contains(secret)) {
                panic!("a secret was logged: {line}");
            }
        }
    }
}

/// Installs (once per process) a global subscriber at TRACE that records every event with its
/// fields and spans, `log` records included, and returns a handle on what it recorded. Records of
/// the `mockito` test servers are left out: they play the provider and print what they receive.
///
/// The subscriber is global, so events from spawned tasks and other threads are captured too;
/// tests running in parallel in the same binary share the buffer, which only makes the check
/// stricter.
pub fn capture_logs() -> LogCapture {
    static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = LogCapture {
                buffer: Arc::new(Mutex::new(Vec::new())),
            };
            use tracing_subscriber::Layer as _;
            use tracing_subscriber::layer::SubscriberExt as _;
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(Writer(Arc::clone(&capture.buffer)))
                .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                    // The mock servers are the provider's side: they print the requests they
                    // receive, credentials and all, which is theirs to do.
                    !meta.target().starts_with("mockito")
                }))
                .with_filter(tracing::level_filters::LevelFilter::TRACE);
            let subscriber = tracing_subscriber::registry().with(layer);
            // `try_init` also routes the `log` crate's records (reqwest logs through it) into the
            // subscriber, so they are checked too.
            tracing_subscriber::util::SubscriberInitExt::try_init(subscriber)
                .expect("capture_logs must be the only global subscriber of the test binary");
            capture
        })
        .clone()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

struct Guard(Arc<Mutex<Vec<u8>>>);

impl io::Write for Guard {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Writer {
    type Writer = Guard;

    fn make_writer(&'a self) -> Self::Writer {
        Guard(Arc::clone(&self.0))
    }
}

/// A retry policy for tests: `attempts` tries with millisecond backoffs; a `Retry-After` of up to
/// two seconds is waited for, a longer one ends the retries at once.
pub fn fast_retry(attempts: u32) -> crate::RetryPolicy {
    crate::RetryPolicy {
        max_attempts: attempts,
        initial_backoff: std::time::Duration::from_millis(5),
        max_backoff: std::time::Duration::from_millis(20),
        max_retry_after: std::time::Duration::from_secs(2),
    }
}

/// An HTTP client for tests: `timeout` per request and [`fast_retry`]`(3)`, so retries are
/// exercised without slowing the suite. Its retry budget is unlimited, so each request's
/// retries depend on that request alone, whatever the test sent before.
pub fn fast_http(timeout: std::time::Duration) -> crate::HttpClient {
    crate::HttpClient::builder()
        .timeout(timeout)
        .retry(fast_retry(3))
        .retry_budget(crate::http::RetryBudget::unlimited())
        .build()
        .expect("a test HTTP client")
}
