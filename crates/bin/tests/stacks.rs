//! Network stacks (pot's `-S ipv4|ipv6|dual`, issue 9 item 3), end to end:
//! on networks a container gets only its stack's addresses (and with
//! `ipv4` no IPv6 at all inside); on the host's stack a seccomp filter
//! refuses the other family's sockets. Each check that something does not
//! work sits beside one that the same thing works for the other family or
//! for a dual-stack container.

mod common;
use common::*;
use serde_json::Value;

/// A dual-stack network `net` of `net_type` (10.50.0.0/24, fd50::/64).
fn dual_network(sb: &Sandbox, net_type: &str) {
    sb.ok(&[
        "network",
        "create",
        "-t",
        net_type,
        "--subnet",
        "10.50.0.0/24",
        "--subnet6",
        "fd50::/64",
        "net",
    ]);
}

/// `cell run -d --name NAME -J allow.raw_sockets OPTS busybox sleep 1000`
/// (raw sockets for ping).
fn run_d(sb: &Sandbox, name: &str, opts: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name, "-J", "allow.raw_sockets"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["busybox", "sleep", "1000"]);
    sb.ok(&args);
}

/// The only endpoint of a container, as its inspect shows it.
fn endpoint(sb: &Sandbox, container: &str) -> Value {
    let eps = sb.inspect(container)["container_endpoints"].clone();
    assert_eq!(eps.as_array().map(Vec::len), Some(1), "{container}: {eps}");
    eps[0].clone()
}

fn exec(sb: &Sandbox, container: &str, script: &str) -> std::process::Output {
    sb.cell(&["exec", container, "sh", "-c", script])
}

