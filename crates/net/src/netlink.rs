//! [`NetlinkLinks`]: the real [`Links`], a synchronous rtnetlink client.
//!
//! Every verb goes through one request path (`NetlinkLinks::request`):
//! it stamps a sequence number, sends, and reads answers until the kernel's
//! ACK, `NLMSG_DONE` or `NLMSG_ERROR` for that sequence number, skipping
//! anything else. A kernel error becomes [`NetlinkError::Kernel`] with its
//! errno, so callers can tell "exists" from "not found".
//!
//! A socket talks to the network namespace it was opened in for its whole
//! life, whichever thread later uses it; [`NetlinkLinks::in_netns`] relies on
//! that.
//!
//! Verbs name links, the kernel wants indexes: a cache maps names to
//! indexes, filled by lookups and by creation (the kernel echoes a new
//! link, `NLM_F_ECHO`) and emptied of a name when cell deletes or renames
//! it, so a verb costs one request instead of an `RTM_GETLINK` first. A
//! link deleted behind cell's back leaves a stale entry: a request that
//! fails with a cached index is sent once more with a fresh lookup (Linux
//! allocates indexes cyclically, so a stale index does not name another
//! link), and the cache is emptied whenever it grows past
//! [`INDEX_CACHE_LIMIT`] names, so a long-lived `celld` stays flat.

use crate::error::{NetError, NetlinkError, Result};
use crate::links::{LinkInfo, Links, RouteInfo, RouteKind, check_link_name};
use crate::mac::MacAddr;
use crate::netns::in_netns;
use ipnet::IpNet;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoMacVlan, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo as NlLinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Mutex;

/// How many link names the index cache holds before it starts over: more
/// than the host ends and bridges of the 1,000 containers a bridge can hold.
pub const INDEX_CACHE_LIMIT: usize = 4096;

struct Conn {
    socket: Socket,
    seq: u32,
}

/// The real [`Links`]: one rtnetlink socket bound to one network namespace.
pub struct NetlinkLinks {
    conn: Mutex<Conn>,
    indexes: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for NetlinkLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkLinks").finish_non_exhaustive()
    }
}

impl NetlinkLinks {
    /// Opens a socket in the calling thread's network namespace.
    pub fn new() -> Result<Self> {
        let open = || -> std::io::Result<Socket> {
            let mut socket = Socket::new(NETLINK_ROUTE)?;
            socket.bind_auto()?;
            socket.connect(&SocketAddr::new(0, 0))?;
            Ok(socket)
        };
        let socket = open().map_err(|source| NetError::OpenNetlink { source })?;
        Ok(Self {
            conn: Mutex::new(Conn { socket, seq: 0 }),
            indexes: Mutex::new(HashMap::new()),
        })
    }

    /// Opens a socket inside the named namespace at `path`; every verb of
    /// the result acts on that namespace.
    pub fn in_netns(path: &Path) -> Result<Self> {
        in_netns(path, Self::new)?
    }

