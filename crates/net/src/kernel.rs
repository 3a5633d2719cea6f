//! The kernel's networking as one value: the host's namespace, and the
//! network namespaces of containers, created, opened and deleted by path.
//!
//! [`NetKernel`] is what a user of this crate (celld's engine, the CNI
//! plugin) holds. [`LinuxNetKernel`] is the real one, bound to the network
//! namespace of the thread that makes it; [`FakeNetKernel`] is a small
//! model of several namespaces built from the recording fakes, so use cases
//! are tested without root, with a failure injected at any call:
//!
//! ```
//! use cell_net::kernel::{FakeNetKernel, NetKernel};
//! use std::path::Path;
//!
//! let kernel = FakeNetKernel::new();
//! kernel.create_netns(Path::new("/run/ns/c1")).unwrap();
//! let netns = kernel.open_netns(Path::new("/run/ns/c1")).unwrap();
//! let inside = netns.kernel();
//! kernel
//!     .host()
//!     .links
//!     .create_veth_pair("cvaabbccddeeff", "eth0", Some(inside.netns_fd))
//!     .unwrap();
//! // The peer is inside the container's namespace, the host end outside.
//! assert!(inside.links.link_index("eth0").unwrap().is_some());
//! assert!(kernel.host().links.link_index("eth0").unwrap().is_none());
//! ```

use crate::container_net::ContainerNet;
use crate::driver::{ContainerKernel, HostKernel};
use crate::error::{NetError, Result};
use crate::links::{FakeLinks, PeerEvent};
use crate::netlink::NetlinkLinks;
use crate::nft::{FakeFirewall, Nft};
use crate::sysctl::{FakeSysctl, ProcSysctl};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The network kernel: the host's namespace and containers' namespaces.
///
/// Implementations are shared between threads. The host's handles stay
/// bound to the namespace they were opened in, whichever thread uses them.
pub trait NetKernel: Send + Sync {
    /// The host's namespace: links, cell's firewall tables, sysctls.
    fn host(&self) -> HostKernel<'_>;
    /// Creates a network namespace bound at `path`, with `lo` up. Fails if
    /// `path` exists; on error nothing is left.
    fn create_netns(&self, path: &Path) -> Result<()>;
    /// Removes the namespace bound at `path`; succeeds if it is gone.
    fn delete_netns(&self, path: &Path) -> Result<()>;
    /// Opens the namespace bound at `path` once, for the calls of one
    /// attach, detach or repair.
    fn open_netns(&self, path: &Path) -> Result<Box<dyn ContainerNetns + '_>>;
    /// The namespaces bound in directory `dir`, for reconciliation.
    fn netns_in(&self, dir: &Path) -> Result<Vec<PathBuf>>;
}

/// An open container namespace.
pub trait ContainerNetns: Send {
    /// Its kernel, as the drivers take it.
    fn kernel(&self) -> ContainerKernel<'_>;
}

/// The real [`NetKernel`].
pub struct LinuxNetKernel {
    links: NetlinkLinks,
    firewall: Nft,
    sysctl: ProcSysctl,
}

impl LinuxNetKernel {
    /// Opens the host's handles in the calling thread's network namespace.
    pub fn new() -> Result<Self> {
        Ok(Self {
            links: NetlinkLinks::new()?,
            firewall: Nft::new()?,
            sysctl: ProcSysctl,
        })
    }
}

impl NetKernel for LinuxNetKernel {
    fn host(&self) -> HostKernel<'_> {
        HostKernel {
            links: &self.links,
            firewall: &self.firewall,
            sysctl: &self.sysctl,
        }
    }

    fn create_netns(&self, path: &Path) -> Result<()> {
        crate::netns::create_netns(path)
    }

    fn delete_netns(&self, path: &Path) -> Result<()> {
        crate::netns::delete_netns(path)
    }

    fn open_netns(&self, path: &Path) -> Result<Box<dyn ContainerNetns + '_>> {
        Ok(Box::new(ContainerNet::open(path)?))
    }

    fn netns_in(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(NetError::EnterNetns {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        Ok(entries.flatten().map(|e| e.path()).collect())
    }
}

impl ContainerNetns for ContainerNet {
    fn kernel(&self) -> ContainerKernel<'_> {
        ContainerNet::kernel(self)
    }
}

