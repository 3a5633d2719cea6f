//! Root test of the stack filter against the real kernel: installed through
//! [`LinuxSyscalls`] without `no_new_privs` (as the init does, holding
//! `CAP_SYS_ADMIN`), `socket(2)` of the refused family fails with
//! `EAFNOSUPPORT` and the other family's works.
//!
//! A filter cannot be removed once installed, so the outer test re-executes
//! this binary once per family, running only [`child`] there (in a network
//! namespace of its own, though it sends nothing).

use cell_runtime::seccomp::{SocketFamily, refuse_socket_family};
use cell_runtime::{LinuxSyscalls, Syscalls};
use std::process::Command;

/// Set, to the refused family, in the environment of the re-executed binary.
const CHILD_ENV: &str = "CELL_SECCOMP_CHILD";

/// Makes a socket of `domain`; the errno it failed with, if it did.
fn socket_errno(domain: libc::c_int) -> Option<i32> {
    // SAFETY: socket has no memory preconditions; the descriptor is closed.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM, 0) };
    if fd < 0 {
        return Some(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: fd is ours and open.
    unsafe { libc::close(fd) };
    None
}

#[test]
fn child() {
    let Ok(family) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (refused, allowed, refused_domain, allowed_domain) = match family.as_str() {
        "inet" => (SocketFamily::Inet, "inet6", libc::AF_INET, libc::AF_INET6),
        _ => (SocketFamily::Inet6, "inet", libc::AF_INET6, libc::AF_INET),
    };
    // Both work before the filter: the positive control.
    assert_eq!(socket_errno(refused_domain), None);
    assert_eq!(socket_errno(allowed_domain), None);
    let program = refuse_socket_family(refused).unwrap();
    LinuxSyscalls.install_seccomp_filter(&program).unwrap();
    assert_eq!(socket_errno(refused_domain), Some(libc::EAFNOSUPPORT), "{family}");
    assert_eq!(socket_errno(allowed_domain), None, "{allowed}");
    // no_new_privs was left alone.
    // SAFETY: PR_GET_NO_NEW_PRIVS only reads a flag of this thread.
    assert_eq!(unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) }, 0);
    println!("filter of {family} checked");
}

#[test]
fn each_family_is_refused_alone() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: installing a filter without no_new_privs needs root");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for family in ["inet", "inet6"] {
        let out = Command::new("unshare")
            .arg("--net")
            .arg(&exe)
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, family)
            .output()
            .expect("unshare runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(&format!("filter of {family} checked")),
            "{family}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
