//! The engine's error: a user mistake ([`CoreError`]) or a system failure
//! with the operation that failed and its cause.

use cell_core::error::chain;
use cell_core::{CoreError, ErrorKind};

/// A failed use case.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request was wrong, or clashes with the current state.
    #[error(transparent)]
    User(#[from] CoreError),
    /// The store failed.
    #[error("{context}: {}", chain(source))]
    Store {
        /// What the engine was doing.
        context: String,
        /// The cause.
        #[source]
        source: cell_store::StoreError,
    },
    /// The container runtime failed.
    #[error("{context}: {}", chain(source))]
    Runtime {
        /// What the engine was doing.
        context: String,
        /// The cause.
        #[source]
        source: cell_runtime::RuntimeError,
    },
    /// Network setup failed.
    #[error("{context}: {}", chain(source))]
    Net {
        /// What the engine was doing.
        context: String,
        /// The cause.
        #[source]
        source: cell_net::NetError,
    },
    /// A file or process operation failed.
    #[error("{context}: {}", chain(source))]
    Io {
        /// What the engine was doing.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A step failed, and undoing what was done before it failed too: both
    /// are reported, the step's error first.
    #[error("{error}; undoing it failed too: {}", join(undo))]
    Undo {
        /// The step's error.
        error: Box<EngineError>,
        /// What went wrong while undoing.
        undo: Vec<EngineError>,
    },
    /// Several steps of a teardown failed; it went on past each.
    #[error("{}", join(.0))]
    Several(Vec<EngineError>),
}

fn join(errors: &[EngineError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl EngineError {
    /// The kind that decides the HTTP status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::User(e) => e.kind,
            EngineError::Undo { error, .. } => error.kind(),
            EngineError::Several(errors) if errors.len() == 1 => errors[0].kind(),
            _ => ErrorKind::Internal,
        }
    }

    /// `error`, with what failed while undoing the steps before it.
    pub fn with_undo(error: EngineError, undo: Vec<EngineError>) -> EngineError {
        if undo.is_empty() {
            error
        } else {
            EngineError::Undo {
                error: Box::new(error),
                undo,
            }
        }
    }

    /// A net-layer failure with what the engine was doing.
    pub fn from_net(source: cell_net::NetError, context: impl FnOnce() -> String) -> EngineError {
        EngineError::Net {
            context: context(),
            source,
        }
    }

    /// Ok if `errors` is empty, else all of them as one error.
    pub fn all(mut errors: Vec<EngineError>) -> Result<()> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(EngineError::Several(errors)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undo_failures_are_reported_with_the_original_error() {
        let step: Result<()> = Err(std::io::Error::other("no room")).context(|| "failed to attach".into());
        let undo: Result<()> = Err(std::io::Error::other("busy")).context(|| "failed to detach".into());
        let e = EngineError::with_undo(step.unwrap_err(), vec![undo.unwrap_err()]);
        assert_eq!(
            e.to_string(),
            "failed to attach: no room; undoing it failed too: failed to detach: busy"
        );
        let user = EngineError::with_undo(CoreError::invalid("bad").into(), Vec::new());
        assert_eq!(user.kind(), ErrorKind::Invalid);
        assert!(EngineError::all(Vec::new()).is_ok());
    }

    #[test]
    fn messages_carry_the_kernels_reason() {
        let io = std::io::Error::from_raw_os_error(libc::ERANGE);
        let e: Result<()> = Err(io).context(|| "failed to create bridge all".into());
        let text = e.unwrap_err().to_string();
        assert!(text.starts_with("failed to create bridge all: "), "{text}");
        assert!(text.contains("out of range"), "{text}");
    }
}
