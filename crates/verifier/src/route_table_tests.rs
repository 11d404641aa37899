use super::*;
use crate::matcher::path_of;
use crate::testing::mk_entry;

#[test]
fn apply_delete_reset() {
    let table = RouteTable::new();
    assert!(!table.is_synced());
    assert!(table.apply(mk_entry("a", "one", "/one")));
    assert!(!table.apply(mk_entry("a", "one", "/one")), "no-op apply");
    assert!(table.apply(mk_entry("a", "two", "/two/*")));
    assert_eq!(table.len(), 2);
    assert_eq!(table.get("a", "two").unwrap().pattern, "/two/*");
    assert!(table.get("b", "two").is_none());
    assert_eq!(table.find("/two/x").unwrap().key.name, "two");
    assert!(table.delete(&RouteKey::new("a", "two")));
    assert!(!table.delete(&RouteKey::new("a", "two")));
    assert!(table.find("/two/x").is_none());
    table.reset([mk_entry("z", "z", "/z")]);
    assert!(table.is_synced());
    assert_eq!(table.len(), 1);
    assert!(table.get("a", "one").is_none());
    table.reset([]);
    assert!(table.is_empty() && table.is_synced());
}

/// A batch applies in order, publishes one snapshot, and none when nothing changed.
#[test]
fn update_applies_a_batch_in_order_with_one_snapshot() {
    let table = RouteTable::new();
    table.reset([mk_entry("a", "keep", "/keep/*")]);
    let before = table.snapshot();
    let changed = table.update([
        Change::Apply(Box::new(mk_entry("a", "one", "/one/*"))),
        Change::Apply(Box::new(mk_entry("a", "one", "/uno/*"))),
        Change::Apply(Box::new(mk_entry("a", "gone", "/gone"))),
        Change::Delete(RouteKey::new("a", "gone")),
        Change::Delete(RouteKey::new("a", "never")),
        Change::Apply(Box::new(mk_entry("a", "keep", "/keep/*"))),
    ]);
    assert_eq!(
        changed, 4,
        "the missing delete and the identical apply change nothing"
    );
    assert_eq!(before.len(), 1, "a published snapshot never changes");
    assert_eq!(table.len(), 2);
    assert_eq!(table.find("/uno/x").unwrap().key.name, "one");
    assert!(table.find("/one/x").is_none() && table.find("/gone").is_none());
    let current = table.snapshot();
    let nothing = table.update([
        Change::Apply(Box::new(mk_entry("a", "keep", "/keep/*"))),
        Change::Delete(RouteKey::new("b", "absent")),
    ]);
    assert_eq!(nothing, 0);
    assert!(
        Arc::ptr_eq(&current, &table.snapshot()),
        "no rebuild for no change"
    );
    assert_eq!(table.update([]), 0);
}

#[test]
fn replacing_a_route_moves_its_pattern() {
    let table = RouteTable::new();
    table.apply(mk_entry("a", "r", "/old/*"));
    table.apply(mk_entry("a", "r", "/new/*"));
    assert!(table.find("/old/x").is_none());
    assert_eq!(table.find("/new/x").unwrap().key.name, "r");
}

/// First match in namespace/name order, whatever the insertion order.
#[test]
fn order_is_deterministic() {
    let forward = RouteTable::new();
    let backward = RouteTable::new();
    let entries = [
        mk_entry("b", "premium", "/rpc/premium/*"),
        mk_entry("a", "rpc", "/rpc/*"),
        mk_entry("c", "glob", "/rpc/*/x"),
        mk_entry("a", "exact", "/rpc/premium/mainnet"),
    ];
    for e in entries.iter().cloned() {
        forward.apply(e);
    }
    for e in entries.iter().rev().cloned() {
        backward.apply(e);
    }
    for path in ["/rpc/premium/mainnet", "/rpc/premium/x", "/rpc/q/x", "/rpc"] {
        let f = forward.find(path).map(|e| e.key.clone());
        let b = backward.find(path).map(|e| e.key.clone());
        assert_eq!(f, b, "{path}");
    }
    assert_eq!(
        forward.find("/rpc/premium/mainnet").unwrap().key.name,
        "exact"
    );
    assert_eq!(forward.find("/rpc/premium/x").unwrap().key.name, "rpc");
    let names: Vec<_> = forward
        .snapshot()
        .routes()
        .iter()
        .map(|e| e.key.to_string())
        .collect();
    assert_eq!(names, ["a/exact", "a/rpc", "b/premium", "c/glob"]);
}

/// The index answers exactly what a linear scan in table order answers.
#[test]
fn index_agrees_with_linear_scan() {
    let patterns = [
        "/*",
        "/a",
        "/a/*",
        "/a/b/*",
        "/a/b",
        "/a-*/b",
        "/a-*/b/*",
        "/x/*/y",
        "/x/y/z/*",
        "/",
        "/a/b/c/d/*",
        "/s-*",
        "/*-q/*",
        "/é*/z",
    ];
    let paths = [
        "",
        "/",
        "/a",
        "/a/",
        "/a/b",
        "/a/b/",
        "/a/b/c",
        "/a/b/c/d",
        "/a/b/c/d/e",
        "/a-1/b",
        "/a-1/b/c",
        "/x/q/y",
        "/x/y/z",
        "/x/y/z/w",
        "/s-1",
        "/s-1/2",
        "/zzz",
        "a",
        "//",
        "/a?x=1",
        "/a/b?q#f",
    ];
    // Every subset of up to 4 patterns under different names, so order varies too.
    for mask in 0u32..(1 << patterns.len()) {
        if mask.count_ones() > 4 || mask % 5 != 0 {
            continue;
        }
        let table = RouteTable::new();
        let mut chosen = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            if mask & (1 << i) != 0 {
                let name = format!("r{:02}", (i * 5) % patterns.len());
                chosen.push(mk_entry("ns", &name, p));
            }
        }
        chosen.sort_by(|a, b| a.key.cmp(&b.key));
        chosen.dedup_by(|a, b| a.key == b.key);
        table.reset(chosen.iter().cloned());
        for uri in paths {
            let path = path_of(uri);
            let linear = chosen.iter().find(|e| e.matcher.matches(path));
            let indexed = table.find(path);
            assert_eq!(
                linear.map(|e| &e.key),
                indexed.as_ref().map(|e| &e.key),
                "mask {mask:b} path {path:?}"
            );
        }
    }
}

#[test]
fn deep_hostile_paths_are_bounded() {
    let table = RouteTable::new();
    table.reset((0..100).map(|i| mk_entry("ns", &format!("r{i}"), &format!("/p{i}/*"))));
    let path = "/".repeat(64 * 1024);
    let start = std::time::Instant::now();
    assert!(table.find(&path).is_none());
    assert!(start.elapsed() < std::time::Duration::from_millis(100));
}
