//! The resolver's errors. None reaches a user as a refusal: the engine's
//! calls cannot fail (a container runs without names rather than not at
//! all), so these are logged with what was being done.

use std::path::PathBuf;

/// A failure of the resolver.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// Its tokio runtime could not be started.
    #[error("failed to start the resolver's runtime")]
    Runtime(#[source] std::io::Error),
    /// The sockets at 127.0.0.11:53 could not be opened in a container's
    /// namespace.
    #[error("failed to open the resolver's sockets in {netns}")]
    OpenSockets {
        /// The container's namespace.
        netns: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Its namespace could not be entered.
    #[error("failed to enter {netns} for the resolver")]
    EnterNetns {
        /// The container's namespace.
        netns: PathBuf,
        /// Why.
        #[source]
        source: cell_net::NetError,
    },
}
