use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use obol_api::purchase_request::{PoolShard, PurchaseRequestSpec};
use serde_json::json;

const PAY_TO: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
const PAYER: &str = "0x857b06519E91e3A54538791bDbb0E22373e36b66";

fn purchase(ns: &str, name: &str, created: i64, shards: &[(&str, u64)]) -> Arc<PurchaseRequest> {
    let mut p = PurchaseRequest::new(
        name,
        PurchaseRequestSpec {
            seller_url: "http://seller/services/demo".into(),
            upstream: None,
            remote_model: None,
            network: "base-sepolia".into(),
            asset: USDC.into(),
            pay_to: PAY_TO.into(),
            price: "1000".into(),
            scheme: None,
            payer: PAYER.into(),
            eip712_name: Some("USDC".into()),
            eip712_version: Some("2".into()),
            count: shards.iter().map(|s| s.1).sum(),
            pool: shards
                .iter()
                .map(|(cm, n)| PoolShard {
                    config_map: (*cm).into(),
                    count: *n,
                    expires_at: "2030-01-01T00:00:00Z".into(),
                })
                .collect(),
        },
    );
    p.metadata.namespace = Some(ns.into());
    p.metadata.uid = Some(format!("uid-{ns}-{name}"));
    p.metadata.generation = Some(1);
    p.metadata.creation_timestamp = Some(Time(jiff::Timestamp::from_second(created).unwrap()));
    Arc::new(p)
}

fn config_map(ns: &str, name: &str, owner: &str, n: usize) -> (String, Arc<ConfigMap>) {
    let auths: Vec<_> = (0..n)
        .map(|i| {
            json!({"id": format!("{name}-{i}"), "payment": {"payload": {"signature": "0x01",
            "authorization": {"from": PAYER, "to": PAY_TO, "value": "1000", "validAfter": "0",
            "validBefore": "4294967295", "nonce": format!("0x{i:064x}")}}}})
        })
        .collect();
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm.metadata.namespace = Some(ns.into());
    cm.metadata.owner_references = Some(vec![OwnerReference {
        uid: format!("uid-{ns}-{owner}"),
        ..OwnerReference::default()
    }]);
    cm.data = Some([(POOL_KEY.to_owned(), json!(auths).to_string())].into());
    (key(ns, name), Arc::new(cm))
}

fn run_assemble(purchases: &[Arc<PurchaseRequest>], cms: &[(String, Arc<ConfigMap>)]) -> Assembled {
    let by_key: HashMap<_, _> = cms.iter().cloned().collect();
    assemble(purchases, &by_key, &mut |cm| {
        parse_config_map(cm).map(Arc::new)
    })
}

#[test]
fn a_request_and_its_config_maps_become_an_upstream() {
    let p = purchase("a", "demo", 1, &[("purch-demo-0", 3), ("purch-demo-1", 2)]);
    let out = run_assemble(
        &[p],
        &[
            config_map("a", "purch-demo-0", "demo", 3),
            config_map("a", "purch-demo-1", "demo", 2),
        ],
    );
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    assert_eq!(out.loaded.auths["demo"].len(), 5);
    let up = &out.loaded.upstreams["demo"];
    assert_eq!(
        (up.price.as_str(), up.payer.as_deref()),
        ("1000", Some(PAYER))
    );
    assert_eq!(out.refs["demo"].bought, 5);
}

#[test]
fn missing_foreign_and_miscounted_config_maps_are_reported() {
    let p = purchase("a", "demo", 1, &[("purch-demo-0", 3), ("purch-demo-1", 2)]);
    // Only the first exists: what is there is spendable, the rest is awaited.
    let out = run_assemble(
        std::slice::from_ref(&p),
        &[config_map("a", "purch-demo-0", "demo", 3)],
    );
    assert_eq!(out.loaded.auths["demo"].len(), 3);
    let problem = &out.problems["a/demo"];
    assert_eq!(problem.reason, reasons::WAITING_FOR_CONFIG_MAPS);
    assert!(
        problem.message.contains("purch-demo-1"),
        "{}",
        problem.message
    );
    // A ConfigMap of the right name owned by someone else is not used.
    let out = run_assemble(
        std::slice::from_ref(&p),
        &[
            config_map("a", "purch-demo-0", "other", 3),
            config_map("a", "purch-demo-1", "demo", 2),
        ],
    );
    assert_eq!(out.loaded.auths["demo"].len(), 2);
    assert_eq!(
        out.problems["a/demo"].reason,
        reasons::WAITING_FOR_CONFIG_MAPS
    );
    // A count that disagrees with the spec.
    let out = run_assemble(
        &[p],
        &[
            config_map("a", "purch-demo-0", "demo", 3),
            config_map("a", "purch-demo-1", "demo", 1),
        ],
    );
    assert_eq!(out.problems["a/demo"].reason, reasons::INVALID_SPEC);
}

