//! The storefront's discovery documents, derived from the loaded routes (a PaymentRoute is
//! loaded only once its offer passed validation; the controller publishes the offer's route
//! only after the verifier admitted it) and served by the gateway listener without payment:
//!
//! - [`WELL_KNOWN_X402`] — the x402 discovery manifest (draft): `{"x402Version": 2, "items":
//!   [...]}`, one item per sold resource (each route of an offer's table, or the offer's whole
//!   prefix when it has none): `resource` (absolute URL of the route template), `type: "http"`,
//!   `routeTemplate` (`:name` for each glob segment), `methods` (absent: any), `gate` (`paid` or
//!   `free`), `accepts` (the v2 payment requirements; empty when free), `description`, `offer`
//!   (`namespace/name` of the PaymentRoute) and `extensions.bazaar` when the route has schemas;
//! - [`OPENAPI`] — OpenAPI 3.1: one path per route, one operation per method, each with
//!   `x-x402` (`gate`, `accepts`) and a `402` answer when paid; request and answer schemas from
//!   the route.
//!
//! Only routes whose offer is Ready are listed (the controller marks each PaymentRoute,
//! [`obol_api::labels::OFFER_READY_ANNOTATION`]). A draining offer's items say
//! `available: false` and `drainEndsAt` (every other item `available: true`); its route gates
//! until then.
//!
//! Both are built once per table snapshot and public base URL ([`Cache`]), so a change shows
//! on the next request and repeated requests cost a comparison.
//!
//! The Bazaar extension ([`bazaar`]) follows the x402 `bazaar` extension: `info` (how to call
//! the route: method, body example; the output's example and description) and `schema`
//! (JSON Schema 2020-12 that validates `info`, embedding the route's own schemas).

use std::sync::Arc;

use axum::body::Bytes;
use obol_api::routes::Gate;
pub use obol_api::routes::{OPENAPI, WELL_KNOWN_X402};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use crate::route::RouteEntry;
use crate::route_table::Snapshot;

/// JSON Schema dialect of the Bazaar `schema`.
pub const JSON_SCHEMA_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

const BODY_METHODS: [&str; 3] = ["POST", "PUT", "PATCH"];

/// The example a JSON Schema gives: `examples[0]`, else `example`, else `default`.
fn example(schema: &Value) -> Option<&Value> {
    schema
        .get("examples")
        .and_then(|e| e.get(0))
        .or_else(|| schema.get("example"))
        .or_else(|| schema.get("default"))
}

/// The method a route is described with: its first declared one, else `POST` when it takes a
/// body schema, else `GET`.
fn main_method<'a>(methods: &'a [String], input: Option<&Value>) -> &'a str {
    match methods.first() {
        Some(m) => m,
        None if input.is_some() => "POST",
        None => "GET",
    }
}

/// The `bazaar` extension of a route with an input or output schema (`None` without either).
pub fn bazaar(methods: &[String], input: Option<&Value>, output: Option<&Value>) -> Option<Value> {
    if input.is_none() && output.is_none() {
        return None;
    }
    let method = main_method(methods, input);
    let body = BODY_METHODS.contains(&method);
    let mut input_info = Map::new();
    input_info.insert("type".into(), json!("http"));
    input_info.insert("method".into(), json!(method));
    let mut input_props = Map::new();
    input_props.insert("type".into(), json!({"type": "string", "const": "http"}));
    input_props.insert("method".into(), json!({"type": "string", "enum": [method]}));
    let mut required = vec![json!("type"), json!("method")];
    if body {
        input_info.insert("bodyType".into(), json!("json"));
        let sample = input
            .and_then(example)
            .cloned()
            .unwrap_or_else(|| json!({}));
        input_info.insert("body".into(), sample);
        input_props.insert(
            "bodyType".into(),
            json!({"type": "string", "enum": ["json"]}),
        );
        input_props.insert(
            "body".into(),
            input.cloned().unwrap_or_else(|| json!({"type": "object"})),
        );
        required.extend([json!("bodyType"), json!("body")]);
    }
    let mut output_info = Map::new();
    output_info.insert("type".into(), json!("json"));
    if let Some(out) = output {
        if let Some(sample) = example(out) {
            output_info.insert("example".into(), sample.clone());
        }
        if let Some(description) = out.get("description").and_then(Value::as_str) {
            output_info.insert("description".into(), json!(description));
        }
    }
    let output_schema = json!({
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "description": {"type": "string"},
            "example": output.cloned().unwrap_or_else(|| json!({})),
        },
        "required": ["type"],
    });
    Some(json!({
        "info": {"input": input_info, "output": output_info},
        "schema": {
            "$schema": JSON_SCHEMA_2020_12,
            "type": "object",
            "properties": {
                "input": {
                    "type": "object",
                    "properties": input_props,
                    "required": required,
                    "additionalProperties": false,
                },
                "output": output_schema,
            },
            "required": ["input"],
        },
    }))
}

