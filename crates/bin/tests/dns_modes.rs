//! DNS modes (pot's `-d`, `--dns`, issue 9 item 4), end to end: the
//! `/etc/resolv.conf` each mode leaves in the container, written at each
//! start, and a DNS container started before the containers that use it.
//!
//! The host's resolv.conf is the sandbox's: a file bind-mounted over
//! `/etc/resolv.conf` in the sandbox's own mount namespace, so the
//! machine's file is never touched.

mod common;
use common::*;

/// Puts `content` in the sandbox's `/etc/resolv.conf` (a file of the test
/// bind-mounted over it once; later calls rewrite that file).
fn host_resolv_conf(sb: &Sandbox, content: &str) {
    let file = sb.dir.path().join("host-resolv.conf");
    let first = !file.exists();
    std::fs::write(&file, content).unwrap();
    if first {
        sb.sh_ok(&format!("mount --bind {} /etc/resolv.conf", file.display()));
    }
}

/// The container's `/etc/resolv.conf`, read by a one-shot process in it.
fn resolv_of(sb: &Sandbox, container: &str) -> String {
    sb.ok(&["exec", container, "cat", "/etc/resolv.conf"])
}

/// A bridge network `net` (10.60.0.0/24, fd60::/64).
fn network(sb: &Sandbox, name: &str, subnet: &str, subnet6: &str) {
    sb.ok(&[
        "network",
        "create",
        "-t",
        "bridge",
        "--subnet",
        subnet,
        "--subnet6",
        subnet6,
        name,
    ]);
}

fn run_d(sb: &Sandbox, name: &str, opts: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["busybox", "sleep", "1000"]);
    sb.ok(&args);
}

fn dns_of(sb: &Sandbox, container: &str) -> serde_json::Value {
    sb.inspect(container)["container"]["dns"].clone()
}

#[test]
fn inherit_copies_the_hosts_file_at_each_start() {
    require_root!();
    let sb = Sandbox::new();
    host_resolv_conf(&sb, "nameserver 192.0.2.1\nsearch example.org\n");
    // The default for the host driver; and asked for on a network.
    run_d(&sb, "h", &[]);
    network(&sb, "net", "10.60.0.0/24", "fd60::/64");
    run_d(&sb, "n", &["-n", "net", "--dns", "inherit"]);
    for c in ["h", "n"] {
        assert_eq!(dns_of(&sb, c), serde_json::json!({"mode": "inherit"}));
        assert_eq!(
            resolv_of(&sb, c),
            "nameserver 192.0.2.1\nsearch example.org\n",
            "{c}"
        );
    }
    host_resolv_conf(&sb, "nameserver 192.0.2.2\n");
    // Running containers keep the copy they got...
    assert_eq!(resolv_of(&sb, "n"), "nameserver 192.0.2.1\nsearch example.org\n");
    // ...and get the host's new file at their next start.
    sb.ok(&["restart", "-t", "0", "h", "n"]);
    for c in ["h", "n"] {
        assert_eq!(resolv_of(&sb, c), "nameserver 192.0.2.2\n", "{c}");
    }
}

#[test]
fn off_leaves_the_images_file_alone() {
    require_root!();
    let sb = Sandbox::new();
    host_resolv_conf(&sb, "nameserver 192.0.2.1\n");
    run_d(&sb, "off", &["--dns", "off"]);
    run_d(&sb, "control", &["--dns", "inherit"]);
    assert_eq!(dns_of(&sb, "off"), serde_json::json!({"mode": "off"}));
    // The busybox image's file is empty.
    assert_eq!(resolv_of(&sb, "off"), "");
    assert_eq!(resolv_of(&sb, "control"), "nameserver 192.0.2.1\n");
    // What the container writes survives a restart: nothing overwrites it.
    for c in ["off", "control"] {
        sb.ok(&[
            "exec",
            c,
            "sh",
            "-c",
            "echo 'nameserver 192.0.2.99' > /etc/resolv.conf",
        ]);
    }
    sb.ok(&["restart", "-t", "0", "off", "control"]);
    assert_eq!(resolv_of(&sb, "off"), "nameserver 192.0.2.99\n");
    assert_eq!(resolv_of(&sb, "control"), "nameserver 192.0.2.1\n");
}

