//! The host's ports, as publishing needs them: the range automatic host
//! ports come from, and a bound socket per published port.
//!
//! celld holds a socket bound to each published host port (on its address,
//! or on `0.0.0.0` and `[::]` for all addresses) for as long as the
//! container exists, as Docker does: the socket is never listened on (the
//! kernel forwards the port before any socket sees a packet), it is there
//! so that a host process that binds the port gets `EADDRINUSE` instead of
//! silently shadowing, or being shadowed by, the container. No
//! `SO_REUSEADDR` is set: Linux lets two sockets share a port only when
//! both set it. A bind that fails with `EADDRINUSE` is also how celld
//! learns that a host process already holds a port.
//!
//! [`HostPorts`] is the seam: [`SocketHostPorts`] is the real one,
//! [`FakeHostPorts`] a model for the engine's tests.

use cell_core::port::{PortRange, PortSpec, Protocol};
use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

/// A held reservation: the port stays reserved until it is dropped.
pub struct Reservation {
    _held: Box<dyn Send + Sync>,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reservation")
    }
}

/// The host's ports.
pub trait HostPorts: Send + Sync {
    /// The kernel's ephemeral range (`net.ipv4.ip_local_port_range`), where
    /// automatic host ports come from unless `port_range` is configured.
    fn ephemeral_range(&self) -> PortRange;

    /// Reserves `port.host_port` for `port.protocol` on `port.host_ip` (all
    /// addresses when absent, IPv4 and IPv6). Fails with
    /// [`io::ErrorKind::AddrInUse`] when a socket of the host holds it and
    /// [`io::ErrorKind::AddrNotAvailable`] when the address is not the
    /// host's; on error nothing stays reserved.
    fn reserve(&self, port: &PortSpec) -> io::Result<Reservation>;
}

/// The real [`HostPorts`]: sockets in celld's network namespace.
#[derive(Debug, Default)]
pub struct SocketHostPorts;

/// Linux's default ephemeral range, if `/proc` cannot be read.
const LINUX_EPHEMERAL: PortRange = PortRange {
    start: 32768,
    end: 60999,
};

impl HostPorts for SocketHostPorts {
    fn ephemeral_range(&self) -> PortRange {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|text| parse_local_port_range(&text))
            .unwrap_or(LINUX_EPHEMERAL)
    }

    fn reserve(&self, port: &PortSpec) -> io::Result<Reservation> {
        let addresses: Vec<IpAddr> = match port.host_ip {
            Some(ip) => vec![ip],
            None => vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ],
        };
        let mut sockets = Vec::new();
        for ip in addresses {
            match bind(ip, port.host_port, port.protocol) {
                Ok(socket) => sockets.push(socket),
                // A host without IPv6 has no [::] to hold; 0.0.0.0 is enough.
                Err(e)
                    if port.host_ip.is_none()
                        && ip.is_ipv6()
                        && matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Reservation {
            _held: Box::new(sockets),
        })
    }
}

/// A socket bound to `ip:port`, never listened on. IPv6 sockets are
/// IPv6-only, so that `[::]` and `0.0.0.0` are two separate holds.
fn bind(ip: IpAddr, port: u16, protocol: Protocol) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let domain = if ip.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let (kind, proto) = match protocol {
        Protocol::Tcp => (Type::STREAM, socket2::Protocol::TCP),
        Protocol::Udp => (Type::DGRAM, socket2::Protocol::UDP),
    };
    // socket2 opens sockets close-on-exec, so supervisors never inherit them.
    let socket = Socket::new(domain, kind, Some(proto))?;
    if ip.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&SocketAddr::new(ip, port).into())?;
    Ok(socket)
}

/// `ip_local_port_range`'s two numbers ("32768\t60999").
fn parse_local_port_range(text: &str) -> Option<PortRange> {
    let mut numbers = text.split_whitespace().map(|n| n.parse::<u16>().ok());
    let (start, end) = (numbers.next()??, numbers.next()??);
    (0 < start && start <= end).then_some(PortRange { start, end })
}

#[derive(Default)]
struct FakeState {
    /// Ports host processes hold: (address or all, port, protocol).
    host_processes: Vec<PortSpec>,
    /// Reservations held now.
    held: Vec<PortSpec>,
    /// Addresses the fake host does not hold.
    foreign: HashSet<IpAddr>,
}

