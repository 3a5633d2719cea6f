//! What `cell info` and `cell version` show: the daemon's version
//! ([`VERSION`]), and a summary of one engine ([`Info`]): its root, its
//! address pools, how many containers, images and networks it holds, and
//! which kernel features it found ([`KernelFeatures`]).
//!
//! Features are looked for in files the kernel publishes (`/sys`, `/proc`,
//! `/lib/modules`), never by creating anything, so asking is free of side
//! effects. A feature counts as found when any sign of it is there: a
//! loaded module, a module the kernel can load, or a symbol of a built-in
//! one. nftables is the exception: it counts as found when cell's own
//! `inet cell` table is present, which is what cell needs of it.

use crate::{Engine, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};

/// The version of cell's engine, and so of the daemon serving it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A summary of the engine's state, served as `GET /info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// The daemon's version ([`VERSION`]).
    pub version: String,
    /// The state directory.
    pub root: PathBuf,
    /// The IPv4 pool networks are carved from; `None` while there is none.
    pub pool: Option<String>,
    /// The IPv6 pool; `None` while there is none.
    pub pool6: Option<String>,
    /// Containers, stopped ones included.
    pub containers: usize,
    /// Containers whose init runs.
    pub running: usize,
    /// Images.
    pub images: usize,
    /// Networks.
    pub networks: usize,
    /// What the kernel offers.
    pub kernel: KernelFeatures,
}

/// The kernel features cell's networking uses, each true when found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelFeatures {
    /// cell's `inet cell` nftables table is present.
    pub nftables: bool,
    /// Linux bridges (bridge networks, vnet).
    pub bridge: bool,
    /// macvlan links (custom networks).
    pub macvlan: bool,
    /// br_netfilter: bridged traffic passes the inet hooks.
    pub br_netfilter: bool,
}

/// How each feature shows in the files of a kernel: the module's name
/// (for `/sys/module` and `/lib/modules`), a symbol only that code
/// defines (for a built-in module that `/sys/module` does not list), and
/// any further paths that exist only with the feature.
struct Signs {
    module: &'static str,
    symbol: &'static str,
    paths: &'static [&'static str],
}

const BRIDGE: Signs = Signs {
    module: "bridge",
    symbol: "br_dev_xmit",
    paths: &[],
};

const MACVLAN: Signs = Signs {
    module: "macvlan",
    symbol: "macvlan_common_newlink",
    paths: &[],
};

// br_netfilter registers `net.bridge.bridge-nf-call-*`; the directory
// exists in every network namespace once it is loaded.
const BR_NETFILTER: Signs = Signs {
    module: "br_netfilter",
    symbol: "br_nf_pre_routing",
    paths: &["proc/sys/net/bridge"],
};

