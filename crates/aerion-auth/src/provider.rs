//! [`Aerion`], the cached provider, and its [`me`](Aerion::me) call.

use http::header::ACCEPT;
use serde::{Deserialize, Deserializer};
use token_provider::auth::{AuthHeader, AuthScope, execute_authorized};
use token_provider::http::{Request, join_path};
use token_provider::{CacheStats, CachedTokenProvider, Error, Secret, StoreKey};
use url::Url;

use crate::fetch::AerionFetcher;
use crate::settings::Tenant;

/// Aerion bearer tokens, cached: call [`token`](crate::TokenProvider::token) before every request.
///
/// Built by [`Aerion::builder`]; cheap to clone (clones share one cache).
#[derive(Clone, Debug)]
pub struct Aerion {
    pub(crate) inner: CachedTokenProvider<AerionFetcher>,
}

impl Aerion {
    /// The key this principal's state is kept under in a store (see
    /// [`AerionBuilder::store`](crate::AerionBuilder::store)).
    pub fn store_key(&self) -> StoreKey {
        self.inner.fetcher().store_key.clone()
    }

    /// The tenant every token request names.
    pub fn tenant(&self) -> &Tenant {
        &self.inner.fetcher().tenant
    }

    /// The API base.
    pub fn base_url(&self) -> &Url {
        &self.inner.fetcher().base_url
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &Url {
        &self.inner.fetcher().token_url
    }

    /// The cache's counters.
    pub fn stats(&self) -> CacheStats {
        self.inner.stats()
    }

    /// Where this provider's tokens may be sent: the origin of the API base (the default base,
    /// or the one configured), for `token_provider::auth::AuthMiddleware::new` and
    /// [`send_authorized`](token_provider::auth::send_authorized).
    pub fn auth_scope(&self) -> AuthScope {
        AuthScope::new(self.base_url()).expect("the base URL was checked by the builder")
    }

    /// The signed-in user: `GET {base}/v1/users/me` with the current token.
    ///
    /// A 401 invalidates that token and the call is made once more with a new one; a second
    /// 401 is returned as [`Error::Rejected`].
    pub async fn me(&self) -> Result<AerionUser, Error> {
        let fetcher = self.inner.fetcher();
        let url = join_path(&fetcher.base_url, &["v1", "users", "me"])?;
        let request = Request::get(url).header(ACCEPT, "application/json")?;
        let response = execute_authorized(
            self,
            &fetcher.http,
            &AuthHeader::default(),
            &self.auth_scope(),
            &request,
        )
        .await?;
        if response.status().is_success() {
            response.json("aerion user")
        } else {
            // The bearer just sent is a secret the server may echo too.
            let sent = self.inner.cached().map(|t| t.secret().clone());
            let secrets = fetcher.secrets(sent.as_ref());
            let secrets: Vec<&Secret> = secrets.iter().collect();
            Err(response.error_scrubbed(&secrets))
        }
    }
}

token_provider::forward_token_provider!(Aerion => |this| &this.inner);

/// The user behind a token, as `GET /v1/users/me` describes them. Other fields of the answer
/// are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct AerionUser {
    /// The user's id. Aerion may send a number or a string; a number is kept as its decimal
    /// text.
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    /// The user's email address, when the answer has one.
    #[serde(default)]
    pub email: Option<String>,
}

fn id_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(serde_json::Number),
        Text(String),
    }
    Ok(match Id::deserialize(d)? {
        Id::Number(n) => n.to_string(),
        Id::Text(s) => s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_may_be_numbers_or_strings() {
        let u: AerionUser =
            serde_json::from_str(r#"{"id":42,"email":"a@b.example","name":"A"}"#).unwrap();
        assert_eq!(
            (u.id.as_str(), u.email.as_deref()),
            ("42", Some("a@b.example"))
        );
        let u: AerionUser = serde_json::from_str(r#"{"id":"u-7"}"#).unwrap();
        assert_eq!((u.id.as_str(), u.email), ("u-7", None));
        assert!(serde_json::from_str::<AerionUser>(r#"{"id":null}"#).is_err());
    }
}
