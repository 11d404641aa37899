//! The last unpaid 402 of a route, reused while requests name the same resource: the common
//! case (clients retry the same URL) then costs a comparison and a few reference-count
//! increments instead of two JSON documents and a base64 encoding. The cache lives inside a
//! [`crate::RouteEntry`], which is replaced whole on any change, so a cached reply can never
//! outlive the price it states. Reads are lock-free (`arc-swap`).

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::decide::{Forwarded, Reply};

#[derive(Debug)]
struct Entry {
    https: bool,
    host: Option<String>,
    uri: String,
    wants_html: bool,
    reply: Reply,
}

impl Entry {
    fn matches(&self, fwd: &Forwarded<'_>) -> bool {
        self.https == is_https(fwd)
            && self.wants_html == fwd.wants_html
            && self.uri == fwd.uri
            && self.host.as_deref() == fwd.host
    }
}

fn is_https(fwd: &Forwarded<'_>) -> bool {
    fwd.proto.is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// See the module docs. Clones start empty and every cache compares equal, so a route's
/// identity and change detection ignore it.
#[derive(Default)]
pub struct UnpaidCache(ArcSwapOption<Entry>);

impl UnpaidCache {
    /// The cached reply for `fwd`, or `build()`'s, which is then cached.
    pub fn get_or_build(&self, fwd: &Forwarded<'_>, build: impl FnOnce() -> Reply) -> Reply {
        if let Some(entry) = self.0.load().as_ref()
            && entry.matches(fwd)
        {
            return entry.reply.clone();
        }
        let reply = build();
        self.0.store(Some(Arc::new(Entry {
            https: is_https(fwd),
            host: fwd.host.map(str::to_owned),
            uri: fwd.uri.to_owned(),
            wants_html: fwd.wants_html,
            reply: reply.clone(),
        })));
        reply
    }
}

impl Clone for UnpaidCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for UnpaidCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for UnpaidCache {}

impl fmt::Debug for UnpaidCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnpaidCache")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Body;
    use axum::http::StatusCode;

    fn reply(n: u8) -> Reply {
        Reply {
            status: StatusCode::PAYMENT_REQUIRED,
            headers: vec![],
            body: Body::Json(vec![n].into()),
        }
    }

    #[test]
    fn reuses_only_for_the_same_resource() {
        let cache = UnpaidCache::default();
        let fwd = Forwarded {
            proto: Some("https"),
            host: Some("h"),
            uri: "/a",
            wants_html: false,
        };
        let mut built = 0;
        let mut get = |f: &Forwarded<'_>, n| {
            cache.get_or_build(f, || {
                built += 1;
                reply(n)
            })
        };
        assert_eq!(get(&fwd, 1).body, reply(1).body);
        assert_eq!(get(&fwd, 2).body, reply(1).body, "cached");
        let variants = [
            Forwarded { uri: "/b", ..fwd },
            Forwarded {
                host: Some("g"),
                ..fwd
            },
            Forwarded { host: None, ..fwd },
            Forwarded {
                proto: Some("http"),
                ..fwd
            },
            Forwarded {
                wants_html: true,
                ..fwd
            },
        ];
        for (i, v) in variants.iter().enumerate() {
            let n = 10 + i as u8;
            assert_eq!(get(v, n).body, reply(n).body, "{v:?}");
        }
        assert_eq!(built, 6);
        assert_eq!(UnpaidCache::default(), cache.clone());
    }
}
