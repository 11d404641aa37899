use super::*;

const WALLET: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

fn ok_request() -> OfferRequest {
    OfferRequest {
        name: "myapi".into(),
        namespace: "llm".into(),
        upstream: "myapi-svc".into(),
        port: 8080,
        health_path: "/health".into(),
        wallet: Some(WALLET.into()),
        network: "base-sepolia".into(),
        per_request: Some("0.001".into()),
        max_timeout_seconds: 300,
        ..Default::default()
    }
}

#[test]
fn builds_the_offer_the_design_describes() {
    let planned = plan_offer(&ok_request()).unwrap();
    let so = planned.offer;
    assert_eq!(so.metadata.name.as_deref(), Some("myapi"));
    assert_eq!(so.metadata.namespace.as_deref(), Some("llm"));
    assert_eq!(so.spec.type_, OfferType::Http);
    assert_eq!(so.spec.upstream.service, "myapi-svc");
    assert_eq!(so.spec.upstream.namespace.as_deref(), Some("llm"));
    assert_eq!(so.spec.upstream.port, 8080);
    assert_eq!(so.spec.payment.pay_to, WALLET);
    assert_eq!(so.spec.payment.network, "base-sepolia");
    assert_eq!(so.spec.payment.price.per_request.as_deref(), Some("0.001"));
    assert!(so.spec.registration.is_none());
    assert_eq!(
        so.spec.gateway,
        Some(OfferGateway {
            mode: GatewayMode::Proxy,
            streaming_content_types: vec![],
            allow_web_socket: false,
        }),
        "a new offer is written in proxy mode, explicitly"
    );
    assert_eq!(
        planned.notes,
        ["Each request is charged 0.001 USDC on base-sepolia (eip155:84532)."]
    );
}

#[test]
fn per_mtok_and_registration() {
    let req = OfferRequest {
        per_request: None,
        per_mtok: Some("1.25".into()),
        register: true,
        register_name: Some("My API".into()),
        register_skills: vec!["a/b".into()],
        register_metadata: vec!["gpu=A100-80GB".into(), "k=v=w".into()],
        ..ok_request()
    };
    let planned = plan_offer(&req).unwrap();
    assert!(
        planned.notes[0].contains("0.00125 USDC"),
        "{:?}",
        planned.notes
    );
    assert!(planned.notes[1].contains("1000 tokens"));
    // The metered terms of a new offer (gateway mode proxy): upto per token, else the exact
    // price of 1000 tokens.
    assert!(
        planned.notes[2].starts_with("Metered per token: 1.25 USDC per million tokens."),
        "{:?}",
        planned.notes
    );
    assert!(
        planned.notes[2].contains(
            "at most 0.0125 USDC (10000 tokens); an answer without usage is charged 0.00125 USDC \
             (1000 tokens). Paid with exact, a request costs 0.00125 USDC."
        ),
        "{:?}",
        planned.notes
    );
    let reg = planned.offer.spec.registration.unwrap();
    assert!(reg.enabled);
    assert_eq!(reg.metadata["gpu"], "A100-80GB");
    assert_eq!(reg.metadata["k"], "v=w");
}

