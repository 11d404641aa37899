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
        let k = key(other);
        if (k.1, k.2) == (my_key.1, my_key.2) {
            continue;
        }
        if claimed_path(other).as_deref() != Some(mine.as_str()) {
            continue;
        }
        if older(&k, &my_key) && best.is_none_or(|b| older(&k, &b)) {
            best = Some(k);
        }
    }
    best.map(|(_, ns, name)| format!("{ns}/{name}"))
}
