//! Process control for the engine: signal, wait for and find the
//! supervisors ([`crate::shim`]) of running containers.
//!
//! Everything goes through pidfds (pidfd_open(2), pidfd_send_signal(2)): a
//! [`ProcessHandle`] names one process for its whole life, so once it is
//! open, a signal or a wait can never reach another process that reused
//! the pid. The free functions open a handle for one operation; a caller
//! that signals and then waits (SIGTERM, wait, SIGKILL) should keep one
//! [`ProcessHandle`] across the steps. The pid a caller starts from is
//! checked with [`is_our_shim`], which matches the supervisor's command
//! line, before it is trusted after a restart.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One process, held by a pidfd.
#[derive(Debug)]
pub struct ProcessHandle {
    pid: i32,
    pidfd: OwnedFd,
}

impl ProcessHandle {
    /// Opens a handle on `pid`; `Ok(None)` if no such process exists.
    pub fn open(pid: i32) -> io::Result<Option<Self>> {
        if pid <= 0 {
            // pidfd_open refuses these with EINVAL; for a caller they mean
            // "no process", as a missing pid does.
            return Ok(None);
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ESRCH) => Ok(None),
                _ => Err(err),
            };
        }
        // SAFETY: a non-negative return is a fresh fd that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Some(Self { pid, pidfd }))
    }

    /// The pid the handle was opened with.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `sig`. Succeeds if the process has already ended (ESRCH): it is
    /// gone, which is what a caller who signals wants to reach.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        // SAFETY: pidfd_send_signal with a pidfd we own, no siginfo, no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ESRCH) => Ok(()),
            _ => Err(err),
        }
    }

    /// Whether the process has not ended yet. A process that ended but is
    /// not reaped (a zombie) counts as ended.
    pub fn is_alive(&self) -> bool {
        !self.wait(Some(Duration::ZERO))
    }

    /// Waits until the process ends or `timeout` passes (`None`: no limit).
    /// Returns whether it ended.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let ms = match deadline {
                Some(d) => d
                    .saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(i32::MAX as u128) as i32,
                None => -1,
            };
            let mut pfd = libc::pollfd {
                fd: self.pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            // A pidfd becomes readable when the process ends.
            if n > 0 {
                return true;
            }
            if n == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                // Only EFAULT, EINVAL and ENOMEM remain, none of which a
                // valid pidfd gives; do not spin on them.
                return false;
            }
        }
    }
}

/// Sends `sig` to `pid`. Succeeds if no such process exists (any more).
pub fn signal(pid: i32, sig: i32) -> io::Result<()> {
    match ProcessHandle::open(pid)? {
        Some(process) => process.signal(sig),
        None => Ok(()),
    }
}

/// Whether `pid` names a process that has not ended.
pub fn is_alive(pid: i32) -> bool {
    matches!(ProcessHandle::open(pid), Ok(Some(p)) if p.is_alive())
}

/// Waits until `pid` ends or `timeout` passes (`None`: no limit). Returns
/// whether it ended; a pid that names no process has ended.
pub fn wait_for_exit(pid: i32, timeout: Option<Duration>) -> bool {
    match ProcessHandle::open(pid) {
        Ok(Some(process)) => process.wait(timeout),
        Ok(None) => true,
        // Cannot watch it (out of descriptors): it has not been seen to end.
        Err(_) => false,
    }
}

/// Whether `pid` is the supervisor of `state_dir`: its command line is
/// `EXE shim STATE_DIR` (and not another process that reused its pid).
pub fn is_our_shim(pid: i32, state_dir: &Path) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    if args.get(1) != Some(&&b"shim"[..]) {
        return false;
    }
    // The supervisor runs with the canonical path spawn_shim gave it.
    let Some(arg) = args.get(2) else {
        return false;
    };
    let wanted = [Some(state_dir.to_path_buf()), fs::canonicalize(state_dir).ok()];
    wanted
        .iter()
        .flatten()
        .any(|dir| dir.as_os_str().as_encoded_bytes() == *arg)
}

/// The pid of the supervisor of `state_dir`, if one runs: the pid it wrote
/// to `shim.pid` as its first act, verified with [`is_our_shim`]; if that
/// file is missing or stale, a scan of `/proc`. So a supervisor is found
/// even if `celld` was killed before it recorded the pid anywhere.
pub fn find_shim(state_dir: &Path) -> Option<i32> {
    let recorded = fs::read_to_string(crate::shim::pid_path(state_dir))
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok());
    if let Some(pid) = recorded.filter(|pid| is_our_shim(*pid, state_dir)) {
        return Some(pid);
    }
    scan_for_shim(state_dir)
}

/// Looks through every process for the supervisor of `state_dir`. The
/// first stage of a starting shim has the same command line for a moment
/// before it exits; among several matches the one with the highest start
/// time is the shim proper (it was forked by the other).
fn scan_for_shim(state_dir: &Path) -> Option<i32> {
    let entries = fs::read_dir("/proc").ok()?;
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| is_our_shim(*pid, state_dir))
        .max_by_key(|pid| start_time(*pid).unwrap_or(0))
}

/// A process's start time in clock ticks since boot (`/proc/PID/stat`
/// field 22).
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(PathBuf::from(format!("/proc/{pid}/stat"))).ok()?;
    // The command name (field 2) may hold spaces and parentheses; the
    // fields after its closing parenthesis are plain.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};

    fn sleeper() -> Child {
        Command::new("sleep")
            .arg("60")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep runs")
    }

    #[test]
    fn signal_ends_a_process_and_wait_sees_it() {
        let mut child = sleeper();
        let pid = child.id() as i32;
        assert!(is_alive(pid));
        // Positive control for the timeout: a live process is not reported
        // as ended.
        assert!(!wait_for_exit(pid, Some(Duration::from_millis(50))));
        signal(pid, libc::SIGTERM).unwrap();
        assert!(wait_for_exit(pid, Some(Duration::from_secs(20))));
        // Ended but not reaped yet: a zombie is not alive.
        assert!(!is_alive(pid));
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGTERM)
        );
        assert!(!is_alive(pid));
        assert!(wait_for_exit(pid, Some(Duration::ZERO)));
    }

    #[test]
    fn a_handle_never_reaches_another_process() {
        let mut child = sleeper();
        let handle = ProcessHandle::open(child.id() as i32).unwrap().unwrap();
        assert!(handle.is_alive());
        handle.signal(libc::SIGKILL).unwrap();
        assert!(handle.wait(Some(Duration::from_secs(20))));
        child.wait().unwrap();
        // Reaped: its pid may now be reused, but the handle still names the
        // dead process, so signalling through it reaches nobody.
        assert!(!handle.is_alive());
        handle.signal(libc::SIGKILL).unwrap();
    }

    #[test]
    fn missing_processes_are_gone() {
        // pid_max is at most 2^22, so this pid never exists.
        let missing = 1 << 23;
        assert!(!is_alive(missing));
        assert!(wait_for_exit(missing, None));
        signal(missing, libc::SIGKILL).unwrap();
        assert!(ProcessHandle::open(missing).unwrap().is_none());
        assert!(ProcessHandle::open(0).unwrap().is_none());
        assert!(!is_our_shim(missing, Path::new("/")));
    }

    #[test]
    fn start_time_parses_a_name_with_spaces_and_parentheses() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some_and(|t| t > 0));
    }

    #[test]
    fn find_shim_without_a_supervisor_is_none() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(find_shim(tmp.path()), None);
        // A stale pid file naming a process that is no supervisor.
        fs::write(
            crate::shim::pid_path(tmp.path()),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        assert_eq!(find_shim(tmp.path()), None);
    }
}