    /// Sends one request and collects the kernel's answers to it.
    ///
    /// `flags` are added to `NLM_F_REQUEST`; without `NLM_F_DUMP` an ACK is
    /// asked for, so every request ends in a definite success or errno.
    fn request(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> std::result::Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.seq = conn.seq.wrapping_add(1);
        let seq = conn.seq;
        let is_dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags | if is_dump { 0 } else { NLM_F_ACK };
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        conn.socket.send(&buf, 0).map_err(NetlinkError::Io)?;

        let mut answers = Vec::new();
        loop {
            let (data, _) = conn.socket.recv_from_full().map_err(NetlinkError::Io)?;
            let mut offset = 0;
            // One datagram can hold several messages (a dump part).
            while offset < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| NetlinkError::Decode(e.to_string()))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    return Err(NetlinkError::Decode("message of length 0".into()));
                }
                offset += (len + 3) & !3;
                if reply.header.sequence_number != seq {
                    // An answer to an earlier request that was abandoned
                    // (its caller got an error): not ours.
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(answers),
                            Some(code) => Err(NetlinkError::Kernel { errno: -code.get() }),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    NetlinkPayload::Overrun(_) => {
                        return Err(NetlinkError::Decode("netlink overrun".into()));
                    }
                    _ => {}
                }
            }
        }
    }

    /// The index of `name` as the kernel says now (no cache); an error if
    /// the link does not exist.
    fn fresh_index(&self, name: &str) -> Result<u32> {
        self.get_link(name)?
            .map(|l| l.header.index)
            .ok_or_else(|| NetError::LinkNotFound {
                name: name.to_string(),
            })
    }

    fn get_link(&self, name: &str) -> Result<Option<LinkMessage>> {
        check_link_name(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(mut answers) => match answers.pop() {
                Some(RouteNetlinkMessage::NewLink(link)) => {
                    self.remember(name, link.header.index);
                    Ok(Some(link))
                }
                _ => {
                    self.forget(name);
                    Ok(None)
                }
            },
            Err(NetlinkError::Kernel { errno: libc::ENODEV }) => {
                self.forget(name);
                Ok(None)
            }
            Err(source) => Err(NetError::GetLink {
                name: name.to_string(),
                source,
            }),
        }
    }

    fn remember(&self, name: &str, index: u32) {
        let mut indexes = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
        if indexes.len() >= INDEX_CACHE_LIMIT {
            indexes.clear();
        }
        indexes.insert(name.to_string(), index);
    }

    fn forget(&self, name: &str) {
        self.indexes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// The index of `name`, and whether it came from the cache.
    fn lookup(&self, name: &str) -> Result<(u32, bool)> {
        let cached = self
            .indexes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied();
        if let Some(index) = cached {
            return Ok((index, true));
        }
        Ok((self.fresh_index(name)?, false))
    }

    /// Sends what `send` builds from the indexes of `names`. If a cached
    /// index may be stale (the kernel refused, other than "exists"), the
    /// names are looked up afresh and the request is sent once more.
    fn with_indexes<T, const N: usize>(
        &self,
        names: [&str; N],
        send: impl Fn([u32; N]) -> std::result::Result<T, NetlinkError>,
    ) -> Result<std::result::Result<T, NetlinkError>> {
        let mut indexes = [0; N];
        let mut any_cached = false;
        for (slot, name) in indexes.iter_mut().zip(names) {
            let (index, cached) = self.lookup(name)?;
            *slot = index;
            any_cached |= cached;
        }
        match send(indexes) {
            Err(NetlinkError::Kernel { errno }) if any_cached && errno != libc::EEXIST => {
                for name in names {
                    self.forget(name);
                }
                for (slot, name) in indexes.iter_mut().zip(names) {
                    *slot = self.lookup(name)?.0;
                }
                Ok(send(indexes))
            }
            other => Ok(other),
        }
    }

    /// Sends an `RTM_SETLINK` for `name` with the given header flags and
    /// attributes.
    fn set_link(
        &self,
        name: &str,
        action: String,
        flags: LinkFlags,
        change_mask: LinkFlags,
        attributes: Vec<LinkAttribute>,
    ) -> Result<()> {
        self.with_indexes([name], |[index]| {
            let mut msg = LinkMessage::default();
            msg.header.index = index;
            msg.header.flags = flags;
            msg.header.change_mask = change_mask;
            msg.attributes = attributes.clone();
            self.request(RouteNetlinkMessage::SetLink(msg), 0)
        })?
        .map(drop)
        .map_err(|source| NetError::SetLink {
            action,
            name: name.to_string(),
            source,
        })
    }

    /// Creates a link in this socket's namespace; the kernel's echo of it
    /// fills the index cache.
    fn new_link(&self, kind: &'static str, name: &str, msg: LinkMessage) -> Result<()> {
        let answers = self
            .send_new_link(msg)
            .map_err(|source| create_error(kind, name, source))?;
        self.remember_created(name, answers);
        Ok(())
    }

    /// Caches the index of `name` from the kernel's echo of its creation.
    fn remember_created(&self, name: &str, answers: Vec<RouteNetlinkMessage>) {
        for answer in answers {
            if let RouteNetlinkMessage::NewLink(link) = answer {
                let is_it = link
                    .attributes
                    .iter()
                    .any(|a| matches!(a, LinkAttribute::IfName(n) if n == name));
                if is_it {
                    self.remember(name, link.header.index);
                }
            }
        }
    }

    fn send_new_link(&self, msg: LinkMessage) -> std::result::Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
        )
    }

    fn address_message(index: u32, addr: IpNet) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.prefix_len = addr.prefix_len();
        msg.header.scope = AddressScope::Universe;
        match addr.addr() {
            IpAddr::V4(ip) => {
                msg.header.family = AddressFamily::Inet;
                // IFA_LOCAL is the address proper; IFA_ADDRESS is the peer
                // (the same on non point-to-point links), as `ip` sends it.
                msg.attributes.push(AddressAttribute::Local(ip.into()));
                msg.attributes.push(AddressAttribute::Address(ip.into()));
            }
            IpAddr::V6(ip) => {
                msg.header.family = AddressFamily::Inet6;
                // Without NODAD the address stays "tentative" for a second
                // or more and binding or connecting from it fails.
                msg.header.flags = AddressHeaderFlags::Nodad;
                msg.attributes.push(AddressAttribute::Address(ip.into()));
                msg.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
        }
        msg
    }

    /// A main-table route message to `dest`, with no device yet.
    fn route_to(dest: IpNet) -> RouteMessage {
        let mut msg = RouteMessage::default();
        msg.header.address_family = match dest {
            IpNet::V4(_) => AddressFamily::Inet,
            IpNet::V6(_) => AddressFamily::Inet6,
        };
        msg.header.destination_prefix_length = dest.prefix_len();
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        if dest.prefix_len() > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(dest.network())));
        }
        msg
    }
}

