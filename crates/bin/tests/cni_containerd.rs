//! cell-cni under real CNI clients (issue 10): pods through containerd's CRI,
//! and the documented conflists of `contrib/cni/` through upstream cnitool.
//!
//! The work is done by the scripts in `tests/cni/`, which install the
//! clients (containerd 2.1 with runc and a small Python CRI client; cnitool
//! from CNI 1.3.0) from Debian's mirror and PyPI through
//! `scripts/cni-tools/`, and run everything in namespaces of their own.
//! A script exits with 77 when a client cannot be installed here; the test
//! then says it was skipped, with the reason, rather than passing quietly.
//!
//! The plugin binary is `cell-cni` beside the `cell` binary this test was
//! built with (`cargo build -p cell-cni`; `scripts/test.sh` builds every
//! binary before the tests). The containerd harness is checked against
//! Debian's reference plugins as well, so a failure with cell-cni is the
//! plugin's and not the harness's.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The documented conflists, sorted by name.
fn contrib_conflists() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(repo().join("contrib/cni"))
        .expect("contrib/cni")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conflist"))
        .collect();
    found.sort();
    found
}

/// A directory holding only the cell-cni binary built beside `cell`, or a
/// panic saying how to build it.
fn cell_cni_plugin_dir(scratch: &Path) -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_cell")).with_file_name("cell-cni");
    assert!(
        binary.is_file(),
        "no cell-cni binary at {}: build it with `cargo build -p cell-cni` (scripts/test.sh does)",
        binary.display()
    );
    let dir = scratch.join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&binary, dir.join("cell-cni")).unwrap();
    dir
}

/// Runs a script of `tests/cni/`: its stdout when it passed, `None` when it
/// skipped (exit 77: a client could not be installed), a panic with its
/// output when it failed.
fn run_script(script: &str, args: &[&str]) -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cni")
        .join(script);
    // cell-cni keeps its leases under /var/lib/cni/cell, which the scripts
    // cover with a private tmpfs (with the rest of /var/lib/cni and /run)
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .output()
        .expect("run the script");
    let shown = common::describe(&out);
    match out.status.code() {
        Some(0) => {
            eprintln!("{shown}");
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Some(77) => {
            eprintln!("skipped: {script} could not install its client here\n{shown}");
            None
        }
        _ => panic!("{script} {args:?} failed:\n{shown}"),
    }
}

/// The keys CLI.md ("CNI plugin") gives a cell-cni configuration.
const CELL_CNI_KEYS: &[&str] = &[
    "type",
    "network",
    "driver",
    "interface",
    "subnet",
    "subnet6",
    "gateway",
    "nat",
    "icc",
    "internal",
    "antispoof",
    "capabilities",
];

/// The documented conflists say only what CLI.md defines, cell-cni's own
/// parser takes each, and each network type has one (no root needed: this
/// is the part that runs everywhere).
#[test]
fn contrib_conflists_use_only_documented_keys_and_cell_cni_takes_them() {
    let mut types = BTreeSet::new();
    let mut names = BTreeSet::new();
    for path in contrib_conflists() {
        let text = std::fs::read_to_string(&path).unwrap();
        let list: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        let shown = path.display();
        assert!(list["cniVersion"].is_string(), "{shown}: no cniVersion");
        let name = list["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{shown}: no name"));
        assert!(
            names.insert(name.to_string()),
            "{shown}: network name {name} used twice"
        );
        let plugins = list["plugins"].as_array().expect("plugins");
        assert_eq!(plugins.len(), 1, "{shown}: cell-cni needs no other plugin");
        let plugin = plugins[0].as_object().unwrap();
        assert_eq!(plugin["type"], "cell-cni", "{shown}");
        for key in plugin.keys() {
            assert!(
                CELL_CNI_KEYS.contains(&key.as_str()),
                "{shown}: key {key} is not in CLI.md"
            );
        }
        let network = plugin["network"].as_str().expect("network");
        let driver = plugin["driver"].as_str().expect("driver");
        match (network, driver) {
            ("bridge", "vnet" | "ipnet") | ("loopback", "ipnet") => {}
            ("custom", "ipnet") => assert!(
                plugin.contains_key("interface"),
                "{shown}: custom needs interface"
            ),
            other => panic!("{shown}: {other:?} is not a network type and driver cell has"),
        }
        assert!(plugin["subnet"].is_string(), "{shown}: no subnet");
        // what a runtime hands the plugin: its object with the list's
        // version and name, checked by cell-cni's own parser
        let mut handed = serde_json::Value::Object(plugin.clone());
        handed["cniVersion"] = list["cniVersion"].clone();
        handed["name"] = name.into();
        if let Err(e) = cell_cni::NetConf::parse(&handed) {
            panic!("{shown}: cell-cni refuses it: {e}");
        }
        types.insert(network.to_string());
    }
    let wanted: BTreeSet<String> = ["bridge", "custom", "loopback"].map(String::from).into();
    assert_eq!(
        types, wanted,
        "contrib/cni must have a conflist for each network type"
    );
}

