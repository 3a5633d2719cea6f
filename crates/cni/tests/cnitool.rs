//! The plugin driven by a real CNI client: upstream `cnitool` (libcni, as
//! containerd, CRI-O and podman use it) through
//! `scripts/cni-tools/cni-real-client.sh` (a copy of the shared tool, so a
//! clone needs nothing beside it), which runs ADD, CHECK, STATUS,
//! DEL, DEL again and GC in a sandbox of its own and fails if any step
//! does. One conflist per network type and per result version.
//!
//! The script installs cnitool the first time (about 20 s). If it cannot
//! be installed (no Debian mirror, say) or is not there, the test says so
//! and passes without running: the plugin itself is tested without it in
//! `plugin.rs`. `CNI_REAL_CLIENT` names another copy of the script.

use std::path::PathBuf;
use std::process::Command;

fn client() -> Option<PathBuf> {
    let script = std::env::var_os("CNI_REAL_CLIENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cni-tools/cni-real-client.sh")
        });
    if !script.exists() {
        eprintln!("skipped: no real CNI client script at {}", script.display());
        return None;
    }
    let install = Command::new(&script)
        .arg("--install-only")
        .output()
        .expect("run the client script");
    if !install.status.success() {
        eprintln!(
            "skipped: cnitool could not be installed: {}",
            String::from_utf8_lossy(&install.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    Some(script)
}

/// Runs the client on `conflist`; returns its output, asserting it passed.
fn run(script: &PathBuf, conflist: serde_json::Value, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_cell-cni"), plugins.join("cell-cni")).unwrap();
    let file = dir.path().join("net.conflist");
    std::fs::write(&file, conflist.to_string()).unwrap();
    let out = Command::new(script)
        .args(extra)
        .arg(&plugins)
        .arg(&file)
        .output()
        .expect("run the client script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("PASS"),
        "{conflist}\n{text}"
    );
    text
}

fn conflist(version: &str, plugin: serde_json::Value) -> serde_json::Value {
    let mut plugin = plugin;
    plugin["type"] = "cell-cni".into();
    // "nat" is left at its default: the client's sandbox has no default
    // route, so the network gets no NAT, as celld's would.
    serde_json::json!({"cniVersion": version, "name": "pods", "plugins": [plugin]})
}

#[test]
fn cnitool_runs_every_command_on_each_network_type() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the real client needs root");
        return;
    }
    let Some(script) = client() else { return };
    let bridge = run(
        &script,
        conflist(
            "1.1.0",
            serde_json::json!({"network": "bridge", "driver": "vnet",
            "subnet": "10.88.0.0/24", "subnet6": "fd00:88::/64"}),
        ),
        &[],
    );
    assert!(bridge.contains("10.88.0.2/24"), "{bridge}");
    assert!(bridge.contains("fd00:88::2/64"), "{bridge}");
    for step in [
        "ADD: ok",
        "CHECK: ok",
        "STATUS: ok",
        "DEL: ok",
        "DEL-again: ok",
        "GC: ok",
    ] {
        assert!(bridge.contains(step), "{step} missing:\n{bridge}");
    }
    let loopback = run(
        &script,
        conflist(
            "1.1.0",
            serde_json::json!({"network": "loopback", "subnet": "10.90.0.0/24"}),
        ),
        &["--ifname", "net1"],
    );
    assert!(loopback.contains("10.90.0.1/32"), "{loopback}");
    let ipnet_on_bridge = run(
        &script,
        conflist(
            "1.1.0",
            serde_json::json!({"network": "bridge", "driver": "ipnet", "subnet": "10.91.0.0/24"}),
        ),
        &[],
    );
    assert!(ipnet_on_bridge.contains("10.91.0.2/32"), "{ipnet_on_bridge}");
}

#[test]
fn cnitool_gets_each_result_version() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the real client needs root");
        return;
    }
    let Some(script) = client() else { return };
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        let text = run(
            &script,
            conflist(version, serde_json::json!({"subnet": "10.88.0.0/24"})),
            &["--trace"],
        );
        let result_line = text
            .lines()
            .find(|l| l.starts_with("<<< cell-cni rc=0 {"))
            .unwrap_or_else(|| panic!("no ADD result in the trace:\n{text}"));
        let result: serde_json::Value =
            serde_json::from_str(result_line.splitn(4, ' ').nth(3).unwrap()).unwrap();
        assert_eq!(result["cniVersion"], version, "{result}");
        assert_eq!(
            result["ips"][0].get("version").is_some(),
            version == "0.4.0",
            "{result}"
        );
    }
}
