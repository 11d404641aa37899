//! What the gateway mode `proxy` agrees on between the controller (which writes the HTTPRoute
//! and the PaymentRoute), the gateway (Traefik, or the dev adapter) and the verifier (which
//! serves the paid traffic on its own gateway listener).

/// Request header the HTTPRoute sets (replacing any value a client sent) to the
/// `<namespace>/<name>` of the PaymentRoute that prices it: the verifier looks the route up by
/// name, exactly, as the ForwardAuth mode does with its `/verify/<namespace>/<name>` address.
pub const ROUTE_HEADER: &str = "x-obol-payment-route";

/// Name of the verifier Service's port that serves the gateway traffic (the paid requests
/// themselves, apart from the ForwardAuth, probe and metrics port).
pub const GATEWAY_PORT_NAME: &str = "gateway";

/// The value of [`ROUTE_HEADER`] for PaymentRoute `namespace/name`.
pub fn route_header_value(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Splits a [`ROUTE_HEADER`] value into namespace and name; `None` unless both are non-empty.
pub fn parse_route_header(value: &str) -> Option<(&str, &str)> {
    let (namespace, name) = value.split_once('/')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains('/')).then_some((namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_header_round_trip_and_refusals() {
        let v = route_header_value("llm", "so-demo");
        assert_eq!(parse_route_header(&v), Some(("llm", "so-demo")));
        for bad in ["", "/", "llm/", "/x", "llm", "a/b/c"] {
            assert_eq!(parse_route_header(bad), None, "{bad:?}");
        }
    }
}
