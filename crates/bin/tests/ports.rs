//! Published ports end to end (issue 8): every way a client reaches a
//! published port (from outside, the host's own addresses, 127.0.0.1 and
//! [::1], the same network and another one), the client's address as the
//! container sees it, UDP, ranges, automatic ports, a port bound to one
//! host address, `cell port add|rm` on a running container, stop and
//! start, a celld restart and a simulated reboot, `rm` leaving nothing,
//! the host-side reservation, and concurrent automatic ports.
//!
//! The sandbox gets an "upstream" namespace as in `traffic.rs`: the outside
//! world behind `em0` (198.51.100.1 and 2001:db8:100::1; the host is .2 and
//! ::2). Containers serve busybox's httpd with a CGI that answers with the
//! peer address it saw; clients are busybox's `nc` with a 2 s timeout.

mod common;
use common::*;
use std::process::Output;
use std::time::{Duration, Instant};

const UPSTREAM4: &str = "198.51.100.1";
const UPSTREAM6: &str = "2001:db8:100::1";
const HOST4: &str = "198.51.100.2";
const HOST6: &str = "2001:db8:100::2";
/// The port the containers' web server listens on.
const WEB: u16 = 80;

/// A sandbox with an upstream namespace, celld running, and a dual-stack
/// bridge network `front` (NAT through em0) plus a loopback network `back`.
fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.sh_ok(&format!(
        "set -e
        mkdir -p /run/netns
        mount -t tmpfs cell-ports-netns /run/netns
        ip netns add upstream
        ip -n upstream link set lo up
        ip link add em0 type veth peer name uplink netns upstream
        ip addr add {HOST4}/24 dev em0
        ip addr add {HOST6}/64 dev em0 nodad
        ip link set em0 up
        ip -n upstream addr add {UPSTREAM4}/24 dev uplink
        ip -n upstream addr add {UPSTREAM6}/64 dev uplink nodad
        ip -n upstream link set uplink up
        ip route add default via {UPSTREAM4}
        ip -6 route add default via {UPSTREAM6}"
    ));
    sb.ok(&[
        "network",
        "create",
        "-t",
        "bridge",
        "--subnet",
        "10.10.0.0/24",
        "--subnet6",
        "fd00:10::/64",
        "front",
    ]);
    sb.ok(&["network", "create", "--subnet", "10.20.0.0/24", "back"]);
    sb
}

/// `cell run -d --name NAME -n NETWORK EXTRA... busybox sleep 1000`, then
/// its web server on port 80 (started with `exec -d`, so a restart of
/// the container needs [`serve`] again).
fn web(sb: &Sandbox, name: &str, network: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name, "-n", network];
    args.extend_from_slice(extra);
    args.extend(["busybox", "sleep", "1000"]);
    sb.ok(&args);
    serve(sb, name);
}

