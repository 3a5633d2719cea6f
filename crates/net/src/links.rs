//! The [`Links`] trait: every rtnetlink verb the drivers need (links,
//! addresses, routes), and [`FakeLinks`], a recording double that keeps a
//! small model of links so plans can be tested without root.
//!
//! The real implementation is [`crate::NetlinkLinks`]. All verbs name links
//! by interface name (at most 15 bytes, `IFNAMSIZ - 1`).

use crate::error::{NetError, Result};
use crate::mac::MacAddr;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::Mutex;

/// One link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub index: u32,
    /// Link type (`veth`, `bridge`, `macvlan`...), `None` for physical and
    /// loopback devices.
    pub kind: Option<String>,
    /// Index of the bridge it is a port of.
    pub master: Option<u32>,
    /// Whether it is administratively up (`IFF_UP`).
    pub up: bool,
    /// Its alias (`IFLA_IFALIAS`): cell marks the links it makes with
    /// [`crate::driver::link_alias`], so a user's interface is never taken
    /// for one of cell's.
    pub alias: Option<String>,
}

/// What a route does with the packets it matches (`rtm_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Forwarded out of its device, or to its gateway.
    Unicast,
    /// Refused with "host unreachable".
    Unreachable,
    /// Dropped silently.
    Blackhole,
    /// Refused with "administratively prohibited".
    Prohibit,
    /// Any other type (local, broadcast, ...), by its number.
    Other(u8),
}

/// One route of the main table as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The destination with its prefix length (`0.0.0.0/0` for a default
    /// route).
    pub dest: IpNet,
    /// The output device, `None` for routes on no device (unreachable).
    pub dev: Option<String>,
    /// What the route does.
    pub kind: RouteKind,
    /// The next hop, if it has one.
    pub gateway: Option<IpAddr>,
}

/// Checks a link name the way the kernel would (`dev_valid_name`), so a bad
/// name fails before any change is made.
pub fn check_link_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(NetError::InvalidLinkName {
            name: name.to_string(),
        })
    }
}

/// Kernel verbs on links, addresses and routes of one network namespace.
///
/// Methods take `&self` and implementations are `Send + Sync`, so one
/// value can be shared by the engine. Verbs that create succeed only if the
/// object did not exist unless stated otherwise; verbs that remove succeed
/// if the object is already gone, so teardown can run twice.
pub trait Links: Send + Sync {
    /// Creates a veth pair. With `peer_netns_fd` the peer is created
    /// directly in that namespace (`IFLA_NET_NS_FD`), saving a move. Fails
    /// with an "exists" error if either name is taken.
    fn create_veth_pair(&self, host_end: &str, peer_end: &str, peer_netns_fd: Option<RawFd>) -> Result<()>;
    /// Creates a bridge (down). Fails if the name is taken.
    fn create_bridge(&self, name: &str) -> Result<()>;
    /// Creates a macvlan child of `parent` in bridge mode, optionally
    /// directly in another namespace. Fails if the name is taken.
    fn create_macvlan(&self, name: &str, parent: &str, netns_fd: Option<RawFd>) -> Result<()>;
    /// Deletes a link; succeeds if it does not exist. Deleting one end of a
    /// veth pair deletes both.
    fn delete_link(&self, name: &str) -> Result<()>;
    /// Sets a link administratively up.
    fn set_up(&self, name: &str) -> Result<()>;
    /// Makes a link a port of `bridge`.
    fn set_master(&self, name: &str, bridge: &str) -> Result<()>;
    /// Removes a link from its bridge; succeeds if it has none.
    fn set_nomaster(&self, name: &str) -> Result<()>;
    /// Renames a link. The kernel refuses (`EBUSY`) while it is up.
    fn rename(&self, name: &str, new_name: &str) -> Result<()>;
    /// Sets a link's MAC address.
    fn set_mac(&self, name: &str, mac: MacAddr) -> Result<()>;
    /// The index of a link, `None` if it does not exist.
    fn link_index(&self, name: &str) -> Result<Option<u32>>;
    /// The MAC address of a link.
    fn link_mac(&self, name: &str) -> Result<MacAddr>;
    /// All links of the namespace.
    fn list_links(&self) -> Result<Vec<LinkInfo>>;
    /// Adds an address; succeeds if the link already has it. IPv6
    /// addresses skip duplicate address detection (`IFA_F_NODAD`) so they
    /// are usable at once.
    fn add_address(&self, name: &str, addr: IpNet) -> Result<()>;
    /// Deletes an address; succeeds if the link does not have it.
    fn del_address(&self, name: &str, addr: IpNet) -> Result<()>;
    /// The addresses of a link, with their prefix lengths.
    fn list_addresses(&self, name: &str) -> Result<Vec<IpNet>>;
    /// Adds a route in the main table; succeeds if it exists. A `0.0.0.0/0`
    /// or `::/0` destination with a gateway is the default route. Without a
    /// gateway the destination is on-link.
    fn add_route(&self, dest: IpNet, dev: &str, gateway: Option<IpAddr>) -> Result<()>;
    /// Deletes a route to `dest` out of `dev`; succeeds if it does not exist.
    fn del_route(&self, dest: IpNet, dev: &str) -> Result<()>;
    /// Adds an `unreachable` route to `dest`, on no device: what no more
    /// specific route claims is refused rather than sent by a less specific
    /// one (the default route). Succeeds if it exists.
    fn add_unreachable_route(&self, dest: IpNet) -> Result<()>;
    /// Deletes the `unreachable` route to `dest`; succeeds if it does not
    /// exist.
    fn del_unreachable_route(&self, dest: IpNet) -> Result<()>;
    /// Turns on hairpin mode of the bridge port `name`: the bridge may
    /// send a frame back out of the port it came in by. Needed when
    /// br_netfilter bridges a connection a container DNATed to itself.
    fn set_hairpin(&self, name: &str) -> Result<()>;
    /// Adds a `local` route to `dest` on `dev` in the local table: packets
    /// to `dest` that arrive on `dev` are the host's. Succeeds if it
    /// exists; goes with the link. cell uses it for `::1` on its host-side
    /// links, see [`crate::ports`].
    fn add_local_route(&self, dest: IpNet, dev: &str) -> Result<()>;
    /// The routes of the main table, both families.
    fn list_routes(&self) -> Result<Vec<RouteInfo>>;
    /// Sets a link's alias (`IFLA_IFALIAS`), which [`LinkInfo::alias`]
    /// reports; an empty alias removes it.
    fn set_alias(&self, name: &str, alias: &str) -> Result<()>;
}

