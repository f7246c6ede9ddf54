//! The client's own settings: the `User-Agent` it sends (settable, `partner-auth/<version>` by
//! default), and the `url` crate its requests are built from, re-exported so a provider of
//! one's own needs no second copy of it.

use std::time::Duration;

use token_provider::HttpClient;
use token_provider::http::{Request, USER_AGENT};
use token_provider::testing::fast_retry;
use token_provider::url::Url;

#[tokio::test]
async fn the_user_agent_is_settable_and_defaults_to_partner_auth() {
    assert_eq!(
        USER_AGENT,
        concat!("partner-auth/", env!("CARGO_PKG_VERSION"))
    );
    let mut server = mockito::Server::new_async().await;
    let url = Url::parse(&format!("{}/who", server.url())).unwrap();
    for (client, agent) in [
        (HttpClient::builder(), USER_AGENT),
        (
            HttpClient::builder().user_agent("acme-billing/2.1 (ops@acme.example)"),
            "acme-billing/2.1 (ops@acme.example)",
        ),
    ] {
        let mock = server
            .mock("GET", "/who")
            .match_header("user-agent", agent)
            .with_body("ok")
            .expect(1)
            .create_async()
            .await;
        let client = client
            .timeout(Duration::from_secs(5))
            .retry(fast_retry(1))
            .build()
            .unwrap();
        let response = client.execute(Request::get(url.clone())).await.unwrap();
        assert_eq!(response.status(), 200);
        mock.assert_async().await;
        mock.remove_async().await;
    }
}

#[test]
fn a_user_agent_that_is_no_header_value_is_refused_by_name() {
    let err = HttpClient::builder()
        .user_agent("two\nlines")
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration: `user_agent` contains characters not allowed in an HTTP header"
    );
}
