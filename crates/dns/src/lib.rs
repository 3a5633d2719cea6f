//! cell-dns: celld's resolver of container names.
//!
//! Every container on a network that uses cell's resolver finds it at
//! `127.0.0.11:53` (UDP and TCP), on sockets celld opens in the
//! container's own network namespace, so the socket a query arrives on
//! says who asks. It answers A and AAAA for the names of containers that
//! share a network with the asker (`NAME` and `NAME.NETWORK`), PTR for
//! their addresses, NXDOMAIN for containers it shares no network with, and
//! forwards everything else to the host's resolvers (from the host's own
//! namespace, so a stub on the host's loopback works).
//!
//! - [`table`]: the [`NameTable`] of running containers, replaced whole on
//!   each change, so queries read it without a lock.
//! - [`answer`]: the answer to one query, a pure function.
//! - [`upstream`]: the host's resolvers, from its `resolv.conf`, and the
//!   forwarding of a query to them.
//! - [`server`]: the [`DnsServer`], the engine's [`cell_engine::Resolver`]:
//!   it opens and closes the sockets in containers' namespaces and runs
//!   their loops on a tokio runtime of its own.
//!
//! ```
//! use cell_dns::answer::{Outcome, answer};
//! use cell_dns::NameTable;
//! use cell_engine::{ContainerNames, NamedEndpoint};
//! use hickory_proto::op::{Message, Query};
//! use hickory_proto::rr::{Name, RecordType};
//!
//! let on_front = |name: &str, address: &str| ContainerNames {
//!     id: format!("id-{name}"),
//!     name: name.into(),
//!     netns: None,
//!     endpoints: vec![NamedEndpoint {
//!         network_id: "n1".into(),
//!         network: "front".into(),
//!         ipv4: Some(address.parse().unwrap()),
//!         ipv6: None,
//!     }],
//! };
//! let table = NameTable::from_containers([on_front("web", "10.1.0.2"), on_front("db", "10.1.0.3")]);
//! let mut query = Message::query();
//! query.add_query(Query::query(Name::from_ascii("db.front.").unwrap(), RecordType::A));
//! let Outcome::Reply(bytes) = answer(&query.to_vec().unwrap(), "id-web", &table) else { panic!() };
//! assert_eq!(Message::from_vec(&bytes).unwrap().answers[0].data.to_string(), "10.1.0.3");
//! ```

pub mod answer;
pub mod error;
pub mod server;
pub mod table;
pub mod upstream;

pub use error::DnsError;
pub use server::DnsServer;
pub use table::NameTable;

/// Where containers find the resolver: an address of their own loopback,
/// as Docker's embedded DNS server uses.
pub const RESOLVER_ADDRESS: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 11);
