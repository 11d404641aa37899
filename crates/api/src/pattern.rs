//! Route patterns with the semantics of the Go verifier (obol-reference.md §5.4), compiled once;
//! the verifier matches requests with them, the controller orders and compares an offer's route
//! table with [`specificity`] and [`overlap`].
//!
//! | Pattern shape | Matches |
//! |---|---|
//! | no `*` | the path exactly |
//! | `P/*`, no other `*` | `P` itself, or anything starting with `P/` |
//! | any other `*` | segment glob: split on `/`; `*` inside a segment matches any run of characters in that segment; a final `*` segment swallows all remaining segments (even none); otherwise the segment counts must be equal |
//!
//! One deliberate difference: the query string (and a fragment) is cut off before matching
//! ([`path_of`]). The Go code matched `/services/demo?x=1` against nothing, which made the
//! request free: a fail-open hole.

/// A compiled route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// No `*`: string equality.
    Exact(String),
    /// `P/*`: holds `P` (empty for the pattern `/*`).
    Prefix(String),
    /// Any other use of `*`.
    Glob(Glob),
}

/// A segment glob: the pattern after its leading `/`, without a final `*` segment that
/// swallows the rest of a path (then `swallow_rest` is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    body: String,
    /// The last segment is exactly `*`: it swallows the rest of the path.
    swallow_rest: bool,
}

impl Matcher {
    /// Compiles a pattern (any string; the CRD schema restricts what reaches here).
    pub fn new(pattern: &str) -> Self {
        if !pattern.contains('*') {
            return Self::Exact(pattern.to_owned());
        }
        if let Some(prefix) = pattern.strip_suffix("/*")
            && !prefix.contains('*')
        {
            return Self::Prefix(prefix.to_owned());
        }
        let body = pattern.strip_prefix('/').unwrap_or(pattern);
        let (body, swallow_rest) = match body.strip_suffix("/*") {
            Some(rest) => (rest, true),
            None if body == "*" => ("", true),
            None => (body, false),
        };
        Self::Glob(Glob {
            body: body.to_owned(),
            swallow_rest,
        })
    }

    /// Whether `path` (already without query string) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => p == path,
            Self::Prefix(p) => prefix_matches(p, path),
            Self::Glob(g) => g.matches(path),
        }
    }
}

/// `P/*` semantics: `P` itself or anything below `P/`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

impl Glob {
    fn matches(&self, path: &str) -> bool {
        glob_matches(&self.body, self.swallow_rest, path)
    }

    /// The pattern after its leading `/`, without a swallowing final `*` segment.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// Whether a final `*` segment swallows the rest of a path.
    pub fn swallows_rest(&self) -> bool {
        self.swallow_rest
    }
}

/// A segment glob's match on its raw text ([`Glob::body`], [`Glob::swallows_rest`]), without
/// allocating: what [`Matcher::matches`] does for a glob, for callers that keep the text
/// elsewhere (the verifier's compiled rule scan).
pub fn glob_matches(body: &str, swallow_rest: bool, path: &str) -> bool {
    let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
    if !body.is_empty() {
        for seg in body.split('/') {
            match parts.next() {
                Some(part) if segment_matches(seg, part) => {}
                _ => return false,
            }
        }
    }
    swallow_rest || parts.next().is_none()
}

/// Shell-style match of one segment where `*` matches any run of characters and everything
/// else is literal. Greedy with backtracking to the last `*`: linear in practice, and never
/// worse than O(pattern × text).
fn segment_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// The path part of a forwarded URI: everything before the first `?` or `#`.
pub fn path_of(uri: &str) -> &str {
    match uri.find(['?', '#']) {
        Some(i) => &uri[..i],
        None => uri,
    }
}

/// The first pattern (in order) matching `uri`'s path; for tests and small tables.
pub fn first_match<'a>(patterns: &[&'a str], uri: &str) -> Option<&'a str> {
    let path = path_of(uri);
    patterns
        .iter()
        .copied()
        .find(|p| Matcher::new(p).matches(path))
}

