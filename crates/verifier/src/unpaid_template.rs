//! A route's unpaid 402 as a template with holes for the two per-request values (the resource
//! URL and, when the route has no description of its own, the description naming the path).
//! A request for a URL never seen pays for two JSON-string escapes, a concatenation and one
//! base64 encoding instead of serializing two documents. The template is made by
//! [`decide::payment_required`] itself, with marker values, so the bytes cannot drift from it
//! (a test compares both byte for byte).

use std::fmt;

use axum::http::{HeaderValue, StatusCode};
use base64::Engine as _;
use obol_x402 as x402;
use x402::Requirement;
use x402::wire::ResourceInfo;

use crate::decide::{self, Body, Reply};

const URL_MARK: &str = "\u{1}obol-template-url\u{1}";
const DESCRIPTION_MARK: &str = "\u{1}obol-template-description\u{1}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hole {
    Url,
    Description,
}

#[derive(Debug, Clone)]
struct Pieces {
    /// `parts.len() == holes.len() + 1`.
    parts: Vec<Vec<u8>>,
    holes: Vec<Hole>,
}

impl Pieces {
    fn split(json: &[u8]) -> Option<Self> {
        let url = serde_json::to_string(URL_MARK).ok()?.into_bytes();
        let description = serde_json::to_string(DESCRIPTION_MARK).ok()?.into_bytes();
        let (mut parts, mut holes, mut rest) = (vec![], vec![], json);
        loop {
            let next = [(Hole::Url, &url), (Hole::Description, &description)]
                .into_iter()
                .filter_map(|(hole, mark)| find(rest, mark).map(|at| (at, hole, mark.len())))
                .min_by_key(|(at, _, _)| *at);
            match next {
                Some((at, hole, len)) => {
                    parts.push(rest[..at].to_vec());
                    holes.push(hole);
                    rest = &rest[at + len..];
                }
                None => {
                    parts.push(rest.to_vec());
                    return Some(Self { parts, holes });
                }
            }
        }
    }

    fn fill(&self, url: &str, description: &str) -> Vec<u8> {
        let url = serde_json::to_string(url).unwrap_or_default();
        let description = serde_json::to_string(description).unwrap_or_default();
        let size =
            self.parts.iter().map(Vec::len).sum::<usize>() + 2 * (url.len() + description.len());
        let mut out = Vec::with_capacity(size);
        for (i, part) in self.parts.iter().enumerate() {
            out.extend_from_slice(part);
            match self.holes.get(i) {
                Some(Hole::Url) => out.extend_from_slice(url.as_bytes()),
                Some(Hole::Description) => out.extend_from_slice(description.as_bytes()),
                None => {}
            }
        }
        out
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The unpaid JSON 402 of one route (the HTML page and refusals take the general path).
#[derive(Clone)]
pub struct UnpaidTemplate {
    body: Pieces,
    header: Pieces,
    /// The headers after `PAYMENT-REQUIRED` (the catalog `Link`), as they are.
    rest: Vec<(axum::http::HeaderName, HeaderValue)>,
}

impl fmt::Debug for UnpaidTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnpaidTemplate")
    }
}

impl UnpaidTemplate {
    /// The template for `requirement`; `description` is the route's own, if any. `None` when
    /// the general path would not produce a plain JSON 402 with one header.
    pub fn new(
        requirement: &Requirement,
        description: Option<&str>,
        bazaar: Option<&serde_json::Value>,
    ) -> Option<Self> {
        let resource = ResourceInfo {
            description: Some(description.unwrap_or(DESCRIPTION_MARK).to_owned()),
            mime_type: Some("application/json".into()),
            ..ResourceInfo::new(URL_MARK.to_owned())
        };
        let reply = decide::payment_required_with(requirement, &resource, false, None, bazaar);
        let Body::Json(body) = &reply.body else {
            return None;
        };
        if reply
            .headers
            .first()
            .is_none_or(|h| h.0 != decide::PAYMENT_REQUIRED)
        {
            return None;
        }
        let header = base64::engine::general_purpose::STANDARD
            .decode(reply.headers[0].1.as_bytes())
            .ok()?;
        Some(Self {
            body: Pieces::split(body)?,
            header: Pieces::split(&header)?,
            rest: reply.headers[1..].to_vec(),
        })
    }

    /// The 402 for `url`, with `description` filling the description hole if there is one.
    pub fn render(&self, url: &str, description: &str) -> Option<Reply> {
        let header =
            base64::engine::general_purpose::STANDARD.encode(self.header.fill(url, description));
        let value = HeaderValue::try_from(header).ok()?;
        let mut headers = Vec::with_capacity(1 + self.rest.len());
        headers.push((decide::PAYMENT_REQUIRED, value));
        headers.extend(self.rest.iter().cloned());
        Some(Reply {
            status: StatusCode::PAYMENT_REQUIRED,
            headers,
            body: Body::Json(self.body.fill(url, description).into()),
        })
    }
}

/// A route's template slot: derived from the requirement and description, so it takes no part
/// in equality (like the unpaid cache).
#[derive(Debug, Clone, Default)]
pub struct TemplateSlot(pub Option<UnpaidTemplate>);

impl PartialEq for TemplateSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for TemplateSlot {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::{Forwarded, resource};

    fn same(a: &Reply, b: &Reply) {
        assert_eq!(a.status, b.status);
        assert_eq!(a.headers, b.headers);
        assert_eq!(a.body, b.body);
    }

    #[test]
    fn renders_exactly_what_the_general_path_builds() {
        let uris = [
            "/services/demo/v1/chat/completions",
            "/services/demo/a?b=c&d=\"e\"",
            "/services/demo/ünïcode/\\back\u{7f}",
            "/services/demo/\u{1}obol-template-url\u{1}",
            "",
        ];
        for description in [None, Some("A \"quoted\" route")] {
            let mut spec = crate::testing::mk_spec("/services/demo/*", "1000");
            spec.description = description.map(str::to_owned);
            let key = crate::route::RouteKey::new("default", "demo");
            let route = crate::route::RouteEntry::load(key, Some(1), &spec, None).unwrap();
            let requirement = route.requirement.clone().unwrap();
            let template = UnpaidTemplate::new(&requirement, description, None).unwrap();
            for uri in uris {
                for host in [Some("obol.stack"), None] {
                    let fwd = Forwarded {
                        uri,
                        host,
                        proto: Some("https"),
                        wants_html: false,
                    };
                    let res = resource(&route, &fwd);
                    let general = decide::payment_required(&requirement, &res, false, None);
                    let fast = template
                        .render(&res.url, res.description.as_deref().unwrap_or_default())
                        .unwrap();
                    same(&fast, &general);
                }
            }
        }
    }
}