/// A route pattern as a template: each segment with a `*` becomes `:p1`, `:p2`, …; a final
/// `*` (the rest of the path) becomes `:rest` (`/v1/*` → `/v1/:rest`).
pub fn route_template(pattern: &str) -> String {
    let Some(rest) = pattern.strip_prefix('/') else {
        return pattern.to_owned();
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len().saturating_sub(1);
    let mut n = 0;
    let mut out = String::new();
    for (i, segment) in segments.iter().enumerate() {
        out.push('/');
        if i == last && *segment == "*" {
            out.push_str(":rest");
        } else if segment.contains('*') {
            n += 1;
            out.push_str(&format!(":p{n}"));
        } else {
            out.push_str(segment);
        }
    }
    out
}

/// One sold resource: a rule of a table, or a route without one.
struct Item<'a> {
    /// The PaymentRoute's entry (readiness, drain).
    route: &'a RouteEntry,
    entry: &'a RouteEntry,
    gate: Gate,
    methods: &'a [String],
    input: Option<&'a Value>,
    output: Option<&'a Value>,
}

fn items(snapshot: &Snapshot) -> Vec<Item<'_>> {
    let mut out = Vec::new();
    for route in snapshot.routes().iter().filter(|r| r.listed) {
        if route.rules.is_empty() {
            out.push(Item {
                route,
                entry: route,
                gate: if route.requirement.is_some() {
                    Gate::Paid
                } else {
                    Gate::Free
                },
                methods: &[],
                input: None,
                output: None,
            });
        }
        for rule in &route.rules {
            out.push(Item {
                route,
                entry: &rule.entry,
                gate: rule.gate,
                methods: &rule.methods,
                input: rule.input_schema.as_ref(),
                output: rule.output_schema.as_ref(),
            });
        }
    }
    out
}

fn accepts(entry: &RouteEntry) -> Vec<Value> {
    entry
        .requirement
        .iter()
        .filter_map(|r| serde_json::to_value(r.to_v2()).ok())
        .collect()
}

/// The discovery manifest for the routes of `snapshot`, URLs under `base`
/// (`https://host`, or empty for paths only).
pub fn manifest(snapshot: &Snapshot, base: &str) -> Value {
    let items: Vec<Value> = items(snapshot)
        .into_iter()
        .map(|item| {
            let template = route_template(&item.entry.pattern);
            let mut v = json!({
                "resource": format!("{base}{template}"),
                "type": "http",
                "x402Version": 2,
                "routeTemplate": template,
                "pattern": item.entry.pattern,
                "gate": item.gate.as_str(),
                "accepts": accepts(item.entry),
                "offer": item.entry.key.to_string(),
                "available": item.route.drain_ends_at.is_none(),
            });
            if let Some(end) = &item.route.drain_ends_at {
                v["drainEndsAt"] = json!(end);
            }
            if !item.methods.is_empty() {
                v["methods"] = json!(item.methods);
            }
            if let Some(d) = &item.entry.description {
                v["description"] = json!(d);
            }
            if let Some(b) = bazaar(item.methods, item.input, item.output) {
                v["extensions"] = json!({"bazaar": b});
            }
            v
        })
        .collect();
    json!({"x402Version": 2, "items": items})
}

