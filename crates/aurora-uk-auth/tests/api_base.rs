//! An API base with a path (a proxy's prefix, the emulator's `/aurora-uk/api`), given with or
//! without a final slash: `api_base().join(..)` stays under it.

mod common;

use common::*;
use token_provider::testing::{assert_mocks, reply};

/// Before: `https://host/prefix/api` joined with `Accounts` went to `/prefix/Accounts`,
/// dropping the last segment, as `Url::join` does for a base without a final slash.
#[tokio::test]
async fn a_base_with_a_path_keeps_it_with_or_without_a_final_slash() {
    let mut server = mockito::Server::new_async().await;
    let (discovery, _jwks) = mock_discovery(&mut server, 2).await;
    // Two providers: each discovers and fetches its own token.
    let token = mock_token_basic(
        &mut server,
        "/oauth/token",
        200,
        &token_body("at-p", 86400),
        2,
    )
    .await;
    let api = reply(
        server
            .mock("GET", "/prefix/api/Accounts")
            .match_header("authorization", "Bearer at-p")
            .expect(2),
        200,
        "[]",
    )
    .await;
    for base in ["/prefix/api", "/prefix/api/"] {
        let aurora = builder(&server)
            .api_base(format!("{}{base}", server.url()))
            .http_client(http_client())
            .build()
            .unwrap();
        let url = aurora.api_base().join("Accounts").unwrap();
        assert_eq!(url.path(), "/prefix/api/Accounts", "{base}");
        let response = aurora.send(|client| client.get(url.clone())).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "[]");
    }
    assert_mocks(&[&api, &token, &discovery]).await;
}