fn exec_ok(sb: &Sandbox, container: &str, script: &str) -> String {
    let out = exec(sb, container, script);
    assert!(
        out.status.success(),
        "{container}: {script}: {}\n{}",
        describe(&out),
        sb.celld_log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether one ping from `container` to `addr` is answered.
fn pings(sb: &Sandbox, container: &str, addr: &str) -> bool {
    let flag = if addr.contains(':') { "-6" } else { "-4" };
    exec(sb, container, &format!("ping {flag} -c 1 -W 3 {addr}"))
        .status
        .success()
}

/// The (driver, network type) pairs a container with a namespace of its
/// own may be on.
const ON_NETWORKS: [(&str, &str); 3] = [("vnet", "bridge"), ("ipnet", "bridge"), ("ipnet", "loopback")];

#[test]
fn ipv4_on_a_dual_network_has_no_ipv6_inside() {
    require_root!();
    for (driver, net_type) in ON_NETWORKS {
        let sb = Sandbox::new();
        dual_network(&sb, net_type);
        run_d(&sb, "peer", &["-l", driver, "-n", "net"]);
        run_d(&sb, "v4", &["-l", driver, "-n", "net", "-S", "ipv4"]);
        let case = format!("{driver} on {net_type}");

        assert_eq!(sb.inspect("v4")["container"]["stack"], "ipv4", "{case}");
        assert_eq!(sb.inspect("peer")["container"]["stack"], "dual", "{case}");
        let ep = endpoint(&sb, "v4");
        assert_eq!(ep["ip_address6"], "", "{case}: {ep}");
        let peer = endpoint(&sb, "peer");
        let (peer4, peer6) = (
            peer["ip_address"].as_str().unwrap().to_string(),
            peer["ip_address6"].as_str().unwrap().to_string(),
        );
        assert!(!peer6.is_empty(), "{case}: {peer}");

        // IPv6 is off in the whole namespace: no address at all, loopback's
        // ::1 and link-local ones included.
        assert_eq!(
            exec_ok(
                &sb,
                "v4",
                "cat /proc/sys/net/ipv6/conf/all/disable_ipv6 /proc/sys/net/ipv6/conf/default/disable_ipv6"
            ),
            "1\n1\n",
            "{case}"
        );
        let v6 = exec_ok(&sb, "v4", "ip -6 -o addr");
        assert_eq!(v6.trim(), "", "{case}: {v6}");
        let v4 = exec_ok(&sb, "v4", "ip -4 -o addr");
        assert!(v4.contains(ep["ip_address"].as_str().unwrap()), "{case}: {v4}");

        // IPv4 works (the positive control); IPv6 does not, though the
        // dual-stack peer reaches the same address.
        assert!(pings(&sb, "v4", &peer4), "{case}: {}", sb.celld_log());
        assert!(!pings(&sb, "v4", &peer6), "{case}: IPv6 from an ipv4 container");
        let v4_ip = ep["ip_address"].as_str().unwrap().to_string();
        assert!(pings(&sb, "peer", &v4_ip), "{case}");
    }
}

#[test]
fn ipv6_on_a_dual_network_has_no_ipv4_but_loopback() {
    require_root!();
    for (driver, net_type) in ON_NETWORKS {
        let sb = Sandbox::new();
        dual_network(&sb, net_type);
        run_d(&sb, "peer", &["-l", driver, "-n", "net"]);
        run_d(&sb, "v6", &["-l", driver, "-n", "net", "-S", "ipv6"]);
        let case = format!("{driver} on {net_type}");

        assert_eq!(sb.inspect("v6")["container"]["stack"], "ipv6", "{case}");
        let ep = endpoint(&sb, "v6");
        assert_eq!(ep["ip_address"], "", "{case}: {ep}");
        let mine6 = ep["ip_address6"].as_str().unwrap().to_string();
        let peer = endpoint(&sb, "peer");
        let (peer4, peer6) = (
            peer["ip_address"].as_str().unwrap().to_string(),
            peer["ip_address6"].as_str().unwrap().to_string(),
        );

        let v4 = exec_ok(&sb, "v6", "ip -4 -o addr");
        let v4: Vec<&str> = v4.lines().collect();
        assert_eq!(v4.len(), 1, "{case}: {v4:?}");
        assert!(
            v4[0].contains("lo") && v4[0].contains("127.0.0.1/8"),
            "{case}: {v4:?}"
        );
        let v6 = exec_ok(&sb, "v6", "ip -6 -o addr");
        assert!(v6.contains(&mine6), "{case}: {v6}");

        // IPv6 works; IPv4 does not, though the dual peer is reached over
        // it by another container.
        assert!(pings(&sb, "v6", &peer6), "{case}: {}", sb.celld_log());
        assert!(pings(&sb, "peer", &mine6), "{case}");
        assert!(!pings(&sb, "v6", &peer4), "{case}: IPv4 from an ipv6 container");
        run_d(&sb, "other", &["-l", driver, "-n", "net"]);
        assert!(pings(&sb, "other", &peer4), "{case}");
    }
}

/// What busybox `nc` says when it tries `addr` port 9 on the host's stack
/// (nothing listens there: a socket that could be made is refused).
fn nc_says(sb: &Sandbox, args: &[&str], addr: &str) -> String {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["busybox", "nc", "-w", "2", addr, "9"]);
    let out = sb.cell(&all);
    assert!(!out.status.success(), "{args:?} {addr}: {}", describe(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const NO_FAMILY: &str = "Address family not supported by protocol";
const REFUSED: &str = "Connection refused";

#[test]
fn host_driver_refuses_the_other_familys_sockets() {
    require_root!();
    let sb = Sandbox::new();
    // Dual (the default): both families make sockets, refused by the port.
    for addr in ["127.0.0.1", "::1"] {
        let said = nc_says(&sb, &[], addr);
        assert!(said.contains(REFUSED), "dual {addr}: {said}");
    }
    let said = nc_says(&sb, &["-S", "ipv4"], "::1");
    assert!(said.contains(NO_FAMILY), "ipv4 ::1: {said}");
    let said = nc_says(&sb, &["-S", "ipv4"], "127.0.0.1");
    assert!(
        said.contains(REFUSED) && !said.contains(NO_FAMILY),
        "ipv4 127.0.0.1: {said}"
    );
    let said = nc_says(&sb, &["-S", "ipv6"], "127.0.0.1");
    assert!(said.contains(NO_FAMILY), "ipv6 127.0.0.1: {said}");
    let said = nc_says(&sb, &["-S", "ipv6"], "::1");
    assert!(
        said.contains(REFUSED) && !said.contains(NO_FAMILY),
        "ipv6 ::1: {said}"
    );

    // An exec into a running host container is filtered as its init is.
    sb.ok(&[
        "run", "-d", "--name", "h4", "-S", "ipv4", "busybox", "sleep", "1000",
    ]);
    assert_eq!(sb.inspect("h4")["container"]["stack"], "ipv4");
    let out = exec(&sb, "h4", "nc -w 2 ::1 9");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(NO_FAMILY),
        "{}",
        describe(&out)
    );
    let out = exec(&sb, "h4", "nc -w 2 127.0.0.1 9");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(REFUSED),
        "{}",
        describe(&out)
    );
}

#[test]
fn celld_config_sets_the_default_stack() {
    require_root!();
    let mut sb = Sandbox::without_celld();
    sb.start_celld_with_config("stack = \"ipv4\"\n");
    dual_network(&sb, "bridge");
    run_d(&sb, "d", &["-l", "vnet", "-n", "net"]);
    assert_eq!(sb.inspect("d")["container"]["stack"], "ipv4");
    assert_eq!(endpoint(&sb, "d")["ip_address6"], "");
    // -S wins over the config.
    run_d(&sb, "e", &["-l", "vnet", "-n", "net", "-S", "dual"]);
    assert_ne!(endpoint(&sb, "e")["ip_address6"], "");
    // The stack is the container's own: a celld with another default
    // keeps it, and starts it with it again.
    sb.kill_celld(libc::SIGTERM);
    sb.start_celld();
    assert_eq!(sb.inspect("d")["container"]["stack"], "ipv4");
    sb.ok(&["restart", "-t", "0", "d"]);
    assert_eq!(
        exec_ok(&sb, "d", "cat /proc/sys/net/ipv6/conf/all/disable_ipv6"),
        "1\n"
    );
    run_d(&sb, "f", &["-l", "vnet", "-n", "net"]);
    assert_eq!(sb.inspect("f")["container"]["stack"], "dual");
}

#[test]
fn celld_refuses_an_unknown_stack_in_its_config() {
    require_root!();
    let sb = Sandbox::without_celld();
    let config = sb.dir.path().join("bad.toml");
    std::fs::write(&config, "stack = \"ipv5\"\n").unwrap();
    let out = sb
        .in_ns(CELLD)
        .arg("--root")
        .arg(sb.dir.path().join("root2"))
        .arg("--socket")
        .arg(sb.dir.path().join("s2.sock"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid config key stack") && stderr.contains("'ipv5'"),
        "{stderr}"
    );
    assert!(!sb.dir.path().join("root2").exists());
}
