//! A route's rule table compiled for the scan every request to it makes: each rule's pattern
//! text in one buffer and a small fixed-size item per rule (where its text is, its shape, its
//! methods as a bit set). The scan reads two contiguous blocks instead of following a pointer
//! (or, for a glob, a vector of strings) per rule, which at 10 000 routes is what costs: the
//! rules of a random route are not in the cache.
//!
//! The semantics are [`Matcher::matches`] and [`method_allowed`]; [`RuleScan::first`] agrees
//! with them rule by rule (tested below).

use obol_api::routes::METHODS;

use crate::matcher::{Matcher, glob_matches, prefix_matches};

/// Methods as bits in [`METHODS`] order; every bit set: the rule serves any method.
type MethodBits = u8;
const ANY: MethodBits = MethodBits::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// The path equals the text.
    Exact,
    /// `P/*`: the text is `P`.
    Prefix,
    /// A segment glob: the text is its body ([`crate::matcher::Glob::body`]).
    Glob { swallow_rest: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Item {
    start: u32,
    len: u32,
    shape: Shape,
    methods: MethodBits,
}

/// The compiled scan of one route's rules, in the rules' order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleScan {
    text: Box<str>,
    items: Box<[Item]>,
}

fn bit(method: &str) -> MethodBits {
    METHODS
        .iter()
        .position(|m| *m == method)
        .map_or(0, |i| 1 << i)
}

/// The bits a rule's method list serves: every listed method, `HEAD` with `GET`, any when the
/// list is empty.
fn method_bits<S: AsRef<str>>(methods: &[S]) -> MethodBits {
    if methods.is_empty() {
        return ANY;
    }
    methods.iter().fold(0, |bits, m| match m.as_ref() {
        "GET" => bits | bit("GET") | bit("HEAD"),
        m => bits | bit(m),
    })
}

impl RuleScan {
    /// Compiles rules given as `(matcher, methods)`, in scan order. `None` when the text would
    /// not fit the offsets (more than 4 GiB of patterns; the CRD allows far less).
    pub fn new<'a, S: AsRef<str> + 'a>(
        rules: impl IntoIterator<Item = (&'a Matcher, &'a [S])>,
    ) -> Option<Self> {
        let mut text = String::new();
        let mut items = Vec::new();
        for (matcher, methods) in rules {
            let (part, shape) = match matcher {
                Matcher::Exact(p) => (p.as_str(), Shape::Exact),
                Matcher::Prefix(p) => (p.as_str(), Shape::Prefix),
                Matcher::Glob(g) => (
                    g.body(),
                    Shape::Glob {
                        swallow_rest: g.swallows_rest(),
                    },
                ),
            };
            items.push(Item {
                start: u32::try_from(text.len()).ok()?,
                len: u32::try_from(part.len()).ok()?,
                shape,
                methods: method_bits(methods),
            });
            text.push_str(part);
        }
        Some(Self {
            text: text.into_boxed_str(),
            items: items.into_boxed_slice(),
        })
    }

    /// The first rule matching `path` that serves `method` (`None`: not known, then only rules
    /// open to every method serve).
    pub fn first(&self, path: &str, method: Option<&str>) -> Option<usize> {
        let want = method.map_or(0, bit);
        self.items.iter().position(|item| {
            let served = item.methods == ANY || item.methods & want != 0;
            served && self.matches(item, path)
        })
    }

    fn matches(&self, item: &Item, path: &str) -> bool {
        let start = item.start as usize;
        let Some(part) = self.text.get(start..start + item.len as usize) else {
            return false;
        };
        match item.shape {
            Shape::Exact => part == path,
            Shape::Prefix => prefix_matches(part, path),
            Shape::Glob { swallow_rest } => glob_matches(part, swallow_rest, path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::method_allowed;

    fn compile(rules: &[(&str, Vec<&str>)]) -> (Vec<Matcher>, RuleScan) {
        let matchers: Vec<Matcher> = rules.iter().map(|(p, _)| Matcher::new(p)).collect();
        let scan = RuleScan::new(
            matchers
                .iter()
                .zip(rules)
                .map(|(m, (_, methods))| (m, methods.as_slice())),
        )
        .unwrap();
        (matchers, scan)
    }

    /// What the scan replaces: the first rule whose matcher matches and whose list serves.
    fn reference(
        matchers: &[Matcher],
        rules: &[(&str, Vec<&str>)],
        path: &str,
        method: Option<&str>,
    ) -> Option<usize> {
        (0..rules.len()).find(|&i| {
            let served = match method {
                Some(m) => method_allowed(&rules[i].1, m),
                None => rules[i].1.is_empty(),
            };
            served && matchers[i].matches(path)
        })
    }

    #[test]
    fn first_serving_rule_by_path_and_method() {
        let rules = [
            ("/v1/chat/completions", vec!["POST"]),
            ("/v1/models", vec!["GET"]),
            ("/v1/*/embed*", vec![]),
            ("/m/*/op", vec!["PUT", "DELETE"]),
            ("/v1/*", vec![]),
            ("/health", vec!["GET", "OPTIONS"]),
            ("*", vec!["PATCH"]),
        ];
        let (matchers, scan) = compile(&rules);
        let cases = [
            ("/v1/chat/completions", Some("POST"), Some(0)),
            ("/v1/chat/completions", Some("GET"), Some(4)),
            ("/v1/models", Some("HEAD"), Some(1)),
            ("/v1/models", None, Some(4)),
            ("/v1/x/embeddings", Some("POST"), Some(2)),
            ("/m/a/op", Some("DELETE"), Some(3)),
            ("/m/a/op", Some("GET"), None),
            ("/m/a/b/op", Some("PUT"), None),
            ("/health", Some("OPTIONS"), Some(5)),
            ("/health", Some("HEAD"), Some(5)),
            ("/health", Some("POST"), None),
            ("/anything/at/all", Some("PATCH"), Some(6)),
            ("/v1", Some("BREW"), Some(4)),
            ("/v2", Some("BREW"), None),
            ("", None, None),
        ];
        for (path, method, want) in cases {
            assert_eq!(scan.first(path, method), want, "{path} {method:?}");
            assert_eq!(
                reference(&matchers, &rules, path, method),
                want,
                "reference: {path} {method:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_matcher_and_method_rule(
            patterns in proptest::collection::vec("/?[ab*/]{0,8}", 1..6),
            lists in proptest::collection::vec(proptest::sample::subsequence(vec!["GET", "HEAD", "POST", "DELETE"], 0..3), 6),
            path in "/?[ab/]{0,8}",
            method in proptest::option::of(proptest::sample::select(vec!["GET", "HEAD", "POST", "PUT", "BREW"])),
        ) {
            let rules: Vec<(&str, Vec<&str>)> = patterns
                .iter()
                .zip(&lists)
                .map(|(p, l)| (p.as_str(), l.clone()))
                .collect();
            let (matchers, scan) = compile(&rules);
            proptest::prop_assert_eq!(
                scan.first(&path, method),
                reference(&matchers, &rules, &path, method)
            );
        }
    }
}
