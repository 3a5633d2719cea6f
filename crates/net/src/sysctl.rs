//! Kernel parameters under `/proc/sys/net`: forwarding, and proxy ARP on
//! the host ends of routed veths. [`Sysctl`] is the seam; [`ProcSysctl`]
//! writes the real files, [`FakeSysctl`] records.
//!
//! `/proc/sys/net` shows the network namespace of the thread that opens
//! the file, so [`ProcSysctl`] acts on the namespace of its caller: `celld`
//! calls it from threads that stay in the host's namespace.

use crate::error::{NetError, Result};
use std::sync::Mutex;

/// Sets kernel parameters. Keys are paths under `/proc/sys` with `/` as the
/// separator (interface names may contain dots, so dotted keys would be
/// ambiguous).
pub trait Sysctl: Send + Sync {
    /// Writes `value` to `key`.
    fn set(&self, key: &str, value: &str) -> Result<()>;
}

/// The real [`Sysctl`]: writes `/proc/sys/KEY`.
#[derive(Debug, Default)]
pub struct ProcSysctl;

impl Sysctl for ProcSysctl {
    fn set(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{key}");
        // Skip the write when the value is already there: writing
        // `ip_forward` resets every interface's forwarding flag, and a
        // read is cheaper than a write anyway.
        if std::fs::read_to_string(&path).is_ok_and(|current| current.trim() == value) {
            return Ok(());
        }
        std::fs::write(&path, value).map_err(|source| NetError::Sysctl {
            key: key.to_string(),
            value: value.to_string(),
            source,
        })
    }
}

/// [`Sysctl`] of another network namespace, the one bind-mounted at a
/// path: each write is done by a new thread that has entered it.
/// [`crate::ContainerNet`] does the writes of a whole attach from one
/// thread that entered the namespace once; prefer it.
#[derive(Debug)]
pub struct NetnsSysctl {
    path: std::path::PathBuf,
}

impl NetnsSysctl {
    /// Sysctls of the namespace at `path`.
    pub fn new(path: &std::path::Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }
}

impl Sysctl for NetnsSysctl {
    fn set(&self, key: &str, value: &str) -> Result<()> {
        crate::netns::in_netns(&self.path, || ProcSysctl.set(key, value))?
    }
}

/// A recording [`Sysctl`] for plan tests.
#[derive(Debug, Default)]
pub struct FakeSysctl {
    writes: Mutex<Vec<(String, String)>>,
    /// Calls made, and the call that is to fail.
    calls: Mutex<(usize, Option<usize>)>,
}

impl FakeSysctl {
    /// The `(key, value)` pairs written so far, in order.
    pub fn writes(&self) -> Vec<(String, String)> {
        self.writes.lock().unwrap().clone()
    }

    /// Makes the `n`th call from now on (1-based) fail with
    /// [`NetError::Injected`]; the failed write is not recorded.
    pub fn fail_call(&self, n: usize) {
        let mut calls = self.calls.lock().unwrap();
        calls.1 = Some(calls.0 + n);
    }

    /// How many calls were made.
    pub fn calls(&self) -> usize {
        self.calls.lock().unwrap().0
    }
}

impl Sysctl for FakeSysctl {
    fn set(&self, key: &str, value: &str) -> Result<()> {
        {
            let mut calls = self.calls.lock().unwrap();
            calls.0 += 1;
            if calls.1 == Some(calls.0) {
                calls.1 = None;
                return Err(NetError::Injected { call: calls.0 });
            }
        }
        self.writes
            .lock()
            .unwrap()
            .push((key.to_string(), value.to_string()));
        Ok(())
    }
}
