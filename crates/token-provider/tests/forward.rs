//! `forward_token_provider!`: a wrapper answers every method of the trait through the provider it
//! holds, not with the trait's defaults.

use std::sync::{Arc, Mutex};

use token_provider::{AccessToken, Error, TokenProvider, async_trait, forward_token_provider};

/// Records each call and answers what no default would.
#[derive(Debug, Default)]
struct Recorder {
    calls: Mutex<Vec<&'static str>>,
}

impl Recorder {
    fn record(&self, call: &'static str) {
        self.calls.lock().unwrap().push(call);
    }
}

#[async_trait]
impl TokenProvider for Recorder {
    async fn token(&self) -> Result<AccessToken, Error> {
        self.record("token");
        Ok(AccessToken::new("from-the-inner-provider"))
    }

    fn invalidate(&self, _rejected: &AccessToken) {
        self.record("invalidate");
    }

    fn store_error(&self) -> Option<Error> {
        self.record("store_error");
        Some(Error::store("the inner store failed", None))
    }

    async fn forget(&self) -> Result<bool, Error> {
        self.record("forget");
        Ok(true)
    }
}

#[derive(Debug)]
struct Named {
    inner: Recorder,
}

forward_token_provider!(Named => |this| &this.inner);

#[derive(Debug)]
struct Generic<P>(P);

forward_token_provider!([P: TokenProvider] Generic<P> => |this| &this.0);

async fn exercise(provider: &dyn TokenProvider) {
    let token = provider.token().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "from-the-inner-provider");
    provider.invalidate(&token);
    assert!(matches!(provider.store_error(), Some(Error::Store { .. })));
    assert!(provider.forget().await.unwrap());
}

const ALL: [&str; 4] = ["token", "invalidate", "store_error", "forget"];

#[tokio::test]
async fn every_method_reaches_the_inner_provider() {
    let named = Named {
        inner: Recorder::default(),
    };
    exercise(&named).await;
    assert_eq!(*named.inner.calls.lock().unwrap(), ALL);

    let inner = Arc::new(Recorder::default());
    let generic = Generic(Arc::clone(&inner));
    exercise(&generic).await;
    // Through the generic wrapper and the `Arc` forwarding beneath it.
    exercise(&Box::new(&generic)).await;
    assert_eq!(*inner.calls.lock().unwrap(), [ALL, ALL].concat());
}

#[derive(Debug)]
struct Map {
    default: Option<Recorder>,
}

forward_token_provider!(Map => |this| this.default.as_ref(), or Error::config("DEFAULT", "is required"));

#[tokio::test]
async fn a_provider_with_no_default_answers_the_missing_error_and_no_more() {
    let empty = Map { default: None };
    let err = empty.token().await.unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "DEFAULT"),
        "{err}"
    );
    empty.invalidate(&AccessToken::new("stale"));
    assert!(empty.store_error().is_none());
    assert!(!empty.forget().await.unwrap());

    let with = Map {
        default: Some(Recorder::default()),
    };
    exercise(&with).await;
    assert_eq!(*with.default.as_ref().unwrap().calls.lock().unwrap(), ALL);
}