impl Links for NetlinkLinks {
    fn create_veth_pair(&self, host_end: &str, peer_end: &str, peer_netns_fd: Option<RawFd>) -> Result<()> {
        check_link_name(host_end)?;
        check_link_name(peer_end)?;
        let mut peer = LinkMessage::default();
        peer.attributes.push(LinkAttribute::IfName(peer_end.to_string()));
        if let Some(fd) = peer_netns_fd {
            peer.attributes.push(LinkAttribute::NetNsFd(fd));
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host_end.to_string()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            NlLinkInfo::Kind(InfoKind::Veth),
            NlLinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.new_link("veth", host_end, msg)
    }

    fn create_bridge(&self, name: &str) -> Result<()> {
        check_link_name(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![NlLinkInfo::Kind(InfoKind::Bridge)]));
        self.new_link("bridge", name, msg)
    }

    fn create_macvlan(&self, name: &str, parent: &str, netns_fd: Option<RawFd>) -> Result<()> {
        check_link_name(name)?;
        let message = |parent_index| {
            let mut msg = LinkMessage::default();
            msg.attributes.push(LinkAttribute::IfName(name.to_string()));
            msg.attributes.push(LinkAttribute::Link(parent_index));
            if let Some(fd) = netns_fd {
                msg.attributes.push(LinkAttribute::NetNsFd(fd));
            }
            msg.attributes.push(LinkAttribute::LinkInfo(vec![
                NlLinkInfo::Kind(InfoKind::MacVlan),
                NlLinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(MacVlanMode::Bridge)])),
            ]));
            msg
        };
        // The parent index is resolved in this socket's namespace even
        // when the child is made in another one, which is what we want.
        let answers = self
            .with_indexes([parent], |[parent_index]| {
                self.send_new_link(message(parent_index))
            })?
            .map_err(|source| create_error("macvlan", name, source))?;
        // A child made in another namespace has its name and index there
        // (it may even carry the parent's name): not for this cache.
        if netns_fd.is_none() {
            self.remember_created(name, answers);
        }
        Ok(())
    }

    fn delete_link(&self, name: &str) -> Result<()> {
        let sent = self.with_indexes([name], |[index]| {
            let mut msg = LinkMessage::default();
            msg.header.index = index;
            self.request(RouteNetlinkMessage::DelLink(msg), 0)
        });
        self.forget(name);
        match sent {
            Err(NetError::LinkNotFound { .. }) => Ok(()),
            Err(e) => Err(e),
            // Gone between the lookup and the delete (e.g. its veth peer
            // was deleted): the wanted state is reached.
            Ok(Err(NetlinkError::Kernel { errno: libc::ENODEV }) | Ok(_)) => Ok(()),
            Ok(Err(source)) => Err(NetError::DeleteLink {
                name: name.to_string(),
                source,
            }),
        }
    }

    fn set_up(&self, name: &str) -> Result<()> {
        self.set_link(name, "set up".into(), LinkFlags::Up, LinkFlags::Up, vec![])
    }

    fn set_master(&self, name: &str, bridge: &str) -> Result<()> {
        self.with_indexes([name, bridge], |[index, bridge_index]| {
            let mut msg = LinkMessage::default();
            msg.header.index = index;
            msg.attributes.push(LinkAttribute::Controller(bridge_index));
            self.request(RouteNetlinkMessage::SetLink(msg), 0)
        })?
        .map(drop)
        .map_err(|source| NetError::SetLink {
            action: format!("set master {bridge}"),
            name: name.to_string(),
            source,
        })
    }

    fn set_hairpin(&self, name: &str) -> Result<()> {
        let info = vec![
            NlLinkInfo::PortKind(InfoPortKind::Bridge),
            NlLinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(true)])),
        ];
        // A port's options are changed by RTM_NEWLINK on the existing link
        // (as `ip link set ... type bridge_slave` does): RTM_SETLINK
        // ignores IFLA_INFO_SLAVE_DATA.
        self.with_indexes([name], |[index]| {
            let mut msg = LinkMessage::default();
            msg.header.index = index;
            msg.attributes.push(LinkAttribute::LinkInfo(info.clone()));
            self.request(RouteNetlinkMessage::NewLink(msg), 0)
        })?
        .map(drop)
        .map_err(|source| NetError::SetLink {
            action: "set hairpin on".into(),
            name: name.to_string(),
            source,
        })
    }

    fn set_nomaster(&self, name: &str) -> Result<()> {
        self.set_link(
            name,
            "set nomaster".into(),
            LinkFlags::empty(),
            LinkFlags::empty(),
            vec![LinkAttribute::Controller(0)],
        )
    }

    fn rename(&self, name: &str, new_name: &str) -> Result<()> {
        check_link_name(new_name)?;
        let renamed = self.set_link(
            name,
            format!("rename to {new_name}"),
            LinkFlags::empty(),
            LinkFlags::empty(),
            vec![LinkAttribute::IfName(new_name.to_string())],
        );
        self.forget(name);
        self.forget(new_name);
        renamed
    }

    fn set_mac(&self, name: &str, mac: MacAddr) -> Result<()> {
        self.set_link(
            name,
            format!("set address {mac}"),
            LinkFlags::empty(),
            LinkFlags::empty(),
            vec![LinkAttribute::Address(mac.octets().to_vec())],
        )
    }

    fn link_index(&self, name: &str) -> Result<Option<u32>> {
        Ok(self.get_link(name)?.map(|l| l.header.index))
    }

    fn link_mac(&self, name: &str) -> Result<MacAddr> {
        let link = self.get_link(name)?.ok_or_else(|| NetError::LinkNotFound {
            name: name.to_string(),
        })?;
        link.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Address(bytes) => MacAddr::try_from(bytes.as_slice()).ok(),
                _ => None,
            })
            .ok_or_else(|| NetError::InvalidMac {
                text: format!("(none on {name})"),
            })
    }

    fn list_links(&self) -> Result<Vec<LinkInfo>> {
        let answers = self
            .request(RouteNetlinkMessage::GetLink(LinkMessage::default()), NLM_F_DUMP)
            .map_err(|source| NetError::GetLink {
                name: "*".into(),
                source,
            })?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(link_info(link)),
                _ => None,
            })
            .collect())
    }

    fn add_address(&self, name: &str, addr: IpNet) -> Result<()> {
        let sent = self.with_indexes([name], |[index]| {
            let msg = Self::address_message(index, addr);
            self.request(RouteNetlinkMessage::NewAddress(msg), NLM_F_CREATE | NLM_F_EXCL)
        })?;
        match sent {
            Ok(_) | Err(NetlinkError::Kernel { errno: libc::EEXIST }) => Ok(()),
            Err(source) => Err(NetError::AddAddress {
                name: name.to_string(),
                addr,
                source,
            }),
        }
    }

    fn del_address(&self, name: &str, addr: IpNet) -> Result<()> {
        let sent = self.with_indexes([name], |[index]| {
            let msg = Self::address_message(index, addr);
            self.request(RouteNetlinkMessage::DelAddress(msg), 0)
        });
        let sent = match sent {
            Err(NetError::LinkNotFound { .. }) => return Ok(()),
            other => other?,
        };
        match sent {
            Ok(_)
            | Err(NetlinkError::Kernel {
                errno: libc::EADDRNOTAVAIL | libc::ENODEV,
            }) => Ok(()),
            Err(source) => Err(NetError::DelAddress {
                name: name.to_string(),
                addr,
                source,
            }),
        }
    }

    fn list_addresses(&self, name: &str) -> Result<Vec<IpNet>> {
        // A query: asked afresh rather than trusting the cache.
        let index = self.fresh_index(name)?;
        let answers = self
            .request(
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
                NLM_F_DUMP,
            )
            .map_err(|source| NetError::ListAddresses {
                name: name.to_string(),
                source,
            })?;
        let mut addrs = Vec::new();
        for answer in answers {
            let RouteNetlinkMessage::NewAddress(msg) = answer else {
                continue;
            };
            if msg.header.index != index {
                continue;
            }
            // IFA_LOCAL is the address on IPv4; IPv6 only sends IFA_ADDRESS.
            let local = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let address = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(net) = local
                .or(address)
                .and_then(|ip| IpNet::new(ip, msg.header.prefix_len).ok())
            {
                addrs.push(net);
            }
        }
        Ok(addrs)
    }

    fn add_route(&self, dest: IpNet, dev: &str, gateway: Option<IpAddr>) -> Result<()> {
        let dest = dest.trunc();
        let sent = self.with_indexes([dev], |[index]| {
            let mut msg = Self::route_to(dest);
            msg.attributes.push(RouteAttribute::Oif(index));
            msg.header.protocol = RouteProtocol::Static;
            msg.header.kind = RouteType::Unicast;
            msg.header.scope = match gateway {
                Some(_) => RouteScope::Universe,
                None => RouteScope::Link,
            };
            if let Some(gw) = gateway {
                msg.attributes
                    .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
            }
            self.request(RouteNetlinkMessage::NewRoute(msg), NLM_F_CREATE | NLM_F_EXCL)
        })?;
        route_added(sent, dest, dev)
    }

    fn add_unreachable_route(&self, dest: IpNet) -> Result<()> {
        self.new_route(Self::unreachable_message(dest), dest.trunc(), UNREACHABLE)
    }

    fn del_unreachable_route(&self, dest: IpNet) -> Result<()> {
        self.remove_route(Self::unreachable_message(dest), dest.trunc(), UNREACHABLE)
    }

    fn add_local_route(&self, dest: IpNet, dev: &str) -> Result<()> {
        let dest = dest.trunc();
        let sent = self.with_indexes([dev], |[index]| {
            let mut msg = Self::route_to(dest);
            msg.header.table = RT_TABLE_LOCAL;
            msg.attributes.push(RouteAttribute::Oif(index));
            msg.header.protocol = RouteProtocol::Static;
            msg.header.kind = RouteType::Local;
            msg.header.scope = RouteScope::Host;
            // Appended: IPv6 takes a second route of the same prefix and
            // metric (`local ::1` on another link) as existing with
            // NLM_F_EXCL; an append of the same route is still EEXIST.
            self.request(RouteNetlinkMessage::NewRoute(msg), NLM_F_CREATE | NLM_F_APPEND)
        })?;
        route_added(sent, dest, dev)
    }

    fn del_route(&self, dest: IpNet, dev: &str) -> Result<()> {
        let dest = dest.trunc();
        let sent = self.with_indexes([dev], |[index]| {
            let mut msg = Self::route_to(dest);
            msg.attributes.push(RouteAttribute::Oif(index));
            // RT_SCOPE_NOWHERE matches a route of any scope, as `ip route del`.
            msg.header.scope = RouteScope::NoWhere;
            self.request(RouteNetlinkMessage::DelRoute(msg), 0)
        });
        match sent {
            // The route went with its device.
            Err(NetError::LinkNotFound { .. }) => Ok(()),
            Err(e) => Err(e),
            Ok(sent) => route_deleted(sent, dest, dev),
        }
    }

    fn list_routes(&self) -> Result<Vec<RouteInfo>> {
        let names: HashMap<u32, String> = self
            .list_links()?
            .into_iter()
            .map(|l| (l.index, l.name))
            .collect();
        let answers = self
            .request(RouteNetlinkMessage::GetRoute(RouteMessage::default()), NLM_F_DUMP)
            .map_err(|source| NetError::ListRoutes { source })?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(route) => route_info(route, &names),
                _ => None,
            })
            .collect())
    }

    fn set_alias(&self, name: &str, alias: &str) -> Result<()> {
        self.set_link(
            name,
            format!("set alias {alias}"),
            LinkFlags::empty(),
            LinkFlags::empty(),
            vec![LinkAttribute::IfAlias(alias.to_string())],
        )
    }
}