/// A [`HostPorts`] that models the kernel's bind rules: a port held on an
/// address clashes with the same port held on all addresses and the other
/// way round.
pub struct FakeHostPorts {
    range: PortRange,
    state: Arc<Mutex<FakeState>>,
}

impl FakeHostPorts {
    /// Ports from `range` are automatic ones.
    pub fn new(range: PortRange) -> Self {
        Self {
            range,
            state: Arc::default(),
        }
    }

    /// A host process binds `port` (`[ADDR:]PORT[/PROTO]`).
    pub fn host_process_binds(&self, port: &str) {
        let spec: PortSpec = port.parse().expect("a port spec");
        self.state.lock().unwrap().host_processes.push(spec);
    }

    /// Binding `ip` fails as for an address the host does not hold.
    pub fn forbid_address(&self, ip: IpAddr) {
        self.state.lock().unwrap().foreign.insert(ip);
    }

    /// The reservations held now, sorted.
    pub fn held(&self) -> Vec<String> {
        let mut held: Vec<String> = self
            .state
            .lock()
            .unwrap()
            .held
            .iter()
            .map(PortSpec::host_side)
            .collect();
        held.sort();
        held
    }
}

struct FakeHold {
    port: PortSpec,
    state: Arc<Mutex<FakeState>>,
}

impl Drop for FakeHold {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = state.held.iter().position(|p| p == &self.port) {
            state.held.remove(i);
        }
    }
}

impl HostPorts for FakeHostPorts {
    fn ephemeral_range(&self) -> PortRange {
        self.range
    }

    fn reserve(&self, port: &PortSpec) -> io::Result<Reservation> {
        let mut state = self.state.lock().unwrap();
        if port.host_ip.is_some_and(|ip| state.foreign.contains(&ip)) {
            return Err(io::Error::from(io::ErrorKind::AddrNotAvailable));
        }
        if state
            .host_processes
            .iter()
            .chain(&state.held)
            .any(|p| p.clashes_with(port))
        {
            return Err(io::Error::from(io::ErrorKind::AddrInUse));
        }
        let key = PortSpec {
            container_port: 1,
            ..port.clone()
        };
        state.held.push(key.clone());
        Ok(Reservation {
            _held: Box::new(FakeHold {
                port: key,
                state: self.state.clone(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_range_is_read() {
        assert_eq!(
            parse_local_port_range("32768\t60999\n"),
            Some(PortRange {
                start: 32768,
                end: 60999
            })
        );
        assert_eq!(parse_local_port_range("x"), None);
        assert_eq!(parse_local_port_range("9 1"), None);
    }

    /// In a fresh network namespace only: binds real sockets.
    #[test]
    fn a_reserved_port_cannot_be_bound_by_anyone_else() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root for a network namespace of its own");
            return;
        }
        std::thread::spawn(|| {
            // SAFETY: changes only this thread's network namespace; the
            // thread ends with the test.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
            // Bring lo up so 127.0.0.1 is bindable.
            let lo = std::process::Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status();
            assert!(lo.unwrap().success());
            let ports = SocketHostPorts;
            let wildcard: PortSpec = "18080:80".parse().unwrap();
            let held = ports.reserve(&wildcard).unwrap();
            // A host process, even with SO_REUSEADDR, gets EADDRINUSE.
            let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            other.set_reuse_address(true).unwrap();
            let err = other
                .bind(&"127.0.0.1:18080".parse::<SocketAddr>().unwrap().into())
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
            let err = ports.reserve(&"127.0.0.1:18080:80".parse().unwrap()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
            // The positive control: the same bind works once it is released,
            // and UDP on the same number was never taken.
            ports.reserve(&"18080:80/udp".parse().unwrap()).unwrap();
            drop(held);
            other
                .bind(&"127.0.0.1:18080".parse::<SocketAddr>().unwrap().into())
                .unwrap();
            let err = ports.reserve(&"192.0.2.1:18081:80".parse().unwrap()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::AddrNotAvailable);
        })
        .join()
        .unwrap();
    }
}
