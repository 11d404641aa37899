//! A small Redis (RESP2) client: what the reservation store needs and nothing more. Commands
//! are arrays of bulk strings; replies are read into [`Reply`]. Each call has one time budget
//! covering the wait for a connection, connecting, writing and reading; a connection that saw
//! any error is dropped, never reused. At most `max_connections` are open at once.

use std::fmt;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Longest bulk reply accepted (records are about 200 bytes).
const MAX_BULK: usize = 1 << 20;
/// Longest status or error line accepted.
const MAX_LINE: usize = 4096;

/// A `redis://[[user]:password@]host[:port][/db]` address. The password is kept out of
/// `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
    db: u32,
}

impl RedisUrl {
    /// Parses a `redis://` URL (`rediss://` is refused: no TLS here).
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
        if url.scheme() != "redis" {
            return Err(format!(
                "the scheme must be redis:// (got {}://)",
                url.scheme()
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the URL has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let db = match url.path().trim_start_matches('/') {
            "" => 0,
            n => n
                .parse()
                .map_err(|_| format!("database {n:?} is not a number"))?,
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err("the URL may not carry a query or a fragment".into());
        }
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| "the URL's credentials are not valid".to_owned())
        };
        Ok(Self {
            host,
            port: url.port().unwrap_or(6379),
            user: Some(url.username())
                .filter(|u| !u.is_empty())
                .map(decode)
                .transpose()?,
            password: url.password().map(decode).transpose()?,
            db,
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = if self.password.is_some() { "***@" } else { "" };
        write!(f, "redis://{auth}{}:{}/{}", self.host, self.port, self.db)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Status(String),
    /// `-ERR ...`.
    Error(String),
    /// `:1`.
    Int(i64),
    /// `$3 abc` or `$-1` (nil).
    Bulk(Option<Vec<u8>>),
    /// `*n ...` or `*-1` (nil).
    Array(Option<Vec<Reply>>),
}

/// A call that did not get a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(String),
    /// The time budget ran out.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server sent something that is not RESP.
    #[error("not a RESP reply: {0}")]
    Protocol(&'static str),
}

struct Conn {
    stream: BufReader<TcpStream>,
}

/// A pool of connections to one server.
pub struct Client {
    url: RedisUrl,
    idle: Mutex<Vec<Conn>>,
    open: Semaphore,
    timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of `url`; every call gets `timeout`; at most `max_connections` open.
    pub fn new(url: RedisUrl, timeout: Duration, max_connections: usize) -> Self {
        Self {
            url,
            idle: Mutex::new(Vec::new()),
            open: Semaphore::new(max_connections.max(1)),
            timeout,
        }
    }

    /// Sends one command and reads its reply. A `-ERR` reply is `Ok(Reply::Error)`.
    pub async fn call(&self, args: &[&[u8]]) -> Result<Reply, RespError> {
        match tokio::time::timeout(self.timeout, self.call_inner(args)).await {
            Ok(result) => result,
            Err(_) => Err(RespError::Timeout(self.timeout)),
        }
    }

    async fn call_inner(&self, args: &[&[u8]]) -> Result<Reply, RespError> {
        let _permit = self
            .open
            .acquire()
            .await
            .map_err(|_| RespError::Io("client closed".into()))?;
        let pooled = self.idle.lock().pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect().await?,
        };
        // On any error `conn` is dropped here: a half-read stream is never reused.
        let reply = conn.command(args).await?;
        self.idle.lock().push(conn);
        Ok(reply)
    }

    async fn connect(&self) -> Result<Conn, RespError> {
        let stream = TcpStream::connect((self.url.host.as_str(), self.url.port))
            .await
            .map_err(|e| RespError::Io(format!("connect: {e}")))?;
        let _ = stream.set_nodelay(true);
        let mut conn = Conn {
            stream: BufReader::new(stream),
        };
        if let Some(password) = &self.url.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &self.url.user {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            conn.expect_ok(&args, "AUTH refused").await?;
        }
        if self.url.db != 0 {
            let db = self.url.db.to_string();
            conn.expect_ok(&[b"SELECT", db.as_bytes()], "SELECT refused")
                .await?;
        }
        Ok(conn)
    }
}

impl Conn {
    async fn expect_ok(&mut self, args: &[&[u8]], what: &'static str) -> Result<(), RespError> {
        match self.command(args).await? {
            Reply::Status(_) => Ok(()),
            _ => Err(RespError::Protocol(what)),
        }
    }

    async fn command(&mut self, args: &[&[u8]]) -> Result<Reply, RespError> {
        let out = encode(args);
        let io = |e: std::io::Error| RespError::Io(e.to_string());
        self.stream.get_mut().write_all(&out).await.map_err(io)?;
        read_reply(&mut self.stream, 0).await
    }
}

/// A command as RESP: an array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Result<String, RespError> {
    let mut line = Vec::new();
    let n = (&mut *r)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| RespError::Io(e.to_string()))?;
    if n == 0 {
        return Err(RespError::Io("connection closed".into()));
    }
    if !line.ends_with(b"\r\n") {
        return Err(RespError::Protocol("line without CRLF"));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| RespError::Protocol("line is not UTF-8"))
}

