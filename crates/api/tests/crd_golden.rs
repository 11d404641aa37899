//! `deploy/crds/` must be exactly what the Rust types generate.

use obol_api::crdgen;

#[test]
fn committed_crds_match_the_types() {
    let dir = format!("{}/../../deploy/crds", env!("CARGO_MANIFEST_DIR"));
    let files = crdgen::render().unwrap();
    assert_eq!(files.len(), 4);
    let mut stale = vec![];
    for (name, want) in &files {
        let path = format!("{dir}/{name}");
        match std::fs::read_to_string(&path) {
            Ok(have) if have == *want => {}
            Ok(_) => stale.push(format!("{name} differs")),
            Err(e) => stale.push(format!("{name}: {e}")),
        }
    }
    let committed = std::fs::read_dir(&dir).unwrap().count();
    if committed != files.len() {
        stale.push(format!(
            "{committed} files in deploy/crds, {} generated",
            files.len()
        ));
    }
    assert!(
        stale.is_empty(),
        "deploy/crds is out of date ({}); regenerate with: {}",
        stale.join(", "),
        crdgen::REGENERATE
    );
}

#[test]
fn schema_patterns_equal_the_client_side_rules() {
    use obol_api::validation::{
        ADDRESS, DECIMAL, DNS_LABEL, DNS_LABEL_OR_EMPTY, HEALTH_PATH, HTTP_URL, NETWORK, PATH,
        ROUTE_PATTERN, UINT,
    };
    let text: String = crdgen::render()
        .unwrap()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    for pattern in [
        ADDRESS,
        PATH,
        HEALTH_PATH,
        ROUTE_PATTERN,
        DECIMAL,
        UINT,
        NETWORK,
        DNS_LABEL,
        DNS_LABEL_OR_EMPTY,
        HTTP_URL,
    ] {
        // serde_yaml writes the pattern plain or single-quoted; both contain it verbatim.
        assert!(text.contains(pattern), "no schema uses {pattern}");
    }
}

#[test]
fn crds_have_what_kubectl_and_the_components_rely_on() {
    for crd in crdgen::crds() {
        let name = crd.metadata.name.clone().unwrap();
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1", "{name}");
        assert!(v.served && v.storage, "{name}");
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{name} has no status subresource"
        );
        let columns: Vec<String> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect();
        let want: &[&str] = match name.as_str() {
            "serviceoffers.obol.org" => &["Type", "Price", "Network", "Phase", "Ready", "Age"],
            "paymentroutes.obol.org" => &["Pattern", "Price", "Network", "Admitted", "Age"],
            "registrationrequests.obol.org" => &["Phase", "AgentID", "Age"],
            "purchaserequests.obol.org" => &[
                "Seller",
                "Price",
                "Bought",
                "Remaining",
                "Held",
                "Spent",
                "Ready",
                "Age",
            ],
            other => panic!("unexpected CRD {other}"),
        };
        assert_eq!(columns, want, "{name}");
        let short = crd.spec.names.short_names.clone().unwrap_or_default();
        assert_eq!(short.len(), 1, "{name}");
    }
}