#[test]
fn refusals_table() {
    type Edit = fn(&mut OfferRequest);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "upper-case name",
            |r| r.name = "MyApi".into(),
            "invalid offer name",
        ),
        (
            "unicode name",
            |r| r.name = "straße".into(),
            "invalid offer name",
        ),
        (
            "empty name",
            |r| r.name = String::new(),
            "invalid offer name",
        ),
        ("no wallet", |r| r.wallet = None, "wallet required"),
        (
            "empty wallet",
            |r| r.wallet = Some(String::new()),
            "wallet required",
        ),
        (
            "short wallet",
            |r| r.wallet = Some("0x1234".into()),
            "invalid wallet",
        ),
        (
            "unknown network",
            |r| r.network = "solana".into(),
            "unknown network",
        ),
        ("no price", |r| r.per_request = None, "price required"),
        (
            "two prices",
            |r| r.per_hour = Some("1".into()),
            "exactly one kind of price",
        ),
        (
            "negative price",
            |r| r.per_request = Some("-1".into()),
            "negative",
        ),
        (
            "zero price",
            |r| r.per_request = Some("0".into()),
            "rounds to zero",
        ),
        (
            "text price",
            |r| r.per_request = Some("cheap".into()),
            "not a decimal",
        ),
        ("port 0", |r| r.port = 0, "invalid port"),
        ("port 65536", |r| r.port = 65536, "invalid port"),
        (
            "bad health path",
            |r| r.health_path = "health".into(),
            "--health-path",
        ),
        ("bad path", |r| r.path = Some("/a b".into()), "--path"),
        (
            "dot-dot path",
            |r| r.path = Some("/a/../b".into()),
            "--path",
        ),
        ("timeout 0", |r| r.max_timeout_seconds = 0, "--max-timeout"),
        // Disagreements with the controller, fixed by one `validate`:
        (
            "upstream not a Service name",
            |r| r.upstream = "My_Svc".into(),
            "invalid --upstream \"My_Svc\"",
        ),
        (
            "upstream namespace not a namespace",
            |r| r.upstream_namespace = Some("Other NS".into()),
            "--upstream-namespace",
        ),
        (
            "network without USDC",
            |r| r.network = "sepolia".into(),
            "no known USDC",
        ),
        (
            "zero approx tokens",
            |r| {
                r.per_request = None;
                r.per_mtok = Some("1".into());
                r.approx_tokens_per_request = Some(0);
            },
            "--approx-tokens",
        ),
        (
            "per-token and per-request prices",
            |r| r.per_mtok_output = Some("1".into()),
            "exactly one kind of price",
        ),
        (
            "max tokens below approx tokens",
            |r| {
                r.per_request = None;
                r.per_mtok = Some("1".into());
                r.max_tokens_per_request = Some(999);
            },
            "invalid --max-tokens: maxTokensPerRequest 999 is below approxTokensPerRequest 1000",
        ),
        (
            "input price finer than the asset per million tokens",
            |r| {
                r.per_request = None;
                r.per_mtok_input = Some("0.0000001".into());
                r.per_mtok_output = Some("1".into());
            },
            "invalid --per-mtok-input: perMTokInput 0.0000001 is finer",
        ),
        (
            "no upstream",
            |r| r.upstream = " ".into(),
            "--upstream is required",
        ),
        (
            "bad metadata",
            |r| {
                r.register = true;
                r.register_metadata = vec!["novalue".into()];
            },
            "key=value",
        ),
    ];
    for (case, edit, want) in cases {
        let mut req = ok_request();
        edit(&mut req);
        let err = plan_offer(&req).expect_err(case).to_string();
        assert!(err.contains(want), "{case}: {err}");
    }
}

/// The schema admits a query in the health path (`?`, `=`, `&`, `%`); the CLI refused it.
#[test]
fn health_path_with_a_query_is_accepted() {
    let req = OfferRequest {
        health_path: "/health?full=1&x=%20".into(),
        ..ok_request()
    };
    let planned = plan_offer(&req).unwrap();
    assert_eq!(
        planned.offer.spec.upstream.health_path,
        "/health?full=1&x=%20"
    );
}

/// `obol sell http --port` and the CRD default the upstream port alike.
#[test]
fn port_default_is_the_crds() {
    use clap::CommandFactory;
    let cmd = crate::Args::command();
    let http = cmd
        .find_subcommand("sell")
        .and_then(|s| s.find_subcommand("http"))
        .unwrap();
    let port = http.get_arguments().find(|a| a.get_id() == "port").unwrap();
    let flag_default: Vec<_> = port.get_default_values().iter().collect();
    let spec: obol_api::ServiceOfferSpec = serde_json::from_value(serde_json::json!({
        "upstream": {"service": "up"},
        "payment": {"network": "base-sepolia", "payTo": WALLET, "price": {"perRequest": "1"}},
    }))
    .unwrap();
    assert_eq!(flag_default, ["8080"]);
    assert_eq!(spec.upstream.port, 8080);
}