fn read_reply<'a, R: tokio::io::AsyncBufRead + Unpin + Send>(
    r: &'a mut R,
    depth: usize,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Reply, RespError>> + Send + 'a>> {
    Box::pin(async move {
        if depth > 4 {
            return Err(RespError::Protocol("nested too deep"));
        }
        let line = read_line(r).await?;
        let (kind, rest) = line
            .split_at_checked(1)
            .ok_or(RespError::Protocol("empty line"))?;
        let int = || {
            rest.parse::<i64>()
                .map_err(|_| RespError::Protocol("bad length"))
        };
        match kind {
            "+" => Ok(Reply::Status(rest.to_owned())),
            "-" => Ok(Reply::Error(rest.to_owned())),
            ":" => Ok(Reply::Int(int()?)),
            "$" => {
                let len = int()?;
                if len < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let len = usize::try_from(len).map_err(|_| RespError::Protocol("bad length"))?;
                if len > MAX_BULK {
                    return Err(RespError::Protocol("bulk reply too long"));
                }
                let mut buf = vec![0; len + 2];
                r.read_exact(&mut buf)
                    .await
                    .map_err(|e| RespError::Io(e.to_string()))?;
                if !buf.ends_with(b"\r\n") {
                    return Err(RespError::Protocol("bulk without CRLF"));
                }
                buf.truncate(len);
                Ok(Reply::Bulk(Some(buf)))
            }
            "*" => {
                let len = int()?;
                if len < 0 {
                    return Ok(Reply::Array(None));
                }
                let len = usize::try_from(len)
                    .ok()
                    .filter(|l| *l <= 64)
                    .ok_or(RespError::Protocol("array too long"))?;
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(read_reply(r, depth + 1).await?);
                }
                Ok(Reply::Array(Some(items)))
            }
            _ => Err(RespError::Protocol("unknown reply type")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Reply, RespError> {
        let mut r = BufReader::new(bytes);
        read_reply(&mut r, 0).await
    }

    #[tokio::test]
    async fn replies_table() {
        let cases: &[(&[u8], Result<Reply, RespError>)] = &[
            (b"+OK\r\n", Ok(Reply::Status("OK".into()))),
            (b"-ERR bad\r\n", Ok(Reply::Error("ERR bad".into()))),
            (b":1\r\n", Ok(Reply::Int(1))),
            (b"$-1\r\n", Ok(Reply::Bulk(None))),
            (b"$3\r\nh:1\r\n", Ok(Reply::Bulk(Some(b"h:1".to_vec())))),
            (b"$0\r\n\r\n", Ok(Reply::Bulk(Some(vec![])))),
            (
                b"*2\r\n:1\r\n$-1\r\n",
                Ok(Reply::Array(Some(vec![Reply::Int(1), Reply::Bulk(None)]))),
            ),
            (b"*-1\r\n", Ok(Reply::Array(None))),
            (b"", Err(RespError::Io("connection closed".into()))),
            (b"+OK\n", Err(RespError::Protocol("line without CRLF"))),
            (b"?x\r\n", Err(RespError::Protocol("unknown reply type"))),
            (b"$x\r\n", Err(RespError::Protocol("bad length"))),
            (
                b"$99999999\r\n",
                Err(RespError::Protocol("bulk reply too long")),
            ),
            (
                b"$3\r\nabcd\r\n",
                Err(RespError::Protocol("bulk without CRLF")),
            ),
            (b"*100\r\n", Err(RespError::Protocol("array too long"))),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                &parse(bytes).await,
                want,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        assert_eq!(
            encode(&[b"SET", b"k", b""]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn urls_parse_and_hide_their_password() {
        let u = RedisUrl::parse("redis://:s%40cret@127.0.0.1:6380/2").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("127.0.0.1", 6380, 2));
        assert_eq!(u.password.as_deref(), Some("s@cret"));
        assert!(!format!("{u} {u:?}").contains("cret"), "{u:?}");
        let u = RedisUrl::parse("redis://localhost").unwrap();
        assert_eq!((u.port, u.db, u.password), (6379, 0, None));
        for bad in [
            "rediss://h",
            "http://h",
            "redis://",
            "redis://h/x",
            "redis://h?x=1",
            "nope",
        ] {
            assert!(RedisUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