/// What route errors name as the device of an `unreachable` route.
const UNREACHABLE: &str = "(unreachable)";

impl NetlinkLinks {
    /// Adds a route; one that exists already is the wanted state.
    fn new_route(&self, msg: RouteMessage, dest: IpNet, dev: &str) -> Result<()> {
        let sent = self.request(RouteNetlinkMessage::NewRoute(msg), NLM_F_CREATE | NLM_F_EXCL);
        route_added(sent, dest, dev)
    }

    /// Deletes a route; one that is gone already is the wanted state.
    fn remove_route(&self, msg: RouteMessage, dest: IpNet, dev: &str) -> Result<()> {
        route_deleted(self.request(RouteNetlinkMessage::DelRoute(msg), 0), dest, dev)
    }

    fn unreachable_message(dest: IpNet) -> RouteMessage {
        let mut msg = Self::route_to(dest.trunc());
        msg.header.protocol = RouteProtocol::Static;
        msg.header.kind = RouteType::Unreachable;
        msg.header.scope = RouteScope::Universe;
        msg
    }
}

/// The kernel's `local` table (`RT_TABLE_LOCAL`), which the crate has no
/// constant for.
const RT_TABLE_LOCAL: u8 = 255;

type Sent = std::result::Result<Vec<RouteNetlinkMessage>, NetlinkError>;