/// How specific a pattern is; greater wins when several of one route table match a path.
/// Exact beats any glob; then more literal (non-`*`) characters; then more segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity {
    exact: bool,
    literal: usize,
    segments: usize,
}

/// The [`Specificity`] of `pattern`.
pub fn specificity(pattern: &str) -> Specificity {
    Specificity {
        exact: !pattern.contains('*'),
        literal: pattern.bytes().filter(|&b| b != b'*').count(),
        segments: pattern.matches('/').count(),
    }
}

/// Positions of `patterns`, most specific first; equally specific ones keep their order (the
/// first declared wins).
pub fn most_specific_first(patterns: &[&str]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..patterns.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(specificity(patterns[i])));
    order
}

/// A pattern as segments after the leading `/`, and whether the rest of a path is swallowed
/// (`P/*` and a final `*` segment, both also matching nothing more).
fn shape(pattern: &str) -> (Vec<&str>, bool) {
    let mut segments: Vec<&str> = pattern
        .strip_prefix('/')
        .unwrap_or(pattern)
        .split('/')
        .collect();
    let swallow = pattern.contains('*') && segments.last() == Some(&"*");
    if swallow {
        segments.pop();
    }
    (segments, swallow)
}

/// Whether some path matches both patterns.
pub fn overlap(a: &str, b: &str) -> bool {
    let ((sa, wa), (sb, wb)) = (shape(a), shape(b));
    let common = sa.len().min(sb.len());
    let lengths = match sa.len().cmp(&sb.len()) {
        std::cmp::Ordering::Equal => true,
        std::cmp::Ordering::Less => wa,
        std::cmp::Ordering::Greater => wb,
    };
    lengths
        && sa[..common]
            .iter()
            .zip(&sb[..common])
            .all(|(x, y)| segments_overlap(x.as_bytes(), y.as_bytes()))
}

/// Whether one segment text matches both segment globs (`*` any run): a walk over pairs of
/// positions, each visited once.
fn segments_overlap(p: &[u8], q: &[u8]) -> bool {
    let mut seen = vec![false; (p.len() + 1) * (q.len() + 1)];
    let mut todo = vec![(0usize, 0usize)];
    while let Some((i, j)) = todo.pop() {
        let k = i * (q.len() + 1) + j;
        if seen[k] {
            continue;
        }
        seen[k] = true;
        let (pc, qc) = (p.get(i).copied(), q.get(j).copied());
        match (pc, qc) {
            (None, None) => return true,
            (Some(b'*'), _) | (_, Some(b'*')) => {
                if pc == Some(b'*') {
                    todo.push((i + 1, j));
                    if qc.is_some() {
                        todo.push((i, j + 1));
                    }
                }
                if qc == Some(b'*') {
                    todo.push((i, j + 1));
                    if pc.is_some() {
                        todo.push((i + 1, j));
                    }
                }
            }
            (Some(x), Some(y)) if x == y => todo.push((i + 1, j + 1)),
            _ => {}
        }
    }
    false
}

