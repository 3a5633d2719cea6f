//! The error type of the crate: one enum, [`NetError`], whose variants are
//! named after the kernel operation that failed and carry the object it was
//! done to (link name, netns path, nftables table), with the cause chained
//! through `#[source]`.
//!
//! Callers that treat "already there" or "already gone" as success ask
//! [`NetError::is_exists`] and [`NetError::is_not_found`] instead of matching
//! on errno values themselves.
//!
//! Two variants carry more than one failure: [`NetError::Undo`] (a change
//! failed and undoing it failed as well: both are reported, as youki's
//! `CreateContainerError` does) and [`NetError::Several`], wrapping a
//! [`NetErrors`] list (a teardown that kept going past its failures, as
//! netavark's `NetavarkErrorList`).

use cell_core::error::chain;
use std::io;
use std::path::PathBuf;

/// What the rtnetlink layer reports when one request fails.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel answered with `NLMSG_ERROR` and this errno.
    #[error("{}", io::Error::from_raw_os_error(*errno))]
    Kernel {
        /// The positive errno value (`libc::EEXIST`, `libc::ENODEV`, ...).
        errno: i32,
    },
    /// Sending to or receiving from the netlink socket failed.
    #[error("netlink socket i/o failed")]
    Io(#[source] io::Error),
    /// The kernel's answer could not be parsed.
    #[error("could not decode netlink answer: {0}")]
    Decode(String),
}

impl NetlinkError {
    /// The errno the kernel answered with, if it answered with one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel { errno } => Some(*errno),
            _ => None,
        }
    }
}

