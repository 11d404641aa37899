//! Path conflicts: the oldest offer keeps a path.
//!
//! Paths are compared after trimming a trailing `/`. Offers being deleted do not claim a path.
//! The oldest `creationTimestamp` wins; equal times (second resolution) go by
//! `namespace/name`, so every replica and every reconcile picks the same owner.

use obol_api::ServiceOffer;

/// The sort key of a claim: older first, then `namespace/name`.
type Key<'a> = (Option<jiff::Timestamp>, &'a str, &'a str);

fn key(offer: &ServiceOffer) -> Key<'_> {
    (
        offer.metadata.creation_timestamp.as_ref().map(|t| t.0),
        offer.metadata.namespace.as_deref().unwrap_or_default(),
        offer.metadata.name.as_deref().unwrap_or_default(),
    )
}

fn claimed_path(offer: &ServiceOffer) -> Option<String> {
    if offer.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let name = offer.metadata.name.as_deref()?;
    let path = offer.spec.effective_path(name);
    Some(normalize(&path).to_owned())
}

/// Whether `offer` claims the normalised `path`: `claimed_path(offer) == Some(path)` without
/// allocating. It runs for every offer in the cache on every reconcile, so at 1 000 offers it
/// is the idle controller's hottest loop.
fn claims(offer: &ServiceOffer, path: &str) -> bool {
    if offer.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let Some(name) = offer.metadata.name.as_deref() else {
        return false;
    };
    match offer.spec.path.as_deref() {
        Some(p) if !p.is_empty() => normalize(p) == path,
        // `names::default_path`: `/services/<name>`; a name holds no `/` to trim.
        _ => path.strip_prefix(DEFAULT_PREFIX) == Some(name) && !name.ends_with('/'),
    }
}

const DEFAULT_PREFIX: &str = "/services/";

fn normalize(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    }
}

/// The offer among `all` that owns `me`'s path when it is not `me` (`namespace/name`), or
/// `None` when `me` owns it (or claims nothing). `all` may include `me`.
pub fn path_owner<'a>(
    me: &ServiceOffer,
    all: impl IntoIterator<Item = &'a ServiceOffer>,
) -> Option<String> {
    let mine = claimed_path(me)?;
    let my_key = key(me);
    // A missing timestamp sorts as "newest" so that a real, older claim always wins.
    let older = |a: &Key<'_>, b: &Key<'_>| match (a.0, b.0) {
        (Some(x), Some(y)) if x != y => x < y,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        _ => (a.1, a.2) < (b.1, b.2),
    };
    let mut best: Option<Key<'_>> = None;
    for other in all {
        if !claims(other, &mine) {
            continue;
        }
        let k = key(other);
        if (k.1, k.2) == (my_key.1, my_key.2) {
            continue;
        }
        if older(&k, &my_key) && best.is_none_or(|b| older(&k, &b)) {
            best = Some(k);
        }
    }
    best.map(|(_, ns, name)| format!("{ns}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `claims` agrees with the allocating definition on every shape of offer and path.
    #[test]
    fn claims_agrees_with_claimed_path() {
        let offer = |name: &str, path: Option<&str>, deleting: bool| {
            let mut o = ServiceOffer::new(
                name,
                serde_json::from_value(serde_json::json!({
                    "upstream": {"service": "s", "port": 80},
                    "payment": {"payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
                                "network": "base-sepolia", "price": {"perRequest": "0.001"}},
                    "path": path,
                }))
                .expect("a spec"),
            );
            if deleting {
                o.metadata.deletion_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        "2026-01-01T00:00:00Z".parse().expect("a time"),
                    ));
            }
            o
        };
        let offers = [
            offer("demo", None, false),
            offer("demo", Some(""), false),
            offer("demo", None, true),
            offer("demo", Some("/x/"), false),
            offer("demo", Some("/x"), true),
            offer("demo", Some("/"), false),
            offer("demo", Some("/services/demo"), false),
            offer("services", None, false),
            offer("a.b", None, false),
        ];
        let paths = [
            "/services/demo",
            "/services/demo/",
            "/services/",
            "/services",
            "/x",
            "/x/",
            "/",
            "/services/a.b",
            "",
        ];
        let mut claimed = 0;
        for o in &offers {
            for p in paths {
                let want = claimed_path(o).as_deref() == Some(p);
                claimed += usize::from(want);
                assert_eq!(claims(o, p), want, "{:?} {p}", o.spec.path);
            }
        }
        assert_eq!(claimed, 6, "the table exercises both answers");
    }
}
