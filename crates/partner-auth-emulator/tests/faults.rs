//! Every fault kind, observed through token-provider's HttpClient.

mod common;

use std::time::Duration;

use common::{
    aerion_password_form, aerion_token_request, client, client_with, json, retrying_client, send,
    solar_create, started, url,
};
use partner_auth_emulator::{
    AerionErrorShape, DEFAULT_AERION_PASSWORD, DEFAULT_AERION_USERNAME, DEFAULT_AURORA_UK_AUDIENCE,
    DEFAULT_AURORA_UK_CLIENT_ID, DEFAULT_AURORA_UK_CLIENT_SECRET, Emulator, Endpoint, Fault,
    RunningEmulator,
};
use token_provider::http::{Repeat, Request};
use token_provider::{Error, RetryPolicy, Secret};

fn aerion_password(emu: &RunningEmulator) -> Request {
    let form = aerion_password_form(DEFAULT_AERION_PASSWORD);
    aerion_token_request(&emu.aerion_token_url(), &form)
}

fn aerion_refresh(emu: &RunningEmulator, refresh: &str) -> Request {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", "x"),
        ("client_secret", "y"),
    ];
    aerion_token_request(&emu.aerion_token_url(), &form)
}

/// The request `endpoint` is meant for (the Aerion password grant, or the Aurora UK grant),
/// sent after one `fault` is injected there: its answer, a 200 all the same.
async fn faulted_200(
    emu: &RunningEmulator,
    endpoint: Endpoint,
    fault: Fault,
) -> token_provider::http::Response {
    emu.inject(endpoint, fault, 1);
    let request = match endpoint {
        Endpoint::AerionToken => aerion_password(emu),
        Endpoint::AuroraUkToken => uk_token(emu),
        other => panic!("no request for {other:?}"),
    };
    let response = send(request).await.unwrap();
    assert_eq!(response.status(), 200);
    response
}

fn uk_token(emu: &RunningEmulator) -> Request {
    Request::post(url(&emu.aurora_uk_token_url()), Repeat::Safe).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", DEFAULT_AURORA_UK_CLIENT_ID),
        ("client_secret", DEFAULT_AURORA_UK_CLIENT_SECRET),
        ("audience", DEFAULT_AURORA_UK_AUDIENCE),
    ])
}

#[tokio::test]
async fn status_faults_are_consumed_n_times_then_the_answer_is_normal() {
    let emu = Emulator::start().await.unwrap();
    emu.inject(Endpoint::AuroraUkToken, Fault::Status(503), 2);
    assert_eq!(emu.pending_faults(Endpoint::AuroraUkToken), 2);
    assert!(matches!(
        send(uk_token(&emu)).await,
        Err(Error::Status { status: 503, .. })
    ));
    assert_eq!(emu.pending_faults(Endpoint::AuroraUkToken), 1);
    // A retrying client gets through on its second attempt.
    let response = retrying_client(3).execute(uk_token(&emu)).await.unwrap();
    assert_eq!(response.status(), 200);
    let recorded = emu.requests_for(Endpoint::AuroraUkToken);
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[0].fault, Some(Fault::Status(503)));
    assert_eq!(recorded[1].fault, Some(Fault::Status(503)));
    assert_eq!(recorded[2].fault, None);
    assert_eq!(emu.pending_faults(Endpoint::AuroraUkToken), 0);
    // Other endpoints were never affected.
    emu.inject(Endpoint::AerionToken, Fault::Status(500), 1);
    assert_eq!(send(uk_token(&emu)).await.unwrap().status(), 200);
    assert!(matches!(
        send(aerion_password(&emu)).await,
        Err(Error::Status { status: 500, .. })
    ));
}

