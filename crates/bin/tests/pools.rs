//! Address pools, the `public` network and `network show` (issue 9, items
//! 1, 2 and 6), end to end: blocks carved by size from a small pool, never
//! over another network or the host's addresses, concurrent creations
//! getting different blocks, a clear error and nothing made when the pool
//! is exhausted; `public` present from the first start with no bridge until
//! its first container, reaching an upstream namespace through NAT with no
//! other step, refused by `rm` and left by `prune`; the three formats of
//! `network show`.

mod common;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const UPSTREAM4: &str = "198.51.100.1";
const HOST4: &str = "198.51.100.2";
const UPSTREAM_WEB: u16 = 8080;

/// The CGI upstream's web server runs: it prints the peer it saw.
const WHO_CGI: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\npeer=%s\\n' \"$REMOTE_ADDR\"\n";

fn inspect_network(sb: &Sandbox, name: &str) -> Value {
    let v: Value = serde_json::from_str(&sb.ok(&["network", "inspect", name])).unwrap();
    v["network"].clone()
}

fn subnet_of(sb: &Sandbox, name: &str) -> String {
    inspect_network(sb, name)["subnet"].as_str().unwrap().to_string()
}

fn create(sb: &Sandbox, args: &[&str], name: &str) -> String {
    let mut all = vec!["network", "create"];
    all.extend_from_slice(args);
    all.push(name);
    sb.ok(&all);
    subnet_of(sb, name)
}

