//! Named network namespaces, made the way `ip netns add` makes them: a
//! namespace is kept alive by a bind mount of its nsfs file on a path, so it
//! outlives every process in it and is addressed by that path.
//!
//! The calling thread's own namespace is never changed: creation and entry
//! happen on short-lived threads, because the network namespace is a
//! per-thread attribute on Linux (`unshare(2)`, `setns(2)`), while the mount
//! namespace would not be.

use crate::Links;
use crate::error::{NetError, Result};
use crate::netlink::NetlinkLinks;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Creates a new network namespace bind-mounted on `path`, with `lo` up.
///
/// `path` must not exist yet; its parent directory must. On error nothing is
/// left behind (the file is removed again).
pub fn create_netns(path: &Path) -> Result<()> {
    let err = |source| NetError::CreateNetns {
        path: path.to_path_buf(),
        source,
    };
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(err)?;
    let target = c_path(path).map_err(err)?;
    let made = std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<()> {
                // SAFETY: unshare only changes this thread's own namespace
                // membership; the thread ends right after, so no other code
                // runs in the new namespace by accident.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(err(io::Error::last_os_error()));
                }
                let source = c"/proc/thread-self/ns/net";
                // SAFETY: both paths are valid NUL-terminated strings that
                // outlive the call; a bind mount takes no data argument.
                let rc = unsafe {
                    libc::mount(
                        source.as_ptr(),
                        target.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    )
                };
                if rc != 0 {
                    return Err(err(io::Error::last_os_error()));
                }
                // A fresh namespace has `lo` down; nearly everything (the
                // gateway's own checks, tests on 127.0.0.1) needs it up.
                NetlinkLinks::new()?.set_up("lo")
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    if made.is_err() {
        let _ = delete_netns(path);
    }
    made
}

/// Unmounts and removes a named network namespace.
///
/// Succeeds if it is already gone. The namespace itself lives on while any
/// process or open file still refers to it.
pub fn delete_netns(path: &Path) -> Result<()> {
    let err = |source| NetError::DeleteNetns {
        path: path.to_path_buf(),
        source,
    };
    let target = c_path(path).map_err(err)?;
    // SAFETY: `target` is a valid NUL-terminated path for the whole call.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = io::Error::last_os_error();
        // EINVAL: not a mount point (half-made or already unmounted);
        // ENOENT: already removed. Both leave only the file to clean up.
        if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) {
            return Err(err(e));
        }
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(err(e)),
        _ => Ok(()),
    }
}

/// Runs `f` on a thread that has entered the namespace at `path`, and
/// returns its result. Sockets that `f` opens belong to that namespace and
/// stay there after `f` returns.
///
/// A panic in `f` is propagated to the caller.
pub fn in_netns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    let err = |source| NetError::EnterNetns {
        path: path.to_path_buf(),
        source,
    };
    let ns = File::open(path).map_err(err)?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: `ns` is an open nsfs file for the whole call, and
                // setns changes only this thread, which ends after `f`.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(err(io::Error::last_os_error()));
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
