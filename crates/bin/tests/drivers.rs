//! The `host` and `disabled` network drivers (seeds 000 and 002), and raw
//! sockets.

mod common;
use common::*;

/// Gives the sandbox an "uplink" like the seed's em0, so the host driver has
/// something beyond `lo` to show.
fn add_uplink(sb: &Sandbox) {
    let out = sb.sh(
        "ip link add em0 type veth peer name em0peer && ip addr add 198.51.100.2/24 dev em0 && ip link set em0 up",
    );
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn host_driver_shares_the_stack_but_cannot_change_it() {
    require_root!();
    let sb = Sandbox::new();
    add_uplink(&sb);
    let links = sb.ok(&["run", "busybox", "ip", "-o", "addr"]);
    assert!(
        links.contains("em0") && links.contains("198.51.100.2/24"),
        "{links}"
    );
    let container_view = sb.ok(&["run", "busybox", "ip", "-o", "link"]);
    let host_view = String::from_utf8_lossy(&sb.sh("ip -o link").stdout).into_owned();
    let names = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&container_view),
        names(&host_view),
        "the host driver must see the host's links"
    );

    let out = sb.cell(&["run", "busybox", "ip", "addr", "add", "127.0.0.3/8", "dev", "lo"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{}",
        describe(&out)
    );
    let addrs = String::from_utf8_lossy(&sb.sh("ip -o addr show dev lo").stdout).into_owned();
    assert!(
        !addrs.contains("127.0.0.3"),
        "the container changed the host: {addrs}"
    );

    sb.fails(
        &["run", "-p", "8080", "busybox"],
        "cannot publish ports of a container using the 'host' network driver",
    );
}

#[test]
fn network_inspect_host_lists_host_driver_containers() {
    require_root!();
    let sb = Sandbox::new();
    let id = sb
        .ok(&["create", "--name", "test3", "busybox", "true"])
        .trim()
        .to_string();
    sb.ok(&[
        "create", "--name", "isolated", "-l", "disabled", "busybox", "true",
    ]);
    let v: serde_json::Value = serde_json::from_str(&sb.ok(&["network", "inspect", "host"])).unwrap();
    assert_eq!(v["network"]["name"], "host");
    assert_eq!(v["network"]["type"], "host");
    let endpoints = v["network_endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1, "{v}");
    assert_eq!(endpoints[0]["container_id"], id.as_str());
    assert_eq!(endpoints[0]["container_name"], "test3");
    assert!(endpoints[0]["epair"].is_null(), "no veth pair in host mode");
    sb.fails(&["network", "inspect", "nosuchnet"], "no such network: nosuchnet");
}

#[test]
fn disabled_driver_has_only_loopback() {
    require_root!();
    let sb = Sandbox::new();
    add_uplink(&sb);
    let links = sb.ok(&["run", "-l", "disabled", "busybox", "ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    // Its own netns is removed when it stops.
    sb.ok(&[
        "run", "-d", "--name", "dis", "-l", "disabled", "busybox", "sleep", "100",
    ]);
    assert!(
        sb.root
            .join("netns")
            .join(sb.inspect("dis")["container"]["id"].as_str().unwrap())
            .exists()
    );
    sb.ok(&["stop", "-t", "0", "dis"]);
    assert_eq!(std::fs::read_dir(sb.root.join("netns")).unwrap().count(), 0);
}

#[test]
fn raw_sockets_are_off_unless_allowed() {
    require_root!();
    let sb = Sandbox::new();
    for driver in ["host", "disabled"] {
        let out = sb.cell(&[
            "run",
            "-l",
            driver,
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "127.0.0.1",
        ]);
        assert_ne!(out.status.code(), Some(0), "{driver}: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("permission denied"),
            "{driver}: {}",
            describe(&out)
        );
        let out = sb.cell(&[
            "run",
            "-l",
            driver,
            "-J",
            "allow.raw_sockets",
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "127.0.0.1",
        ]);
        assert_eq!(out.status.code(), Some(0), "{driver}: {}", describe(&out));
    }
}
