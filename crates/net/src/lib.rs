//! The kernel layer of cell's networking: network namespaces, links,
//! addresses and routes over rtnetlink, and cell's own nftables tables.
//!
//! - [`netns`]: named network namespaces ([`create_netns`], [`delete_netns`],
//!   [`in_netns`]).
//! - [`Links`]: the rtnetlink verbs, with the real [`NetlinkLinks`] and the
//!   recording [`FakeLinks`].
//! - [`Firewall`]: "apply this nftables batch", with the real [`Nft`] (an
//!   in-process libnftables context) and the recording [`FakeFirewall`].
//! - [`ruleset`]: pure functions computing the JSON of cell's tables
//!   (`inet cell`, `bridge cell`) and of the set elements each network and
//!   endpoint needs.
//!
//! Drivers compute a plan from the model (`cell_core::model`) with
//! [`ruleset`] and apply it through the two traits, so plans are tested
//! with the fakes and without root:
//!
//! ```
//! use cell_net::{FakeLinks, LinkOp, Links};
//!
//! let links = FakeLinks::new();
//! links.create_bridge("cell0").unwrap();
//! links.set_up("cell0").unwrap();
//! assert_eq!(links.ops()[0], LinkOp::CreateBridge { name: "cell0".into() });
//! ```

#![deny(missing_docs)]

pub mod container_driver;
pub mod container_net;
pub mod driver;
pub mod error;
pub mod links;
pub mod mac;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod plan;
pub mod ruleset;
pub mod sysctl;
#[cfg(test)]
mod test_fixtures;

pub use container_driver::{Addressing, ContainerDriver, container_driver};
pub use container_net::ContainerNet;
pub use driver::{ContainerKernel, HostFacts, HostKernel, NetworkTypeDriver, network_driver};
pub use error::{NetError, NetErrors, NetlinkError, Result};
pub use links::{FakeLinks, LinkInfo, LinkOp, Links, RouteInfo, RouteKind};
pub use mac::MacAddr;
pub use netlink::NetlinkLinks;
pub use netns::{create_netns, delete_netns, in_netns};
pub use nft::{FakeFirewall, Firewall, Nft};
pub use plan::{Op, Place, Plan, Step};
pub use sysctl::{FakeSysctl, NetnsSysctl, ProcSysctl, Sysctl};