#[tokio::test]
async fn faults_queue_in_order_and_can_be_cleared() {
    let emu = Emulator::start().await.unwrap();
    emu.inject(Endpoint::AerionToken, Fault::Status(502), 1);
    emu.inject(Endpoint::AerionToken, Fault::InvalidGrant, 1);
    assert!(matches!(
        send(aerion_password(&emu)).await,
        Err(Error::Status { status: 502, .. })
    ));
    let invalid = send(aerion_password(&emu)).await.unwrap();
    assert_eq!(invalid.status(), 400);
    assert_eq!(json(&invalid)["error"], "invalid_grant");
    emu.inject(Endpoint::AerionToken, Fault::Status(500), 5);
    emu.clear_faults();
    assert_eq!(send(aerion_password(&emu)).await.unwrap().status(), 200);
}

#[tokio::test]
async fn rate_limited_with_and_without_retry_after() {
    let emu = Emulator::start().await.unwrap();
    emu.inject(
        Endpoint::AuroraSolarCreateToken,
        Fault::RateLimited {
            retry_after: Some(7),
        },
        1,
    );
    match send(solar_create(&emu)).await {
        Err(Error::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)))
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    emu.inject(
        Endpoint::AuroraSolarCreateToken,
        Fault::RateLimited { retry_after: None },
        1,
    );
    match send(solar_create(&emu)).await {
        Err(Error::RateLimited { retry_after, .. }) => assert_eq!(retry_after, None),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // Retry-After: 0 is honoured by a retrying client, which then gets its key.
    emu.inject(
        Endpoint::AuroraSolarCreateToken,
        Fault::RateLimited {
            retry_after: Some(0),
        },
        1,
    );
    let ok = retrying_client(2)
        .execute(solar_create(&emu))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(emu.request_count(Endpoint::AuroraSolarCreateToken), 4);
}

