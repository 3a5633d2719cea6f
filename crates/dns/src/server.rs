//! The resolver's server: the sockets at `127.0.0.11:53` in each served
//! container's namespace and the loops that answer on them, on a tokio
//! runtime of its own (so DNS never queues behind the API, nor the API
//! behind DNS).
//!
//! Sockets are opened by a short-lived thread that enters the container's
//! namespace ([`cell_net::in_netns`]), binds, and hands the sockets back;
//! they stay in that namespace, while the loops and the forwarding run on
//! the runtime's threads in celld's own (the host's) namespace. A query's
//! socket tells who asks, so no source address is trusted or looked up.
//!
//! The engine's calls ([`cell_engine::Resolver`]) replace the
//! [`NameTable`] whole under a mutex of their own; queries load the
//! current table without any lock, so they never wait on the engine.

use crate::answer::{Outcome, answer, server_failure};
use crate::error::DnsError;
use crate::table::NameTable;
use crate::upstream::{HOST_RESOLV_CONF, Upstreams, forward_tcp, forward_udp};
use arc_swap::ArcSwap;
use cell_engine::ContainerNames;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a TCP connection may stay idle between queries (RFC 7766
/// suggests seconds, not minutes).
const TCP_IDLE: Duration = Duration::from_secs(10);

/// How long a withdrawal waits for a container's loops to end (they end at
/// their next step; this only bounds a stuck one).
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The largest query taken over UDP: far above any real question, which
/// is a few hundred bytes.
const MAX_UDP_QUERY: usize = 4096;

/// celld's resolver of container names; see the module doc.
pub struct DnsServer {
    runtime: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
    served: Mutex<HashMap<String, Served>>,
}

/// What the loops share.
struct Shared {
    table: ArcSwap<NameTable>,
    upstreams: Upstreams,
}

/// The loops of one served container.
struct Served {
    /// The namespace's identity (device and inode of its nsfs file): a
    /// container started again has a new one, and needs new sockets.
    netns: (u64, u64),
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl DnsServer {
    /// A resolver that forwards to the resolvers of the host's
    /// `/etc/resolv.conf`.
    pub fn start() -> Result<Self, DnsError> {
        Self::with_resolv_conf(HOST_RESOLV_CONF)
    }

    /// A resolver that forwards to the resolvers named in `resolv_conf`.
    pub fn with_resolv_conf(resolv_conf: impl Into<PathBuf>) -> Result<Self, DnsError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cell-dns")
            .enable_all()
            .build()
            .map_err(DnsError::Runtime)?;
        Ok(Self {
            runtime: Some(runtime),
            shared: Arc::new(Shared {
                table: ArcSwap::from_pointee(NameTable::default()),
                upstreams: Upstreams::new(resolv_conf),
            }),
            served: Mutex::default(),
        })
    }

    /// The names it serves now.
    pub fn table(&self) -> Arc<NameTable> {
        self.shared.table.load_full()
    }

    /// How many containers' queries it answers.
    pub fn served_count(&self) -> usize {
        self.lock_served().len()
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the server")
    }

    fn lock_served(&self) -> std::sync::MutexGuard<'_, HashMap<String, Served>> {
        // The map is only replaced entries of; a panic leaves it usable.
        self.served.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the sockets in `netns` and starts their loops.
    fn serve(&self, asker: &str, netns: &Path, identity: (u64, u64)) -> Result<Served, DnsError> {
        let address = SocketAddr::from((crate::RESOLVER_ADDRESS, 53));
        let bind = || -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
            let udp = std::net::UdpSocket::bind(address)?;
            udp.set_nonblocking(true)?;
            let tcp = std::net::TcpListener::bind(address)?;
            tcp.set_nonblocking(true)?;
            Ok((udp, tcp))
        };
        let (udp, tcp) = cell_net::in_netns(netns, bind)
            .map_err(|source| DnsError::EnterNetns {
                netns: netns.to_path_buf(),
                source,
            })?
            .map_err(|source| DnsError::OpenSockets {
                netns: netns.to_path_buf(),
                source,
            })?;
        let registered = {
            let _runtime = self.runtime().enter();
            UdpSocket::from_std(udp).and_then(|udp| Ok((udp, TcpListener::from_std(tcp)?)))
        };
        let (udp, tcp) = registered.map_err(|source| DnsError::OpenSockets {
            netns: netns.to_path_buf(),
            source,
        })?;
        let served = Served {
            netns: identity,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        };
        let asker: Arc<str> = asker.into();
        let handle = self.runtime().handle();
        served.tasks.spawn_on(
            serve_udp(
                Arc::new(udp),
                asker.clone(),
                self.shared.clone(),
                served.stop.clone(),
                served.tasks.clone(),
            ),
            handle,
        );
        served.tasks.spawn_on(
            serve_tcp(
                tcp,
                asker,
                self.shared.clone(),
                served.stop.clone(),
                served.tasks.clone(),
            ),
            handle,
        );
        Ok(served)
    }

    /// Ends a container's loops and waits until they are gone, so that its
    /// sockets (which keep its namespace alive) are closed on return.
    fn stop_serving(&self, served: Served) {
        served.stop.cancel();
        served.tasks.close();
        let (done, ended) = std::sync::mpsc::channel();
        let tasks = served.tasks.clone();
        // Waited for on the runtime and told over a plain channel: this
        // thread may belong to another runtime's blocking pool, where
        // `block_on` is not allowed.
        self.runtime().spawn(async move {
            tasks.wait().await;
            let _ = done.send(());
        });
        if ended.recv_timeout(STOP_WAIT).is_err() {
            tracing::warn!("the resolver's loops of a container did not end in time");
        }
    }
}