/// One recorded call of [`FakeLinks`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // the variants mirror the `Links` verbs one to one
pub enum LinkOp {
    CreateVethPair {
        host_end: String,
        peer_end: String,
        peer_netns_fd: Option<RawFd>,
    },
    CreateBridge {
        name: String,
    },
    CreateMacvlan {
        name: String,
        parent: String,
        netns_fd: Option<RawFd>,
    },
    DeleteLink {
        name: String,
    },
    SetUp {
        name: String,
    },
    SetMaster {
        name: String,
        bridge: String,
    },
    SetNomaster {
        name: String,
    },
    Rename {
        name: String,
        new_name: String,
    },
    SetMac {
        name: String,
        mac: MacAddr,
    },
    LinkIndex {
        name: String,
    },
    LinkMac {
        name: String,
    },
    ListLinks,
    AddAddress {
        name: String,
        addr: IpNet,
    },
    DelAddress {
        name: String,
        addr: IpNet,
    },
    ListAddresses {
        name: String,
    },
    AddRoute {
        dest: IpNet,
        dev: String,
        gateway: Option<IpAddr>,
    },
    DelRoute {
        dest: IpNet,
        dev: String,
    },
    AddUnreachableRoute {
        dest: IpNet,
    },
    DelUnreachableRoute {
        dest: IpNet,
    },
    AddLocalRoute {
        dest: IpNet,
        dev: String,
    },
    SetHairpin {
        name: String,
    },
    ListRoutes,
    SetAlias {
        name: String,
        alias: String,
    },
}

#[derive(Debug, Default)]
struct FakeState {
    ops: Vec<LinkOp>,
    fail_call: Option<usize>,
    next_index: u32,
    /// Links of this namespace; peers created in another namespace are
    /// not kept, as the kernel would not show them here either.
    links: BTreeMap<String, FakeLink>,
    /// Routes added through the verbs (not the kernel's own prefix and
    /// local routes), by the index of their device: those via a deleted
    /// link are not listed, as the kernel drops them with it (indexes are
    /// never reused here).
    routes: Vec<(Option<u32>, RouteInfo)>,
}

#[derive(Debug, Clone)]
struct FakeLink {
    index: u32,
    kind: Option<String>,
    master: Option<String>,
    up: bool,
    mac: MacAddr,
    addrs: Vec<IpNet>,
    alias: Option<String>,
}