/// Input and output tokens priced apart: both on the offer, the exact price at the higher rate.
#[test]
fn split_token_prices_and_a_maximum() {
    let req = OfferRequest {
        per_request: None,
        per_mtok_input: Some("0.15".into()),
        per_mtok_output: Some("0.6".into()),
        max_tokens_per_request: Some(4000),
        ..ok_request()
    };
    let planned = plan_offer(&req).unwrap();
    let p = &planned.offer.spec.payment;
    assert_eq!(p.price.per_mtok_input.as_deref(), Some("0.15"));
    assert_eq!(p.price.per_mtok_output.as_deref(), Some("0.6"));
    assert_eq!(p.max_tokens_per_request, Some(4000));
    assert_eq!(
        planned.notes[0],
        "Each request is charged 0.0006 USDC on base-sepolia (eip155:84532)."
    );
    assert!(
        planned.notes[2].contains("at most 0.0024 USDC (4000 tokens)"),
        "{:?}",
        planned.notes
    );
    assert!(planned.notes[2].ends_with("Paid with exact, a request costs 0.0006 USDC."));
}

/// New offers get `proxy`; an update keeps the offer's mode (no field: `forwardAuth`); the flag
/// wins over both.
#[test]
fn the_gateway_mode_written() {
    use GatewayMode::{ForwardAuth, Proxy};
    let spec = |gateway: serde_json::Value| -> ServiceOfferSpec {
        let mut v = serde_json::json!({
            "upstream": {"service": "up"},
            "payment": {"network": "base-sepolia", "payTo": WALLET, "price": {"perRequest": "1"}},
        });
        if !gateway.is_null() {
            v["gateway"] = gateway;
        }
        serde_json::from_value(v).unwrap()
    };
    let old = spec(serde_json::Value::Null);
    let fa = spec(serde_json::json!({"mode": "forwardAuth"}));
    let px = spec(serde_json::json!({"mode": "proxy"}));
    let cases = [
        (None, None, Proxy),
        (None, Some(&old), ForwardAuth),
        (None, Some(&fa), ForwardAuth),
        (None, Some(&px), Proxy),
        (Some(Proxy), Some(&old), Proxy),
        (Some(ForwardAuth), None, ForwardAuth),
        (Some(ForwardAuth), Some(&px), ForwardAuth),
    ];
    for (flag, existing, want) in cases {
        assert_eq!(gateway_mode(flag, existing), want, "{flag:?} {existing:?}");
    }
}

/// Proxy-only options are refused in forwardAuth mode, naming the flag; bad types too.
#[test]
fn gateway_options_are_checked_by_the_offer_rule() {
    let req = OfferRequest {
        gateway_mode: Some(GatewayMode::Proxy),
        streaming_types: vec!["application/x-ndjson".into()],
        allow_web_socket: true,
        ..ok_request()
    };
    let gw = plan_offer(&req).unwrap().offer.spec.gateway.unwrap();
    assert_eq!(gw.streaming_content_types, ["application/x-ndjson"]);
    assert!(gw.allow_web_socket);
    let fa = OfferRequest {
        gateway_mode: Some(GatewayMode::ForwardAuth),
        allow_web_socket: true,
        ..ok_request()
    };
    let err = plan_offer(&fa).unwrap_err().to_string();
    assert!(err.starts_with("invalid --allow-websocket"), "{err}");
    assert!(err.contains("proxy"), "{err}");
    let bad = OfferRequest {
        streaming_types: vec!["text/plain; charset=utf-8".into()],
        ..ok_request()
    };
    let err = plan_offer(&bad).unwrap_err().to_string();
    assert!(err.starts_with("invalid --streaming-type"), "{err}");
}