/// Starts the "who am I" web server in container `name`.
fn serve(sb: &Sandbox, name: &str) {
    sb.ok(&[
        "exec",
        name,
        "sh",
        "-c",
        "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho peer=$REMOTE_ADDR\\n' \
         > /www/cgi-bin/who && chmod 755 /www/cgi-bin/who",
    ]);
    sb.ok(&[
        "exec",
        "-d",
        name,
        "httpd",
        "-f",
        "-p",
        &WEB.to_string(),
        "-h",
        "/www",
    ]);
    wait_until(&format!("{name}'s web server"), || {
        let out = sb.cell(&["exec", name, "netstat", "-ltn"]);
        String::from_utf8_lossy(&out.stdout).contains(&format!(":{WEB} "))
    });
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where a client runs.
#[derive(Clone, Copy, Debug)]
enum Client<'a> {
    Upstream,
    Host,
    Container(&'a str),
}

/// Asks the web server behind `addr:port` who it saw; `Err` with what
/// `nc` said when it could not connect (2 s). (busybox's static `wget`
/// crashes here, so the request is written by hand, as in traffic.rs.)
fn who(sb: &Sandbox, from: Client<'_>, addr: &str, port: u16) -> Result<String, String> {
    let request =
        |nc: &str| format!("printf 'GET /cgi-bin/who HTTP/1.0\\r\\n\\r\\n' | {nc} -w 2 {addr} {port}");
    let out: Output = match from {
        Client::Upstream => sb.sh(&format!(
            "ip netns exec upstream sh -c \"{}\"",
            request("busybox nc")
        )),
        Client::Host => sb.sh(&request("busybox nc")),
        Client::Container(name) => sb.cell(&["exec", name, "sh", "-c", &request("nc")]),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("peer="))
        .map(|peer| {
            let peer = peer.trim().trim_start_matches('[').trim_end_matches(']');
            peer.strip_prefix("::ffff:").unwrap_or(peer).to_string()
        })
        .ok_or_else(|| describe(&out))
}

/// [`who`], which must succeed. It is tried three times: on this shared
/// machine a first contact (neighbour discovery on a fresh bridge port)
/// under load can take longer than one 2 s attempt.
fn who_ok(sb: &Sandbox, from: Client<'_>, addr: &str, port: u16) -> String {
    let mut last = String::new();
    for _ in 0..3 {
        match who(sb, from, addr, port) {
            Ok(peer) => return peer,
            Err(e) => last = e,
        }
    }
    panic!("{from:?} cannot reach {addr}:{port}: {last}\n{}", diagnose(sb))
}

fn assert_unreachable(sb: &Sandbox, from: Client<'_>, addr: &str, port: u16) {
    if let Ok(peer) = who(sb, from, addr, port) {
        panic!(
            "{from:?} reached {addr}:{port} (seen as {peer})\n{}",
            diagnose(sb)
        );
    }
}

fn diagnose(sb: &Sandbox) -> String {
    let out = sb.sh("ip -br addr; ip route; ip -6 route; nft list ruleset");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The container's address on its first network.
fn address(sb: &Sandbox, name: &str, key: &str) -> String {
    sb.inspect(name)["container_endpoints"][0][key]
        .as_str()
        .unwrap()
        .to_string()
}

/// `cell port NAME`, line by line.
fn port_lines(sb: &Sandbox, name: &str) -> Vec<String> {
    sb.ok(&["port", name]).lines().map(str::to_string).collect()
}

/// The host port `cell inspect` shows for the mapping to `container_port`.
fn host_port(sb: &Sandbox, name: &str, container_port: u16, protocol: &str) -> u16 {
    let c = sb.inspect(name);
    let ports = c["container"]["public_ports"].as_array().unwrap();
    ports
        .iter()
        .find(|p| p["container_port"] == container_port && p["protocol"] == protocol)
        .and_then(|p| p["host_port"].as_u64())
        .unwrap_or_else(|| panic!("no {container_port}/{protocol} in {ports:?}")) as u16
}

/// cell's nftables tables as text.
fn cell_tables(sb: &Sandbox) -> String {
    sb.sh_ok("nft list table inet cell; nft list table bridge cell")
}

/// Whether a host process can bind TCP `port` (it listens for a second).
fn host_can_bind(sb: &Sandbox, port: u16) -> bool {
    let out = sb.sh(&format!("timeout 1 busybox nc -l -p {port}"));
    // 124: still listening when the timeout ended it, so the bind worked.
    match out.status.code() {
        Some(124) => true,
        Some(_) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("in use"),
                "unexpected failure: {}",
                describe(&out)
            );
            false
        }
        None => panic!("nc was killed: {}", describe(&out)),
    }
}

#[test]
fn a_published_port_answers_from_everywhere_and_sees_outside_clients() {
    require_root!();
    let sb = sandbox();
    web(&sb, "web", "front", &["-p", "18080:80"]);
    let ip = address(&sb, "web", "ip_address");
    let ip6 = address(&sb, "web", "ip_address6");

    // From outside, on IPv4 and IPv6: the container sees the real client.
    assert_eq!(who_ok(&sb, Client::Upstream, HOST4, 18080), UPSTREAM4);
    assert_eq!(who_ok(&sb, Client::Upstream, HOST6, 18080), UPSTREAM6);
    // From the host itself, on its own addresses and on loopback.
    who_ok(&sb, Client::Host, HOST4, 18080);
    who_ok(&sb, Client::Host, HOST6, 18080);
    who_ok(&sb, Client::Host, "127.0.0.1", 18080);
    // From a container on the same network (hairpin) and on another one,
    // through the host's address.
    sb.ok(&[
        "run",
        "-d",
        "--name",
        "neighbour",
        "-n",
        "front",
        "busybox",
        "sleep",
        "1000",
    ]);
    sb.ok(&[
        "run",
        "-d",
        "--name",
        "elsewhere",
        "-n",
        "back",
        "busybox",
        "sleep",
        "1000",
    ]);
    who_ok(&sb, Client::Container("neighbour"), HOST4, 18080);
    who_ok(&sb, Client::Container("elsewhere"), HOST4, 18080);

    // pot's lines, one per forward (IPv4 and IPv6 for a dual-stack container).
    assert_eq!(
        port_lines(&sb, "web"),
        [
            format!("0.0.0.0 port 18080 -> {ip} port 80/tcp"),
            format!(":: port 18080 -> {ip6} port 80/tcp"),
        ]
    );
    let lsc = sb.ok(&["lsc"]);
    assert!(lsc.contains("PORTS") && lsc.contains("18080->80/tcp"), "{lsc}");
}