/// Each documented conflist works under upstream cnitool on a node made for
/// it: ADD, CHECK, STATUS, DEL, DEL again and GC all succeed and leave no
/// veth; then 20 ADDs at once give 20 pods 20 distinct addresses, and 20
/// DELs at once leave no veth.
#[test]
fn contrib_conflists_work_under_cnitool() {
    require_root!();
    let scratch = tempfile::tempdir().unwrap();
    let plugins = cell_cni_plugin_dir(scratch.path());
    for path in contrib_conflists() {
        let args = [
            "--parallel",
            "20",
            plugins.to_str().unwrap(),
            path.to_str().unwrap(),
        ];
        if run_script("cnitool-conflist.sh", &args).is_none() {
            return;
        }
    }
}

/// cnitool gets its result in the version the conflist asks for (0.4.0,
/// 1.0.0, 1.1.0), and CHECK (and from 1.1.0 STATUS and GC) accept it.
#[test]
fn cnitool_gets_each_result_version_it_asks_for() {
    require_root!();
    let scratch = tempfile::tempdir().unwrap();
    let plugins = cell_cni_plugin_dir(scratch.path());
    let text = std::fs::read_to_string(repo().join("contrib/cni/10-cell-bridge.conflist")).unwrap();
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        let mut list: serde_json::Value = serde_json::from_str(&text).unwrap();
        list["cniVersion"] = version.into();
        list.as_object_mut().unwrap().remove("cniVersions");
        let conflist = scratch.path().join(format!("v{version}.conflist"));
        std::fs::write(&conflist, list.to_string()).unwrap();
        let Some(out) = run_script(
            "cnitool-conflist.sh",
            &[plugins.to_str().unwrap(), conflist.to_str().unwrap()],
        ) else {
            return;
        };
        let wanted = format!("\"cniVersion\": \"{version}\"");
        assert!(out.contains(&wanted), "the ADD result is not {version}:\n{out}");
        if version == "1.1.0" {
            assert!(
                out.contains("=== cnitool status") && out.contains("=== cnitool gc"),
                "{out}"
            );
        }
    }
}

