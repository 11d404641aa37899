//! The controller as a separate process (the `serviceoffer-controller` binary), for tests that
//! kill it or measure it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running controller process; killed on drop.
pub struct ControllerProcess {
    pub child: Child,
    pub log: PathBuf,
}

impl ControllerProcess {
    /// Starts the binary watching `ns` only, with its lease in `ns`, plus `extra` flags.
    pub fn spawn(kubeconfig: &std::path::Path, ns: &str, identity: &str, extra: &[&str]) -> Self {
        let dir = obol_testenv::repo_root().join("target/tmp");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("controller-{ns}-{identity}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        // OBOL_CONTROLLER_BIN selects another build (e.g. release, for measurements).
        let bin = std::env::var_os("OBOL_CONTROLLER_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_serviceoffer-controller")),
            PathBuf::from,
        );
        let child = Command::new(bin)
            .args([
                "--namespace",
                ns,
                "--lease-namespace",
                ns,
                "--identity",
                identity,
            ])
            .args(["--probe-timeout", "1s"])
            .args(if extra.contains(&"--listen") {
                &[][..]
            } else {
                &["--listen", "127.0.0.1:0"][..]
            })
            .args(if extra.contains(&"--log") {
                &[][..]
            } else {
                &["--log", "warn"][..]
            })
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start serviceoffer-controller");
        Self { child, log }
    }

    /// SIGKILL, no chance to release anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// CPU time (user + system) used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields
            .get(11..13)
            .map_or(0, |f| f.iter().filter_map(|x| x.parse::<u64>().ok()).sum());
        // USER_HZ is 100 on Linux.
        Duration::from_millis(ticks * 10)
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
