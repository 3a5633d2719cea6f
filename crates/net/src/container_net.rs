//! [`ContainerNet`]: a container's network kernel (its links, its sysctls
//! and its namespace fd), opened once from a netns path.
//!
//! Why it exists: an attach used to open the netns file three times (for
//! the fd, for the netlink socket, for every sysctl write), and every
//! sysctl write inside the container spawned a thread that entered the
//! namespace. Here the file is opened once; one thread enters the
//! namespace once, opens the rtnetlink socket there (a socket stays in the
//! namespace it was opened in, whichever thread uses it) and then stays
//! to write the sysctls of the whole attach (`/proc/sys/net` shows the
//! namespace of the thread that opens a file, so a thread outside cannot
//! write them). The thread ends when the `ContainerNet` is dropped.
//!
//! ```no_run
//! # fn main() -> cell_net::Result<()> {
//! use cell_net::ContainerNet;
//! let inside = ContainerNet::open(std::path::Path::new("/run/netns/c1"))?;
//! let kernel = inside.kernel(); // links, sysctl and netns_fd for the drivers
//! # let _ = kernel;
//! # Ok(())
//! # }
//! ```

use crate::driver::ContainerKernel;
use crate::error::{NetError, Result};
use crate::netlink::NetlinkLinks;
use crate::sysctl::{ProcSysctl, Sysctl};
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

/// A container's network namespace, open: see the module doc.
#[derive(Debug)]
pub struct ContainerNet {
    netns: File,
    links: NetlinkLinks,
    sysctl: InsideSysctl,
}

impl ContainerNet {
    /// Opens the namespace bind-mounted (or shown) at `path`, e.g.
    /// `/run/netns/NAME` or `/proc/PID/ns/net`: one open of the file, one
    /// thread entering it.
    pub fn open(path: &Path) -> Result<Self> {
        let err = |source| NetError::EnterNetns {
            path: path.to_path_buf(),
            source,
        };
        let netns = File::open(path).map_err(err)?;
        let (sysctl, links) = InsideSysctl::start(&netns, path)?;
        Ok(Self { netns, links, sysctl })
    }

    /// The kernel of the namespace as the drivers take it.
    pub fn kernel(&self) -> ContainerKernel<'_> {
        ContainerKernel {
            links: &self.links,
            sysctl: &self.sysctl,
            netns_fd: self.netns.as_raw_fd(),
        }
    }

    /// The links of the namespace.
    pub fn links(&self) -> &NetlinkLinks {
        &self.links
    }

    /// The open namespace file, valid as long as `self`.
    pub fn netns_fd(&self) -> RawFd {
        self.netns.as_raw_fd()
    }
}

type Write = (String, String);

/// The writes to the thread and its answers, one at a time.
type Channel = (Sender<Write>, Receiver<Result<()>>);

/// Sysctls of the container, written by the one thread that entered its
/// namespace.
#[derive(Debug)]
struct InsideSysctl {
    path: PathBuf,
    channel: Mutex<Option<Channel>>,
    worker: Option<JoinHandle<()>>,
}

impl InsideSysctl {
    /// Starts the thread: it enters the namespace of `netns`, opens the
    /// netlink socket there and hands it back, then serves sysctl writes
    /// until the channel closes.
    fn start(netns: &File, path: &Path) -> Result<(Self, NetlinkLinks)> {
        let err = |source| NetError::EnterNetns {
            path: path.to_path_buf(),
            source,
        };
        let ns = netns.try_clone().map_err(err)?;
        let (write_tx, write_rx) = channel::<Write>();
        let (done_tx, done_rx) = channel::<Result<()>>();
        let (links_tx, links_rx) = channel::<Result<NetlinkLinks>>();
        let path_owned = path.to_path_buf();
        let worker = std::thread::Builder::new()
            .name("cell-netns".into())
            .spawn(move || {
                // SAFETY: `ns` is an open nsfs file for the whole call, and
                // setns changes only this thread, which never leaves the
                // namespace and ends when the `ContainerNet` is dropped.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    // Nobody to tell if `start` is gone; it waits for this.
                    links_tx
                        .send(Err(NetError::EnterNetns {
                            path: path_owned,
                            source: std::io::Error::last_os_error(),
                        }))
                        .ok();
                    return;
                }
                drop(ns);
                let opened = NetlinkLinks::new();
                let opened_ok = opened.is_ok();
                // A send fails only if `start` gave up, which it does not.
                if links_tx.send(opened).is_err() || !opened_ok {
                    return;
                }
                for (key, value) in write_rx {
                    if done_tx.send(ProcSysctl.set(&key, &value)).is_err() {
                        return;
                    }
                }
            })
            .map_err(err)?;
        let links = match links_rx.recv() {
            Ok(links) => links,
            // The thread panicked before answering.
            Err(_) => Err(err(std::io::Error::other("the netns thread ended early"))),
        };
        let sysctl = Self {
            path: path.to_path_buf(),
            channel: Mutex::new(Some((write_tx, done_rx))),
            worker: Some(worker),
        };
        // On error `sysctl` is dropped here, which joins the thread.
        links.map(|links| (sysctl, links))
    }
}

impl Sysctl for InsideSysctl {
    fn set(&self, key: &str, value: &str) -> Result<()> {
        let channel = self.channel.lock().unwrap_or_else(|p| p.into_inner());
        let gone = || NetError::EnterNetns {
            path: self.path.clone(),
            source: std::io::Error::other("the netns thread has ended"),
        };
        let (writes, answers) = channel.as_ref().ok_or_else(gone)?;
        writes
            .send((key.to_string(), value.to_string()))
            .map_err(|_| gone())?;
        answers.recv().map_err(|_| gone())?
    }
}

impl Drop for InsideSysctl {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        self.channel.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(worker) = self.worker.take()
            && worker.join().is_err()
        {
            tracing::warn!(path = %self.path.display(), "the netns thread panicked");
        }
    }
}
