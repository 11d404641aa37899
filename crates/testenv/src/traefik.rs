//! Traefik for tests: the real binary ([`crate::tools::traefik`]) on loopback, its dynamic
//! configuration in one watched file (a test may rewrite it), entry point `web` and the ping
//! endpoint on free ports. Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::net::free_port;

/// A running Traefik.
pub struct FileTraefik {
    child: Child,
    /// Port of entry point `web` on 127.0.0.1.
    pub web: u16,
    /// Port of the `traefik` entry point, serving `/ping`.
    pub ping: u16,
    /// The dynamic configuration file (watched).
    pub config: PathBuf,
}

impl FileTraefik {
    /// Writes `dynamic` (YAML) to `dir/dynamic.yml` and starts Traefik on it, logging to
    /// `dir/traefik.log`. Callers wait for whatever readiness they need (a route answering, or
    /// [`FileTraefik::ping_url`]).
    pub fn start(dir: &Path, dynamic: &str) -> Self {
        let config = dir.join("dynamic.yml");
        std::fs::write(&config, dynamic).expect("write Traefik's dynamic configuration");
        let (web, ping) = (free_port(), free_port());
        let log = std::fs::File::create(dir.join("traefik.log")).expect("create traefik.log");
        let child = Command::new(crate::tools::traefik())
            .args([
                "--global.checkNewVersion=false",
                "--global.sendAnonymousUsage=false",
                &format!("--entryPoints.web.address=127.0.0.1:{web}"),
                &format!("--entryPoints.traefik.address=127.0.0.1:{ping}"),
                "--ping=true",
                &format!("--providers.file.filename={}", config.display()),
                "--providers.file.watch=true",
            ])
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start traefik");
        Self {
            child,
            web,
            ping,
            config,
        }
    }

    /// `127.0.0.1:<web>`.
    pub fn web_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.web))
    }

    /// `http://127.0.0.1:<ping>/ping`.
    pub fn ping_url(&self) -> String {
        format!("http://127.0.0.1:{}/ping", self.ping)
    }
}

impl Drop for FileTraefik {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
