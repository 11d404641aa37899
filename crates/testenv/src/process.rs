//! Child processes of tests: a signal, a bounded wait for the exit, and what a finished command
//! said (for assertion messages).

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Sends SIGTERM to the process `pid` (through `kill`, so no libc binding is needed).
pub fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid}: {status}");
}

/// The exit status of `child` when it exits within `limit`, else `None` (polled every 50 ms).
pub async fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return Some(status);
        }
        if start.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A finished command's exit code, stdout and stderr, for an assertion's message.
pub fn described(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A binary of this workspace beside the running test's own build (`<target>/<profile>/name`;
/// test binaries run from `<target>/<profile>/deps`), built with `cargo build --bin name` when
/// it is missing. A binary that exists may be older than the sources: build the workspace's
/// binaries (`cargo build --workspace --bins`) before tests that start them.
pub fn workspace_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("test binaries run from <target>/<profile>/deps");
    let bin = dir.join(name);
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = Command::new(cargo)
            .args(["build", "--bin", name])
            .current_dir(crate::repo_root())
            .status()
            .expect("run cargo build");
        assert!(built.success(), "cargo build --bin {name}: {built}");
    }
    bin
}
