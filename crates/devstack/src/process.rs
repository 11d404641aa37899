//! Detached processes of the local stack: started in their own session with output to a log
//! file and the pid recorded, stopped by exactly that pid.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A process of the stack as recorded in the state file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Proc {
    /// Component name (`verifier`, `anvil`, …).
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// Its log file.
    pub log: PathBuf,
}

/// Starts `program` detached (own session, stdin closed, stdout/stderr to `<run>/<name>.log`).
pub fn spawn(
    run: &Path,
    name: &str,
    program: &Path,
    args: &[String],
    envs: &[(String, String)],
) -> std::io::Result<Proc> {
    let log = run.join(format!("{name}.log"));
    let out = std::fs::File::create(&log)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0);
    let child = cmd.spawn()?;
    Ok(Proc {
        name: name.to_owned(),
        pid: child.id(),
        log,
    })
}

/// Whether `pid` is alive (not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Stops `pid`: TERM, then KILL after `grace`.
pub fn stop(pid: u32, grace: Duration) {
    if !alive(pid) {
        return;
    }
    signal(pid, "-TERM");
    let start = Instant::now();
    while alive(pid) && start.elapsed() < grace {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        signal(pid, "-KILL");
    }
}

/// The last `lines` lines of a log, for error messages.
pub fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A free port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