#[test]
fn automatic_ranges_udp_and_a_host_address() {
    require_root!();
    let sb = sandbox();
    web(
        &sb,
        "web",
        "front",
        &[
            "-p",
            ":80",
            "-p",
            "127.0.0.1:18081:80",
            "-p",
            "18100-18101:5000-5001/udp",
        ],
    );
    // The automatic port is recorded, shown, and answers.
    let auto = host_port(&sb, "web", 80, "tcp");
    assert_ne!(auto, 18081);
    let (low, high) = {
        let range = sb.sh_ok("cat /proc/sys/net/ipv4/ip_local_port_range");
        let mut n = range.split_whitespace().map(|n| n.parse::<u16>().unwrap());
        (n.next().unwrap(), n.next().unwrap())
    };
    assert!((low..=high).contains(&auto), "{auto} outside {low}-{high}");
    assert!(port_lines(&sb, "web")[0].starts_with(&format!("0.0.0.0 port {auto} -> ")));
    assert_eq!(who_ok(&sb, Client::Upstream, HOST4, auto), UPSTREAM4);

    // Bound to 127.0.0.1: reachable there, not on the host's other
    // addresses, while the wildcard port answers there (positive control).
    who_ok(&sb, Client::Host, "127.0.0.1", 18081);
    assert_unreachable(&sb, Client::Host, HOST4, 18081);
    assert_unreachable(&sb, Client::Upstream, HOST4, 18081);
    who_ok(&sb, Client::Host, HOST4, auto);

    // UDP over a range: 18101 -> 5001, the client's address preserved.
    let (peer, data) = udp_round(&sb, "web", 5001, 18101);
    assert_eq!((peer.as_str(), data.as_str()), (UPSTREAM4, "over-udp"));
}

/// Path of the network namespace file `path` of the sandbox's mount
/// namespace, as the test process can open it.
fn sandbox_path(sb: &Sandbox, path: &std::path::Path) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/{}/root{}", sb.holder, path.display()))
}

/// Runs `f` on a thread inside the network namespace at `netns`.
fn in_netns<T: Send + 'static>(
    netns: std::path::PathBuf,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    use std::os::fd::AsRawFd;
    std::thread::spawn(move || {
        let file = std::fs::File::open(&netns).unwrap();
        // SAFETY: changes only this thread's network namespace.
        let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(entered, 0, "setns {}", netns.display());
        f()
    })
}

/// A UDP datagram from upstream to the host's HOST4:`host_port`, received
/// in container `name` on `port` (busybox's nc has no UDP, so the test's
/// own threads, each in its namespace, send and receive): the sender as
/// the container saw it, and the text.
fn udp_round(sb: &Sandbox, name: &str, port: u16, host_port: u16) -> (String, String) {
    use std::net::UdpSocket;
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let server = in_netns(sandbox_path(sb, &sb.netns_path(name)), move || {
        let socket = UdpSocket::bind(("0.0.0.0", port)).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        bound_tx.send(()).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = socket.recv_from(&mut buf).expect("a datagram within 10 s");
        (
            from.ip().to_string(),
            String::from_utf8_lossy(&buf[..n]).into_owned(),
        )
    });
    bound_rx.recv().unwrap();
    let upstream = sandbox_path(sb, std::path::Path::new("/run/netns/upstream"));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let client = in_netns(upstream, move || {
        let socket = UdpSocket::bind(("0.0.0.0", 0)).unwrap();
        // Again until the server has it: the first may race the forward.
        loop {
            socket.send_to(b"over-udp", (HOST4, host_port)).unwrap();
            if done_rx.recv_timeout(Duration::from_millis(200)).is_ok() {
                return;
            }
        }
    });
    let got = server.join().unwrap();
    done_tx.send(()).unwrap();
    client.join().unwrap();
    got
}