/// A recording [`Links`]: every call is appended to a log of [`LinkOp`]s,
/// and a small model of links and addresses answers queries the way the
/// kernel would (names taken, link missing), so plans and their undo paths
/// can be tested without root.
#[derive(Default)]
pub struct FakeLinks {
    state: Mutex<FakeState>,
    /// Told of links made in or deleted from other namespaces, so a fake
    /// world of several namespaces ([`crate::kernel::FakeNetKernel`]) can
    /// model veth peers and macvlan children.
    on_peer: Mutex<Option<PeerHook>>,
}

/// A callback told of [`PeerEvent`]s.
pub type PeerHook = Box<dyn Fn(PeerEvent) + Send + Sync>;

/// What [`FakeLinks`] tells its peer hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// A link was created directly in the namespace open as `netns_fd`
    /// (a veth peer, or a macvlan child); `host_end` names the veth's end
    /// that stayed here.
    Created {
        /// The other namespace.
        netns_fd: RawFd,
        /// The name of the link there.
        name: String,
        /// Its kind (`veth`, `macvlan`).
        kind: &'static str,
        /// The veth end that stayed in this namespace.
        host_end: Option<String>,
    },
    /// A link of this namespace was deleted (a veth's peer goes with it).
    Deleted {
        /// Its name.
        name: String,
    },
}

impl std::fmt::Debug for FakeLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLinks")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl FakeLinks {
    /// An empty namespace holding only `lo`.
    pub fn new() -> Self {
        let fake = Self::default();
        fake.state.lock().unwrap().next_index = 1;
        fake.insert("lo", None);
        fake
    }

    /// Makes the `n`th call from now on (1-based, counting every recorded
    /// call) fail with [`NetError::Injected`]; the failed call is recorded
    /// but changes nothing.
    pub fn fail_call(&self, n: usize) {
        let mut state = self.state.lock().unwrap();
        state.fail_call = Some(state.ops.len() + n);
    }

    /// The calls recorded so far.
    pub fn ops(&self) -> Vec<LinkOp> {
        self.state.lock().unwrap().ops.clone()
    }

    /// Forgets the recorded calls (the modelled links stay).
    pub fn clear_ops(&self) {
        self.state.lock().unwrap().ops.clear();
    }

    /// Sets the callback told of links made in other namespaces and of
    /// deletions.
    pub fn set_peer_hook(&self, hook: PeerHook) {
        *self.on_peer.lock().unwrap() = Some(hook);
    }

    fn tell_peer(&self, event: PeerEvent) {
        if let Some(hook) = self.on_peer.lock().unwrap().as_ref() {
            hook(event);
        }
    }

    /// Removes a link from the model without recording a call (the kernel
    /// removed it as a side effect, e.g. with its namespace).
    pub fn forget(&self, name: &str) {
        self.state.lock().unwrap().links.remove(name);
    }

    /// The names of the modelled links, sorted.
    pub fn link_names(&self) -> Vec<String> {
        self.state.lock().unwrap().links.keys().cloned().collect()
    }

    /// Adds a link to the model without recording a call, e.g. the host's
    /// uplink for a macvlan test.
    pub fn insert(&self, name: &str, kind: Option<&str>) {
        let mut state = self.state.lock().unwrap();
        insert_link(&mut state, name, kind);
    }

    fn record(&self, op: LinkOp) -> Result<std::sync::MutexGuard<'_, FakeState>> {
        let mut state = self.state.lock().unwrap();
        state.ops.push(op);
        let call = state.ops.len();
        if state.fail_call == Some(call) {
            state.fail_call = None;
            return Err(NetError::Injected { call });
        }
        Ok(state)
    }
}

fn insert_link(state: &mut FakeState, name: &str, kind: Option<&str>) {
    let index = state.next_index;
    state.next_index += 1;
    let i = index.to_be_bytes();
    state.links.insert(
        name.to_string(),
        FakeLink {
            index,
            kind: kind.map(str::to_string),
            master: None,
            up: false,
            mac: MacAddr([0x02, 0, i[0], i[1], i[2], i[3]]),
            addrs: Vec::new(),
            alias: None,
        },
    );
}

fn errno(e: i32) -> crate::error::NetlinkError {
    crate::error::NetlinkError::Kernel { errno: e }
}

