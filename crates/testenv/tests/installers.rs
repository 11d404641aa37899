//! The installers (`scripts/tools/*.sh`) are safe to run at once: two first-time installs of the
//! same tool into a fresh `OBOL_TOOLS_DIR` both succeed and publish one install, and a later run
//! leaves that install in place. Uses the two cheapest installers (one npm package each); the
//! Kubernetes build follows the same rule (`scripts/tools/lib.sh`).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use obol_testenv::repo_root;

fn run(script: &str, tools_dir: &Path) -> std::process::Child {
    Command::new(repo_root().join("scripts/tools").join(script))
        .env("OBOL_TOOLS_DIR", tools_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run scripts/tools/{script}: {e}"))
}

fn printed(script: &str, out: &Output) -> PathBuf {
    assert!(
        out.status.success(),
        "scripts/tools/{script} failed ({}); it needs npm (apt-get install nodejs npm):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!path.is_empty(), "{script} printed nothing");
    PathBuf::from(path)
}

fn leftovers(tools_dir: &Path) -> Vec<String> {
    std::fs::read_dir(tools_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-") || n.starts_with(".stale-"))
        .collect()
}

#[test]
fn two_first_time_installs_at_once_publish_one_install() {
    let tools_dir = obol_testenv::scratch_dir("installers");
    let scripts = ["anvil.sh", "solc.sh"];
    // Meanwhile a user of the cache: whenever an install directory is there, it is complete.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (done, tools_dir) = (done.clone(), tools_dir.clone());
        std::thread::spawn(move || {
            let mut partial = Vec::new();
            while !done.load(Ordering::SeqCst) {
                for entry in std::fs::read_dir(&tools_dir).unwrap().flatten() {
                    let (name, path) = (entry.file_name(), entry.path());
                    if !path.is_dir() {
                        continue;
                    }
                    let name = name.to_string_lossy();
                    let complete = if name.starts_with("anvil-") {
                        path.join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
                            .is_file()
                    } else if name.starts_with("solc-") {
                        path.join("node_modules/solc/package.json").is_file()
                    } else {
                        true
                    };
                    if !complete && !partial.contains(&name.to_string()) {
                        partial.push(name.into_owned());
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            partial
        })
    };
    // Two of each at once, both tools in parallel.
    let children: Vec<(&str, std::process::Child)> = scripts
        .iter()
        .flat_map(|s| [(*s, run(s, &tools_dir)), (*s, run(s, &tools_dir))])
        .collect();
    let outputs: Vec<(&str, Output)> = children
        .into_iter()
        .map(|(s, c)| (s, c.wait_with_output().unwrap()))
        .collect();
    for pair in outputs.chunks(2) {
        let (script, first) = &pair[0];
        let (_, second) = &pair[1];
        let (a, b) = (printed(script, first), printed(script, second));
        assert_eq!(a, b, "{script}: both runs print the one install");
        assert!(a.starts_with(&tools_dir) && a.exists(), "{}", a.display());
    }
    let anvil = printed("anvil.sh", &outputs[0].1);
    let version = Command::new(&anvil).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains("anvil Version"));
    let solc = printed("solc.sh", &outputs[2].1);
    assert!(solc.join("solc/package.json").is_file());
    assert!(
        leftovers(&tools_dir).is_empty(),
        "{:?}",
        leftovers(&tools_dir)
    );
    done.store(true, Ordering::SeqCst);
    let partial = watcher.join().unwrap();
    assert!(partial.is_empty(), "seen incomplete: {partial:?}");

    // A later run uses the published install as it is: same directory, same inode.
    let installed = anvil.ancestors().nth(5).unwrap().to_owned();
    let inode = std::fs::metadata(&installed).unwrap().ino();
    let again = run("anvil.sh", &tools_dir).wait_with_output().unwrap();
    assert_eq!(printed("anvil.sh", &again), anvil);
    assert_eq!(std::fs::metadata(&installed).unwrap().ino(), inode);

    // An interrupted older install (the directory without the tool) is replaced, not reused;
    // it is renamed aside rather than deleted under a possible user.
    let solc_dir = solc.parent().unwrap().to_owned();
    std::fs::remove_dir_all(solc.join("solc")).unwrap();
    let repaired = run("solc.sh", &tools_dir).wait_with_output().unwrap();
    assert_eq!(printed("solc.sh", &repaired), solc);
    assert!(solc.join("solc/package.json").is_file());
    assert!(solc_dir.exists());
    std::fs::remove_dir_all(&tools_dir).unwrap();
}