fn create_error(kind: &'static str, name: &str, source: NetlinkError) -> NetError {
    NetError::CreateLink {
        kind,
        name: name.to_string(),
        source,
    }
}

/// The outcome of adding a route: one that exists already is the wanted
/// state.
fn route_added(sent: Sent, dest: IpNet, dev: &str) -> Result<()> {
    match sent {
        Ok(_) | Err(NetlinkError::Kernel { errno: libc::EEXIST }) => Ok(()),
        Err(source) => Err(NetError::AddRoute {
            dest,
            dev: dev.to_string(),
            source,
        }),
    }
}

/// The outcome of deleting a route: one that is gone already is the
/// wanted state.
fn route_deleted(sent: Sent, dest: IpNet, dev: &str) -> Result<()> {
    match sent {
        Ok(_)
        | Err(NetlinkError::Kernel {
            errno: libc::ESRCH | libc::ENOENT,
        }) => Ok(()),
        Err(source) => Err(NetError::DelRoute {
            dest,
            dev: dev.to_string(),
            source,
        }),
    }
}

/// A main-table route of a dump; `None` for other tables and for routes
/// that are not IP.
fn route_info(route: RouteMessage, names: &HashMap<u32, String>) -> Option<RouteInfo> {
    let mut table = u32::from(route.header.table);
    let mut dest = None;
    let mut dev = None;
    let mut gateway = None;
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => dest = ip_of(a),
            RouteAttribute::Oif(index) => dev = names.get(index).cloned(),
            RouteAttribute::Gateway(a) => gateway = ip_of(a),
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let dest = match (dest, route.header.address_family) {
        (Some(ip), _) => ip,
        (None, AddressFamily::Inet) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        (None, _) => return None,
    };
    let kind = match route.header.kind {
        RouteType::Unicast => RouteKind::Unicast,
        RouteType::Unreachable => RouteKind::Unreachable,
        RouteType::BlackHole => RouteKind::Blackhole,
        RouteType::Prohibit => RouteKind::Prohibit,
        other => RouteKind::Other(u8::from(other)),
    };
    Some(RouteInfo {
        dest: IpNet::new(dest, route.header.destination_prefix_length).ok()?,
        dev,
        kind,
        gateway,
    })
}

fn ip_of(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn link_info(link: LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        name: String::new(),
        index: link.header.index,
        kind: None,
        master: None,
        up: link.header.flags.contains(LinkFlags::Up),
        alias: None,
    };
    for attr in link.attributes {
        match attr {
            LinkAttribute::IfName(name) => info.name = name,
            LinkAttribute::IfAlias(alias) if !alias.is_empty() => info.alias = Some(alias),
            LinkAttribute::Controller(m) if m != 0 => info.master = Some(m),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let NlLinkInfo::Kind(kind) = i {
                        info.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    info
}