fn create(state: &mut FakeState, kind: &'static str, name: &str) -> Result<()> {
    check_link_name(name)?;
    if state.links.contains_key(name) {
        return Err(NetError::CreateLink {
            kind,
            name: name.to_string(),
            source: errno(libc::EEXIST),
        });
    }
    insert_link(state, name, Some(kind));
    Ok(())
}

fn link<'a>(state: &'a mut FakeState, name: &str) -> Result<&'a mut FakeLink> {
    state.links.get_mut(name).ok_or_else(|| NetError::LinkNotFound {
        name: name.to_string(),
    })
}

impl Links for FakeLinks {
    fn create_veth_pair(&self, host_end: &str, peer_end: &str, peer_netns_fd: Option<RawFd>) -> Result<()> {
        let mut s = self.record(LinkOp::CreateVethPair {
            host_end: host_end.into(),
            peer_end: peer_end.into(),
            peer_netns_fd,
        })?;
        check_link_name(peer_end)?;
        if peer_netns_fd.is_none() && s.links.contains_key(peer_end) {
            return Err(NetError::CreateLink {
                kind: "veth",
                name: peer_end.to_string(),
                source: errno(libc::EEXIST),
            });
        }
        create(&mut s, "veth", host_end)?;
        match peer_netns_fd {
            None => insert_link(&mut s, peer_end, Some("veth")),
            Some(netns_fd) => {
                drop(s);
                self.tell_peer(PeerEvent::Created {
                    netns_fd,
                    name: peer_end.to_string(),
                    kind: "veth",
                    host_end: Some(host_end.to_string()),
                });
            }
        }
        Ok(())
    }

    fn create_bridge(&self, name: &str) -> Result<()> {
        let mut s = self.record(LinkOp::CreateBridge { name: name.into() })?;
        create(&mut s, "bridge", name)
    }

    fn create_macvlan(&self, name: &str, parent: &str, netns_fd: Option<RawFd>) -> Result<()> {
        let mut s = self.record(LinkOp::CreateMacvlan {
            name: name.into(),
            parent: parent.into(),
            netns_fd,
        })?;
        link(&mut s, parent)?;
        match netns_fd {
            None => create(&mut s, "macvlan", name)?,
            Some(netns_fd) => {
                drop(s);
                self.tell_peer(PeerEvent::Created {
                    netns_fd,
                    name: name.to_string(),
                    kind: "macvlan",
                    host_end: None,
                });
            }
        }
        Ok(())
    }

    fn delete_link(&self, name: &str) -> Result<()> {
        let mut s = self.record(LinkOp::DeleteLink { name: name.into() })?;
        if s.links.remove(name).is_some() {
            drop(s);
            self.tell_peer(PeerEvent::Deleted {
                name: name.to_string(),
            });
        }
        Ok(())
    }

    fn set_up(&self, name: &str) -> Result<()> {
        let mut s = self.record(LinkOp::SetUp { name: name.into() })?;
        link(&mut s, name)?.up = true;
        Ok(())
    }

    fn set_master(&self, name: &str, bridge: &str) -> Result<()> {
        let mut s = self.record(LinkOp::SetMaster {
            name: name.into(),
            bridge: bridge.into(),
        })?;
        link(&mut s, bridge)?;
        link(&mut s, name)?.master = Some(bridge.to_string());
        Ok(())
    }

    fn set_nomaster(&self, name: &str) -> Result<()> {
        let mut s = self.record(LinkOp::SetNomaster { name: name.into() })?;
        link(&mut s, name)?.master = None;
        Ok(())
    }

    fn rename(&self, name: &str, new_name: &str) -> Result<()> {
        let mut s = self.record(LinkOp::Rename {
            name: name.into(),
            new_name: new_name.into(),
        })?;
        check_link_name(new_name)?;
        if s.links.contains_key(new_name) {
            return Err(NetError::SetLink {
                action: format!("rename to {new_name}"),
                name: name.to_string(),
                source: errno(libc::EEXIST),
            });
        }
        let l = s.links.remove(name).ok_or_else(|| NetError::LinkNotFound {
            name: name.to_string(),
        })?;
        s.links.insert(new_name.to_string(), l);
        Ok(())
    }

    fn set_mac(&self, name: &str, mac: MacAddr) -> Result<()> {
        let mut s = self.record(LinkOp::SetMac {
            name: name.into(),
            mac,
        })?;
        link(&mut s, name)?.mac = mac;
        Ok(())
    }

