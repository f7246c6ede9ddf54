//! The store on a real Redis Cluster of three masters: each principal's keys in its own slot,
//! the listing and removal visiting every master, and the errors when a cluster is named as one
//! server or one server as a cluster.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use partner_auth_redis::RedisStore;
use partner_auth_redis::testing::{RedisCluster, RedisServer};
use token_provider::{Error, TokenStore};

const PRINCIPALS: usize = 30;

fn keys_on(node: &RedisServer) -> Vec<String> {
    node.cli(&["--scan"]).lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_and_forget_all_cover_every_master() {
    let cluster = RedisCluster::start();
    let store = RedisStore::new(cluster.url()).unwrap();
    let mut saved = BTreeSet::new();
    for i in 0..PRINCIPALS {
        let k = key(&format!("user-{i}"));
        let s = state(
            &format!("at-{i}"),
            Some(&format!("rt-{i}")),
            Duration::from_secs(600),
        );
        seed(&store, &k, &s).await;
        assert_eq!(store.load(&k).await.unwrap(), Some(s));
        saved.insert(k);
    }
    // Keys of the layout before hash tags, in slots of their own: listed as unreadable.
    let earlier = key("earlier");
    let mut earlier_keys = Vec::new();
    for kind in ["e", "f", "l"] {
        let name = format!("partner-auth:{kind}:{earlier}");
        let node = cluster
            .nodes()
            .iter()
            .find(|n| !n.cli(&["SET", &name, "x"]).starts_with("MOVED"))
            .expect("the node that holds the key's slot");
        assert!(node.cli(&["GET", &name]).contains('x'));
        earlier_keys.push(name);
    }
    // Every master holds some of them.
    for node in cluster.nodes() {
        assert!(
            keys_on(node)
                .iter()
                .any(|k| k.starts_with("partner-auth:{")),
            "a master with none of {PRINCIPALS} principals"
        );
    }
    let listed = store.entries().await.unwrap();
    let readable: BTreeSet<_> = listed
        .iter()
        .filter(|(_, state)| state.is_ok())
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(readable, saved);
    let unreadable: Vec<_> = listed.iter().filter(|(_, s)| s.is_err()).collect();
    assert_eq!(unreadable.len(), 1, "{unreadable:?}");
    assert_eq!(unreadable[0].0, earlier);
    // `forget --all`: every entry listed is removed, the earlier keys with separate DELs.
    for (k, _) in &listed {
        let lock = store.lock(k).await.unwrap();
        assert!(store.remove(k, &lock).await.unwrap(), "{k}");
    }
    partner_auth_redis::settle(Duration::from_secs(1)).await;
    for node in cluster.nodes() {
        let left: Vec<_> = keys_on(node)
            .into_iter()
            .filter(|k| k.starts_with("partner-auth:"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
    assert!(store.entries().await.unwrap().is_empty());
}

/// Before: answered `Server(Moved)`, a store error that did not say what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_named_as_one_server_is_a_configuration_error() {
    let cluster = RedisCluster::start();
    let url = format!("redis://127.0.0.1:{}/0", cluster.nodes()[0].port());
    let store = RedisStore::new(url.as_str()).unwrap();
    // Some of these principals' slots are on another node.
    let mut refused = None;
    for i in 0..20 {
        let k = key(&format!("moved-{i}"));
        match store.lock(&k).await {
            Ok(lock) => drop(lock),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("a key of another node");
    let text = err.to_string();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(
        text.contains(&url) && text.contains("MOVED") && text.contains("redis+cluster://"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_named_as_a_cluster_is_a_configuration_error() {
    let server = RedisServer::start();
    let url = format!("redis+cluster://127.0.0.1:{}", server.port());
    let err = RedisStore::builder(url.as_str())
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
        .lock(&key("single"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(
        text.contains(&url) && text.contains("not a Redis Cluster"),
        "{text}"
    );
}