/// The containerd harness itself, with Debian's reference plugins (bridge,
/// host-local, portmap): every check it makes of cell-cni passes with
/// them, so the checks test what they say.
#[test]
fn containerd_harness_passes_with_the_reference_plugins() {
    require_root!();
    if !Path::new("/usr/lib/cni/bridge").exists() {
        // the containerd installer puts it there; a skip of its own below
        eprintln!("note: /usr/lib/cni/bridge is missing before the install");
    }
    let scratch = tempfile::tempdir().unwrap();
    let conflist = scratch.path().join("reference.conflist");
    std::fs::write(
        &conflist,
        r#"{ "cniVersion": "1.0.0", "name": "reference",
  "plugins": [
    { "type": "bridge", "bridge": "cni-ref0", "isGateway": true, "ipMasq": true,
      "ipam": { "type": "host-local", "ranges": [[{"subnet": "10.99.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}] } },
    { "type": "portmap", "capabilities": {"portMappings": true} } ] }"#,
    )
    .unwrap();
    run_script(
        "containerd-pods.sh",
        &[
            "--ports",
            "--lease-cmd",
            "ls /var/lib/cni/networks/reference",
            "/usr/lib/cni",
            conflist.to_str().unwrap(),
        ],
    );
}

/// cell-cni's leases (`/var/lib/cni/cell/leases.db`, the default
/// `dataDir`), one per line; nothing when there is no database yet.
const CELL_CNI_LEASES: &str = r#"python3 -c "
import sqlite3
try:
    db = sqlite3.connect('file:/var/lib/cni/cell/leases.db?mode=ro', uri=True)
    for row in db.execute('SELECT * FROM leases'): print(*row)
except sqlite3.OperationalError:
    pass""#;

/// Two pods through containerd on the documented bridge conflist: the
/// pods get cell's addresses and routes, talk to each other and through
/// NAT, and Stop and Remove leave no veth, no element of cell-cni's tables
/// naming a pod, and no lease.
#[test]
fn containerd_runs_two_pods_on_cell_cni_and_leaves_nothing() {
    require_root!();
    let scratch = tempfile::tempdir().unwrap();
    let plugins = cell_cni_plugin_dir(scratch.path());
    let conflist = repo().join("contrib/cni/10-cell-bridge.conflist");
    run_script(
        "containerd-pods.sh",
        &[
            "--tables",
            "inet cell_cni,bridge cell_cni",
            "--lease-cmd",
            CELL_CNI_LEASES,
            plugins.to_str().unwrap(),
            conflist.to_str().unwrap(),
        ],
    );
}

/// The same with a `hostPort` on the first pod, which containerd passes as
/// `runtimeConfig.portMappings` (in go-cni's spelling: `HostPort`,
/// `ContainerPort`, `Protocol`, `HostIP`): the pod starts, is reachable
/// on the node's address from upstream and from the node itself, and its
/// DEL leaves nothing.
#[test]
fn containerd_port_mapping_reaches_a_cell_cni_pod() {
    require_root!();
    let scratch = tempfile::tempdir().unwrap();
    let plugins = cell_cni_plugin_dir(scratch.path());
    let conflist = repo().join("contrib/cni/10-cell-bridge.conflist");
    run_script(
        "containerd-pods.sh",
        &[
            "--ports",
            "--tables",
            "inet cell_cni,bridge cell_cni",
            "--lease-cmd",
            CELL_CNI_LEASES,
            plugins.to_str().unwrap(),
            conflist.to_str().unwrap(),
        ],
    );
}

/// Two pods through containerd on the documented routed network (loopback,
/// ipnet): each holds a /32 with a default route through its veth, they
/// reach each other through the node's routes and upstream through NAT,
/// pod 1's port mapping works, and nothing is left after Stop and Remove.
#[test]
fn containerd_runs_pods_on_a_routed_cell_cni_network() {
    require_root!();
    let scratch = tempfile::tempdir().unwrap();
    let plugins = cell_cni_plugin_dir(scratch.path());
    let conflist = repo().join("contrib/cni/20-cell-routed.conflist");
    run_script(
        "containerd-pods.sh",
        &[
            "--ports",
            "--tables",
            "inet cell_cni,bridge cell_cni",
            "--lease-cmd",
            CELL_CNI_LEASES,
            plugins.to_str().unwrap(),
            conflist.to_str().unwrap(),
        ],
    );
}

/// A conflist with a malformed subnet: containerd's status says the network
/// is not ready and names the value (the plugin's STATUS), RunPodSandbox
/// fails naming it too (its ADD), and no veth, table or lease is made;
/// once the good conflist replaces it, a pod gets all three (the positive
/// control), and its removal takes them away.
#[test]
fn containerd_reports_a_bad_conflist_and_nothing_is_made() {
    require_root!();
    let scratch = tempfile::tempdir().unwrap();
    let plugins = cell_cni_plugin_dir(scratch.path());
    let good = repo().join("contrib/cni/10-cell-bridge.conflist");
    let mut list: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&good).unwrap()).unwrap();
    list["plugins"][0]["subnet"] = "10.88.0.0/33".into();
    let bad = scratch.path().join("bad.conflist");
    std::fs::write(&bad, list.to_string()).unwrap();
    run_script(
        "containerd-pods.sh",
        &[
            "--tables",
            "inet cell_cni,bridge cell_cni",
            "--lease-cmd",
            CELL_CNI_LEASES,
            "--refused",
            "10.88.0.0/33",
            "--then",
            good.to_str().unwrap(),
            plugins.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
    );
}