#[test]
fn custom_copies_the_file_at_create_and_writes_it_at_each_start() {
    require_root!();
    let sb = Sandbox::new();
    let file = sb.dir.path().join("my-resolv.conf");
    std::fs::write(&file, "nameserver 192.0.2.53\noptions attempts:1\n").unwrap();
    let mode = format!("custom:{}", file.display());
    sb.ok(&[
        "create", "--name", "c", "--dns", &mode, "busybox", "sleep", "1000",
    ]);
    // The content was taken at create: a later change of the file does not
    // reach the container.
    std::fs::write(&file, "nameserver 192.0.2.54\n").unwrap();
    sb.ok(&["start", "c"]);
    assert_eq!(resolv_of(&sb, "c"), "nameserver 192.0.2.53\noptions attempts:1\n");
    assert_eq!(
        dns_of(&sb, "c"),
        serde_json::json!({"mode": "custom", "resolv_conf": "nameserver 192.0.2.53\noptions attempts:1\n"})
    );
    sb.ok(&["exec", "c", "sh", "-c", "echo scribbled > /etc/resolv.conf"]);
    sb.ok(&["restart", "-t", "0", "c"]);
    assert_eq!(resolv_of(&sb, "c"), "nameserver 192.0.2.53\noptions attempts:1\n");
}

#[test]
fn cell_is_the_default_on_networks() {
    require_root!();
    let sb = Sandbox::new();
    host_resolv_conf(
        &sb,
        "nameserver 192.0.2.1\nsearch corp.example lan\noptions edns0\n",
    );
    network(&sb, "net", "10.60.0.0/24", "fd60::/64");
    run_d(&sb, "n", &["-n", "net"]);
    run_d(&sb, "v", &["-l", "vnet", "-n", "net", "--dns", "cell"]);
    for c in ["n", "v"] {
        assert_eq!(dns_of(&sb, c), serde_json::json!({"mode": "cell"}), "{c}");
        assert_eq!(
            resolv_of(&sb, c),
            "nameserver 127.0.0.11\nsearch corp.example lan\noptions ndots:0\n",
            "{c}"
        );
    }
    // The host driver's default is inherit.
    run_d(&sb, "h", &[]);
    assert_eq!(dns_of(&sb, "h"), serde_json::json!({"mode": "inherit"}));
}

#[test]
fn container_mode_names_the_dns_container_and_starts_it_first() {
    require_root!();
    let sb = Sandbox::new();
    network(&sb, "net", "10.60.0.0/24", "fd60::/64");
    network(&sb, "other", "10.61.0.0/24", "fd61::/64");
    sb.ok(&[
        "create", "--name", "ns", "-n", "other", "-n", "net", "busybox", "sleep", "1000",
    ]);
    let ns = sb.inspect("ns");
    let ns_id = ns["container"]["id"].as_str().unwrap().to_string();
    let on_net = ns["container_endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ep| ep["network_id"] == sb.inspect_network_id("net"))
        .unwrap()
        .clone();
    assert_eq!(ns["container"]["running"], false);

    // The client shares only `net` with ns: its address there is the one.
    run_d(&sb, "client", &["-n", "net", "--dns", "container:ns"]);
    assert_eq!(
        sb.inspect("ns")["container"]["running"],
        true,
        "ns was not started first"
    );
    assert_eq!(
        dns_of(&sb, "client"),
        serde_json::json!({"mode": "container", "container": ns_id})
    );
    assert_eq!(
        resolv_of(&sb, "client"),
        format!("nameserver {}\n", on_net["ip_address"].as_str().unwrap())
    );
    // An IPv6-only client gets ns's IPv6 address.
    run_d(
        &sb,
        "client6",
        &["-n", "net", "-S", "ipv6", "--dns", "container:ns"],
    );
    assert_eq!(
        resolv_of(&sb, "client6"),
        format!("nameserver {}\n", on_net["ip_address6"].as_str().unwrap())
    );

    // Stopped again, ns is started again by the client's next start, and
    // a running ns is left as it is.
    sb.ok(&["stop", "-t", "0", "client", "ns"]);
    assert_eq!(sb.inspect("ns")["container"]["running"], false);
    sb.ok(&["start", "client"]);
    let ns_pid = sb.inspect("ns")["container"]["pid"].clone();
    assert!(ns_pid.is_i64(), "ns was not started: {ns_pid}");
    sb.ok(&["restart", "-t", "0", "client"]);
    assert_eq!(sb.inspect("ns")["container"]["pid"], ns_pid);

    // The DNS container gone, the client's start says so and changes nothing.
    sb.ok(&["stop", "-t", "0", "client"]);
    sb.ok(&["rm", "-f", "ns"]);
    sb.fails(&["start", "client"], "the dns container of 'client'");
    assert_eq!(sb.inspect("client")["container"]["running"], false);
}

impl SandboxExt for Sandbox {
    fn inspect_network_id(&self, name: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["network", "inspect", name])).unwrap();
        v["network"]["id"].clone()
    }
}

trait SandboxExt {
    fn inspect_network_id(&self, name: &str) -> serde_json::Value;
}
