//! The images of the four services (`scripts/images`), built twice from the binaries this test
//! run already has (a release build would cost CI minutes; the assembly is the same): the same
//! digests both times; each image unpacked by hand from its OCI archive holds its binary, which
//! runs `--version` and `--help` in a chroot of that root filesystem alone (so it is
//! self-contained), as user 65532 with the source, revision and version labels; and the
//! generated overlay renders with `kubectl kustomize`, every image pinned to a digest built here.
//! Needs Debian's buildah (scripts/tools/buildah.sh installs it) and root for the chroot.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use obol_testenv::repo_root;
use serde_json::Value;

/// image name (as deploy/ names it) -> binary, as scripts/images builds them.
const IMAGES: [(&str, &str); 4] = [
    ("obol-serviceoffer-controller", "serviceoffer-controller"),
    ("obol-x402-verifier", "x402-verifier"),
    ("obol-erc8004-registrar", "erc8004-registrar"),
    ("obol-x402-buyer", "x402-buyer"),
];

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_obol"))
        .parent()
        .unwrap()
        .to_owned()
}

fn ensure_binaries() {
    for (_, bin) in IMAGES {
        if !bin_dir().join(bin).exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let built = Command::new(cargo)
                .args(["build", "--bin", bin])
                .current_dir(repo_root())
                .status()
                .unwrap();
            assert!(built.success(), "cannot build {bin}");
        }
    }
}

fn build_images(out: &Path) -> BTreeMap<String, String> {
    let run = Command::new(repo_root().join("scripts/images"))
        .arg("--bin-dir")
        .arg(bin_dir())
        .env("OBOL_IMAGES_DIR", out)
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "scripts/images failed (buildah: scripts/tools/buildah.sh):\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    IMAGES
        .iter()
        .map(|(image, _)| {
            let digest = std::fs::read_to_string(out.join(format!("{image}.digest"))).unwrap();
            let digest = digest.trim().to_owned();
            assert!(
                digest.starts_with("sha256:") && digest.len() == 71,
                "{image}: {digest}"
            );
            ((*image).to_owned(), digest)
        })
        .collect()
}

fn untar(archive: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let ok = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(ok.success(), "tar -xf {}", archive.display());
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Unpacks one OCI archive the way a runtime would (index -> manifest -> config and layers in
/// order) and returns (manifest digest, config, root filesystem).
fn unpack(archive: &Path, work: &Path) -> (String, Value, PathBuf) {
    let layout = work.join("layout");
    untar(archive, &layout);
    let index = json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    let digest = manifests[0]["digest"].as_str().unwrap().to_owned();
    let manifest = json(&blob(&layout, &digest));
    let config = json(&blob(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    let rootfs = work.join("rootfs");
    for layer in manifest["layers"].as_array().unwrap() {
        untar(&blob(&layout, layer["digest"].as_str().unwrap()), &rootfs);
    }
    (digest, config, rootfs)
}

/// `chroot` from this process's PATH (the binary runs with an empty environment).
fn chroot_program() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("chroot"))
        .find(|p| p.is_file())
        .expect("chroot on PATH (Debian's coreutils)")
}

fn chroot(rootfs: &Path, bin: &str, arg: &str) -> String {
    let out = Command::new(chroot_program())
        .arg("--userspec=65532:65532")
        .arg(rootfs)
        .arg(format!("/usr/local/bin/{bin}"))
        .arg(arg)
        .env_clear()
        .output()
        .expect("chroot runs (as root)");
    assert!(
        out.status.success(),
        "{bin} {arg} in its own rootfs: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn images_are_reproducible_self_contained_and_pinned_by_the_overlay() {
    ensure_binaries();
    let work =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("images-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (first, second) = (work.join("first"), work.join("second"));
    let digests = build_images(&first);
    assert_eq!(
        digests,
        build_images(&second),
        "two builds of one tree gave different images"
    );
    let revision = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(repo_root())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();

    for (image, bin) in IMAGES {
        let unpacked = work.join("unpacked").join(image);
        let (digest, config, rootfs) = unpack(&first.join(format!("{image}.tar")), &unpacked);
        assert_eq!(digest, digests[image], "{image}: index vs .digest");
        assert_eq!(config["config"]["User"], "65532:65532", "{image}");
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!([format!("/usr/local/bin/{bin}")]),
            "{image}"
        );
        let labels = &config["config"]["Labels"];
        assert!(
            labels["org.opencontainers.image.revision"]
                .as_str()
                .unwrap()
                .starts_with(revision.trim()),
            "{image}: {labels}"
        );
        assert!(
            !labels["org.opencontainers.image.source"]
                .as_str()
                .unwrap()
                .is_empty()
        );
        let version = labels["org.opencontainers.image.version"].as_str().unwrap();
        assert!(
            rootfs.join("etc/ssl/certs/ca-certificates.crt").is_file(),
            "{image}: no CA certificates"
        );
        assert!(
            std::fs::read_to_string(rootfs.join("etc/passwd"))
                .unwrap()
                .contains(":65532:65532:"),
            "{image}: no user 65532"
        );
        let printed = chroot(&rootfs, bin, "--version");
        assert!(
            printed.contains(version),
            "{image}: --version says {printed:?}, the label {version}"
        );
        assert!(chroot(&rootfs, bin, "--help").contains("Usage:"), "{image}");
    }

    let rendered = Command::new("kubectl")
        .arg("kustomize")
        .arg(first.join("release"))
        .output()
        .expect("kubectl runs (Debian's kubectl)");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let rendered = String::from_utf8(rendered.stdout).unwrap();
    let mut pinned: Vec<String> = rendered
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .map(str::to_owned)
        .collect();
    pinned.sort();
    let mut want: Vec<String> = digests
        .iter()
        .map(|(image, digest)| format!("{image}@{digest}"))
        .collect();
    want.sort();
    assert_eq!(pinned, want, "every container image is one just built");
    std::fs::remove_dir_all(&work).unwrap();
}