/// Whether a route limited to `methods` (upper-case; empty: any) serves `method`. `GET` also
/// serves `HEAD`.
pub fn method_allowed<S: AsRef<str>>(methods: &[S], method: &str) -> bool {
    methods.is_empty()
        || methods
            .iter()
            .any(|m| m.as_ref() == method || (m.as_ref() == "GET" && method == "HEAD"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_wins_and_ties_keep_their_order() {
        let patterns = [
            "/p/*",
            "/p/v1/*",
            "/p/v1/chat/completions",
            "/p/v1/*/info",
            "/p/*/x",
            "/p/a/x",
        ];
        let order: Vec<&str> = most_specific_first(&patterns)
            .into_iter()
            .map(|i| patterns[i])
            .collect();
        assert_eq!(
            order,
            [
                "/p/v1/chat/completions",
                "/p/a/x",
                "/p/v1/*/info",
                "/p/v1/*",
                "/p/*/x",
                "/p/*",
            ]
        );
        let tie = ["/p/a*", "/p/*a"];
        assert_eq!(most_specific_first(&tie), [0, 1]);
    }

    #[test]
    fn overlap_table() {
        let cases = [
            ("/a", "/a", true),
            ("/a", "/b", false),
            ("/a/*", "/a", true),
            ("/a/*", "/a/b/c", true),
            ("/a/*", "/*/b", true),
            ("/a/*/c", "/a/b/*", true),
            ("/a/*/c", "/a/b/d", false),
            ("/x-*/v1", "/*-y/v1", true),
            ("/ab*", "/*ba", true),
            ("/a*b", "/c*", false),
            ("/a*", "/b*", false),
            ("/a/b", "/a/b/c", false),
            ("/*", "/anything/at/all", true),
            ("/v1/*", "/v2/*", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(overlap(a, b), want, "{a} {b}");
            assert_eq!(overlap(b, a), want, "{b} {a}");
            if want {
                continue;
            }
            // No sample path matches both when they do not overlap.
            for path in [
                "/a", "/a/b", "/a/b/c", "/ab", "/aba", "/x-y/v1", "/c", "/v1/x",
            ] {
                let both = Matcher::new(a).matches(path) && Matcher::new(b).matches(path);
                assert!(!both, "{a} {b} on {path}");
            }
        }
    }

    #[test]
    fn methods() {
        let none: [&str; 0] = [];
        assert!(method_allowed(&none, "DELETE"));
        assert!(method_allowed(&["GET"], "HEAD"));
        assert!(method_allowed(&["POST", "GET"], "GET"));
        assert!(!method_allowed(&["POST"], "GET"));
        assert!(!method_allowed(&["HEAD"], "GET"));
    }

    /// obol-reference.md §5.4, every row: (routes, uri, expected first match).
    #[test]
    fn reference_table() {
        let rpc_inference: &[&str] = &["/rpc/*", "/inference-*/v1/*"];
        let ethereum: &[&str] = &["/ethereum-*/execution/*", "/ethereum-*/beacon/*"];
        let cases: &[(&[&str], &str, Option<&str>)] = &[
            (&["/health"], "/health", Some("/health")),
            (&["/health"], "/healthz", None),
            (&["/health"], "/health/deep", None),
            (&["/rpc/*"], "/rpc/mainnet", Some("/rpc/*")),
            (&["/rpc/*"], "/rpc/sepolia", Some("/rpc/*")),
            (&["/rpc/*"], "/rpc/a/b/c", Some("/rpc/*")),
            (&["/rpc/*"], "/rpc/", Some("/rpc/*")),
            (&["/rpc/*"], "/rpc", Some("/rpc/*")),
            (&["/rpc/*"], "/rpcx/foo", None),
            (&["/rpc/*"], "/other", None),
            (
                &["/inference-*/v1/*"],
                "/inference-abc/v1/chat/completions",
                Some("/inference-*/v1/*"),
            ),
            (
                &["/inference-*/v1/*"],
                "/inference-prod/v1/models",
                Some("/inference-*/v1/*"),
            ),
            (
                &["/inference-*/v1/*"],
                "/inference-test-123/v1/embeddings",
                Some("/inference-*/v1/*"),
            ),
            (
                &["/inference-*/v1/*"],
                "/inference-abc/v1/a/b/c",
                Some("/inference-*/v1/*"),
            ),
            (&["/inference-*/v1/*"], "/inference-abc/v2/models", None),
            (&["/inference-*/v1/*"], "/inference/v1/models", None),
            (&["/inference-*/v1/*"], "/other-abc/v1/models", None),
            (
                &["/rpc/*", "/rpc/premium/*"],
                "/rpc/premium/mainnet",
                Some("/rpc/*"),
            ),
            (rpc_inference, "/health", None),
            (rpc_inference, "/", None),
            (rpc_inference, "", None),
            (&[], "/rpc/mainnet", None),
            (
                ethereum,
                "/ethereum-nervous-otter/execution/eth/v1/beacon/genesis",
                Some("/ethereum-*/execution/*"),
            ),
            (
                ethereum,
                "/ethereum-prod/execution/",
                Some("/ethereum-*/execution/*"),
            ),
            (
                ethereum,
                "/ethereum-prod/beacon/eth/v1/beacon/headers",
                Some("/ethereum-*/beacon/*"),
            ),
            (ethereum, "/ethereum-prod/consensus/", None),
            (&["/a-*/b"], "/a-x/b", Some("/a-*/b")),
            (&["/a-*/b"], "/a-x/c", None),
            (&["/a-*/b"], "/a-x/b/extra", None),
        ];
        for (routes, uri, want) in cases {
            assert_eq!(first_match(routes, uri), *want, "{routes:?} {uri:?}");
        }
    }

    /// The Go fail-open case: the query string no longer hides a priced path.
    #[test]
    fn query_string_is_stripped() {
        let routes: &[&str] = &["/services/demo", "/services/x/*", "/g-*/v1"];
        assert_eq!(
            first_match(routes, "/services/demo?x=1"),
            Some("/services/demo")
        );
        assert_eq!(first_match(routes, "/services/x?a"), Some("/services/x/*"));
        assert_eq!(
            first_match(routes, "/services/x/y?a=/b#c"),
            Some("/services/x/*")
        );
        assert_eq!(first_match(routes, "/g-1/v1?q"), Some("/g-*/v1"));
        assert_eq!(
            first_match(routes, "/services/demo#frag"),
            Some("/services/demo")
        );
        assert_eq!(first_match(routes, "/services/demox?x=1"), None);
        assert_eq!(path_of("?only"), "");
    }

    #[test]
    fn shapes_and_segment_globs() {
        assert_eq!(Matcher::new("/a/b"), Matcher::Exact("/a/b".into()));
        assert_eq!(Matcher::new("/a/*"), Matcher::Prefix("/a".into()));
        assert_eq!(Matcher::new("/*"), Matcher::Prefix(String::new()));
        assert!(matches!(Matcher::new("/a*/*"), Matcher::Glob(_)));
        let all = Matcher::new("/*");
        assert!(all.matches("/") && all.matches("/x/y") && all.matches(""));
        assert!(!all.matches("x"));
        let cases = [
            ("a*", "a", true),
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a*c", "abbbc", true),
            ("a*c", "abcd", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b*", "xxbxxaxx", false),
            ("**", "", true),
            ("a", "b", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(segment_matches(pattern, text), want, "{pattern} {text}");
        }
        let mid = Matcher::new("/x/*/y");
        assert!(mid.matches("/x/anything/y"));
        assert!(!mid.matches("/x/a/b/y"));
        assert!(mid.matches("/x//y"), "an empty segment matches *");
    }

    #[test]
    fn hostile_globs_stay_cheap() {
        let m = Matcher::new(&format!("/{}b/*", "*a".repeat(50)));
        let text = format!("/{}", "a".repeat(4000));
        let start = std::time::Instant::now();
        assert!(!m.matches(&text));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    /// The segment-list glob the matcher used before it kept its raw text (a vector of owned
    /// segments): the raw-text match must agree with it on every pattern and path.
    fn segment_list_glob(pattern: &str, path: &str) -> bool {
        let mut segments: Vec<&str> = pattern
            .strip_prefix('/')
            .unwrap_or(pattern)
            .split('/')
            .collect();
        let swallow_rest = segments.last() == Some(&"*");
        if swallow_rest {
            segments.pop();
        }
        let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
        for seg in &segments {
            match parts.next() {
                Some(part) if segment_matches(seg, part) => {}
                _ => return false,
            }
        }
        swallow_rest || parts.next().is_none()
    }

    proptest::proptest! {
        #[test]
        fn raw_glob_agrees_with_the_segment_list(
            pattern in "/?[ab*/]{0,10}",
            path in "/?[ab/]{0,10}",
        ) {
            if let Matcher::Glob(g) = Matcher::new(&pattern) {
                proptest::prop_assert_eq!(
                    glob_matches(g.body(), g.swallows_rest(), &path),
                    segment_list_glob(&pattern, &path),
                    "{} on {}", pattern, path
                );
            }
        }
    }
}
