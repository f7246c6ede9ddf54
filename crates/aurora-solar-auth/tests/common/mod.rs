//! Helpers shared by this crate's integration tests.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::io::Read;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use token_provider::ManualClock;
pub use token_provider::testing::{fast_http, http_client};

/// `2023-07-29 04:30:46 UTC`, the seed's `expires_at`.
pub const SEED_EXPIRES_AT: u64 = 1_690_605_046;

/// Thirteen hours before the seed's `expires_at`: when such a key would have been issued.
pub fn issue_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(SEED_EXPIRES_AT - 13 * 3600)
}

pub fn clock() -> ManualClock {
    ManualClock::new(issue_time())
}

/// A `create_token` answer.
pub fn key_body(key: &str, expires_at: &str) -> String {
    format!(r#"{{"token":{{"bearer_token":"{key}","expires_at":"{expires_at}"}}}}"#)
}

/// A server that accepts connections, records the first bytes of each request, and never
/// answers. Returns its base URL and the requests seen so far.
pub fn silent_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let record = Arc::clone(&record);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                record
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                // Hold the connection open without a word until the client gives up.
                std::thread::sleep(Duration::from_secs(5));
                drop(stream);
            });
        }
    });
    (format!("http://{addr}"), seen)
}
