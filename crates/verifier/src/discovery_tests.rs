use obol_api::PaymentRouteSpec;
use obol_api::routes::RouteRule;
use serde_json::json;

use super::*;
use crate::route::RouteKey;
use crate::route_table::RouteTable;

const PAY_TO: &str = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";

fn rule(pattern: &str, gate: Gate, price: Option<&str>, methods: &[&str]) -> RouteRule {
    RouteRule {
        pattern: pattern.into(),
        gate,
        price: price.map(str::to_owned),
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        summary: None,
        input_schema: None,
        output_schema: None,
    }
}

fn chat_input() -> Value {
    json!({
        "type": "object",
        "properties": {"model": {"type": "string"}, "messages": {"type": "array"}},
        "required": ["model", "messages"],
        "examples": [{"model": "qwen3", "messages": [{"role": "user", "content": "hi"}]}],
    })
}

fn chat_output() -> Value {
    json!({
        "type": "object",
        "description": "An OpenAI chat completion",
        "properties": {"choices": {"type": "array"}},
    })
}

/// Two offers: one with a table (a paid chat route with schemas and its own price, a paid
/// glob, a free health path), one without (its whole prefix at one price).
fn snapshot() -> Arc<Snapshot> {
    let mut with_table = PaymentRouteSpec::new("/services/llm/*", "1000", PAY_TO, "base-sepolia");
    with_table.description = Some("ServiceOffer llm".into());
    let mut chat = rule(
        "/services/llm/v1/chat/completions",
        Gate::Paid,
        Some("5000"),
        &["POST"],
    );
    chat.summary = Some("Chat completions".into());
    chat.input_schema = Some(chat_input());
    chat.output_schema = Some(chat_output());
    with_table.routes = vec![
        rule("/services/llm/v1/*", Gate::Paid, None, &[]),
        rule("/services/llm/health", Gate::Free, None, &["GET"]),
        chat,
    ];
    let plain = PaymentRouteSpec::new("/services/demo/*", "2000", PAY_TO, "base-sepolia");
    let table = RouteTable::new();
    table.reset([
        RouteEntry::load(RouteKey::new("llm", "x402-llm"), Some(1), &with_table, None).unwrap(),
        RouteEntry::load(RouteKey::new("demo", "x402-demo"), Some(1), &plain, None).unwrap(),
    ]);
    table.snapshot()
}

#[test]
fn route_templates() {
    for (pattern, want) in [
        ("/services/x/v1/chat", "/services/x/v1/chat"),
        ("/services/x/*", "/services/x/:rest"),
        ("/services/x/models/*/info", "/services/x/models/:p1/info"),
        ("/inference-*/v1/*", "/:p1/v1/:rest"),
        ("/*", "/:rest"),
        ("/", "/"),
    ] {
        assert_eq!(route_template(pattern), want, "{pattern}");
    }
}

#[test]
fn bazaar_describes_how_to_call_and_what_comes_back() {
    assert_eq!(bazaar(&[], None, None), None, "nothing to describe");
    let input = chat_input();
    let output = chat_output();
    let b = bazaar(&["POST".into()], Some(&input), Some(&output)).unwrap();
    let info = &b["info"];
    assert_eq!(info["input"]["type"], "http");
    assert_eq!(info["input"]["method"], "POST");
    assert_eq!(info["input"]["bodyType"], "json");
    assert_eq!(info["input"]["body"], input["examples"][0]);
    assert_eq!(info["output"]["description"], "An OpenAI chat completion");
    let schema = &b["schema"];
    assert_eq!(schema["$schema"], JSON_SCHEMA_2020_12);
    assert_eq!(schema["properties"]["input"]["properties"]["body"], input);
    assert_eq!(schema["required"], json!(["input"]));
    // A query method takes no body.
    let b = bazaar(&["GET".into()], None, Some(&output)).unwrap();
    assert_eq!(b["info"]["input"], json!({"type": "http", "method": "GET"}));
    assert_eq!(
        b["schema"]["properties"]["input"]["required"],
        json!(["type", "method"])
    );
    // No method declared: POST when there is a body schema.
    let b = bazaar(&[], Some(&input), None).unwrap();
    assert_eq!(b["info"]["input"]["method"], "POST");
}

#[test]
fn the_manifest_lists_every_resource_with_its_terms() {
    let m = manifest(&snapshot(), "https://obol.stack");
    assert_eq!(m["x402Version"], 2);
    let items = m["items"].as_array().unwrap();
    let by_template = |t: &str| {
        items
            .iter()
            .find(|i| i["routeTemplate"] == t)
            .unwrap_or_else(|| panic!("{t} listed: {m}"))
    };
    let chat = by_template("/services/llm/v1/chat/completions");
    assert_eq!(
        chat["resource"],
        "https://obol.stack/services/llm/v1/chat/completions"
    );
    assert_eq!(chat["gate"], "paid");
    assert_eq!(chat["methods"], json!(["POST"]));
    assert_eq!(chat["accepts"][0]["amount"], "5000");
    assert_eq!(chat["accepts"][0]["network"], "eip155:84532");
    assert_eq!(chat["description"], "Chat completions");
    assert!(chat["extensions"]["bazaar"]["info"].is_object());
    let health = by_template("/services/llm/health");
    assert_eq!(health["gate"], "free");
    assert_eq!(health["accepts"], json!([]));
    assert_eq!(
        by_template("/services/llm/v1/:rest")["accepts"][0]["amount"],
        "1000"
    );
    let demo = by_template("/services/demo/:rest");
    assert_eq!(demo["accepts"][0]["amount"], "2000");
    assert!(demo.get("methods").is_none(), "any method");
    assert_eq!(
        items.len(),
        4,
        "the table's prefix itself is not for sale: {m}"
    );
}