/// Every failure of the `net` crate.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A link name is empty or longer than 15 bytes (`IFNAMSIZ - 1`).
    #[error("invalid link name '{name}': must be 1 to 15 bytes without '/' or whitespace")]
    InvalidLinkName {
        /// The rejected name.
        name: String,
    },
    /// A link that a verb needs does not exist.
    #[error("link {name} not found")]
    LinkNotFound {
        /// The missing link.
        name: String,
    },
    /// Creating a named network namespace failed.
    #[error("failed to create netns {}", path.display())]
    CreateNetns {
        /// Where the namespace was to be bind-mounted.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Deleting a named network namespace failed.
    #[error("failed to delete netns {}", path.display())]
    DeleteNetns {
        /// The namespace's bind mount.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Entering a named network namespace failed.
    #[error("failed to enter netns {}", path.display())]
    EnterNetns {
        /// The namespace's bind mount.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Opening the rtnetlink socket failed.
    #[error("failed to open netlink socket")]
    OpenNetlink {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Creating a link (veth pair, bridge, macvlan) failed.
    #[error("failed to create {kind} {name}")]
    CreateLink {
        /// The link type (`veth`, `bridge`, `macvlan`).
        kind: &'static str,
        /// The link that was to be created.
        name: String,
        /// The cause.
        #[source]
        source: NetlinkError,
    },
    /// Deleting a link failed.
    #[error("failed to delete link {name}")]
    DeleteLink {
        /// The link.
        name: String,
        /// The cause.
        #[source]
        source: NetlinkError,
    },
    /// Changing a link (up, master, name, MAC) failed.
    #[error("failed to {action} on link {name}")]
    SetLink {
        /// What was being changed, e.g. `set master cell0`.
        action: String,
        /// The link.
        name: String,
        /// The cause.
        #[source]
        source: NetlinkError,
    },
    /// Looking up links failed.
    #[error("failed to get link {name}")]
    GetLink {
        /// The link (or `*` for a dump of all links).
        name: String,
        /// The cause.
        #[source]
        source: NetlinkError,
    },
    /// Adding an address failed.
    #[error("failed to add address {addr} to {name}")]
    AddAddress {
        /// The link.
        name: String,
        /// The address with its prefix length.
        addr: ipnet::IpNet,
        /// The cause.
        #[source]
        source: NetlinkError,
    },
    /// Deleting an address failed.
    #[error("failed to delete address {addr} from {name}")]
    DelAddress {
        /// The link.
        name: String,
        /// The address with its prefix length.
        addr: ipnet::IpNet,
        /// The cause.
        #[source]
        source: NetlinkError,
    },
    /// Listing addresses failed.
    #[error("failed to list addresses of {name}")]
    ListAddresses {
        /// The link.
        name: String,
        /// The cause.
        #[source]
        source: NetlinkError,
    },
    /// Adding a route failed.
    #[error("failed to add route to {dest} via {dev}")]
    AddRoute {
        /// The destination.
        dest: ipnet::IpNet,
        /// The output link.
        dev: String,
        /// The cause.
        #[source]
        source: NetlinkError,
    },
    /// Deleting a route failed.
    #[error("failed to delete route to {dest} via {dev}")]
    DelRoute {
        /// The destination.
        dest: ipnet::IpNet,
        /// The output link.
        dev: String,
        /// The cause.
        #[source]
        source: NetlinkError,
    },
    /// `nft_ctx_new` returned nothing.
    #[error("failed to create nftables context")]
    NftContext,
    /// An nftables batch was rejected; nothing of it was applied.
    #[error("failed to apply nftables batch to {tables}: {message}")]
    NftApply {
        /// The tables the batch touches, e.g. `inet cell, bridge cell`.
        tables: String,
        /// nft's own error text.
        message: String,
    },
    /// Listing an nftables table failed.
    #[error("failed to list nftables table {family} {name}: {message}")]
    NftList {
        /// The family (`inet`, `bridge`, ...).
        family: String,
        /// The table name.
        name: String,
        /// nft's own error text.
        message: String,
    },
    /// A firewall element needs a MAC address that is not known.
    #[error("endpoint {endpoint} on network {network} needs a MAC address for anti-spoofing")]
    MissingMac {
        /// The endpoint id.
        endpoint: String,
        /// The network name.
        network: String,
    },
    /// A MAC address could not be parsed.
    #[error("invalid MAC address '{text}'")]
    InvalidMac {
        /// The rejected text.
        text: String,
    },
    /// Writing a sysctl under `/proc/sys` failed.
    #[error("failed to set sysctl {key} to {value}")]
    Sysctl {
        /// The key as a path under `/proc/sys`, e.g. `net/ipv4/ip_forward`.
        key: String,
        /// The value that was written.
        value: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Listing routes failed.
    #[error("failed to list routes")]
    ListRoutes {
        /// The cause.
        #[source]
        source: NetlinkError,
    },
    /// A plan has steps inside a container's namespace, and it was applied
    /// without one.
    #[error("the plan has steps inside a container, and no container namespace was given")]
    NoContainer,
    /// The container's network driver does not allow what was asked (join
    /// this network, publish ports). A user mistake, hence a core error.
    #[error(transparent)]
    Refused(#[from] cell_core::CoreError),
    /// A published port cannot be put in the kernel as given.
    #[error("invalid port forward {forward}: {reason}")]
    InvalidPortForward {
        /// The forward, as [`crate::ports::PortForward`] displays it.
        forward: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A network's description does not fit its type.
    #[error("invalid network {network}: {reason}")]
    InvalidNetwork {
        /// The network's name.
        network: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A change failed, and undoing the steps it had done failed too. The
    /// message holds both; [`NetError::errno`] and the `is_*` questions
    /// answer for the original failure.
    #[error("{}; undoing it failed too: {undo}", chain(error))]
    Undo {
        /// The failure that started the undo.
        error: Box<NetError>,
        /// Every failure of the undo.
        undo: NetErrors,
    },
    /// Several independent failures, e.g. of a teardown that kept going.
    #[error("{0}")]
    Several(NetErrors),
    /// An injected failure of a fake (`FakeLinks`, `FakeFirewall`).
    #[error("injected failure of call {call}")]
    Injected {
        /// The 1-based number of the call that was told to fail.
        call: usize,
    },
}

impl NetError {
    /// The kernel errno behind this error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::CreateLink { source, .. }
            | Self::DeleteLink { source, .. }
            | Self::SetLink { source, .. }
            | Self::GetLink { source, .. }
            | Self::AddAddress { source, .. }
            | Self::DelAddress { source, .. }
            | Self::ListAddresses { source, .. }
            | Self::AddRoute { source, .. }
            | Self::DelRoute { source, .. } => source.errno(),
            Self::CreateNetns { source, .. }
            | Self::DeleteNetns { source, .. }
            | Self::EnterNetns { source, .. }
            | Self::OpenNetlink { source } => source.raw_os_error(),
            Self::ListRoutes { source } => source.errno(),
            Self::Undo { error, .. } => error.errno(),
            _ => None,
        }
    }

    /// Whether the object already existed (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// Whether the object was not there (`ENOENT`, `ENODEV`, `ESRCH`,
    /// `EADDRNOTAVAIL`, or a failed name lookup): teardown treats this as
    /// done.
    pub fn is_not_found(&self) -> bool {
        if let Self::Undo { error, .. } = self {
            return error.is_not_found();
        }
        matches!(self, Self::LinkNotFound { .. })
            || matches!(
                self.errno(),
                Some(libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::EADDRNOTAVAIL)
            )
    }
}

/// Failures collected by an operation that keeps going past them (a
/// teardown), in the order they happened. Nested lists are flattened.
#[derive(Debug, Default)]
pub struct NetErrors(pub Vec<NetError>);

impl NetErrors {
    /// Adds `error`, flattening it if it is itself a list.
    pub fn push(&mut self, error: NetError) {
        match error {
            NetError::Several(list) => self.0.extend(list.0),
            other => self.0.push(other),
        }
    }

    /// Whether nothing failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` if nothing failed; the single error if one did; else the list
    /// as [`NetError::Several`].
    pub fn into_result(mut self) -> Result<()> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(self.0.remove(0)),
            _ => Err(NetError::Several(self)),
        }
    }
}

impl std::fmt::Display for NetErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.len() > 1 {
            write!(f, "{} errors: ", self.0.len())?;
        }
        for (i, e) in self.0.iter().enumerate() {
            write!(f, "{}{}", if i == 0 { "" } else { "; " }, chain(e))?;
        }
        Ok(())
    }
}

impl std::error::Error for NetErrors {}

/// The result type of the crate.
pub type Result<T, E = NetError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_flatten_and_read_as_one_line() {
        let mut inner = NetErrors::default();
        inner.push(NetError::LinkNotFound { name: "a".into() });
        inner.push(NetError::DeleteLink {
            name: "b".into(),
            source: NetlinkError::Kernel { errno: libc::EBUSY },
        });
        let mut outer = NetErrors::default();
        outer.push(NetError::Several(inner));
        outer.push(NetError::Injected { call: 3 });
        assert_eq!(outer.0.len(), 3);
        assert_eq!(
            outer.to_string(),
            "3 errors: link a not found; failed to delete link b: Device or resource busy (os error 16); \
             injected failure of call 3"
        );
        assert!(NetErrors::default().into_result().is_ok());
        let mut one = NetErrors::default();
        one.push(NetError::Injected { call: 1 });
        assert!(matches!(one.into_result(), Err(NetError::Injected { call: 1 })));
    }

    #[test]
    fn an_undo_report_answers_for_the_original_error() {
        let err = NetError::Undo {
            error: Box::new(NetError::LinkNotFound { name: "x".into() }),
            undo: NetErrors(vec![NetError::Injected { call: 2 }]),
        };
        assert!(err.is_not_found());
        assert_eq!(
            err.to_string(),
            "link x not found; undoing it failed too: injected failure of call 2"
        );
    }
}
