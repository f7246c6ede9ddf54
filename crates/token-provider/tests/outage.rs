//! A token endpoint down for 20 minutes, from 4 minutes before the cached token expires, in
//! virtual time: callers never see an error while the token is valid, the endpoint is asked
//! once per backoff period, and the first token after it comes back arrives within one backoff.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use token_provider::{
    AccessToken, CacheConfig, CachedTokenProvider, Clock, Error, Fetch, TokenProvider, TokenState,
    TokioClock,
};

const MINUTE: Duration = Duration::from_secs(60);
const LIFETIME: Duration = Duration::from_secs(3600);
const BACKOFF_INITIAL: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// A token endpoint that answers 503 between `down` and `up` and records every request.
#[derive(Clone, Debug)]
struct Endpoint {
    clock: TokioClock,
    down: SystemTime,
    up: SystemTime,
    /// When each request came, and whether it was answered with a token.
    requests: Arc<Mutex<Vec<(SystemTime, bool)>>>,
}

#[token_provider::async_trait]
impl Fetch for Endpoint {
    async fn fetch(&self, _previous: Option<&TokenState>) -> Result<TokenState, Error> {
        let now = self.clock.now();
        let serving = now < self.down || now >= self.up;
        self.requests.lock().unwrap().push((now, serving));
        if !serving {
            return Err(Error::http_status(503));
        }
        let n = self.requests.lock().unwrap().len();
        Ok(TokenState::new(
            AccessToken::builder(format!("at-{n}"))
                .expires_in(now, LIFETIME)
                .build(),
        ))
    }
}

#[tokio::test(start_paused = true)]
async fn an_outage_across_expiry_costs_no_error_while_the_token_is_valid() {
    let clock = TokioClock::new(token_provider::testing::epoch());
    let start = clock.now();
    let expiry = start + LIFETIME;
    let endpoint = Endpoint {
        clock: clock.clone(),
        down: expiry - 4 * MINUTE,
        up: expiry + 16 * MINUTE,
        requests: Arc::default(),
    };
    let cache = CachedTokenProvider::with_config(
        endpoint.clone(),
        CacheConfig::new()
            .clock(Arc::new(clock.clone()))
            // Refreshed inside the outage: 3 minutes (less a tenth) before expiry.
            .margin(3 * MINUTE)
            .backoff(BACKOFF_INITIAL, BACKOFF_MAX)
            .negative_ttl(BACKOFF_INITIAL),
    );
    assert_eq!(
        cache.token().await.unwrap().secret().expose_secret(),
        "at-1"
    );

    // 64 callers, each calling once a second until 30 minutes past expiry.
    let errors = Arc::new(Mutex::new(Vec::new()));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let callers: Vec<_> = (0..64)
        .map(|_| {
            let (cache, clock) = (cache.clone(), clock.clone());
            let (errors, tokens) = (Arc::clone(&errors), Arc::clone(&tokens));
            tokio::spawn(async move {
                while clock.now() < expiry + 30 * MINUTE {
                    let now = clock.now();
                    match cache.token().await {
                        Ok(token) => tokens.lock().unwrap().push((now, token)),
                        Err(e) => errors.lock().unwrap().push((now, e.to_string())),
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }

    // No error while the token was valid, and no token served past its expiry.
    let errors = errors.lock().unwrap();
    assert!(
        errors.iter().all(|(at, _)| *at >= expiry),
        "{:?}",
        errors.first()
    );
    assert!(
        errors.iter().all(|(_, e)| e.contains("503")),
        "{:?}",
        errors.first()
    );
    for (at, token) in tokens.lock().unwrap().iter() {
        assert!(
            token.expires_at().is_some_and(|exp| *at < exp),
            "expired token served"
        );
    }
    assert!(
        !errors.is_empty(),
        "the outage outlasted the token: callers were told"
    );

    let requests = endpoint.requests.lock().unwrap().clone();
    let failed: Vec<SystemTime> = requests.iter().filter(|r| !r.1).map(|r| r.0).collect();
    // The first refresh came inside the outage, at the refresh point.
    assert!(
        failed[0] >= expiry - 3 * MINUTE && failed[0] < expiry,
        "{failed:?}"
    );
    // One request per backoff period: never closer than half the initial backoff (the
    // jitter's least), never further apart than the longest backoff plus a caller's second.
    for pair in failed.windows(2) {
        let gap = pair[1].duration_since(pair[0]).unwrap();
        assert!(gap >= BACKOFF_INITIAL / 2, "{gap:?} between two requests");
        assert!(
            gap <= BACKOFF_MAX + Duration::from_secs(1),
            "{gap:?} without a request"
        );
    }
    // 20 minutes at one request per backoff period (at most a minute): about 20 of them.
    assert!(
        (15..=40).contains(&failed.len()),
        "{} requests",
        failed.len()
    );
    // The first success after the endpoint came back, within one backoff of it.
    let back = requests
        .iter()
        .find(|(at, ok)| *ok && *at >= endpoint.up)
        .expect("a token after the outage")
        .0;
    assert!(
        back.duration_since(endpoint.up).unwrap() <= BACKOFF_MAX + Duration::from_secs(1),
        "first success {:?} after the endpoint came back",
        back.duration_since(endpoint.up).unwrap()
    );
    eprintln!(
        "outage: {} requests in 20 minutes down, {} caller errors (all past expiry), first \
         token {:?} after the endpoint came back",
        failed.len(),
        errors.len(),
        back.duration_since(endpoint.up).unwrap()
    );
    // And nothing but that one success and the requests of the outage.
    assert_eq!(requests.len(), 1 + failed.len() + 1, "{requests:?}");
}
