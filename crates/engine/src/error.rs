//! The engine's error: a user mistake ([`CoreError`]) or a system failure
//! with the operation that failed and its cause.

use cell_core::{CoreError, ErrorKind};

/// A failed use case.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request was wrong, or clashes with the current state.
    #[error(transparent)]
    User(#[from] CoreError),
    /// The store failed.
    #[error("{context}: {source}")]
    Store {
        /// What the engine was doing.
        context: String,
        /// The cause.
        #[source]
        source: cell_store::StoreError,
    },
    /// The container runtime failed.
    #[error("{context}: {source}")]
    Runtime {
        /// What the engine was doing.
        context: String,
        /// The cause.
        #[source]
        source: cell_runtime::RuntimeError,
    },
    /// Network setup failed.
    #[error("{context}: {source}")]
    Net {
        /// What the engine was doing.
        context: String,
        /// The cause.
        #[source]
        source: cell_net::NetError,
    },
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the engine was doing.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    /// The kind that decides the HTTP status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::User(e) => e.kind,
            _ => ErrorKind::Internal,
        }
    }
}

/// Adds "what I was doing" to lower layers' errors.
pub trait Context<T> {
    /// Wraps the error with `context`.
    fn context(self, context: impl FnOnce() -> String) -> Result<T, EngineError>;
}

macro_rules! impl_context {
    ($error:ty, $variant:ident) => {
        impl<T> Context<T> for Result<T, $error> {
            fn context(self, context: impl FnOnce() -> String) -> Result<T, EngineError> {
                self.map_err(|source| EngineError::$variant {
                    context: context(),
                    source,
                })
            }
        }
    };
}

impl_context!(cell_store::StoreError, Store);
impl_context!(cell_runtime::RuntimeError, Runtime);
impl_context!(cell_net::NetError, Net);
impl_context!(std::io::Error, Io);

/// Results of the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