/// `<namespace>_<name>_<template>_<method>` with every other character `_`: unique per
/// operation, stable across rebuilds.
fn operation_id(key: &str, template: &str, method: &str) -> String {
    format!("{key}{template}_{method}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The OpenAPI 3.1 document for the routes of `snapshot`, served at `base`.
pub fn openapi(snapshot: &Snapshot, base: &str) -> Value {
    let mut paths = Map::new();
    for item in items(snapshot) {
        let template = route_template(&item.entry.pattern);
        let mut params = Vec::new();
        let path: Vec<String> = template
            .split('/')
            .map(|segment| match segment.strip_prefix(':') {
                Some(name) => {
                    params.push(json!({
                        "name": name, "in": "path", "required": true,
                        "schema": {"type": "string"},
                    }));
                    format!("{{{name}}}")
                }
                None => segment.to_owned(),
            })
            .collect();
        let methods: Vec<String> = if item.methods.is_empty() {
            vec![main_method(&[], item.input).to_owned()]
        } else {
            item.methods.to_vec()
        };
        let accepts = accepts(item.entry);
        let key = path.join("/");
        let mut ops = match paths.remove(&key) {
            Some(Value::Object(ops)) => ops,
            _ => Map::new(),
        };
        for method in &methods {
            let mut op = json!({
                "operationId": operation_id(&item.entry.key.to_string(), &template, method),
                "x-x402": {"gate": item.gate.as_str(), "accepts": accepts, "x402Version": 2},
                "responses": {"200": {"description": "The service's answer"}},
            });
            if let Some(d) = &item.entry.description {
                op["summary"] = json!(d);
            }
            if item.methods.is_empty() {
                op["x-x402"]["anyMethod"] = json!(true);
            }
            op["x-x402"]["available"] = json!(item.route.drain_ends_at.is_none());
            if let Some(end) = &item.route.drain_ends_at {
                op["x-x402"]["drainEndsAt"] = json!(end);
                op["deprecated"] = json!(true);
            }
            if !params.is_empty() {
                op["parameters"] = json!(params);
            }
            if let Some(input) = item.input
                && BODY_METHODS.contains(&method.as_str())
            {
                op["requestBody"] = json!({
                    "required": true,
                    "content": {"application/json": {"schema": input}},
                });
            }
            if let Some(output) = item.output {
                op["responses"]["200"]["content"] = json!({"application/json": {"schema": output}});
            }
            if item.gate == Gate::Paid {
                op["responses"]["402"] = json!({
                    "description": "Payment required: pay as x-x402.accepts states (x402 PAYMENT-SIGNATURE header) and send the request again",
                });
            }
            ops.insert(method.to_ascii_lowercase(), op);
        }
        paths.insert(key, Value::Object(ops));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "x402 storefront",
            "version": "1",
            "description": "Services sold for x402 payments at this gateway; see /.well-known/x402.json",
        },
        "servers": [{"url": if base.is_empty() { "/" } else { base }}],
        "paths": paths,
    })
}

/// The documents of one snapshot at one base URL.
#[derive(Debug)]
struct Built {
    base: String,
    manifest: Bytes,
    openapi: Bytes,
}

/// How many base URLs (client-facing hosts) one snapshot keeps documents for: a gateway
/// usually answers under one or two names; a client sending ever new `Host` values only ever
/// evicts the oldest.
pub const CACHED_BASES: usize = 4;

/// The documents built from one table snapshot (which owns the cache, so a change starts
/// afresh), for at most [`CACHED_BASES`] base URLs, most recent last.
#[derive(Debug, Default)]
pub struct Cache(Mutex<Vec<Arc<Built>>>);

/// Which document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// [`WELL_KNOWN_X402`].
    Manifest,
    /// [`OPENAPI`].
    OpenApi,
}

/// The document for `snapshot` at `base`, built at most once per snapshot and cached base.
pub fn document(snapshot: &Snapshot, base: &str, which: Document) -> Bytes {
    let cache = snapshot.discovery_cache();
    let built = {
        let mut slots = cache.0.lock();
        match slots.iter().find(|b| b.base == base) {
            Some(b) => b.clone(),
            None => {
                let b = Arc::new(Built {
                    base: base.to_owned(),
                    manifest: to_bytes(&manifest(snapshot, base)),
                    openapi: to_bytes(&openapi(snapshot, base)),
                });
                if slots.len() >= CACHED_BASES {
                    slots.remove(0);
                }
                slots.push(b.clone());
                b
            }
        }
    };
    match which {
        Document::Manifest => built.manifest.clone(),
        Document::OpenApi => built.openapi.clone(),
    }
}

fn to_bytes(v: &Value) -> Bytes {
    serde_json::to_vec(v)
        .unwrap_or_else(|_| b"{}".to_vec())
        .into()
}

#[cfg(test)]
#[path = "discovery_tests.rs"]
mod tests;
