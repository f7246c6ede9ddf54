//! A provider's clock read from its `Date` header, and a store record moved onto a reader's
//! clock. The fleet's end of it (two replicas on one Redis) is in the Redis crate's
//! `tests/clock_skew.rs`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::DATE;
use http::{HeaderMap, HeaderValue, StatusCode};
use token_provider::http::{Request, Response};
use token_provider::testing::{capture_logs, epoch, fixed_clock, state_at};
use token_provider::url::Url;
use token_provider::{
    AccessToken, ClockOffset, HttpClient, Presenting, REBASE_TOLERANCE, Refusal, Secret,
    StoreRecord, TokenState,
};

const MINUTE: Duration = Duration::from_secs(60);

fn dated(date: SystemTime) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        DATE,
        HeaderValue::from_str(&httpdate::fmt_http_date(date)).unwrap(),
    );
    Response::new(StatusCode::OK, headers, "{}")
}

#[test]
fn an_absolute_expiry_is_read_on_the_providers_clock() {
    let now = epoch();
    let expiry = now + 13 * 60 * MINUTE;
    // The provider 10 minutes ahead: its expiry is 10 minutes sooner on this clock (and a
    // second more, the `Date` header's resolution).
    let ahead = dated(now + 10 * MINUTE);
    assert_eq!(
        ahead.provider_offset(now),
        Some(ClockOffset::Ahead(10 * MINUTE + Duration::from_secs(1)))
    );
    assert_eq!(
        ahead.local_time(expiry, now),
        expiry - 10 * MINUTE - Duration::from_secs(1)
    );
    let behind = dated(now - 10 * MINUTE);
    assert_eq!(
        behind.local_time(expiry, now),
        expiry + 10 * MINUTE - Duration::from_secs(1)
    );
    // Within the tolerance (a second of resolution, a round trip): taken as this clock.
    assert_eq!(dated(now).provider_offset(now), Some(ClockOffset::None));
    assert_eq!(dated(now).local_time(expiry, now), expiry);
    // No `Date`, or one that does not parse: the expiry as sent.
    let bare = Response::new(StatusCode::OK, HeaderMap::new(), "{}");
    assert_eq!(bare.provider_offset(now), None);
    assert_eq!(bare.local_time(expiry, now), expiry);
    let mut headers = HeaderMap::new();
    headers.insert(DATE, HeaderValue::from_static("yesterday"));
    let garbled = Response::new(StatusCode::OK, headers, "{}");
    assert_eq!(garbled.local_time(expiry, now), expiry);
}

/// The warning names the host and the offset, once per client however many answers show it,
/// and never a secret the request carried.
#[tokio::test]
async fn a_provider_clock_over_30_seconds_off_is_warned_about_once() {
    let logs = capture_logs();
    let mut server = mockito::Server::new_async().await;
    let clock = fixed_clock();
    let ahead = httpdate::fmt_http_date(epoch() + 5 * MINUTE);
    let mock = server
        .mock("POST", "/token")
        .match_header("authorization", "Bearer skew-canary-secret")
        .with_header("date", &ahead)
        .with_body("{}")
        .expect(3)
        .create_async()
        .await;
    let http = HttpClient::builder()
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let url = Url::parse(&format!("{}/token", server.url())).unwrap();
    let secret = Secret::new("skew-canary-secret");
    for _ in 0..3 {
        let request = Request::post(url.clone(), token_provider::http::Repeat::Safe)
            .bearer(&secret)
            .unwrap();
        let response = http.execute(request).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    mock.assert_async().await;
    let text = logs.contents();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("clock (its Date header)"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(warnings[0].contains("301s ahead of"), "{}", warnings[0]);
    assert!(warnings[0].contains("127.0.0.1"), "{}", warnings[0]);
    logs.assert_absent(&["skew-canary-secret"]);
}

#[test]
fn a_record_is_moved_onto_the_readers_clock() {
    let saved_at = epoch();
    let expiry = saved_at + 60 * MINUTE;
    let refresh = Secret::new("rt-1");
    let mut record = StoreRecord::new(
        state_at("at-1", Some("rt-1"), saved_at - MINUTE, Some(61 * MINUTE))
            .with_obtained_at(saved_at - MINUTE),
        7,
    )
    .with_presenting(Presenting::new(&refresh, saved_at + MINUTE, 1))
    .with_refused(Refusal::new(
        &refresh,
        saved_at - 2 * MINUTE,
        "invalid_grant",
    ));
    record.forgotten = Some(saved_at - 3 * MINUTE);
    record.saved_at = Some(saved_at);
    assert_eq!(record.state.access_token.expires_at(), Some(expiry));

    // The reader's clock read 10 minutes more when the record was saved.
    let here = saved_at + 10 * MINUTE;
    let moved = record.clone().rebased(here);
    assert_eq!(moved.version, 7);
    assert_eq!(
        moved.state.access_token.expires_at(),
        Some(expiry + 10 * MINUTE)
    );
    assert_eq!(moved.state.access_token, record.state.access_token);
    assert_eq!(moved.state.obtained_at, Some(saved_at + 9 * MINUTE));
    assert_eq!(moved.presenting.unwrap().deadline, saved_at + 11 * MINUTE);
    assert_eq!(moved.refused.unwrap().at, saved_at + 8 * MINUTE);
    assert_eq!(moved.forgotten, Some(saved_at + 7 * MINUTE));
    assert_eq!(moved.saved_at, Some(here));

    // Behind, the same the other way.
    let moved = record.clone().rebased(saved_at - 10 * MINUTE);
    assert_eq!(
        moved.state.access_token.expires_at(),
        Some(expiry - 10 * MINUTE)
    );

    // Within the tolerance, or with no writer's time: unchanged.
    assert_eq!(record.clone().rebased(saved_at + REBASE_TOLERANCE), record);
    let mut unstamped = record.clone();
    unstamped.saved_at = None;
    assert_eq!(unstamped.clone().rebased(here), unstamped);
}

#[test]
fn a_token_without_an_expiry_keeps_none() {
    let mut record = StoreRecord::new(TokenState::new(AccessToken::new("at")), 1);
    record.saved_at = Some(epoch());
    let moved = record.rebased(epoch() + 10 * MINUTE);
    assert_eq!(moved.state.access_token.expires_at(), None);
}