fn network_names(sb: &Sandbox) -> Vec<String> {
    let list: Value = serde_json::from_str(&sb.ok(&["network", "ls", "--format", "json"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn blocks_are_carved_by_size_beside_networks_and_the_host_until_the_pool_is_exhausted() {
    require_root!();
    let mut sb = Sandbox::without_celld();
    // An address of the host inside the pool: its /24 is never handed out.
    sb.sh_ok("ip link add hostlan type veth peer name hostlanpeer && ip addr add 10.250.3.7/24 dev hostlan");
    sb.start_celld_with_config("pool = \"10.250.0.0/22\"\npool6 = \"fd00:ce11:1::/48\"\n");
    // public took the first /24 at the first start.
    assert_eq!(subnet_of(&sb, "public"), "10.250.0.0/24");
    // pot's -S 4: a /29, then the next one beside it.
    assert_eq!(
        create(&sb, &["-t", "bridge", "--size", "4"], "a"),
        "10.250.1.0/29"
    );
    let a = inspect_network(&sb, "a");
    assert_eq!(a["gateway"], "10.250.1.1");
    assert_eq!(
        create(&sb, &["-t", "bridge", "--size", "4", "--subnet6", "auto"], "b"),
        "10.250.1.8/29"
    );
    assert_eq!(inspect_network(&sb, "b")["subnet6"], "fd00:ce11:1::/64");
    // A network of its own subnet, beside the pool, is no obstacle.
    create(&sb, &["--subnet", "10.9.0.0/24"], "mine");
    // Without --size: a /24, loopback networks too.
    assert_eq!(create(&sb, &[], "c"), "10.250.2.0/24");
    // 10.250.3.0/24 holds the host's address: the pool has no /24 left.
    let before = sb.link_names();
    let err = sb.fails(
        &["network", "create", "-t", "bridge", "d"],
        "celld's pool 10.250.0.0/22 has no free /24 left for network 'd'",
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!network_names(&sb).contains(&"d".to_string()));
    assert_eq!(sb.link_names(), before);
    // The positive control: a smaller block still fits.
    assert_eq!(
        create(&sb, &["-t", "bridge", "--size", "1"], "e"),
        "10.250.1.16/30"
    );

    // Concurrent creations, all under the create lock: different blocks.
    let spawned: Vec<_> = (0..6)
        .map(|i| {
            sb.spawn_cell(&[
                "network",
                "create",
                "-t",
                "bridge",
                "--size",
                "1",
                &format!("p{i}"),
            ])
        })
        .collect();
    for cell in spawned {
        let finished = cell.finish(Duration::from_secs(30));
        assert_eq!(finished.code, Some(0), "{:?}", finished.stderr);
    }
    let mut blocks: Vec<String> = (0..6).map(|i| subnet_of(&sb, &format!("p{i}"))).collect();
    blocks.push(subnet_of(&sb, "e"));
    blocks.sort();
    blocks.dedup();
    assert_eq!(blocks.len(), 7, "{blocks:?}");
    assert!(blocks.iter().all(|b| b.ends_with("/30")), "{blocks:?}");
}

/// Gives the sandbox an uplink `em0` to an "upstream" namespace at
/// 198.51.100.1 with a default route through it, and a web server there
/// that answers with the peer address it saw.
fn add_upstream(sb: &Sandbox) {
    use std::os::unix::fs::PermissionsExt;
    let www = sb.dir.path().join("www");
    std::fs::create_dir_all(www.join("cgi-bin")).unwrap();
    let cgi = www.join("cgi-bin/who");
    std::fs::write(&cgi, WHO_CGI).unwrap();
    std::fs::set_permissions(&cgi, std::fs::Permissions::from_mode(0o755)).unwrap();
    // `ip netns` keeps its names in /run/netns: a tmpfs private to the
    // sandbox's mount namespace keeps them off the machine.
    sb.sh_ok(&format!(
        "set -e
        mkdir -p /run/netns
        mount -t tmpfs cell-pools-netns /run/netns
        ip netns add upstream
        ip -n upstream link set lo up
        ip link add em0 type veth peer name uplink netns upstream
        ip addr add {HOST4}/24 dev em0
        ip link set em0 up
        ip -n upstream addr add {UPSTREAM4}/24 dev uplink
        ip -n upstream link set uplink up
        ip route add default via {UPSTREAM4}
        ip netns exec upstream busybox httpd -p {UPSTREAM_WEB} -h {}",
        www.display()
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sb
        .sh_ok("ip netns exec upstream busybox netstat -ltn")
        .contains(&format!(":{UPSTREAM_WEB} "))
    {
        assert!(Instant::now() < deadline, "upstream's web server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn has_link(sb: &Sandbox, name: &str) -> bool {
    sb.link_names().iter().any(|l| l == name)
}

#[test]
fn public_works_on_a_fresh_celld_and_has_a_bridge_only_while_used() {
    require_root!();
    let mut sb = Sandbox::new();
    let public = inspect_network(&sb, "public");
    assert_eq!(public["type"], "bridge", "{public}");
    assert_eq!(public["subnet"], "10.192.0.0/24", "{public}");
    assert_eq!(public["gateway"], "10.192.0.1", "{public}");
    let bridge = public["interface"].as_str().unwrap().to_string();
    // No bridge before the first join, nor after a restart with no user.
    assert!(!has_link(&sb, &bridge), "{:?}", sb.link_names());
    sb.kill_celld(libc::SIGTERM);
    sb.start_celld();
    assert!(!has_link(&sb, &bridge), "{:?}", sb.link_names());

    // The network comes online after celld started: NAT follows the
    // default route at the first join.
    add_upstream(&sb);
    sb.ok(&[
        "run", "-d", "--name", "web", "-l", "vnet", "-n", "public", "busybox", "sleep", "1000",
    ]);
    assert!(has_link(&sb, &bridge), "{:?}", sb.link_names());
    let out = sb.cell(&[
        "exec",
        "web",
        "sh",
        "-c",
        &format!("printf 'GET /cgi-bin/who HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {UPSTREAM4} {UPSTREAM_WEB}"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("peer=") && l.trim_end().trim_end_matches(']').ends_with(HOST4)),
        "upstream should see the host's address (NAT): {}\n{}",
        describe(&out),
        sb.celld_log()
    );
    assert_eq!(inspect_network(&sb, "public")["nat"], "em0");

    // The bridge stays while celld runs; a restart with no running
    // container on public removes it.
    sb.ok(&["stop", "-t", "0", "web"]);
    assert!(has_link(&sb, &bridge));
    sb.kill_celld(libc::SIGTERM);
    sb.start_celld();
    assert!(!has_link(&sb, &bridge), "{:?}", sb.link_names());
    // And a start brings it back.
    sb.ok(&["start", "web"]);
    assert!(has_link(&sb, &bridge));
}

#[test]
fn rm_refuses_public_and_prune_leaves_it() {
    require_root!();
    let sb = Sandbox::new();
    let id = inspect_network(&sb, "public")["id"].as_str().unwrap().to_string();
    let err = sb.fails(
        &["network", "rm", "public"],
        "'public' is celld's predefined network",
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    sb.fails(&["network", "rm", &id], "cannot be removed");
    // prune removes the unused network beside it (the positive control),
    // never public.
    sb.ok(&["network", "create", "-t", "bridge", "--size", "2", "spare"]);
    let spare = inspect_network(&sb, "spare")["id"].as_str().unwrap().to_string();
    assert_eq!(sb.ok(&["network", "prune"]).trim(), spare);
    assert_eq!(network_names(&sb), ["public"]);
    assert_eq!(inspect_network(&sb, "public")["id"], id.as_str());
}

#[test]
fn network_show_prints_the_map_as_text_json_and_dot() {
    require_root!();
    let sb = Sandbox::new();
    sb.add_default_uplink();
    sb.ok(&["network", "create", "-t", "bridge", "--size", "4", "lan"]);
    sb.ok(&[
        "run", "-d", "--name", "web", "-l", "vnet", "-n", "lan", "-p", "8080:80", "busybox", "sleep", "1000",
    ]);
    sb.ok(&["create", "--name", "db", "-n", "lan", "busybox", "true"]);

    // text
    let text = sb.ok(&["network", "show"]);
    assert!(text.starts_with("pool   10.192.0.0/10\npool6  fd"), "{text}");
    for needle in [
        "network public (bridge on cellpub, predefined",
        "network lan (bridge on cell0, NAT via em0)\n  10.192.1.0/29  (from the pool)\n",
        "    10.192.1.0  network\n    10.192.1.1  gateway\n    10.192.1.2  web\n    10.192.1.3  db\n    10.192.1.7  broadcast\n  3 free\n",
        "  253 free\n",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from\n{text}");
    }
    let one = sb.ok(&["network", "show", "lan"]);
    assert!(
        one.contains("network lan") && !one.contains("network public"),
        "{one}"
    );

    // json
    let json: Value = serde_json::from_str(&sb.ok(&["network", "show", "--format", "json"])).unwrap();
    assert_eq!(json["pool"], "10.192.0.0/10");
    let lan = json["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "lan")
        .unwrap();
    assert_eq!(lan["subnet"], "10.192.1.0/29");
    assert_eq!(
        (&lan["from_pool"], &lan["predefined"]),
        (&true.into(), &false.into())
    );
    assert_eq!(lan["free"], 3);
    let roles: Vec<(&str, &str, &str)> = lan["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["address"].as_str().unwrap(),
                a["role"].as_str().unwrap(),
                a["container"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("10.192.1.0", "network", ""),
            ("10.192.1.1", "gateway", ""),
            ("10.192.1.2", "container", "web"),
            ("10.192.1.3", "container", "db"),
            ("10.192.1.7", "broadcast", ""),
        ]
    );
    let web = json["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "web")
        .unwrap();
    assert_eq!(web["ports"][0]["host_port"], 8080);
    assert!(
        json["host_interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "em0" && i["addresses"][0] == "198.51.100.2/24"),
        "{json}"
    );

    // dot
    let dot = sb.ok(&["network", "show", "--format", "dot"]);
    for needle in [
        "digraph cell {",
        "\"if:em0\"",
        "\"net:lan\" -> \"if:em0\" [label=\"NAT\"",
        "\"ctr:web\" -> \"net:lan\" [dir=none, label=\"10.192.1.2\"]",
        "\"port:web:*:8080/tcp\" -> \"ctr:web\"",
    ] {
        assert!(dot.contains(needle), "{needle:?} missing from\n{dot}");
    }
    let has_graphviz = std::process::Command::new("dot").arg("-V").output().is_ok();
    if has_graphviz {
        let path = sb.dir.path().join("cell.dot");
        std::fs::write(&path, &dot).unwrap();
        let svg = std::process::Command::new("dot")
            .args(["-Tsvg", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(svg.status.success(), "dot -Tsvg: {}", describe(&svg));
        assert!(String::from_utf8_lossy(&svg.stdout).contains("<svg"));
    } else {
        eprintln!("graphviz is not installed: the dot output is checked structurally only");
        assert_eq!(dot.matches('{').count(), dot.matches('}').count());
    }

    // An unknown network or format: one line, nothing printed.
    sb.fails(&["network", "show", "nosuch"], "nosuch");
    sb.fails(&["network", "show", "--format", "yaml"], "'yaml'");
}