impl KernelFeatures {
    /// Looks for the features in the kernel files under `root` (`/` for
    /// the running kernel; a directory laid out like it in tests), with
    /// nftables as the caller found it.
    pub fn probe(root: &Path, nftables: bool) -> Self {
        let release = std::fs::read_to_string(root.join("proc/sys/kernel/osrelease"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let modules_dir = root.join("lib/modules").join(&release);
        let module_lists: String = ["modules.builtin", "modules.dep"]
            .iter()
            .filter_map(|list| std::fs::read_to_string(modules_dir.join(list)).ok())
            .collect::<Vec<_>>()
            .join("\n");
        // Several megabytes, read only when a feature shows no other sign.
        let kallsyms = std::cell::OnceCell::new();
        let found = |signs: &Signs| {
            root.join("sys/module").join(signs.module).exists()
                || signs.paths.iter().any(|p| root.join(p).exists())
                || lists_module(&module_lists, signs.module)
                || defines_symbol(
                    kallsyms.get_or_init(|| {
                        std::fs::read_to_string(root.join("proc/kallsyms")).unwrap_or_default()
                    }),
                    signs.symbol,
                )
        };
        Self {
            nftables,
            bridge: found(&BRIDGE),
            macvlan: found(&MACVLAN),
            br_netfilter: found(&BR_NETFILTER),
        }
    }
}

/// Whether `modules.builtin` or `modules.dep` text lists `module`
/// (`kernel/net/bridge/bridge.ko`, possibly compressed: `.ko.xz`).
fn lists_module(lists: &str, module: &str) -> bool {
    let file = format!("/{module}.ko");
    lists.lines().any(|line| {
        let path = line.split(':').next().unwrap_or_default();
        let path = format!("/{path}");
        path.ends_with(&file) || path.contains(&format!("{file}."))
    })
}

/// Whether `/proc/kallsyms` text defines `symbol` (`ADDR TYPE NAME [MODULE]`).
fn defines_symbol(kallsyms: &str, symbol: &str) -> bool {
    kallsyms
        .lines()
        .any(|line| line.split_whitespace().nth(2) == Some(symbol))
}

impl Engine {
    /// The summary `cell info` shows, with kernel features looked for
    /// under `/`.
    pub fn info(&self) -> Result<Info> {
        self.info_under(Path::new("/"))
    }

    /// [`Engine::info`] with the kernel's files under `kernel_root`.
    pub fn info_under(&self, kernel_root: &Path) -> Result<Info> {
        let containers = self.containers(true)?;
        let running = containers.iter().filter(|c| c.running).count();
        Ok(Info {
            version: VERSION.to_string(),
            root: self.root().to_path_buf(),
            pool: None,
            pool6: None,
            containers: containers.len(),
            running,
            images: self.images()?.len(),
            networks: self.networks()?.len(),
            kernel: KernelFeatures::probe(kernel_root, self.has_cell_table()),
        })
    }

    /// Whether cell's `inet cell` table is present. Asked through the
    /// firewall seam with a batch that only lists the table: it changes
    /// nothing, and fails when the table (or nftables) is missing.
    fn has_cell_table(&self) -> bool {
        let list = json!({"nftables": [
            {"list": {"table": {"family": "inet", "name": "cell"}}}
        ]});
        self.net.host().firewall.apply(&list).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn info_counts_what_the_engine_holds() {
        use crate::containers::CreateContainer;
        use crate::networks::CreateNetwork;
        use crate::{Backends, EngineConfig, FakeRuntime, FixedClock};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        write(&rootfs, "bin/sh", "#!/bin/true\n");
        let engine = Engine::open(
            EngineConfig {
                root: dir.path().join("root"),
                busybox: "/nonexistent/busybox".into(),
                log_limits: Default::default(),
                port_range: None,
            },
            Backends {
                net: Arc::new(cell_net::FakeNetKernel::new()),
                runtime: Arc::new(FakeRuntime::new()),
                clock: Arc::new(FixedClock::at(chrono::DateTime::UNIX_EPOCH)),
                ports: Arc::new(crate::FakeHostPorts::new(cell_core::port::PortRange {
                    start: 40000,
                    end: 40099,
                })),
            },
        )
        .unwrap();
        let empty = tempfile::tempdir().unwrap();
        let before = engine.info_under(empty.path()).unwrap();
        assert_eq!(
            (before.containers, before.running, before.images, before.networks),
            (0, 0, 0, 0)
        );
        engine.import_image("img", &rootfs).unwrap();
        for name in ["a", "b"] {
            engine
                .create_container(&CreateContainer {
                    image: "img".into(),
                    name: Some(name.into()),
                    ..CreateContainer::default()
                })
                .unwrap();
        }
        engine.start_container("a").unwrap();
        engine
            .create_network(&CreateNetwork {
                name: "n".into(),
                subnet: Some("10.9.0.0/24".into()),
                ..CreateNetwork::default()
            })
            .unwrap();
        let info = engine.info_under(empty.path()).unwrap();
        assert_eq!(
            (info.containers, info.running, info.images, info.networks),
            (2, 1, 1, 1)
        );
        assert_eq!(info.root, dir.path().join("root"));
        assert_eq!(info.version, VERSION);
        assert_eq!(info.pool, None);
        // The fake firewall accepts the listing, as nftables does once the table exists.
        assert!(info.kernel.nftables && !info.kernel.bridge);
    }

    #[test]
    fn an_empty_kernel_has_no_features() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(
            KernelFeatures::probe(root.path(), false),
            KernelFeatures::default()
        );
    }

    #[test]
    fn each_sign_of_a_feature_counts() {
        // A loaded module.
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("sys/module/bridge")).unwrap();
        let found = KernelFeatures::probe(root.path(), true);
        assert!(found.nftables && found.bridge);
        assert!(!found.macvlan && !found.br_netfilter);

        // A module the kernel can load, or one built in.
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "proc/sys/kernel/osrelease", "6.1.0-test\n");
        write(
            root.path(),
            "lib/modules/6.1.0-test/modules.dep",
            "kernel/drivers/net/macvlan.ko.xz: kernel/drivers/net/tap.ko.xz\n",
        );
        write(
            root.path(),
            "lib/modules/6.1.0-test/modules.builtin",
            "kernel/net/bridge/bridge.ko\n",
        );
        let found = KernelFeatures::probe(root.path(), false);
        assert!(found.macvlan && found.bridge);
        assert!(!found.br_netfilter && !found.nftables);

        // Built in without a /sys/module entry: its symbols tell.
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            "proc/kallsyms",
            "ffffffff81dfa460 T macvlan_common_newlink\nffffffff81dfa461 T macvlan_common_newlink_x\n",
        );
        let found = KernelFeatures::probe(root.path(), false);
        assert!(found.macvlan && !found.bridge);

        // br_netfilter's sysctls.
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "proc/sys/net/bridge/bridge-nf-call-iptables", "1\n");
        assert!(KernelFeatures::probe(root.path(), false).br_netfilter);
    }

    #[test]
    fn a_module_name_matches_only_whole_file_names() {
        assert!(lists_module("kernel/net/bridge/bridge.ko\n", "bridge"));
        assert!(lists_module("kernel/net/bridge/bridge.ko.zst:\n", "bridge"));
        assert!(!lists_module("kernel/net/bridge/br_netfilter.ko:\n", "bridge"));
        assert!(!lists_module("kernel/net/foo/notbridge.ko:\n", "bridge"));
        assert!(defines_symbol("0 T br_dev_xmit\t[bridge]\n", "br_dev_xmit"));
        assert!(!defines_symbol("0 T br_dev_xmit2\n", "br_dev_xmit"));
    }
}