    fn link_index(&self, name: &str) -> Result<Option<u32>> {
        let s = self.record(LinkOp::LinkIndex { name: name.into() })?;
        Ok(s.links.get(name).map(|l| l.index))
    }

    fn link_mac(&self, name: &str) -> Result<MacAddr> {
        let mut s = self.record(LinkOp::LinkMac { name: name.into() })?;
        Ok(link(&mut s, name)?.mac)
    }

    fn list_links(&self) -> Result<Vec<LinkInfo>> {
        let s = self.record(LinkOp::ListLinks)?;
        Ok(s.links
            .iter()
            .map(|(name, l)| LinkInfo {
                name: name.clone(),
                index: l.index,
                kind: l.kind.clone(),
                master: l.master.as_ref().and_then(|m| s.links.get(m)).map(|m| m.index),
                up: l.up,
                alias: l.alias.clone(),
            })
            .collect())
    }

    fn add_address(&self, name: &str, addr: IpNet) -> Result<()> {
        let mut s = self.record(LinkOp::AddAddress {
            name: name.into(),
            addr,
        })?;
        let l = link(&mut s, name)?;
        if !l.addrs.contains(&addr) {
            l.addrs.push(addr);
        }
        Ok(())
    }

    fn del_address(&self, name: &str, addr: IpNet) -> Result<()> {
        let mut s = self.record(LinkOp::DelAddress {
            name: name.into(),
            addr,
        })?;
        if let Some(l) = s.links.get_mut(name) {
            l.addrs.retain(|a| *a != addr);
        }
        Ok(())
    }

    fn list_addresses(&self, name: &str) -> Result<Vec<IpNet>> {
        let mut s = self.record(LinkOp::ListAddresses { name: name.into() })?;
        Ok(link(&mut s, name)?.addrs.clone())
    }

    fn add_route(&self, dest: IpNet, dev: &str, gateway: Option<IpAddr>) -> Result<()> {
        let mut s = self.record(LinkOp::AddRoute {
            dest,
            dev: dev.into(),
            gateway,
        })?;
        let index = link(&mut s, dev)?.index;
        add_fake_route(&mut s, dest, Some(index), RouteKind::Unicast, gateway);
        Ok(())
    }

    fn del_route(&self, dest: IpNet, dev: &str) -> Result<()> {
        let mut s = self.record(LinkOp::DelRoute {
            dest,
            dev: dev.into(),
        })?;
        let dest = dest.trunc();
        if let Some(index) = s.links.get(dev).map(|l| l.index) {
            s.routes
                .retain(|(via, r)| !(r.dest == dest && *via == Some(index)));
        }
        Ok(())
    }

    fn add_unreachable_route(&self, dest: IpNet) -> Result<()> {
        let mut s = self.record(LinkOp::AddUnreachableRoute { dest })?;
        add_fake_route(&mut s, dest, None, RouteKind::Unreachable, None);
        Ok(())
    }

    fn del_unreachable_route(&self, dest: IpNet) -> Result<()> {
        let mut s = self.record(LinkOp::DelUnreachableRoute { dest })?;
        let dest = dest.trunc();
        s.routes
            .retain(|(_, r)| !(r.dest == dest && r.kind == RouteKind::Unreachable));
        Ok(())
    }

    fn set_hairpin(&self, name: &str) -> Result<()> {
        let mut s = self.record(LinkOp::SetHairpin { name: name.into() })?;
        link(&mut s, name)?;
        Ok(())
    }

    fn add_local_route(&self, dest: IpNet, dev: &str) -> Result<()> {
        let mut s = self.record(LinkOp::AddLocalRoute {
            dest,
            dev: dev.into(),
        })?;
        // Checked like the kernel would; the local table is not listed.
        link(&mut s, dev)?;
        Ok(())
    }

    fn list_routes(&self) -> Result<Vec<RouteInfo>> {
        let s = self.record(LinkOp::ListRoutes)?;
        let name_of = |index: u32| {
            s.links
                .iter()
                .find(|(_, l)| l.index == index)
                .map(|(name, _)| name)
        };
        Ok(s.routes
            .iter()
            .filter_map(|(via, route)| match via {
                None => Some(route.clone()),
                Some(index) => name_of(*index).map(|name| RouteInfo {
                    dev: Some(name.clone()),
                    ..route.clone()
                }),
            })
            .collect())
    }

