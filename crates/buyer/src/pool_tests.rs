use super::*;
use crate::config::{PreSignedAuth, UpstreamConfig};

pub(crate) fn mk_config(url: &str, model: Option<&str>, network: &str) -> UpstreamConfig {
    UpstreamConfig {
        url: url.into(),
        remote_model: model.map(Into::into),
        network: network.into(),
        pay_to: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into(),
        asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
        asset_symbol: None,
        asset_decimals: None,
        asset_transfer_method: None,
        eip712_name: None,
        eip712_version: None,
        price: "1000".into(),
    }
}

fn mk_auth(nonce: &str, valid_before: &str) -> PreSignedAuth {
    PreSignedAuth {
        signature: Some("0x01".into()),
        from: Some("0xf".into()),
        to: Some("0xt".into()),
        value: Some("1000".into()),
        valid_after: Some("0".into()),
        valid_before: Some(valid_before.into()),
        nonce: Some(nonce.into()),
        ..PreSignedAuth::default()
    }
}

fn mk_loaded(n: usize) -> Loaded {
    let mut l = Loaded::default();
    l.upstreams.insert(
        "s".into(),
        mk_config("http://s/x/", Some("qwen3:32b"), "base-sepolia"),
    );
    l.auths.insert(
        "s".into(),
        (0..n)
            .map(|i| mk_auth(&format!("0x{i}"), "4294967295"))
            .collect(),
    );
    l
}

#[test]
fn take_marks_consumed_and_reload_keeps_counts() {
    let mut pool = Pool::new(["0x0".to_owned()]);
    assert!(pool.apply(&mk_loaded(3)).is_empty());
    assert_eq!(pool.counts("s"), Some((2, 1)));
    let a = pool.take("s", 1000).unwrap();
    assert_eq!(a.key, "0x1");
    assert_eq!(pool.counts("s"), Some((1, 2)));
    // Reloading the same files keeps what was spent (B8).
    pool.apply(&mk_loaded(3));
    assert_eq!(pool.counts("s"), Some((1, 2)));
    pool.take("s", 1000).unwrap();
    assert_eq!(pool.take("s", 1000), Err(TakeError::Exhausted));
    assert_eq!(pool.take("nope", 1000), Err(TakeError::Unknown));
    assert_eq!(pool.counts("s"), Some((0, 3)));
}

#[test]
fn give_back_restores_the_auth_first() {
    let mut pool = Pool::new([]);
    pool.apply(&mk_loaded(2));
    let a = pool.take("s", 1).unwrap();
    pool.give_back("s", a.clone());
    assert_eq!(pool.counts("s"), Some((2, 0)));
    assert_eq!(pool.take("s", 1).unwrap(), a);
}

#[test]
fn expired_auths_are_skipped_but_kept() {
    let mut l = mk_loaded(0);
    l.auths.insert(
        "s".into(),
        vec![mk_auth("0xold", "100"), mk_auth("0xnew", "4294967295")],
    );
    let mut pool = Pool::new([]);
    pool.apply(&l);
    assert_eq!(pool.take("s", 1000).unwrap().key, "0xnew");
    assert_eq!(pool.take("s", 1000), Err(TakeError::Exhausted));
    assert_eq!(pool.counts("s"), Some((1, 1)));
}

#[test]
fn a_key_spent_under_another_upstream_is_never_taken_again() {
    let mut l = mk_loaded(1);
    l.upstreams
        .insert("t".into(), mk_config("http://t", None, "base-sepolia"));
    l.auths
        .insert("t".into(), vec![mk_auth("0x0", "4294967295")]);
    let mut pool = Pool::new([]);
    pool.apply(&l);
    pool.take("s", 1).unwrap();
    assert_eq!(pool.take("t", 1), Err(TakeError::Exhausted));
}

#[test]
fn models_route_and_status_matches_the_go_shape() {
    let mut l = mk_loaded(2);
    l.upstreams
        .insert("free".into(), mk_config("http://f", None, "base"));
    let mut bad = mk_config("ftp://x", None, "base");
    bad.price = "1.5".into();
    l.upstreams.insert("bad".into(), bad);
    let mut pool = Pool::new([]);
    let notes = pool.apply(&l);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(pool.route_model("qwen3:32b").unwrap().name, "s");
    assert_eq!(pool.route_model("free").unwrap().name, "free");
    assert!(pool.route_model("other").is_none());
    let status = serde_json::to_value(pool.status()).unwrap();
    assert_eq!(
        status["s"],
        serde_json::json!({"url": "http://s/x", "remote_model": "qwen3:32b",
            "public_model": "paid/qwen3:32b", "remaining": 2, "spent": 0, "network": "base-sepolia"})
    );
    assert!(status["free"].get("remote_model").is_none());
}
