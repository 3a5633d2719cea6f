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
}

/// An error and its causes, as one line: `a: b: c`. The API sends only the
/// message, so the kernel's reason (say, "Numerical result out of range")
/// must be in it.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors already print their cause; don't say it twice.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_kernels_reason() {
        let io = std::io::Error::from_raw_os_error(libc::ERANGE);
        let e: Result<()> = Err(io).context(|| "failed to create bridge all".into());
        let text = e.unwrap_err().to_string();
        assert!(text.starts_with("failed to create bridge all: "), "{text}");
        assert!(text.contains("out of range"), "{text}");
    }
}