#[test]
fn ports_change_live_and_follow_the_container_through_stop_restart_and_reboot() {
    require_root!();
    let mut sb = sandbox();
    web(&sb, "web", "front", &["-p", "18080:80"]);
    let ip = address(&sb, "web", "ip_address");
    assert_unreachable(&sb, Client::Upstream, HOST4, 18082);

    // add and rm on a running container take effect at once.
    let added = sb.ok(&["port", "add", "web", "18082:80"]);
    assert_eq!(added.trim(), "18082:80/tcp");
    who_ok(&sb, Client::Upstream, HOST4, 18082);
    let removed = sb.ok(&["port", "rm", "web", "18080"]);
    assert_eq!(removed.trim(), "18080:80/tcp");
    assert_unreachable(&sb, Client::Upstream, HOST4, 18080);
    who_ok(&sb, Client::Upstream, HOST4, 18082);
    assert!(host_can_bind(&sb, 18080), "a port given up is free again");

    // Stop closes it (it stays reserved); start opens it again.
    sb.ok(&["stop", "-t", "0", "web"]);
    assert!(!cell_tables(&sb).contains("18082"), "{}", cell_tables(&sb));
    assert!(!host_can_bind(&sb, 18082), "reserved while stopped");
    sb.ok(&["start", "web"]);
    serve(&sb, "web");
    who_ok(&sb, Client::Upstream, HOST4, 18082);

    // A celld restart: the forward and the reservation are still there.
    sb.kill_celld(libc::SIGKILL);
    sb.start_celld();
    who_ok(&sb, Client::Upstream, HOST4, 18082);
    assert!(!host_can_bind(&sb, 18082), "reserved again after a restart");

    // A simulated reboot: links and tables gone, celld starts again.
    sb.kill_celld(libc::SIGTERM);
    sb.sh_ok(
        "ip link del cell0 && for l in $(ip -o link | grep -o 'cv[0-9a-f]\\{12\\}' | sort -u); \
         do ip link del $l; done && nft delete table inet cell && nft delete table bridge cell",
    );
    sb.start_celld();
    who_ok(&sb, Client::Upstream, HOST4, 18082);
    who_ok(&sb, Client::Host, "127.0.0.1", 18082);

    // rm leaves nothing: no element names the port or the address.
    let tables = cell_tables(&sb);
    assert!(
        tables.contains("18082") && tables.contains(&ip),
        "positive control: {tables}"
    );
    sb.ok(&["rm", "-f", "web"]);
    let tables = cell_tables(&sb);
    assert!(!tables.contains("18082") && !tables.contains(&ip), "{tables}");
    assert!(
        host_can_bind(&sb, 18082),
        "the reservation went with the container"
    );
}

#[test]
fn host_processes_and_published_ports_never_share_a_port() {
    require_root!();
    let sb = sandbox();
    sb.ok(&[
        "run", "-d", "--name", "web", "-n", "front", "-p", "18080:80", "busybox", "sleep", "1000",
    ]);
    // A host process cannot bind a published port; another port it can.
    assert!(!host_can_bind(&sb, 18080));
    assert!(host_can_bind(&sb, 18090));
    // A port a host process listens on cannot be published.
    sb.sh_ok("busybox nc -l -p 18091 >/dev/null 2>&1 </dev/null & echo started");
    wait_until("the host's listener", || {
        sb.sh_ok("busybox netstat -ltn").contains(":18091 ")
    });
    sb.fails(
        &[
            "run", "-d", "--name", "other", "-n", "front", "-p", "18091:80", "busybox",
        ],
        "host port 18091/tcp is in use by a process of the host",
    );
    sb.fails(
        &[
            "run",
            "-d",
            "--name",
            "other",
            "-n",
            "front",
            "-p",
            "127.0.0.1:18080:80",
            "busybox",
        ],
        "host port 127.0.0.1:18080/tcp is already published by container 'web'",
    );
    assert_eq!(sb.container_count(), 1, "nothing was created");
}

#[test]
fn concurrent_automatic_ports_are_all_distinct() {
    require_root!();
    let sb = sandbox();
    let children: Vec<_> = (0..6)
        .map(|i| {
            sb.in_ns(CELL)
                .args(["-H", &format!("unix://{}", sb.socket.display())])
                .args([
                    "create",
                    "--name",
                    &format!("c{i}"),
                    "-n",
                    "front",
                    "-p",
                    ":80",
                    "busybox",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", describe(&out));
    }
    let mut ports: Vec<u16> = (0..6)
        .map(|i| host_port(&sb, &format!("c{i}"), 80, "tcp"))
        .collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 6, "{ports:?}");
}

#[test]
fn a_published_port_answers_on_the_hosts_ipv6_loopback() {
    require_root!();
    let sb = sandbox();
    web(&sb, "web", "front", &["-p", "18080:80"]);
    // Positive control: the same port on 127.0.0.1.
    who_ok(&sb, Client::Host, "127.0.0.1", 18080);
    who_ok(&sb, Client::Host, "::1", 18080);
}