#[test]
fn route_flags_table() {
    use obol_api::routes::Gate;
    // (flag, Ok((path, gate, price, methods, summary)) or the refusal's words)
    type Parsed<'a> = (
        &'a str,
        Gate,
        Option<&'a str>,
        &'a [&'a str],
        Option<&'a str>,
    );
    let cases: &[(&str, Result<Parsed<'_>, &str>)] = &[
        (
            "path=/v1/chat/completions,gate=paid,price=0.01",
            Ok(("/v1/chat/completions", Gate::Paid, Some("0.01"), &[], None)),
        ),
        (
            "path=/health,gate=free",
            Ok(("/health", Gate::Free, None, &[], None)),
        ),
        (
            " path = /v1/* , methods=post|GET , summary=Any v1 call ",
            Ok((
                "/v1/*",
                Gate::Paid,
                None,
                &["POST", "GET"],
                Some("Any v1 call"),
            )),
        ),
        ("path=/a,", Ok(("/a", Gate::Paid, None, &[], None))),
        ("gate=free", Err("path is required")),
        ("", Err("path is required")),
        ("path=/a,gate=maybe", Err("gate is paid or free")),
        ("path=/a,path=/b", Err("path is given twice")),
        ("path=/a,colour=red", Err("unknown key \"colour\"")),
        ("path=/a,free", Err("\"free\" is not key=value")),
    ];
    for (flag, want) in cases {
        let got = parse_route(flag, &BTreeMap::new());
        match (got, want) {
            (Ok(r), Ok((path, gate, price, methods, summary))) => {
                assert_eq!(r.path, *path, "{flag}");
                assert_eq!(r.gate, *gate, "{flag}");
                assert_eq!(r.price.as_deref(), *price, "{flag}");
                assert_eq!(r.methods, *methods, "{flag}");
                assert_eq!(r.summary.as_deref(), *summary, "{flag}");
            }
            (Err(e), Err(words)) => {
                let text = e.to_string();
                assert!(text.contains(words), "{flag}: {text}");
                assert!(text.contains("--route"), "{flag}: {text}");
            }
            (got, want) => panic!("{flag}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn schema_files_table() {
    // (flags, the files they name, in order, each once)
    let cases: &[(&[&str], &[&str])] = &[
        (&["path=/a"], &[]),
        (&["path=/a,input-schema=@in.json"], &["in.json"]),
        (
            &[
                "path=/a,input-schema=@in.json,output-schema=@out.json",
                " path=/b , output-schema = @out.json ",
            ],
            &["in.json", "out.json"],
        ),
        (&["path=/a,input-schema=in.json"], &[]),
        (&["path=/a,input-schema=@"], &[]),
        (&["path=/a,summary=@not-a-file"], &[]),
        (&["path=/a,input-schema"], &[]),
    ];
    for (flags, want) in cases {
        let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        assert_eq!(schema_files(&flags), *want, "{flags:?}");
    }
}

#[test]
fn route_schema_flags_table() {
    let files: BTreeMap<String, String> = [
        (
            "in.json",
            r#"{"type": "object", "examples": [{"model": "m"}]}"#,
        ),
        (
            "out.json",
            r#"{"type": "object", "description": "The answer"}"#,
        ),
        ("broken.json", r#"{"type": "#),
        ("list.json", "[1, 2]"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let input = serde_json::json!({"type": "object", "examples": [{"model": "m"}]});
    let output = serde_json::json!({"type": "object", "description": "The answer"});
    // (flag, Ok((input schema, output schema)) or the refusal's words)
    type Schemas = (Option<serde_json::Value>, Option<serde_json::Value>);
    let cases: Vec<(&str, Result<Schemas, &str>)> = vec![
        (
            "path=/v1/chat,input-schema=@in.json,output-schema=@out.json",
            Ok((Some(input.clone()), Some(output.clone()))),
        ),
        (
            "path=/v1/chat,output-schema=@out.json",
            Ok((None, Some(output.clone()))),
        ),
        (
            "path=/v1/chat, input-schema = @in.json ",
            Ok((Some(input.clone()), None)),
        ),
        // Not JSON is refused here; JSON that is no schema object is validate's to refuse.
        (
            "path=/v1/chat,input-schema=@list.json",
            Ok((Some(serde_json::json!([1, 2])), None)),
        ),
        (
            "path=/v1/chat,input-schema=@broken.json",
            Err("input-schema file broken.json is not JSON"),
        ),
        (
            "path=/v1/chat,input-schema={\"type\":\"object\"}",
            Err("input-schema takes @FILE"),
        ),
        (
            "path=/v1/chat,output-schema=@",
            Err("output-schema takes @FILE"),
        ),
        (
            "path=/v1/chat,input-schema=@in.json,input-schema=@in.json",
            Err("input-schema is given twice"),
        ),
        (
            "path=/v1/chat,input-schema=@gone.json",
            Err("gone.json was not read"),
        ),
    ];
    for (flag, want) in cases {
        match (parse_route(flag, &files), want) {
            (Ok(r), Ok((input, output))) => {
                assert_eq!(r.input_schema, input, "{flag}");
                assert_eq!(r.output_schema, output, "{flag}");
            }
            (Err(e), Err(words)) => {
                let text = e.to_string();
                assert!(text.contains(words), "{flag}: {text}");
                assert!(text.contains("--route"), "{flag}: {text}");
            }
            (got, want) => panic!("{flag}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn route_schemas_reach_the_offer_and_validate_judges_them() {
    let mut req = ok_request();
    req.routes = vec!["path=/v1/chat,methods=POST,input-schema=@in.json".into()];
    req.schema_files = [("in.json".to_owned(), r#"{"type": "object"}"#.to_owned())].into();
    let planned = plan_offer(&req).unwrap();
    assert_eq!(
        planned.offer.spec.routes[0].input_schema,
        Some(serde_json::json!({"type": "object"}))
    );
    // JSON, but not a schema object: ServiceOfferSpec::validate's rule, in the flag's words.
    req.schema_files = [("in.json".to_owned(), "[1, 2]".to_owned())].into();
    let e = plan_offer(&req).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "invalid --route input-schema/output-schema of \"/v1/chat\": use a JSON Schema object"
        ),
        "{e}"
    );
    // Too large: the same rule.
    let big = format!(
        r#"{{"description": "{}"}}"#,
        "x".repeat(obol_api::routes::MAX_SCHEMA_BYTES)
    );
    req.schema_files = [("in.json".to_owned(), big)].into();
    let e = plan_offer(&req).unwrap_err().to_string();
    assert!(e.contains("use a JSON Schema object of at most"), "{e}");
}

#[test]
fn routes_reach_the_offer_and_its_rules() {
    let mut req = ok_request();
    req.routes = vec![
        "path=/v1/chat/completions,gate=paid,price=0.01".into(),
        "path=/health,gate=free".into(),
    ];
    let planned = plan_offer(&req).unwrap();
    assert_eq!(planned.offer.spec.routes.len(), 2);
    let notes = planned.notes.join("\n");
    assert!(
        notes.contains(
            "Route /services/myapi/v1/chat/completions (any method): 0.01 USDC per request."
        ),
        "{notes}"
    );
    assert!(
        notes.contains("Route /services/myapi/health (any method): free."),
        "{notes}"
    );
    assert!(
        notes.contains("Other paths under /services/myapi answer 404"),
        "{notes}"
    );
    req.routes = vec!["path=/.well-known/x402.json,gate=free".into()];
    let e = plan_offer(&req).unwrap_err().to_string();
    assert!(
        e.starts_with("invalid --route path \"/.well-known/x402.json\""),
        "{e}"
    );
    req.routes = vec!["path=/h,gate=free,price=1".into()];
    let e = plan_offer(&req).unwrap_err().to_string();
    assert!(e.contains("a free route takes no price"), "{e}");
}
