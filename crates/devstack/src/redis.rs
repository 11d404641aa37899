//! A Redis server on loopback (Debian's `redis-server`, installed by `scripts/tools/redis.sh`):
//! the reservation store that several verifier replicas share. No persistence, no protected
//! mode tricks: it binds 127.0.0.1 only.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The `redis-server` arguments for loopback port `port`, in the foreground, without
/// persistence.
pub fn server_args(port: u16) -> Vec<String> {
    [
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]
    .map(String::from)
    .to_vec()
}

/// The `redis://` URL of a server on loopback port `port`.
pub fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// Whether a server answers `PING` on loopback port `port`.
pub fn pings(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"*1\r\n$4\r\nPING\r\n").is_ok()
        && s.read_exact(&mut buf).is_ok()
        && &buf == b"+PONG\r\n"
}

/// Waits until a server answers on `port`.
pub async fn wait_ready(port: u16, timeout: Duration) -> std::io::Result<()> {
    let deadline = Instant::now() + timeout;
    while !pings(port) {
        if Instant::now() >= deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("redis-server on port {port} not answering after {timeout:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A `redis-server` child process (killed when dropped): tests stop and restart it.
#[derive(Debug)]
pub struct Redis {
    bin: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<tokio::process::Child>,
}

impl Redis {
    /// Starts `bin` on a free loopback port; output goes to `log`.
    pub async fn start(bin: &Path, log: &Path) -> std::io::Result<Self> {
        let port = crate::process::free_port()?;
        let mut redis = Self {
            bin: bin.to_owned(),
            log: log.to_owned(),
            port,
            child: None,
        };
        redis.restart().await?;
        Ok(redis)
    }

    /// Its `redis://` URL.
    pub fn url(&self) -> String {
        url(self.port)
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.kill().await;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = tokio::process::Command::new(&self.bin)
            .args(server_args(self.port))
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        self.child = Some(child);
        wait_ready(self.port, Duration::from_secs(10)).await
    }
}
