//! The seccomp filter that gives a host-driver container a single-family
//! network stack (pot's `-S ipv4|ipv6` on the host's stack).
//!
//! A container on the host's network namespace sees every address the host
//! has, so its stack cannot be narrowed by leaving addresses out as on a
//! network; instead `socket(2)` of the other family fails with
//! `EAFNOSUPPORT`, what a kernel built without that family answers, so
//! programs fall back as they would there.
//!
//! The filter is compiled by the `seccompiler` crate (Firecracker's): pure
//! Rust, no C library to install or link, and it builds exactly this kind
//! of argument-matching rule. libseccomp would add a system library
//! dependency for one rule. The program is installed through
//! [`crate::syscall::Syscalls::install_seccomp_filter`], before the
//! capabilities are narrowed (see [`crate::shim`]'s init), so it needs no
//! `no_new_privs` (seccompiler's own `apply_filter` would set it).
//!
//! Limits, as with any seccomp filter on `socket(2)`: an `AF_INET6` socket
//! of a container of stack `ipv6` may still reach IPv4 peers through
//! IPv4-mapped addresses (`::ffff:a.b.c.d`), as seccomp cannot read the
//! address a `connect(2)` is given; a 32-bit (i386) program is killed at its
//! first system call, as the filter allows only the native architecture;
//! and sockets made through io_uring are not filtered.

use serde::{Deserialize, Serialize};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

use crate::error::{Result, RuntimeError};

/// An address family whose sockets a process may be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketFamily {
    /// `AF_INET`: refused to a host container of stack `ipv6`.
    Inet,
    /// `AF_INET6`: refused to a host container of stack `ipv4`.
    Inet6,
}

impl SocketFamily {
    fn domain(self) -> libc::c_int {
        match self {
            Self::Inet => libc::AF_INET,
            Self::Inet6 => libc::AF_INET6,
        }
    }
}

/// A filter under which `socket(refused, ...)` fails with `EAFNOSUPPORT`
/// and every other system call is allowed.
pub fn refuse_socket_family(refused: SocketFamily) -> Result<BpfProgram> {
    let fail = |e: seccompiler::BackendError| RuntimeError::Seccomp {
        op: format!("build the filter refusing {refused:?} sockets"),
        reason: e.to_string(),
    };
    let domain_is_refused = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        refused.domain() as u64,
    )
    .map_err(fail)?;
    let rules = [(
        libc::SYS_socket,
        vec![SeccompRule::new(vec![domain_is_refused]).map_err(fail)?],
    )]
    .into_iter()
    .collect();
    let arch = std::env::consts::ARCH.try_into().map_err(fail)?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EAFNOSUPPORT as u32),
        arch,
    )
    .map_err(fail)?;
    filter.try_into().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_compiles_to_a_filter_naming_it() {
        let inet = refuse_socket_family(SocketFamily::Inet).unwrap();
        let inet6 = refuse_socket_family(SocketFamily::Inet6).unwrap();
        assert!(!inet.is_empty());
        // The programs differ only in the family compared against.
        assert_eq!(inet.len(), inet6.len());
        let constants = |p: &BpfProgram| p.iter().map(|i| i.k).collect::<Vec<_>>();
        assert!(constants(&inet).contains(&(libc::AF_INET as u32)));
        assert!(constants(&inet6).contains(&(libc::AF_INET6 as u32)));
        assert!(constants(&inet6).contains(&(libc::SYS_socket as u32)));
    }

    #[test]
    fn the_family_is_lowercase_in_json() {
        assert_eq!(serde_json::to_string(&SocketFamily::Inet6).unwrap(), "\"inet6\"");
    }
}
