//! The host's resolvers and the forwarding of queries to them.
//!
//! The list comes from the host's `resolv.conf` (celld's own mount
//! namespace), read again whenever the file changes, as NetworkManager or
//! systemd-resolved rewrite it. Queries are forwarded from celld's own
//! network namespace, the host's: a `nameserver 127.0.0.53` (a stub on the
//! host's loopback) works, which a DNAT to the host's resolver would not
//! reach from inside a container. Each forwarded query goes out on a fresh
//! socket with a random port, and only an answer from the server asked,
//! with the query's id, is relayed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one server gets to answer before the next is asked; glibc's
/// default is 5 s for the whole query, which the client keeps.
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(2);

/// The host's `resolv.conf`.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// The `nameserver` lines of a `resolv.conf`, as addresses on port 53;
/// glibc's default (the local host) when there is none.
pub fn parse_nameservers(text: &str) -> Vec<SocketAddr> {
    let servers: Vec<SocketAddr> = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        // A link-local IPv6 server carries its interface (`fe80::1%eth0`),
        // which only the host's own stack can route: keep the address.
        .filter_map(|address| address.split('%').next()?.parse::<IpAddr>().ok())
        .map(|address| SocketAddr::new(address, 53))
        .collect();
    if servers.is_empty() {
        vec![SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 53)]
    } else {
        servers
    }
}

/// The host's resolvers, read from a `resolv.conf` and read again when it
/// changes.
pub struct Upstreams {
    path: PathBuf,
    cached: Mutex<(Option<FileStamp>, Arc<Vec<SocketAddr>>)>,
}

/// What tells a changed file: its inode (a file renamed over it), size and
/// time of change (one written in place).
type FileStamp = (u64, u64, i64, i64);

impl Upstreams {
    /// The resolvers named in `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            cached: Mutex::new((None, Arc::new(Vec::new()))),
        }
    }

    /// The resolvers now.
    pub fn servers(&self) -> Arc<Vec<SocketAddr>> {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.ino(), m.size(), m.ctime(), m.ctime_nsec()));
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if cached.0.is_none() || cached.0 != stamp {
            let text = std::fs::read_to_string(&self.path).unwrap_or_default();
            *cached = (stamp, Arc::new(parse_nameservers(&text)));
        }
        cached.1.clone()
    }
}

/// Asks each server in turn over UDP; the first answer that carries the
/// query's id is returned, `None` if none answered.
pub async fn forward_udp(query: &[u8], servers: &[SocketAddr]) -> Option<Vec<u8>> {
    let id = crate::answer::message_id(query)?;
    for server in servers {
        let attempt = async {
            let local: SocketAddr = if server.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let socket = UdpSocket::bind(local).await.ok()?;
            // Connected: the kernel drops datagrams from anyone else.
            socket.connect(server).await.ok()?;
            socket.send(query).await.ok()?;
            // As large as a UDP answer can be (EDNS lets servers send more
            // than 512 bytes).
            let mut buf = vec![0u8; 65535];
            loop {
                let n = socket.recv(&mut buf).await.ok()?;
                if crate::answer::message_id(&buf[..n]) == Some(id) {
                    buf.truncate(n);
                    return Some(buf);
                }
            }
        };
        match tokio::time::timeout(SERVER_TIMEOUT, attempt).await {
            Ok(Some(response)) => return Some(response),
            Ok(None) => tracing::debug!(%server, "forwarding over UDP failed"),
            Err(_) => tracing::debug!(%server, "no answer over UDP in time"),
        }
    }
    None
}

/// Asks each server in turn over TCP (the query as it came, without its
/// length prefix); the first answer is returned.
pub async fn forward_tcp(query: &[u8], servers: &[SocketAddr]) -> Option<Vec<u8>> {
    let id = crate::answer::message_id(query)?;
    let length = u16::try_from(query.len()).ok()?;
    for server in servers {
        let attempt = async {
            let mut stream = TcpStream::connect(server).await.ok()?;
            let mut framed = Vec::with_capacity(query.len() + 2);
            framed.extend_from_slice(&length.to_be_bytes());
            framed.extend_from_slice(query);
            stream.write_all(&framed).await.ok()?;
            let n = stream.read_u16().await.ok()?;
            let mut response = vec![0u8; usize::from(n)];
            stream.read_exact(&mut response).await.ok()?;
            (crate::answer::message_id(&response) == Some(id)).then_some(response)
        };
        match tokio::time::timeout(SERVER_TIMEOUT, attempt).await {
            Ok(Some(response)) => return Some(response),
            Ok(None) => tracing::debug!(%server, "forwarding over TCP failed"),
            Err(_) => tracing::debug!(%server, "no answer over TCP in time"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_are_read_from_resolv_conf() {
        let text = "# by NetworkManager\nsearch example.com\nnameserver 127.0.0.53\n\
                    nameserver  fe80::1%eth0\nnameserver bogus\noptions edns0\n";
        let servers: Vec<String> = parse_nameservers(text).iter().map(|s| s.to_string()).collect();
        assert_eq!(servers, ["127.0.0.53:53", "[fe80::1]:53"]);
        assert_eq!(parse_nameservers("search x\n")[0].to_string(), "127.0.0.1:53");
    }

    #[test]
    fn a_changed_resolv_conf_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.1\n").unwrap();
        let upstreams = Upstreams::new(&path);
        assert_eq!(upstreams.servers()[0].to_string(), "192.0.2.1:53");
        // Replaced as tools do (a new file renamed over it): a new inode.
        let new = dir.path().join("resolv.conf.new");
        std::fs::write(&new, "nameserver 192.0.2.22\nnameserver 192.0.2.3\n").unwrap();
        std::fs::rename(&new, &path).unwrap();
        assert_eq!(upstreams.servers().len(), 2);
    }

    #[tokio::test]
    async fn forwarding_relays_the_answer_that_carries_the_querys_id() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = server.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, peer) = server.recv_from(&mut buf).await.unwrap();
            // A stray datagram with another id first: it is not taken.
            server.send_to(b"\x00\x01stray", peer).await.unwrap();
            buf[2] |= 0x80;
            server.send_to(&buf[..n], peer).await.unwrap();
        });
        let query = b"\x12\x34\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00";
        let answer = forward_udp(query, &[address]).await.unwrap();
        assert_eq!(&answer[..2], b"\x12\x34");
        assert_eq!(answer[2] & 0x80, 0x80);
        echo.await.unwrap();
    }
}
