use super::*;
use obol_api::service_offer::RegistrationService;

pub(crate) fn mk_spec() -> RegistrationRequestSpec {
    RegistrationRequestSpec {
        name: "Demo Agent".into(),
        description: Some("qwen3.5:9b inference via x402 micropayments".into()),
        endpoint: "https://example.com/services/demo".into(),
        chain: "base-sepolia".into(),
        registry: None,
        image: Some("https://example.com/agent-icon.png".into()),
        services: vec![RegistrationService {
            name: "A2A".into(),
            endpoint: "https://example.com/.well-known/agent-card.json".into(),
            version: Some("0.3.0".into()),
        }],
        supported_trust: vec!["reputation".into()],
        skills: vec!["natural_language_processing/text_generation".into()],
        domains: vec!["technology/software_engineering".into()],
        metadata: [
            ("gpu", "A100-80GB"),
            ("best_val_bpb", "1.234"),
            ("empty", " "),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        provenance: [("source", "obol-stack")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        service_offer_name: Some("demo".into()),
    }
}

fn target() -> Target {
    Target::from_spec(&mk_spec()).unwrap()
}

fn golden(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn resolves_the_official_registry_by_chain_name_or_caip2() {
    let t = target();
    assert_eq!(t.chain_id, 84532);
    assert_eq!(
        t.agent_registry(),
        "eip155:84532:0x8004A818BFB912233c491871b3d84c89A494BD9e"
    );
    let mut spec = mk_spec();
    spec.chain = "eip155:8453".into();
    assert_eq!(
        Target::from_spec(&spec).unwrap().agent_registry(),
        "eip155:8453:0x8004A169FB4a3325136EB29fA0ceB6D2e539a432"
    );
    spec.registry = Some("0x5FbDB2315678afecb367f032d93F642f64180aa3".into());
    assert_eq!(
        Target::from_spec(&spec).unwrap().registry.to_string(),
        "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    );
    spec.chain = "nowhere".into();
    assert!(Target::from_spec(&spec).is_err());

    // Any chain of the official deployment, named by CAIP-2 (no token table needed).
    let mut spec = mk_spec();
    spec.chain = "eip155:42220".into();
    assert_eq!(
        Target::from_spec(&spec).unwrap().registry,
        crate::deployments::MAINNET_IDENTITY_REGISTRY
    );
    spec.chain = "eip155:31337".into();
    let err = Target::from_spec(&spec).unwrap_err();
    assert!(err.contains("set spec.registry"), "{err}");
    for bad in ["eip155:", "eip155:0", "eip155:x1"] {
        spec.chain = bad.into();
        assert!(Target::from_spec(&spec).is_err(), "{bad}");
    }
}

#[test]
fn agent_registry_strings_round_trip() {
    let t = target();
    assert_eq!(Target::from_agent_registry(&t.agent_registry()), Ok(t));
    for bad in [
        "",
        "84532:0x8004A818BFB912233c491871b3d84c89A494BD9e",
        "eip155:84532",
        "eip155:x:0x8004A818BFB912233c491871b3d84c89A494BD9e",
        "eip155:84532:0x12",
    ] {
        assert!(Target::from_agent_registry(bad).is_err(), "{bad}");
    }
}

#[test]
fn every_service_entry_has_an_endpoint() {
    // Skills or domains add an OASF entry; it names the agent's endpoint like every other one.
    let doc = build(&mk_spec(), &target(), None);
    let oasf = doc.services.iter().find(|s| s.name == "OASF").unwrap();
    assert_eq!(
        oasf.endpoint.as_deref(),
        Some("https://example.com/services/demo")
    );
    assert_eq!(oasf.skills, ["natural_language_processing/text_generation"]);
    for s in &doc.services {
        assert!(
            s.endpoint.as_deref().is_some_and(|e| !e.is_empty()),
            "{s:?}"
        );
    }
    let mut only_domains = mk_spec();
    only_domains.skills.clear();
    let doc = build(&only_domains, &target(), None);
    assert!(doc.services.iter().all(|s| s.endpoint.is_some()));
}

#[test]
fn live_document_matches_golden() {
    let doc = build(&mk_spec(), &target(), Some(7));
    assert_eq!(
        serde_json::to_value(&doc).unwrap(),
        golden("registration-agent-7.json")
    );
    assert_eq!(doc.registrations[0].agent_id, 7);
}

#[test]
fn no_registrations_until_the_agent_id_is_known() {
    let doc = build(&mk_spec(), &target(), None);
    let json = serde_json::to_value(&doc).unwrap();
    assert!(json.get("registrations").is_none(), "{json}");
    assert_eq!(json["type"], REGISTRATION_TYPE);
    assert_eq!(json["x402Support"], true);
    assert_eq!(json["active"], true);
    assert_eq!(
        json["services"][0]["endpoint"],
        "https://example.com/services/demo"
    );
}

#[test]
fn agent_id_zero_is_a_registration() {
    let doc = build(&mk_spec(), &target(), Some(0));
    let json = serde_json::to_value(&doc).unwrap();
    assert_eq!(json["registrations"][0]["agentId"], 0);
}

#[test]
fn minimal_spec_gets_defaults_and_no_empty_fields() {
    let spec = RegistrationRequestSpec {
        name: "bare".into(),
        description: None,
        endpoint: "http://127.0.0.1:8080/services/bare".into(),
        chain: "eip155:84532".into(),
        registry: None,
        image: None,
        services: vec![],
        supported_trust: vec![],
        skills: vec![],
        domains: vec![],
        metadata: BTreeMap::new(),
        provenance: BTreeMap::new(),
        service_offer_name: None,
    };
    let json = serde_json::to_value(build(&spec, &target(), None)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "type": REGISTRATION_TYPE,
            "name": "bare",
            "description": "x402 payment-gated service: bare",
            "services": [{"name": "web", "endpoint": "http://127.0.0.1:8080/services/bare"}],
            "x402Support": true,
            "active": true,
        })
    );
}

#[test]
fn tombstone_matches_golden_and_keeps_registrations() {
    let live = build(&mk_spec(), &target(), Some(7));
    let dead = tombstone(&live);
    assert_eq!(
        serde_json::to_value(&dead).unwrap(),
        golden("tombstone-agent-7.json")
    );
    assert!(!dead.active && !dead.x402_support && dead.services.is_empty());
    assert_eq!(dead.registrations, live.registrations);
}

#[test]
fn data_uri_round_trips() {
    let doc = build(&mk_spec(), &target(), Some(7));
    let uri = data_uri(&doc);
    assert!(uri.starts_with("data:application/json;base64,"), "{uri}");
    assert!(!uri.contains('{'));
    assert_eq!(parse_data_uri(&uri), Some(doc.clone()));
    assert_eq!(agent_uri(&doc, None), uri);
    assert_eq!(parse_data_uri("https://example.com/x.json"), None);
}

#[test]
fn served_uri_names_the_request() {
    let served = served_uri("https://agents.example/", "llm", "demo");
    assert_eq!(served, "https://agents.example/registrations/llm/demo.json");
    let doc = build(&mk_spec(), &target(), None);
    assert_eq!(agent_uri(&doc, Some(served.clone())), served);
}

#[test]
fn aggregate_keeps_the_oldest_identity_and_collects_services_and_registrations() {
    let t = target();
    let older = build(&mk_spec(), &t, Some(3));
    let mut spec = mk_spec();
    spec.name = "Second".into();
    spec.endpoint = "https://example.com/services/second".into();
    let newer = build(&spec, &t, Some(9));
    let agg = aggregate(&[older.clone(), newer]).unwrap();
    assert_eq!(agg.name, "Demo Agent");
    let endpoints: Vec<_> = agg
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.endpoint.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        endpoints,
        [
            ("web", "https://example.com/services/demo"),
            ("OASF", "https://example.com/services/demo"),
            ("A2A", "https://example.com/.well-known/agent-card.json"),
            ("web", "https://example.com/services/second"),
            ("OASF", "https://example.com/services/second"),
        ]
    );
    let ids: Vec<_> = agg.registrations.iter().map(|r| r.agent_id).collect();
    assert_eq!(ids, [3, 9]);
    assert_eq!(aggregate(&[]), None);
    assert_eq!(aggregate(std::slice::from_ref(&older)), Some(older));
}