/// Which fake a failure is injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FakeSeam {
    /// The host's links.
    HostLinks,
    /// cell's firewall tables.
    Firewall,
    /// The host's sysctls.
    HostSysctl,
    /// Links inside containers' namespaces.
    NetnsLinks,
    /// Sysctls inside containers' namespaces.
    NetnsSysctl,
    /// Creating, opening and deleting namespaces.
    Netns,
}

impl FakeSeam {
    /// Every seam, for tests that inject a failure into each in turn.
    pub const ALL: [FakeSeam; 6] = [
        FakeSeam::HostLinks,
        FakeSeam::Firewall,
        FakeSeam::HostSysctl,
        FakeSeam::NetnsLinks,
        FakeSeam::NetnsSysctl,
        FakeSeam::Netns,
    ];
}

/// One fake container namespace.
pub struct FakeNetns {
    /// Its links.
    pub links: FakeLinks,
    /// Its sysctls.
    pub sysctl: FakeSysctl,
    fd: RawFd,
}

#[derive(Default)]
struct FakeWorld {
    namespaces: BTreeMap<PathBuf, Arc<FakeNetns>>,
    next_fd: RawFd,
    /// Host end of a veth -> the namespace and name of its peer.
    veths: HashMap<String, (RawFd, String)>,
    /// Calls of the namespace seam, and the one that is to fail.
    netns_calls: usize,
    netns_fail: Option<usize>,
    /// Failures to inject into namespaces made later, per seam.
    pending: Vec<(FakeSeam, usize)>,
}

/// A model of the host's namespace and of containers' namespaces over the
/// recording fakes. A veth or macvlan created with a namespace's fd appears
/// in that namespace; deleting a veth's host end, or a namespace, deletes
/// the pair.
pub struct FakeNetKernel {
    /// The host's links.
    pub links: Arc<FakeLinks>,
    /// cell's firewall tables.
    pub firewall: FakeFirewall,
    /// The host's sysctls.
    pub sysctl: FakeSysctl,
    world: Arc<Mutex<FakeWorld>>,
}

impl Default for FakeNetKernel {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeNetKernel {
    /// A host with `lo` and an uplink `em0`, and no containers.
    pub fn new() -> Self {
        let links = Arc::new(FakeLinks::new());
        links.insert("em0", None);
        let world = Arc::new(Mutex::new(FakeWorld {
            next_fd: 1000,
            ..FakeWorld::default()
        }));
        let hook_world = Arc::clone(&world);
        links.set_peer_hook(Box::new(move |event| {
            let mut world = hook_world.lock().unwrap();
            match event {
                PeerEvent::Created {
                    netns_fd,
                    name,
                    kind,
                    host_end,
                } => {
                    if let Some(ns) = world.namespaces.values().find(|ns| ns.fd == netns_fd) {
                        ns.links.insert(&name, Some(kind));
                    }
                    if let Some(host_end) = host_end {
                        world.veths.insert(host_end, (netns_fd, name));
                    }
                }
                PeerEvent::Deleted { name } => {
                    if let Some((fd, peer)) = world.veths.remove(&name)
                        && let Some(ns) = world.namespaces.values().find(|ns| ns.fd == fd)
                    {
                        ns.links.forget(&peer);
                    }
                }
            }
        }));
        Self {
            links,
            firewall: FakeFirewall::new(),
            sysctl: FakeSysctl::default(),
            world,
        }
    }

    /// Makes the `n`th call (1-based, from now on) of `seam` fail. For the
    /// namespace seams it applies to every namespace there is, and to the
    /// next one made if there is none.
    pub fn fail_call(&self, seam: FakeSeam, n: usize) {
        let mut world = self.world.lock().unwrap();
        match seam {
            FakeSeam::HostLinks => self.links.fail_call(n),
            FakeSeam::Firewall => self.firewall.fail_call(n),
            FakeSeam::HostSysctl => self.sysctl.fail_call(n),
            FakeSeam::Netns => world.netns_fail = Some(world.netns_calls + n),
            FakeSeam::NetnsLinks | FakeSeam::NetnsSysctl => {
                if world.namespaces.is_empty() {
                    world.pending.push((seam, n));
                }
                for ns in world.namespaces.values() {
                    inject(ns, seam, n);
                }
            }
        }
    }