impl cell_engine::Resolver for DnsServer {
    fn publish(&self, names: &ContainerNames) {
        let mut served = self.lock_served();
        self.shared
            .table
            .store(Arc::new(self.shared.table.load().with(names.clone())));
        let identity = names.netns.as_deref().and_then(netns_identity);
        if let Some(current) = served.get(&names.id)
            && Some(current.netns) == identity
        {
            return;
        }
        if let Some(old) = served.remove(&names.id) {
            self.stop_serving(old);
        }
        let (Some(netns), Some(identity)) = (&names.netns, identity) else {
            if let Some(netns) = &names.netns {
                tracing::warn!(container = %names.name, "cannot serve its queries: {} is gone", netns.display());
            }
            return;
        };
        match self.serve(&names.id, netns, identity) {
            Ok(new) => {
                served.insert(names.id.clone(), new);
                tracing::debug!(container = %names.name, "resolver serving at 127.0.0.11:53");
            }
            Err(e) => tracing::warn!(container = %names.name, "{}", error_chain(&e)),
        }
    }

    fn withdraw(&self, container_id: &str) {
        let mut served = self.lock_served();
        if self.shared.table.load().container(container_id).is_some() {
            self.shared
                .table
                .store(Arc::new(self.shared.table.load().without(container_id)));
        }
        if let Some(old) = served.remove(container_id) {
            self.stop_serving(old);
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which panics on an
        // async thread (the engine may be dropped on one).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The device and inode of a namespace's nsfs file, `None` if it is gone.
fn netns_identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// An error and its causes, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Answers the UDP queries of one container; forwarded ones are answered
/// by tasks of their own, so a slow upstream never holds up the names.
///
/// The receive buffer lives on the stack of one synchronous step, never
/// across an await, so an idle container costs its two sockets and two
/// small tasks, not a buffer each.
async fn serve_udp(
    socket: Arc<UdpSocket>,
    asker: Arc<str>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            ready = socket.readable() => {
                if let Err(e) = ready {
                    tracing::debug!(container = %asker, "resolver: socket failed: {e}");
                    return;
                }
            }
        }
        let mut buf = [0u8; MAX_UDP_QUERY];
        let (n, peer) = match socket.try_recv_from(&mut buf) {
            Ok(received) => received,
            // Readiness can be spurious; the next readable() waits again.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::debug!(container = %asker, "resolver: failed to receive: {e}");
                continue;
            }
        };
        let query = &buf[..n];
        match answer(query, &asker, &shared.table.load()) {
            // A full send buffer drops the answer, as the network may: the
            // client asks again.
            Outcome::Reply(response) => {
                let _ = socket.try_send_to(&response, peer);
            }
            Outcome::Forward => {
                let query = query.to_vec();
                let (socket, shared, stop) = (socket.clone(), shared.clone(), stop.clone());
                tasks.spawn(async move {
                    let servers = shared.upstreams.servers();
                    let response = tokio::select! {
                        () = stop.cancelled() => return,
                        response = forward_udp(&query, &servers) => response,
                    };
                    if let Some(response) = response.or_else(|| server_failure(&query)) {
                        let _ = socket.send_to(&response, peer).await;
                    }
                });
            }
            Outcome::Ignore => {}
        }
    }
}

/// Accepts the TCP connections of one container.
async fn serve_tcp(
    listener: TcpListener,
    asker: Arc<str>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                tasks.spawn(serve_tcp_connection(
                    stream,
                    asker.clone(),
                    shared.clone(),
                    stop.clone(),
                ));
            }
            Err(e) => tracing::debug!(container = %asker, "resolver: failed to accept: {e}"),
        }
    }
}

/// Answers the queries of one TCP connection (RFC 1035 4.2.2: each with a
/// two-byte length before it), one after the other, until the client
/// closes it or stays idle.
async fn serve_tcp_connection(
    mut stream: TcpStream,
    asker: Arc<str>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    loop {
        let read = async {
            let length = stream.read_u16().await?;
            let mut query = vec![0u8; usize::from(length)];
            stream.read_exact(&mut query).await?;
            std::io::Result::Ok(query)
        };
        let query = tokio::select! {
            () = stop.cancelled() => return,
            read = tokio::time::timeout(TCP_IDLE, read) => match read {
                Ok(Ok(query)) => query,
                _ => return,
            },
        };
        let outcome = answer(&query, &asker, &shared.table.load());
        let response = match outcome {
            Outcome::Reply(response) => response,
            Outcome::Forward => {
                let servers = shared.upstreams.servers();
                let forwarded = tokio::select! {
                    () = stop.cancelled() => return,
                    forwarded = forward_tcp(&query, &servers) => forwarded,
                };
                match forwarded.or_else(|| server_failure(&query)) {
                    Some(response) => response,
                    None => return,
                }
            }
            Outcome::Ignore => return,
        };
        let Ok(length) = u16::try_from(response.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(response.len() + 2);
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(&response);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}