#[test]
fn openapi_has_one_operation_per_method_with_its_payment() {
    let doc = openapi(&snapshot(), "https://obol.stack");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], "https://obol.stack");
    let paths = doc["paths"].as_object().unwrap();
    let chat = &paths["/services/llm/v1/chat/completions"]["post"];
    assert_eq!(chat["x-x402"]["gate"], "paid");
    assert_eq!(chat["x-x402"]["accepts"][0]["amount"], "5000");
    assert_eq!(
        chat["requestBody"]["content"]["application/json"]["schema"],
        chat_input()
    );
    assert_eq!(
        chat["responses"]["200"]["content"]["application/json"]["schema"],
        chat_output()
    );
    assert!(chat["responses"]["402"].is_object());
    let health = &paths["/services/llm/health"]["get"];
    assert_eq!(health["x-x402"]["gate"], "free");
    assert!(health["responses"].get("402").is_none());
    let glob = &paths["/services/llm/v1/{rest}"]["get"];
    assert_eq!(glob["parameters"][0]["name"], "rest");
    assert_eq!(glob["x-x402"]["anyMethod"], true);
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|p| p.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap())
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "operation ids are unique");
}

/// The documents' whole shape, against files committed under `tests/fixtures/discovery/`
/// (`OBOL_WRITE_GOLDEN=1` rewrites them; review the diff).
#[test]
fn documents_match_their_golden_files() {
    let s = snapshot();
    for (name, doc) in [
        ("x402.json", manifest(&s, "https://obol.stack")),
        ("openapi.json", openapi(&s, "https://obol.stack")),
    ] {
        let path = format!(
            "{}/tests/fixtures/discovery/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
        if std::env::var_os("OBOL_WRITE_GOLDEN").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            text, want,
            "{name} changed; regenerate with OBOL_WRITE_GOLDEN=1"
        );
    }
}

#[test]
fn documents_are_built_once_per_snapshot_and_base() {
    let s = snapshot();
    let a = document(&s, "https://a", Document::Manifest);
    let again = document(&s, "https://a", Document::Manifest);
    assert_eq!(a.as_ptr(), again.as_ptr(), "the same bytes, not rebuilt");
    let b = document(&s, "https://b", Document::Manifest);
    assert!(
        std::str::from_utf8(&b)
            .unwrap()
            .contains("https://b/services")
    );
    let fresh = snapshot();
    let c = document(&fresh, "https://b", Document::OpenApi);
    assert!(std::str::from_utf8(&c).unwrap().contains("\"openapi\""));
}

/// Three more offers: one draining, one not Ready (marked by the controller), one in the
/// middle of a drain with a table.
fn with_drain_and_readiness() -> Arc<Snapshot> {
    let table = RouteTable::new();
    let mut draining = PaymentRouteSpec::new("/services/old/*", "1000", PAY_TO, "base-sepolia");
    draining.drain_ends_at = Some("2026-01-02T04:00:00Z".into());
    let mut draining_table = draining.clone();
    draining_table.pattern = "/services/oldt/*".into();
    draining_table.routes = vec![rule("/services/oldt/v1/*", Gate::Paid, None, &["POST"])];
    let down = PaymentRouteSpec::new("/services/down/*", "1000", PAY_TO, "base-sepolia");
    let up = PaymentRouteSpec::new("/services/up/*", "1000", PAY_TO, "base-sepolia");
    let load = |name: &str, spec: &PaymentRouteSpec, listed: bool| {
        let mut e = RouteEntry::load(RouteKey::new("ns", name), Some(1), spec, None).unwrap();
        e.listed = listed;
        e
    };
    table.reset([
        load("x402-old", &draining, true),
        load("x402-oldt", &draining_table, true),
        load("x402-down", &down, false),
        load("x402-up", &up, true),
    ]);
    table.snapshot()
}

#[test]
fn only_ready_offers_are_listed_and_draining_ones_say_until_when() {
    let s = with_drain_and_readiness();
    let m = manifest(&s, "");
    let got: Vec<(&str, bool, Option<&str>)> = m["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["routeTemplate"].as_str().unwrap(),
                i["available"].as_bool().unwrap(),
                i.get("drainEndsAt").map(|v| v.as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/services/old/:rest", false, Some("2026-01-02T04:00:00Z")),
            (
                "/services/oldt/v1/:rest",
                false,
                Some("2026-01-02T04:00:00Z")
            ),
            ("/services/up/:rest", true, None),
        ],
        "the offer that is not Ready is not listed: {m}"
    );
    let doc = openapi(&s, "");
    let paths = doc["paths"].as_object().unwrap();
    assert!(!paths.contains_key("/services/down/{rest}"), "{doc}");
    let old = &paths["/services/oldt/v1/{rest}"]["post"];
    assert_eq!(old["x-x402"]["available"], false);
    assert_eq!(old["x-x402"]["drainEndsAt"], "2026-01-02T04:00:00Z");
    assert_eq!(old["deprecated"], true);
    let up = &paths["/services/up/{rest}"]["get"];
    assert_eq!(up["x-x402"]["available"], true);
    assert!(up.get("deprecated").is_none());
    // Not listed is not ungated: the route is still in the table.
    assert!(s.get("ns", "x402-down").is_some());
}