    /// How many calls `seam` has had (over every namespace for the
    /// namespace seams, those deleted excepted).
    pub fn calls(&self, seam: FakeSeam) -> usize {
        let world = self.world.lock().unwrap();
        match seam {
            FakeSeam::HostLinks => self.links.ops().len(),
            FakeSeam::Firewall => self.firewall.calls(),
            FakeSeam::HostSysctl => self.sysctl.calls(),
            FakeSeam::Netns => world.netns_calls,
            FakeSeam::NetnsLinks => world.namespaces.values().map(|ns| ns.links.ops().len()).sum(),
            FakeSeam::NetnsSysctl => world.namespaces.values().map(|ns| ns.sysctl.calls()).sum(),
        }
    }

    /// The namespaces that exist, by path.
    pub fn namespaces(&self) -> Vec<PathBuf> {
        self.world.lock().unwrap().namespaces.keys().cloned().collect()
    }

    /// The namespace bound at `path`, if it exists.
    pub fn netns(&self, path: &Path) -> Option<Arc<FakeNetns>> {
        self.world.lock().unwrap().namespaces.get(path).cloned()
    }

    /// The firewall elements in force: every element added by the batches
    /// applied so far and not deleted since (a deleted table takes its
    /// elements with it), each as `family table set element-json`.
    pub fn elements(&self) -> BTreeSet<String> {
        live_elements(&self.firewall.batches())
    }

