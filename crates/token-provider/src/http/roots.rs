//! The system's CA roots: read once per process, and never on an async runtime's thread.
//!
//! Every `reqwest::Client` reads them when it is built (hundreds of certificates, from files),
//! so clients built without roots of their own share one verifier over them instead, made the
//! first time one is needed. A client with roots of its own
//! ([`HttpClientBuilder::add_root_certificate`](super::HttpClientBuilder::add_root_certificate))
//! still has reqwest read the system's roots for it, beside its own.

use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;

use rustls::crypto::CryptoProvider;
use rustls_platform_verifier::Verifier;

use crate::Error;

/// How many times the system's roots were read, and on which thread last.
static LOADS: Mutex<(usize, Option<ThreadId>)> = Mutex::new((0, None));

/// The verifier over the system's roots, or why there is none (no roots in a slim container).
static SYSTEM: OnceLock<Result<Arc<Verifier>, String>> = OnceLock::new();

/// Notes one read of the system's roots, on the current thread.
pub(crate) fn note_load() {
    let mut loads = LOADS.lock().unwrap_or_else(|e| e.into_inner());
    loads.0 += 1;
    loads.1 = Some(std::thread::current().id());
}

/// How many times the system's roots were read in this process, and on which thread last.
#[cfg(feature = "testing")]
pub(crate) fn loads() -> (usize, Option<ThreadId>) {
    *LOADS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the system's roots have been read (successfully or not): building a client without
/// roots of its own then reads nothing.
pub(crate) fn loaded() -> bool {
    SYSTEM.get().is_some()
}

/// The crypto provider reqwest would pick: the process default when one is installed, else
/// aws-lc-rs.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// The TLS configuration of a client without roots of its own: the shared verifier over the
/// system's roots (read now if this is the first), HTTP/1.1 as reqwest would announce it.
pub(crate) fn tls_config() -> Result<rustls::ClientConfig, Error> {
    let verifier = SYSTEM
        .get_or_init(|| {
            note_load();
            Verifier::new(provider())
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|reason| no_roots(&reason))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config("http client", format!("TLS set-up failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The error for roots that could not be read, saying where they come from.
pub(crate) fn no_roots(reason: &str) -> Error {
    Error::config(
        "http client",
        format!(
            "{reason}: no usable CA roots (install the `ca-certificates` package or set \
             SSL_CERT_FILE or SSL_CERT_DIR)"
        ),
    )
}