#[test]
fn the_older_request_keeps_a_contested_upstream_name() {
    let newer = purchase("b", "demo", 20, &[("purch-demo-0", 1)]);
    let older = purchase("a", "demo", 10, &[("purch-demo-0", 1)]);
    let out = run_assemble(
        &[newer, older],
        &[
            config_map("a", "purch-demo-0", "demo", 1),
            config_map("b", "purch-demo-0", "demo", 1),
        ],
    );
    assert_eq!(out.refs["demo"].namespace, "a");
    assert_eq!(out.problems["b/demo"].reason, reasons::UPSTREAM_CONFLICT);
    assert!(out.unserved.contains_key("b/demo"));
}

#[test]
fn status_conditions_follow_pool_and_seller() {
    let r = PurchaseRef {
        namespace: "a".into(),
        name: "demo".into(),
        generation: Some(2),
        bought: 5,
    };
    let counts = Counts {
        remaining: 3,
        held: 1,
        spent: 1,
        ..Counts::default()
    };
    let seen = |outcome: &str| SellerObservation {
        time: "t".into(),
        http_status: Some(402),
        outcome: outcome.into(),
        message: "price 2000".into(),
    };
    let waiting = PoolProblem {
        reason: reasons::WAITING_FOR_CONFIG_MAPS,
        message: "waiting".into(),
    };
    let (paid, changed) = (seen("paid"), seen("terms_changed"));
    let empty = Counts::default();
    // (counts, problem, seller) -> (PoolLoaded, SellerReachable, Ready reason)
    type Case<'a> = (
        Option<Counts>,
        Option<&'a PoolProblem>,
        Option<&'a SellerObservation>,
        (&'static str, &'static str, &'static str),
    );
    let cases: Vec<Case<'_>> = vec![
        (
            Some(counts),
            None,
            Some(&paid),
            ("True", "True", reasons::SPENDABLE),
        ),
        (
            Some(counts),
            None,
            None,
            ("True", "Unknown", reasons::SPENDABLE),
        ),
        (
            Some(counts),
            None,
            Some(&changed),
            ("True", "False", reasons::WAITING),
        ),
        (
            Some(counts),
            Some(&waiting),
            Some(&paid),
            ("False", "True", reasons::SPENDABLE),
        ),
        (
            Some(empty),
            None,
            Some(&paid),
            ("True", "True", reasons::EXHAUSTED),
        ),
        (
            None,
            Some(&waiting),
            None,
            ("False", "Unknown", reasons::WAITING),
        ),
    ];
    let previous = PurchaseRequestStatus::default();
    for (counts, problem, seller, want) in cases {
        let s = status(&StatusInput {
            purchase: &r,
            counts,
            problem,
            seller,
            previous: &previous,
            now: "2026-01-01T00:00:00Z",
        });
        let get = |t: &str| obol_api::condition::find(&s.conditions, t).unwrap().clone();
        let got = (
            get(types::POOL_LOADED).status.as_str(),
            get(types::SELLER_REACHABLE).status.as_str(),
            get(types::READY).reason,
        );
        assert_eq!(
            (got.0, got.1, got.2.as_str()),
            want,
            "{counts:?} {problem:?} {seller:?}"
        );
        assert_eq!(s.observed_generation, Some(2));
    }
    // Written twice with the same input, a status does not change (no write).
    let once = status(&StatusInput {
        purchase: &r,
        counts: Some(counts),
        problem: None,
        seller: Some(&paid),
        previous: &previous,
        now: "2026-01-01T00:00:00Z",
    });
    let twice = status(&StatusInput {
        purchase: &r,
        counts: Some(counts),
        problem: None,
        seller: Some(&paid),
        previous: &once,
        now: "2026-01-01T00:00:09Z",
    });
    assert_eq!(once, twice);
    assert_eq!(
        (once.remaining, once.held, once.spent),
        (Some(3), Some(1), Some(1))
    );
}