    fn netns_call(&self) -> Result<()> {
        let mut world = self.world.lock().unwrap();
        world.netns_calls += 1;
        if world.netns_fail == Some(world.netns_calls) {
            world.netns_fail = None;
            return Err(NetError::Injected {
                call: world.netns_calls,
            });
        }
        Ok(())
    }
}

fn inject(ns: &FakeNetns, seam: FakeSeam, n: usize) {
    match seam {
        FakeSeam::NetnsLinks => ns.links.fail_call(n),
        FakeSeam::NetnsSysctl => ns.sysctl.fail_call(n),
        _ => {}
    }
}

fn not_found(path: &Path) -> NetError {
    NetError::EnterNetns {
        path: path.to_path_buf(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    }
}

impl NetKernel for FakeNetKernel {
    fn host(&self) -> HostKernel<'_> {
        HostKernel {
            links: self.links.as_ref(),
            firewall: &self.firewall,
            sysctl: &self.sysctl,
        }
    }

    fn create_netns(&self, path: &Path) -> Result<()> {
        self.netns_call()?;
        let mut world = self.world.lock().unwrap();
        if world.namespaces.contains_key(path) {
            return Err(NetError::CreateNetns {
                path: path.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        }
        let fd = world.next_fd;
        world.next_fd += 1;
        let ns = FakeNetns {
            links: FakeLinks::new(),
            sysctl: FakeSysctl::default(),
            fd,
        };
        for (seam, n) in std::mem::take(&mut world.pending) {
            inject(&ns, seam, n);
        }
        world.namespaces.insert(path.to_path_buf(), Arc::new(ns));
        Ok(())
    }

    fn delete_netns(&self, path: &Path) -> Result<()> {
        self.netns_call()?;
        let mut world = self.world.lock().unwrap();
        let Some(ns) = world.namespaces.remove(path) else {
            return Ok(());
        };
        // The namespace's veths die with it, and their host ends with them.
        let gone: Vec<String> = world
            .veths
            .iter()
            .filter(|(_, (fd, _))| *fd == ns.fd)
            .map(|(host_end, _)| host_end.clone())
            .collect();
        for host_end in gone {
            world.veths.remove(&host_end);
            self.links.forget(&host_end);
        }
        Ok(())
    }

    fn open_netns(&self, path: &Path) -> Result<Box<dyn ContainerNetns + '_>> {
        self.netns_call()?;
        let ns = self.netns(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(FakeOpenNetns(ns)))
    }

    fn netns_in(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        Ok(self
            .namespaces()
            .into_iter()
            .filter(|p| p.parent() == Some(dir))
            .collect())
    }
}

struct FakeOpenNetns(Arc<FakeNetns>);

impl ContainerNetns for FakeOpenNetns {
    fn kernel(&self) -> ContainerKernel<'_> {
        ContainerKernel {
            links: &self.0.links,
            sysctl: &self.0.sysctl,
            netns_fd: self.0.fd,
        }
    }
}

/// Replays element additions and deletions of `batches`.
fn live_elements(batches: &[Value]) -> BTreeSet<String> {
    let mut live = BTreeSet::new();
    for batch in batches {
        for cmd in batch["nftables"].as_array().into_iter().flatten() {
            for (verb, target) in cmd.as_object().into_iter().flatten() {
                if let Some(table) = target.get("table").filter(|_| verb == "delete") {
                    let prefix = format!("{} {} ", table["family"], table["name"]);
                    live.retain(|e: &String| !e.starts_with(&prefix));
                }
                let Some(element) = target.get("element") else {
                    continue;
                };
                for elem in element["elem"].as_array().into_iter().flatten() {
                    let key = format!(
                        "{} {} {} {}",
                        element["family"], element["table"], element["name"], elem
                    );
                    match verb.as_str() {
                        "add" => {
                            live.insert(key);
                        }
                        "delete" => {
                            live.remove(&key);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deleting_a_netns_takes_its_veths_with_it() {
        let kernel = FakeNetKernel::new();
        let path = Path::new("/ns/a");
        kernel.create_netns(path).unwrap();
        let fd = kernel.open_netns(path).unwrap().kernel().netns_fd;
        kernel
            .host()
            .links
            .create_veth_pair("cv1", "eth0", Some(fd))
            .unwrap();
        assert!(kernel.links.link_names().contains(&"cv1".to_string()));
        kernel.delete_netns(path).unwrap();
        assert!(!kernel.links.link_names().contains(&"cv1".to_string()));
        assert!(kernel.open_netns(path).is_err());
        // Deleting it again is fine.
        kernel.delete_netns(path).unwrap();
    }

    #[test]
    fn deleting_a_host_end_deletes_the_peer() {
        let kernel = FakeNetKernel::new();
        let path = Path::new("/ns/a");
        kernel.create_netns(path).unwrap();
        let fd = kernel.open_netns(path).unwrap().kernel().netns_fd;
        kernel
            .host()
            .links
            .create_veth_pair("cv1", "eth0", Some(fd))
            .unwrap();
        kernel.host().links.delete_link("cv1").unwrap();
        assert_eq!(
            kernel.netns(path).unwrap().links.link_names(),
            vec!["lo".to_string()]
        );
    }

    #[test]
    fn failures_are_injected_per_seam() {
        let kernel = FakeNetKernel::new();
        kernel.fail_call(FakeSeam::Netns, 1);
        assert!(kernel.create_netns(Path::new("/ns/a")).is_err());
        kernel.create_netns(Path::new("/ns/a")).unwrap();
        kernel.fail_call(FakeSeam::NetnsLinks, 1);
        let ns = kernel.open_netns(Path::new("/ns/a")).unwrap();
        assert!(ns.kernel().links.set_up("lo").is_err());
        ns.kernel().links.set_up("lo").unwrap();
        assert_eq!(kernel.calls(FakeSeam::NetnsLinks), 2);
        assert_eq!(kernel.calls(FakeSeam::Netns), 3);
    }

    #[test]
    fn elements_are_replayed() {
        let elem = |verb: &str, e: Value| json!({ verb: {"element": {"family": "inet", "table": "cell", "name": "s", "elem": [e]}}});
        let batches = vec![
            json!({"nftables": [elem("add", json!("10.0.0.1")), elem("add", json!("10.0.0.2"))]}),
            json!({"nftables": [elem("add", json!("10.0.0.2")), elem("delete", json!("10.0.0.2"))]}),
        ];
        let live = live_elements(&batches);
        assert_eq!(live.len(), 1);
        assert!(live.iter().next().unwrap().contains("10.0.0.1"));
        let dropped = json!({"nftables": [{"delete": {"table": {"family": "inet", "name": "cell"}}}]});
        assert!(live_elements(&[batches[0].clone(), dropped]).is_empty());
    }
}
