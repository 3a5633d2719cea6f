//! The error type of the model: user mistakes, kept apart from system failures.
//!
//! Every layer above turns its failures into a [`CoreError`] at the edge, and
//! the API maps [`ErrorKind`] to an HTTP status in one place.

use std::fmt;

/// What sort of failure an error is; decides the HTTP status and exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The named object does not exist (HTTP 404).
    NotFound,
    /// The request clashes with the current state: a taken name, a running
    /// container, an address in use (HTTP 409).
    Conflict,
    /// The request itself is malformed (HTTP 400).
    Invalid,
    /// Something failed in the system, not in the request (HTTP 500).
    Internal,
}

/// An error with a kind and a message meant for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CoreError {
    /// What sort of failure this is.
    pub kind: ErrorKind,
    /// The message, lower case, naming the bad value.
    pub message: String,
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// An error and its causes as one line, outer to inner: `a: b: c`. A cause
/// whose text the outer message already ends with is not said twice. The
/// API sends only the message, so the kernel's reason (say, "Numerical
/// result out of range") must be in it.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `value` in single quotes, as messages name values (`'web-1'`); a value
/// holding control characters (a newline, NUL, an escape) is written as a
/// Rust string literal instead (`"a\nb"`), so the message stays on one line
/// and shows what was really sent.
pub fn quoted(value: &str) -> String {
    if value.chars().any(char::is_control) {
        format!("{value:?}")
    } else {
        format!("'{value}'")
    }
}

/// `value` as it is when it holds no control characters, else as
/// [`quoted`] writes it: for messages that name a value without quotes.
pub fn printable(value: &str) -> String {
    if value.chars().any(char::is_control) {
        format!("{value:?}")
    } else {
        value.to_string()
    }
}

/// `message` with every control character escaped (`\n`, `\u{1b}`): the
/// last line of defence that keeps an error on one line whatever value it
/// quotes.
pub fn one_line(message: &str) -> String {
    if !message.chars().any(char::is_control) {
        return message.to_string();
    }
    message
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl CoreError {
    /// An object of `what` (e.g. "container") named `name` does not exist.
    pub fn not_found(what: &str, name: &str) -> Self {
        Self {
            kind: ErrorKind::NotFound,
            message: format!("no such {what}: {}", printable(name)),
        }
    }

    /// The request conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Conflict,
            message: message.into(),
        }
    }

    /// The request is malformed.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Invalid,
            message: message.into(),
        }
    }

    /// A system failure.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Internal,
            message: message.into(),
        }
    }
}

/// Results of the model layer.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_with_control_characters_are_escaped() {
        assert_eq!(quoted("web-1"), "'web-1'");
        assert_eq!(quoted("a\nb"), r#""a\nb""#);
        assert_eq!(quoted("a\0b"), r#""a\0b""#);
        assert_eq!(printable("web"), "web");
        assert_eq!(printable("a\rb"), r#""a\rb""#);
        assert_eq!(one_line("bad 'a\nb'\t!"), r"bad 'a\nb'\t!");
        assert_eq!(
            CoreError::not_found("container", "x\ny").message,
            r#"no such container: "x\ny""#
        );
    }
}
