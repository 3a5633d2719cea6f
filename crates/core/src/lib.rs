//! cell-core: the model of cell, with no I/O.
//!
//! Everything the other layers agree on lives here: identifiers and names
//! ([`ids`]), the model types ([`model`]), the checks that turn user input
//! into values that cannot be wrong ([`port`], [`env`], [`params`]), the
//! error type that says whether a failure was the user's ([`error`]), and the
//! framing of a process's output as it travels from the per-container
//! supervisor to the client ([`frame`]).
//!
//! ```
//! use cell_core::port::PortSpec;
//! let spec: PortSpec = "8080:80/tcp".parse().unwrap();
//! assert_eq!(spec.container_port, 80);
//! ```
#![deny(missing_docs)]

pub mod env;
pub mod error;
pub mod frame;
pub mod ids;
pub mod model;
pub mod params;
pub mod port;

pub use error::{CoreError, ErrorKind};
