//! cell-core: the model of cell, with no I/O.
//!
//! Everything the other layers agree on lives here: identifiers and names
//! ([`ids`]), the model types ([`model`]), the checks that turn user input
//! into values that cannot be wrong ([`port`], [`env`](mod@env), [`params`],
//! [`command`]) within the bounds of [`limits`], the
//! error type that says whether a failure was the user's ([`error`]), and the
//! framing of a process's output as it travels from the per-container
//! supervisor to the client ([`frame`]).
//!
//! Networks have two modules of their own, kept here because both the CLI
//! and the engine need the same answers and neither needs the host to give
//! them: [`netspec`] checks a `network create` request into a typed
//! [`netspec::ValidNetwork`] before anything is stored or created, and
//! [`ipam`] chooses and checks container addresses from the network and the
//! addresses already in use, so allocation is tested without a store.
//! [`pool`] carves the blocks of networks created without `--subnet` from
//! celld's address pools, and [`topology`] is the view `cell network show`
//! prints (text and Graphviz, from the engine's data).
//!
//! ```
//! use cell_core::port::PortSpec;
//! let spec: PortSpec = "8080:80/tcp".parse().unwrap();
//! assert_eq!(spec.container_port, 80);
//! ```
#![deny(missing_docs)]

pub mod command;
pub mod env;
pub mod error;
pub mod frame;
pub mod ids;
pub mod ipam;
pub mod limits;
pub mod model;
pub mod netspec;
pub mod params;
pub mod pool;
pub mod port;
pub mod resolv;
pub mod topology;

pub use error::{CoreError, ErrorKind};