    fn set_alias(&self, name: &str, alias: &str) -> Result<()> {
        let mut s = self.record(LinkOp::SetAlias {
            name: name.into(),
            alias: alias.into(),
        })?;
        link(&mut s, name)?.alias = (!alias.is_empty()).then(|| alias.to_string());
        Ok(())
    }
}

/// Adds a route to the model unless the same one is there (the verbs
/// succeed if it exists).
fn add_fake_route(
    state: &mut FakeState,
    dest: IpNet,
    dev_index: Option<u32>,
    kind: RouteKind,
    gateway: Option<IpAddr>,
) {
    let dest = dest.trunc();
    if !state
        .routes
        .iter()
        .any(|(via, r)| r.dest == dest && *via == dev_index)
    {
        let route = RouteInfo {
            dest,
            dev: None,
            kind,
            gateway,
        };
        state.routes.push((dev_index, route));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_calls_in_order() {
        let links = FakeLinks::new();
        links.create_bridge("cell0").unwrap();
        links.create_veth_pair("vh0", "eth0", Some(7)).unwrap();
        links.set_master("vh0", "cell0").unwrap();
        links.set_up("vh0").unwrap();
        assert_eq!(
            links.ops(),
            vec![
                LinkOp::CreateBridge { name: "cell0".into() },
                LinkOp::CreateVethPair {
                    host_end: "vh0".into(),
                    peer_end: "eth0".into(),
                    peer_netns_fd: Some(7)
                },
                LinkOp::SetMaster {
                    name: "vh0".into(),
                    bridge: "cell0".into()
                },
                LinkOp::SetUp { name: "vh0".into() },
            ]
        );
        let all = links.list_links().unwrap();
        let bridge = all.iter().find(|l| l.name == "cell0").unwrap();
        let port = all.iter().find(|l| l.name == "vh0").unwrap();
        assert_eq!(port.master, Some(bridge.index));
        assert!(port.up);
        // The peer went into another namespace, so it is not listed here.
        assert!(all.iter().all(|l| l.name != "eth0"));
    }

    #[test]
    fn models_kernel_answers() {
        let links = FakeLinks::new();
        links.create_bridge("cell0").unwrap();
        let err = links.create_bridge("cell0").unwrap_err();
        assert!(err.is_exists());
        assert!(err.to_string().contains("cell0"));
        links.delete_link("absent").unwrap();
        assert_eq!(links.link_index("absent").unwrap(), None);
        assert!(links.set_up("absent").unwrap_err().is_not_found());
        let err = links.create_bridge("a-name-that-is-too-long").unwrap_err();
        assert!(matches!(err, NetError::InvalidLinkName { .. }));
    }

    #[test]
    fn fails_the_nth_call() {
        let links = FakeLinks::new();
        links.fail_call(2);
        links.create_bridge("cell0").unwrap();
        let err = links.set_up("cell0").unwrap_err();
        assert!(matches!(err, NetError::Injected { call: 2 }));
        links.set_up("cell0").unwrap();
        assert_eq!(links.ops().len(), 3);
    }

    #[test]
    fn models_routes_and_aliases() {
        let links = FakeLinks::new();
        links.create_bridge("cell0").unwrap();
        links.set_alias("cell0", "cell:0123456789ab").unwrap();
        let dest: IpNet = "10.1.0.0/24".parse().unwrap();
        links.add_unreachable_route(dest).unwrap();
        links
            .add_route("10.1.0.2/32".parse().unwrap(), "cell0", None)
            .unwrap();
        links
            .add_route("10.1.0.2/32".parse().unwrap(), "cell0", None)
            .unwrap();
        let routes = links.list_routes().unwrap();
        assert_eq!(
            routes,
            vec![
                RouteInfo {
                    dest,
                    dev: None,
                    kind: RouteKind::Unreachable,
                    gateway: None
                },
                RouteInfo {
                    dest: "10.1.0.2/32".parse().unwrap(),
                    dev: Some("cell0".into()),
                    kind: RouteKind::Unicast,
                    gateway: None
                },
            ]
        );
        let bridge = links
            .list_links()
            .unwrap()
            .into_iter()
            .find(|l| l.name == "cell0")
            .unwrap();
        assert_eq!(bridge.alias.as_deref(), Some("cell:0123456789ab"));
        // Routes via a link go with it; the unreachable one stays.
        links.delete_link("cell0").unwrap();
        assert_eq!(links.list_routes().unwrap().len(), 1);
        links.del_unreachable_route(dest).unwrap();
        assert!(links.list_routes().unwrap().is_empty());
    }
}