/// The raw HTTP/1.1 answer to an empty `POST` of `url`, read off the socket as sent.
async fn raw_post(url: &url::Url) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = url.socket_addrs(|| None).unwrap()[0];
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        url.path(),
        address
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn a_status_with_retry_after_says_when_to_come_back() {
    let emu = Emulator::start().await.unwrap();
    let fault = Fault::StatusRetryAfter {
        status: 503,
        retry_after: 7,
    };
    emu.inject(Endpoint::AuroraUkToken, fault.clone(), 1);
    // As sent: the status, the header, and the same JSON error body as a plain status fault.
    let answer = raw_post(&url(&emu.aurora_uk_token_url())).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{head}"
    );
    assert!(
        head.lines()
            .any(|l| l.eq_ignore_ascii_case("retry-after: 7")),
        "{head}"
    );
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"], "server_error");
    let recorded = emu.requests_for(Endpoint::AuroraUkToken);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].method, "POST");
    assert_eq!(recorded[0].fault, Some(fault));

    // Through the client: the status and the wait are carried.
    emu.inject(
        Endpoint::AuroraUkToken,
        Fault::StatusRetryAfter {
            status: 408,
            retry_after: 7,
        },
        1,
    );
    match send(uk_token(&emu)).await {
        Err(Error::Unavailable {
            status,
            retry_after,
            ..
        }) => {
            assert_eq!(status, 408);
            assert_eq!(retry_after, Duration::from_secs(7));
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // Consumed like any fault: a client that honours a zero wait gets through on its second try.
    emu.inject(
        Endpoint::AuroraUkToken,
        Fault::StatusRetryAfter {
            status: 502,
            retry_after: 0,
        },
        1,
    );
    let ok = retrying_client(2).execute(uk_token(&emu)).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(emu.request_count(Endpoint::AuroraUkToken), 4);
    assert_eq!(emu.pending_faults(Endpoint::AuroraUkToken), 0);
}

#[tokio::test]
async fn delay_then_a_normal_answer() {
    let emu = Emulator::start().await.unwrap();
    emu.inject(
        Endpoint::AuroraUkDiscovery,
        Fault::Delay(Duration::from_millis(300)),
        1,
    );
    let started = tokio::time::Instant::now();
    let response = send(Request::get(url(&format!(
        "{}.well-known/openid-configuration",
        emu.aurora_uk_issuer()
    ))))
    .await
    .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(response.status(), 200);
    assert_eq!(
        json(&response)["issuer"].as_str(),
        Some(emu.aurora_uk_issuer().as_str())
    );
}

#[tokio::test]
async fn delay_holds_the_request_before_it_is_processed_delay_after_holds_the_answer() {
    let emu = Emulator::start().await.unwrap();
    let seed = emu.issue_refresh_token(DEFAULT_AERION_USERNAME).unwrap();
    let hold = Duration::from_millis(400);

    // Delay: nothing is spent while the request waits.
    emu.inject(Endpoint::AerionToken, Fault::Delay(hold), 1);
    let pending = tokio::spawn(send(aerion_refresh(&emu, &seed)));
    wait_until(|| emu.request_count(Endpoint::AerionToken) == 1).await;
    assert_eq!(
        emu.current_refresh_token(DEFAULT_AERION_USERNAME),
        Some(seed.clone())
    );
    assert!(emu.aerion_refreshes().is_empty());
    let first = json(&pending.await.unwrap().unwrap())["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        emu.current_refresh_token(DEFAULT_AERION_USERNAME),
        Some(first.clone())
    );

    // DelayAfter: the refresh token rotates at once and the answer follows after the hold.
    emu.inject(Endpoint::AerionToken, Fault::DelayAfter(hold), 1);
    let started = tokio::time::Instant::now();
    let pending = tokio::spawn(send(aerion_refresh(&emu, &first)));
    wait_until(|| emu.current_refresh_token(DEFAULT_AERION_USERNAME) != Some(first.clone())).await;
    assert!(!pending.is_finished(), "the answer was not held");
    let answer = json(&pending.await.unwrap().unwrap());
    assert!(started.elapsed() >= hold);
    let second = answer["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        emu.current_refresh_token(DEFAULT_AERION_USERNAME),
        Some(second.clone())
    );

    // The record of refresh grants, in the order processed; a refused one has nothing issued.
    let refused = send(aerion_refresh(&emu, &seed)).await.unwrap();
    assert_eq!(refused.status(), 400);
    let refreshes = emu.aerion_refreshes();
    let presented: Vec<_> = refreshes.iter().map(|r| r.presented.as_str()).collect();
    assert_eq!(presented, [seed.as_str(), first.as_str(), seed.as_str()]);
    assert_eq!(refreshes[0].refresh_token.as_deref(), Some(first.as_str()));
    assert_eq!(refreshes[1].refresh_token.as_deref(), Some(second.as_str()));
    assert_eq!(
        refreshes[1].access_token.as_deref(),
        answer["access_token"].as_str()
    );
    assert!(refreshes[0].accepted() && refreshes[1].accepted());
    assert!(!refreshes[2].accepted() && refreshes[2].refresh_token.is_none());
}

/// Polls `done` every 5 ms for at most 5 s.
async fn wait_until(done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the condition was not met within 5 s");
}

#[tokio::test]
async fn hang_until_the_client_times_out_and_ends_at_shutdown() {
    let emu = Emulator::start().await.unwrap();
    emu.inject(Endpoint::AerionToken, Fault::Hang, 1);
    let impatient = client_with(Duration::from_millis(300), RetryPolicy::none());
    assert!(matches!(
        impatient.execute(aerion_password(&emu)).await,
        Err(Error::TimedOut { attempts: 1, .. })
    ));

    // A hung answer in flight ends when the emulator shuts down.
    emu.inject(Endpoint::AerionToken, Fault::Hang, 1);
    let request = aerion_password(&emu);
    let pending = tokio::spawn(async move { client().execute(request).await });
    // Shut down only once the request is there (hung), not before it arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while emu.request_count(Endpoint::AerionToken) < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(emu.request_count(Endpoint::AerionToken), 2);
    emu.shutdown().await;
    let outcome = tokio::time::timeout(Duration::from_secs(3), pending)
        .await
        .expect("the hung request ends at shutdown")
        .unwrap();
    assert!(
        matches!(
            outcome,
            Err(Error::Status { status: 503, .. }) | Err(Error::Transport { .. })
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn malformed_and_truncated_bodies() {
    let emu = Emulator::start().await.unwrap();
    let malformed = faulted_200(&emu, Endpoint::AerionToken, Fault::MalformedBody).await;
    assert!(serde_json::from_slice::<serde_json::Value>(malformed.body()).is_err());
    assert!(matches!(
        malformed.json::<serde_json::Value>("token"),
        Err(Error::Malformed { .. })
    ));

    let truncated = faulted_200(&emu, Endpoint::AerionToken, Fault::TruncatedJson).await;
    assert!(truncated.body().starts_with(b"{\"access_token\""));
    match truncated.json::<serde_json::Value>("token") {
        Err(Error::Malformed { reason, .. }) => assert!(reason.contains("truncated"), "{reason}"),
        other => panic!("expected a truncated-JSON error, got {other:?}"),
    }
    // Faulted requests were not processed: no refresh token was issued.
    assert_eq!(emu.current_refresh_token(DEFAULT_AERION_USERNAME), None);
}

#[tokio::test]
async fn oversized_bodies_with_and_without_content_length() {
    let emu = Emulator::start().await.unwrap();
    let size = 2 * 1024 * 1024;
    let jwks = url(&format!("{}.well-known/jwks.json", emu.aurora_uk_issuer()));
    for fault in [Fault::OversizedBody(size), Fault::OversizedChunked(size)] {
        emu.inject(Endpoint::AuroraUkJwks, fault, 1);
        let sent = send(Request::get(jwks.clone())).await;
        assert!(matches!(sent, Err(Error::TooLarge { .. })), "{sent:?}");
    }

    // Under the client's cap the exact size arrives.
    for (fault, len) in [
        (Fault::OversizedBody(1000), 1000),
        (Fault::OversizedChunked(200_000), 200_000),
    ] {
        emu.inject(Endpoint::AuroraUkJwks, fault, 1);
        let body = send(Request::get(jwks.clone())).await.unwrap().body().len();
        assert_eq!(body, len);
    }
}

#[tokio::test]
async fn an_error_body_in_a_200() {
    let emu = Emulator::start().await.unwrap();
    let response = faulted_200(&emu, Endpoint::AuroraUkToken, Fault::ErrorBody200).await;
    let error = response.oauth_error().expect("an OAuth error body");
    assert_eq!(error.error, "server_error");
}

#[tokio::test]
async fn unauthorized_for_a_valid_token() {
    let emu = Emulator::start().await.unwrap();
    let token = json(&send(aerion_password(&emu)).await.unwrap())["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = || {
        Request::get(url(&format!("{}/v1/users/me", emu.aerion_base())))
            .bearer(&Secret::new(&token))
            .unwrap()
    };
    emu.inject(Endpoint::AerionMe, Fault::Unauthorized, 1);
    let refused = send(me()).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));
    assert_eq!(
        send(me()).await.unwrap().status(),
        200,
        "the token itself is still valid"
    );
}

#[tokio::test]
async fn invalid_grant_leaves_the_refresh_token_alive() {
    let emu = started(Emulator::builder().aerion_error_shape(AerionErrorShape::Summary)).await;
    let refresh = json(&send(aerion_password(&emu)).await.unwrap())["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    emu.inject(Endpoint::AerionToken, Fault::InvalidGrant, 1);
    let refused = send(aerion_refresh(&emu, &refresh)).await.unwrap();
    assert_eq!(refused.status(), 400);
    let body = json(&refused);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["status"], 400,
        "Aerion's configured error shape is kept"
    );
    assert_eq!(
        emu.current_refresh_token(DEFAULT_AERION_USERNAME),
        Some(refresh.clone())
    );
    assert_eq!(
        send(aerion_refresh(&emu, &refresh)).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn expires_in_overrides_on_every_token_endpoint() {
    let emu = Emulator::start().await.unwrap();
    for lifetime in [0_i64, -30, 10_000_000_000] {
        emu.inject(Endpoint::AerionToken, Fault::ExpiresIn(lifetime), 1);
        let body = json(&send(aerion_password(&emu)).await.unwrap());
        assert_eq!(body["expires_in"], lifetime);
        emu.inject(Endpoint::AuroraUkToken, Fault::ExpiresIn(lifetime), 1);
        let body = json(&send(uk_token(&emu)).await.unwrap());
        assert_eq!(body["expires_in"], lifetime);
    }
    // A token issued with expires_in 0 is already dead at the protected resource.
    emu.inject(Endpoint::AuroraUkToken, Fault::ExpiresIn(0), 1);
    let token = json(&send(uk_token(&emu)).await.unwrap())["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let api = Request::get(url(&format!("{}/Accounts", emu.aurora_uk_api_base())))
        .bearer(&Secret::new(&token))
        .unwrap();
    assert_eq!(send(api).await.unwrap().status(), 401);

    // Aurora Solar: expires_at moves with the override.
    emu.inject(Endpoint::AuroraSolarCreateToken, Fault::ExpiresIn(-60), 1);
    let body = json(&send(solar_create(&emu)).await.unwrap());
    let expires_at = body["token"]["expires_at"].as_str().unwrap();
    let parsed =
        chrono::NaiveDateTime::parse_from_str(expires_at, "%Y-%m-%d %H:%M:%S UTC").unwrap();
    let now = chrono::DateTime::<chrono::Utc>::from(emu.now()).naive_utc();
    assert!(parsed < now, "{expires_at} should be in the past");
}

#[tokio::test]
async fn reset_connection_mid_body() {
    let emu = Emulator::start().await.unwrap();
    emu.inject(Endpoint::AuroraSolarCreateToken, Fault::ResetConnection, 1);
    let outcome = send(solar_create(&emu)).await;
    assert!(
        matches!(outcome, Err(Error::Transport { .. })),
        "{outcome:?}"
    );
    // The next request is served normally.
    assert_eq!(send(solar_create(&emu)).await.unwrap().status(), 200);
    assert_eq!(
        emu.requests_for(Endpoint::AuroraSolarCreateToken)[0].fault,
        Some(Fault::ResetConnection)
    );
}

#[tokio::test]
async fn every_endpoint_can_be_faulted() {
    let emu = Emulator::start().await.unwrap();
    for endpoint in Endpoint::ALL {
        emu.inject(endpoint, Fault::Status(502), 1);
    }
    let tenant = emu.aurora_solar_tenant().to_owned();
    let solar = emu.aurora_solar_base();
    let requests = [
        aerion_password(&emu),
        Request::get(url(&format!("{}/v1/users/me", emu.aerion_base()))),
        Request::get(url(&format!(
            "{}.well-known/openid-configuration",
            emu.aurora_uk_issuer()
        ))),
        Request::get(url(&format!(
            "{}.well-known/jwks.json",
            emu.aurora_uk_issuer()
        ))),
        uk_token(&emu),
        Request::get(url(&format!("{}/Accounts", emu.aurora_uk_api_base()))),
        solar_create(&emu),
        Request::get(url(&format!("{solar}/tenants/{tenant}/users"))),
        Request::post(
            url(&format!("{solar}/tenants/{tenant}/users/invite")),
            Repeat::Safe,
        ),
        Request::post(
            url(&format!("{solar}/tenants/{tenant}/users/u1/generate_token")),
            Repeat::Safe,
        ),
        Request::get(url(&format!("{solar}/tenants/{tenant}/projects"))),
    ];
    for request in requests {
        assert!(matches!(
            send(request).await,
            Err(Error::Status { status: 502, .. })
        ));
    }
    let seen: Vec<Endpoint> = emu.requests().iter().filter_map(|r| r.endpoint).collect();
    assert_eq!(seen, Endpoint::ALL.to_vec());
    for endpoint in Endpoint::ALL {
        assert_eq!(emu.pending_faults(endpoint), 0, "{}", endpoint.describe());
    }
}
