//! The network layer of cell: network namespaces, links, addresses and
//! routes over rtnetlink, cell's own nftables tables, and the drivers that
//! turn the model (`cell_core::model`) into kernel objects. It is a library
//! with two users, `celld` and a CNI plugin, and needs neither.
//!
//! - [`netns`]: named network namespaces ([`create_netns`], [`delete_netns`],
//!   [`in_netns`]); [`ContainerNet`] opens a container's kernel from a netns
//!   path once (links, sysctls, the namespace fd).
//! - [`Links`]: the rtnetlink verbs, with the real [`NetlinkLinks`] and the
//!   recording [`FakeLinks`]; [`Firewall`] ("apply this nftables batch"),
//!   with [`Nft`] and [`FakeFirewall`]; [`Sysctl`], with [`ProcSysctl`] and
//!   [`FakeSysctl`]. Every fake can fail its `n`th call.
//! - [`ruleset`]: pure functions computing the JSON of cell's tables
//!   (`inet cell`, `bridge cell`: [`ruleset::base_ruleset`]) and of the set
//!   elements each network and endpoint needs.
//! - [`driver`]: one [`NetworkTypeDriver`] per network type (loopback,
//!   bridge, custom), which validates a network and *plans* its setup and
//!   teardown and an endpoint's attach and detach; [`mod@container_driver`]:
//!   one [`ContainerDriver`] per way a container is networked (`host`,
//!   `disabled`, `ipnet`, `vnet`).
//! - [`ports`]: published ports as DNAT map elements ([`PortForward`]),
//!   added with an endpoint's other elements or alone.
//! - [`plan`]: a [`Plan`] is data (steps tagged host or container);
//!   [`plan::apply`] carries it out and undoes it on failure,
//!   [`plan::apply_teardown`] keeps going and reports every failure.
//!
//! Plans are computed without any kernel, so they are tested as data and
//! applied to the fakes:
//!
//! ```
//! use cell_core::model::{Endpoint, Network, NetworkDriver, NetworkType};
//! use cell_net::{ContainerKernel, FakeFirewall, FakeLinks, FakeSysctl, HostKernel, Links, Op, Place};
//! use cell_net::{container_driver, network_driver, plan};
//!
//! let net = Network {
//!     id: "0123456789ab".into(), name: "web".into(), net_type: NetworkType::Bridge,
//!     interface: "cell0".into(), subnet: Some("10.1.0.0/24".parse().unwrap()), subnet6: None,
//!     gateway: Some("10.1.0.1".parse().unwrap()), gateway6: None, nat: None,
//!     icc: true, internal: false, antispoof: false,
//! };
//! let ep = Endpoint {
//!     id: "aabbccddeeff".into(), network_id: net.id.clone(), container_id: "bbbbbbbbbbbb".into(),
//!     epair: None, ip_address: Some("10.1.0.2".parse().unwrap()), ip_address6: None, mac: None,
//! };
//! let vnet = container_driver(NetworkDriver::Vnet);
//! let attach = network_driver(NetworkType::Bridge).plan_attach(&net, &ep, vnet).unwrap();
//! assert!(attach.ops_at(Place::Container).contains(&&Op::AddAddress {
//!     name: "cell0".into(),
//!     addr: "10.1.0.2/24".parse().unwrap(),
//! }));
//!
//! let (links, firewall, sysctl) = (FakeLinks::new(), FakeFirewall::new(), FakeSysctl::default());
//! let (inside, inside_sysctl) = (FakeLinks::new(), FakeSysctl::default());
//! links.insert("cell0", Some("bridge"));
//! inside.insert("cell0", Some("veth")); // the kernel would put the peer there
//! let host = HostKernel { links: &links, firewall: &firewall, sysctl: &sysctl };
//! let container = ContainerKernel { links: &inside, sysctl: &inside_sysctl, netns_fd: 3 };
//! plan::apply(&attach, host, Some(container)).unwrap();
//! assert_eq!(links.list_links().unwrap().iter().filter(|l| l.name == "cvaabbccddeeff").count(), 1);
//! ```
//!
//! With the real kernel, a CNI plugin or `celld` would use
//! `NetlinkLinks::new()`, `Nft::new()`, `ProcSysctl` on the host and
//! `ContainerNet::open(netns_path)?.kernel()` for the container.

#![deny(missing_docs)]

pub mod container_driver;
pub mod container_net;
pub mod driver;
pub mod error;
pub mod kernel;
pub mod links;
pub mod mac;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod plan;
pub mod ports;
pub mod ruleset;
pub mod sysctl;
#[cfg(test)]
mod test_fixtures;

pub use container_driver::{Addressing, ContainerDriver, container_driver};
pub use container_net::ContainerNet;
pub use driver::{ContainerKernel, HostFacts, HostKernel, NetworkTypeDriver, network_driver};
pub use error::{NetError, NetlinkError, Result};
pub use kernel::{ContainerNetns, FakeNetKernel, FakeSeam, LinuxNetKernel, NetKernel};
pub use links::{FakeLinks, LinkInfo, LinkOp, Links, PeerEvent};
pub use mac::MacAddr;
pub use netlink::NetlinkLinks;
pub use netns::{create_netns, delete_netns, in_netns};
pub use nft::{FakeFirewall, Firewall, Nft};
pub use plan::{Op, Place, Plan, Step};
pub use ports::PortForward;
pub use sysctl::{FakeSysctl, NetnsSysctl, ProcSysctl, Sysctl};

pub use error::NetErrors;
pub use links::{RouteInfo, RouteKind};
