//! [`CniError`]: every failure of the plugin, with the code of the CNI
//! spec (SPEC.md, "Error") it reaches the runtime with, and its JSON.
//!
//! Codes 1 to 11, 50 and 51 are the spec's; 100 and up are cell's own
//! ([`Code`]). The message (`msg`) is short and names the bad value; the
//! `details` carry the whole cause chain, or every failure of an
//! operation that kept going (DEL, GC, CHECK).

use cell_core::error::chain;
use serde_json::{Value, json};

/// The error codes of the CNI spec, and cell's own from 100 on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Code {
    /// The configuration asks for a CNI version the plugin does not speak.
    IncompatibleVersion = 1,
    /// A field of the configuration is known but not supported (`ipam`).
    UnsupportedField = 2,
    /// The container (its network namespace) does not exist.
    UnknownContainer = 3,
    /// A `CNI_*` environment variable is missing or invalid.
    InvalidEnvironment = 4,
    /// Reading the configuration or the plugin's state failed.
    Io = 5,
    /// The configuration is not the JSON the plugin expects.
    Decode = 6,
    /// The configuration is well formed but invalid (a malformed subnet,
    /// an unknown network type).
    InvalidConfig = 7,
    /// A transient condition; the runtime may retry.
    TryAgainLater = 11,
    /// STATUS: the plugin cannot serve ADD now.
    NotAvailable = 50,
    /// A kernel operation (netlink, nftables, sysctl) failed.
    Kernel = 100,
    /// No free address is left in the network's subnet.
    AddressesExhausted = 101,
    /// ADD found the interface (or its host end) already there.
    InterfaceExists = 102,
    /// CHECK found the attachment not as the previous result says.
    CheckFailed = 103,
    /// DEL or GC could not remove everything; `details` lists each failure.
    CleanupFailed = 104,
    /// A host port of `portMappings` is forwarded to another attachment.
    PortInUse = 105,
    /// The address asked for in `CNI_ARGS` (`IP=`) is another's.
    AddressInUse = 106,
}

/// A failure as the runtime sees it: a code, a short message and details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct CniError {
    /// The CNI error code.
    pub code: Code,
    /// What failed, naming the bad value.
    pub msg: String,
    /// The causes, or every failure of an operation that kept going.
    pub details: String,
}

/// The plugin's results.
pub type Result<T> = std::result::Result<T, CniError>;

impl CniError {
    /// An error with no details beyond its message.
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// An error whose details are `cause` and its chain, unless the
    /// message already says them: runtimes show `msg; details` (libcni),
    /// which should not say a thing twice.
    pub fn caused(code: Code, msg: impl Into<String>, cause: &dyn std::error::Error) -> Self {
        let msg = msg.into();
        let causes = chain(cause);
        Self {
            code,
            details: if msg.contains(&causes) {
                String::new()
            } else {
                causes
            },
            msg,
        }
    }

    /// A kernel failure while doing `what`; the message names the causes.
    pub fn kernel(what: impl Into<String>, cause: &dyn std::error::Error) -> Self {
        Self {
            code: Code::Kernel,
            msg: format!("{}: {}", what.into(), chain(cause)),
            details: String::new(),
        }
    }

    /// The error JSON of the spec, for a runtime speaking `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> Value {
        let mut body = json!({
            "cniVersion": cni_version,
            "code": self.code as u32,
            "msg": self.msg,
        });
        if !self.details.is_empty() {
            body["details"] = json!(self.details);
        }
        body
    }
}

/// Failures of an operation that keeps going (DEL, GC, CHECK): each is
/// remembered, and all are reported at the end in one error.
#[derive(Debug, Default)]
pub struct Failures(Vec<String>);

impl Failures {
    /// Remembers one failure.
    pub fn push(&mut self, failure: impl Into<String>) {
        self.0.push(failure.into());
    }

    /// Whether nothing failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` if nothing failed; otherwise one error with `code`, whose
    /// message names the first failure and how many there were, and whose
    /// details list them all.
    pub fn into_result(self, code: Code, what: &str) -> Result<()> {
        match self.0.as_slice() {
            [] => Ok(()),
            [only] => Err(CniError {
                code,
                msg: format!("{what}: {only}"),
                details: only.clone(),
            }),
            [first, rest @ ..] => Err(CniError {
                code,
                msg: format!("{what}: {first} (and {} more)", rest.len()),
                details: self.0.join("; "),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_the_specs_keys() {
        let err = CniError::new(Code::InvalidConfig, "malformed subnet '10.0.0.0/33'");
        assert_eq!(
            err.to_json("1.1.0"),
            json!({"cniVersion": "1.1.0", "code": 7, "msg": "malformed subnet '10.0.0.0/33'"})
        );
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        let err = CniError::caused(Code::Io, "failed to read the configuration", &io);
        let body = err.to_json("0.4.0");
        assert_eq!(body["code"], 5);
        assert_eq!(body["cniVersion"], "0.4.0");
        assert!(
            body["details"].as_str().unwrap().contains("No such file"),
            "{body}"
        );
    }

    #[test]
    fn codes_are_the_specs_numbers() {
        let pairs = [
            (Code::IncompatibleVersion, 1),
            (Code::UnsupportedField, 2),
            (Code::UnknownContainer, 3),
            (Code::InvalidEnvironment, 4),
            (Code::Io, 5),
            (Code::Decode, 6),
            (Code::InvalidConfig, 7),
            (Code::TryAgainLater, 11),
            (Code::NotAvailable, 50),
            (Code::Kernel, 100),
        ];
        for (code, number) in pairs {
            assert_eq!(code as u32, number, "{code:?}");
        }
    }

    #[test]
    fn failures_report_every_one() {
        assert!(Failures::default().into_result(Code::CleanupFailed, "gc").is_ok());
        let mut failures = Failures::default();
        failures.push("failed to delete link cv1");
        failures.push("failed to delete link cv2");
        let err = failures.into_result(Code::CleanupFailed, "gc").unwrap_err();
        assert_eq!(err.msg, "gc: failed to delete link cv1 (and 1 more)");
        assert_eq!(
            err.details,
            "failed to delete link cv1; failed to delete link cv2"
        );
    }
}
