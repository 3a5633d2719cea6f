//! The plugin end to end: `cell-cni` run directly with the CNI variables
//! inside a sandbox (see `common`), pods being named network namespaces.
//! Each network type, the result versions, traffic (between pods, NAT to
//! upstream, icc, internal, anti-spoofing, each with its positive
//! control), DEL and GC leaving nothing, parallel ADDs, CHECK and STATUS,
//! and bad calls that are CNI errors and change nothing.

mod common;
use common::*;
use serde_json::json;
use std::collections::HashSet;

/// The pod's view of its interface: `ip -o addr show IFNAME` lines.
fn addresses(sb: &Sandbox, pod: &str, ifname: &str) -> String {
    sb.in_pod_ok(pod, &format!("ip -o addr show {ifname}"))
}

#[test]
fn a_bridge_vnet_pod_gets_the_subnets_mask_and_a_default_route_and_del_leaves_nothing() {
    require_root!();
    let sb = Sandbox::new();
    let conf = conf(
        &sb,
        json!({"network": "bridge", "driver": "vnet", "interface": "cni-br0", "subnet": "10.88.0.0/24"}),
    );
    let netns = sb.pod("pod1");
    let result = sb.cni("ADD", &conf, "c1", "eth0", Some(&netns)).ok();
    assert_eq!(result["cniVersion"], "1.1.0");
    assert_eq!(result["ips"][0]["address"], "10.88.0.2/24");
    assert_eq!(result["ips"][0]["gateway"], "10.88.0.1");
    let interfaces = result["interfaces"].as_array().unwrap();
    assert_eq!(interfaces[0]["name"], "cni-br0");
    assert_eq!(interfaces[2]["name"], "eth0");
    assert_eq!(interfaces[2]["sandbox"], netns);
    assert_eq!(result["ips"][0]["interface"], 2);
    assert_eq!(result["routes"], json!([{"dst": "0.0.0.0/0", "gw": "10.88.0.1"}]));
    assert!(addresses(&sb, "pod1", "eth0").contains("inet 10.88.0.2/24"));
    assert!(
        sb.in_pod_ok("pod1", "ip route")
            .contains("default via 10.88.0.1 dev eth0")
    );
    let mac = sb.in_pod_ok("pod1", "cat /sys/class/net/eth0/address");
    assert_eq!(interfaces[2]["mac"], mac.trim());
    // The pod reaches its gateway (the host) with its own address.
    assert_eq!(sb.who("pod1", "10.88.0.1").as_deref(), Some("10.88.0.2"));
    assert_eq!(sb.leases(), ["pods|c1|eth0|10.88.0.2|"]);

    let mut with_prev = conf.clone();
    with_prev["prevResult"] = result.clone();
    sb.cni("CHECK", &with_prev, "c1", "eth0", Some(&netns)).ok();

    sb.cni("DEL", &with_prev, "c1", "eth0", Some(&netns)).ok();
    assert!(!sb.in_pod_ok("pod1", "ip -o link").contains("eth0"));
    sb.assert_nothing_left();
    // Idempotent: again, and with CNI_NETNS empty, and with no netns at all.
    sb.cni("DEL", &with_prev, "c1", "eth0", Some(&netns)).ok();
    sb.cni("DEL", &conf, "c1", "eth0", Some("")).ok();
    sb.cni("DEL", &conf, "c1", "eth0", None).ok();
    sb.assert_nothing_left();
}

#[test]
fn results_come_in_the_version_the_configuration_asks_for() {
    require_root!();
    let sb = Sandbox::new();
    for (i, version) in ["0.4.0", "1.0.0", "1.1.0"].iter().enumerate() {
        let mut conf = conf(&sb, json!({"subnet": "10.88.0.0/24", "subnet6": "fd00:88::/64"}));
        conf["cniVersion"] = json!(version);
        let pod = format!("pod{i}");
        let netns = sb.pod(&pod);
        let result = sb.cni("ADD", &conf, &pod, "eth0", Some(&netns)).ok();
        assert_eq!(result["cniVersion"], *version);
        let ips = result["ips"].as_array().unwrap();
        assert_eq!(ips.len(), 2, "{result}");
        if *version == "0.4.0" {
            assert_eq!(ips[0]["version"], "4", "{result}");
            assert_eq!(ips[1]["version"], "6", "{result}");
        } else {
            assert!(ips.iter().all(|ip| ip.get("version").is_none()), "{result}");
        }
        let mut with_prev = conf.clone();
        with_prev["prevResult"] = result;
        sb.cni("CHECK", &with_prev, &pod, "eth0", Some(&netns)).ok();
    }
    let version = sb
        .cni("VERSION", &json!({"cniVersion": "1.0.0"}), "", "", None)
        .ok();
    assert_eq!(version["cniVersion"], "1.0.0");
    assert_eq!(
        version["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
    let err = sb.cni(
        "ADD",
        &json!({"cniVersion": "2.0.0", "name": "pods", "subnet": "10.1.0.0/24"}),
        "c",
        "eth0",
        Some("/run/netns/pod0"),
    );
    err.error(1, "2.0.0");
}

#[test]
fn pods_talk_to_each_other_and_reach_upstream_through_nat() {
    require_root!();
    let sb = Sandbox::new();
    let conf = conf(&sb, json!({"subnet": "10.88.0.0/24"}));
    let (p1, p2) = (sb.pod("pod1"), sb.pod("pod2"));
    sb.cni("ADD", &conf, "c1", "eth0", Some(&p1)).ok();
    sb.cni("ADD", &conf, "c2", "eth0", Some(&p2)).ok();
    let www = sb.dir.path().join("www");
    sb.sh_ok(&format!(
        "ip netns exec pod2 busybox httpd -p {WEB} -h {}",
        www.display()
    ));
    wait_until("pod2's web server", std::time::Duration::from_secs(10), || {
        sb.in_pod_ok("pod2", "busybox netstat -ltn")
            .contains(&format!(":{WEB} "))
    });
    assert_eq!(
        sb.who("pod1", "10.88.0.3").as_deref(),
        Some("10.88.0.2"),
        "pod to pod"
    );
    assert_eq!(
        sb.who("pod1", UPSTREAM4).as_deref(),
        Some(HOST4),
        "NATed to upstream"
    );

    // Without NAT the pod's own address goes out, and upstream has no
    // route back to it: the same request gets no answer.
    let no_nat = common::conf(
        &sb,
        json!({"name": "flat", "interface": "cni-flat", "subnet": "10.89.0.0/24", "nat": false}),
    );
    let p3 = sb.pod("pod3");
    sb.cni("ADD", &no_nat, "c3", "eth0", Some(&p3)).ok();
    assert_eq!(
        sb.who("pod3", "10.89.0.1").as_deref(),
        Some("10.89.0.2"),
        "the pod is up"
    );
    assert_eq!(sb.who("pod3", UPSTREAM4), None, "no NAT");
    sb.sh_ok("ip -n upstream route add 10.89.0.0/24 via 198.51.100.2");
    assert_eq!(
        sb.who("pod3", UPSTREAM4).as_deref(),
        Some("10.89.0.2"),
        "routed, not NATed"
    );
}

#[test]
fn icc_off_cuts_pods_apart_and_internal_cuts_them_off_the_outside() {
    require_root!();
    let sb = Sandbox::new();
    let www = sb.dir.path().join("www");
    let serve = |pod: &str| {
        sb.sh_ok(&format!(
            "ip netns exec {pod} busybox httpd -p {WEB} -h {}",
            www.display()
        ));
        wait_until("a pod's web server", std::time::Duration::from_secs(10), || {
            sb.in_pod_ok(pod, "busybox netstat -ltn")
                .contains(&format!(":{WEB} "))
        });
    };
    let no_icc = conf(
        &sb,
        json!({"name": "noicc", "interface": "cni-noicc", "subnet": "10.88.0.0/24", "icc": false}),
    );
    let (a, b) = (sb.pod("a"), sb.pod("b"));
    sb.cni("ADD", &no_icc, "a", "eth0", Some(&a)).ok();
    sb.cni("ADD", &no_icc, "b", "eth0", Some(&b)).ok();
    serve("b");
    assert_eq!(
        sb.who("a", "10.88.0.1").as_deref(),
        Some("10.88.0.2"),
        "the gateway is reachable"
    );
    assert_eq!(
        sb.who("a", UPSTREAM4).as_deref(),
        Some(HOST4),
        "upstream is reachable"
    );
    assert_eq!(sb.who("a", "10.88.0.3"), None, "icc off: pod to pod is cut");

    let internal = conf(
        &sb,
        json!({"name": "inner", "interface": "cni-inner", "subnet": "10.89.0.0/24", "internal": true}),
    );
    let (c, d) = (sb.pod("c"), sb.pod("d"));
    sb.cni("ADD", &internal, "c", "eth0", Some(&c)).ok();
    sb.cni("ADD", &internal, "d", "eth0", Some(&d)).ok();
    serve("d");
    assert_eq!(
        sb.who("c", "10.89.0.3").as_deref(),
        Some("10.89.0.2"),
        "inside the network"
    );
    assert_eq!(sb.who("c", UPSTREAM4), None, "internal: nothing leaves");
    // Networks are cut off from each other.
    assert_eq!(sb.who("c", "10.88.0.3"), None, "between networks");
}

#[test]
fn a_pod_cannot_send_from_an_address_it_was_not_given() {
    require_root!();
    let sb = Sandbox::new();
    // A second address, and the subnet's route made to send from it.
    let spoof = "ip addr add {ip}/24 dev eth0 && ip route replace {net}.0/24 dev eth0 src {ip}";
    for (name, subnet, antispoof, expect) in [
        ("guarded", "10.88.0", true, None),
        ("open", "10.89.0", false, Some("10.89.0.99")),
    ] {
        let conf = conf(
            &sb,
            json!({"name": name, "interface": format!("cni-{name}"), "subnet": format!("{subnet}.0/24"), "antispoof": antispoof}),
        );
        let netns = sb.pod(name);
        sb.cni("ADD", &conf, name, "eth0", Some(&netns)).ok();
        let gw = format!("{subnet}.1");
        assert_eq!(
            sb.who(name, &gw),
            Some(format!("{subnet}.2")),
            "{name}: its own address passes"
        );
        let ip = format!("{subnet}.99");
        sb.in_pod_ok(name, &spoof.replace("{ip}", &ip).replace("{net}", subnet));
        assert_eq!(sb.who(name, &gw).as_deref(), expect, "{name}: a taken address");
    }
}

#[test]
fn a_loopback_ipnet_pod_holds_a_routed_host_address() {
    require_root!();
    let sb = Sandbox::new();
    let conf = conf(
        &sb,
        json!({"network": "loopback", "subnet": "10.90.0.0/24", "subnet6": "fd00:90::/64"}),
    );
    let (p1, p2) = (sb.pod("pod1"), sb.pod("pod2"));
    let result = sb.cni("ADD", &conf, "c1", "net1", Some(&p1)).ok();
    sb.cni("ADD", &conf, "c2", "net1", Some(&p2)).ok();
    assert_eq!(result["ips"][0]["address"], "10.90.0.1/32", "{result}");
    assert_eq!(result["ips"][1]["address"], "fd00:90::1/128", "{result}");
    assert!(!sb.link_names().iter().any(|l| l.contains("br")), "no bridge");
    let addrs = addresses(&sb, "pod1", "net1");
    assert!(addrs.contains("inet 10.90.0.1/32"), "{addrs}");
    assert!(sb.in_pod_ok("pod1", "ip route").contains("default dev net1"));
    assert_eq!(sb.who("pod1", UPSTREAM4).as_deref(), Some(HOST4), "NATed out");
    let www = sb.dir.path().join("www");
    sb.sh_ok(&format!(
        "ip netns exec pod2 busybox httpd -p {WEB} -h {}",
        www.display()
    ));
    wait_until("pod2's web server", std::time::Duration::from_secs(10), || {
        sb.in_pod_ok("pod2", "busybox netstat -ltn")
            .contains(&format!(":{WEB} "))
    });
    assert_eq!(
        sb.who("pod1", "10.90.0.2").as_deref(),
        Some("10.90.0.1"),
        "routed pod to pod"
    );
    assert_eq!(
        sb.who("pod1", "fd00:90::2").as_deref(),
        Some("fd00:90::1"),
        "and over IPv6"
    );
    sb.cni("DEL", &conf, "c1", "net1", Some(&p1)).ok();
    sb.cni("DEL", &conf, "c2", "net1", Some(&p2)).ok();
    sb.assert_nothing_left();
}

#[test]
fn a_custom_network_gives_the_pod_a_macvlan_child_of_its_interface() {
    require_root!();
    let sb = Sandbox::new();
    let www = sb.dir.path().join("www");
    // A LAN behind lan0, with a web server at 192.0.2.1.
    sb.sh_ok(&format!(
        "set -e
        ip netns add lan
        ip link add lan0 type veth peer name wire netns lan
        ip link set lan0 up
        ip -n lan addr add 192.0.2.1/24 dev wire
        ip -n lan link set wire up
        ip -n lan link set lo up
        ip netns exec lan busybox httpd -p {WEB} -h {}",
        www.display()
    ));
    wait_until("the LAN's web server", std::time::Duration::from_secs(10), || {
        String::from_utf8_lossy(&sb.sh("ip netns exec lan busybox netstat -ltn").stdout)
            .contains(&format!(":{WEB} "))
    });
    let conf = conf(
        &sb,
        json!({"network": "custom", "interface": "lan0", "subnet": "192.0.2.0/24", "gateway": "192.0.2.1"}),
    );
    let netns = sb.pod("pod1");
    let result = sb.cni("ADD", &conf, "c1", "eth0", Some(&netns)).ok();
    assert_eq!(result["ips"][0]["address"], "192.0.2.2/32", "{result}");
    let link = sb.in_pod_ok("pod1", "ip -d -o link show eth0");
    assert!(link.contains("macvlan"), "{link}");
    assert_eq!(sb.who("pod1", "192.0.2.1").as_deref(), Some("192.0.2.2"));
    sb.cni("DEL", &conf, "c1", "eth0", Some(&netns)).ok();
    assert!(!sb.in_pod_ok("pod1", "ip -o link").contains("eth0"));
    assert!(
        sb.link_names().contains(&"lan0".to_string()),
        "the parent is the user's"
    );
    assert_eq!(sb.leases(), Vec::<String>::new());
}

#[test]
fn gc_removes_every_attachment_the_runtime_does_not_name() {
    require_root!();
    let sb = Sandbox::new();
    let conf = conf(&sb, json!({"subnet": "10.88.0.0/24"}));
    let mut results = Vec::new();
    for pod in ["p1", "p2", "p3"] {
        let netns = sb.pod(pod);
        results.push(sb.cni("ADD", &conf, pod, "eth0", Some(&netns)).ok());
    }
    let host_end = |r: &serde_json::Value| r["interfaces"][1]["name"].as_str().unwrap().to_string();
    let elements_before = sb.nft_elements();
    assert!(elements_before.iter().any(|e| e.contains(&host_end(&results[1]))));
    // An element no lease explains, as a crash could leave.
    sb.sh_ok("nft add element bridge cell_cni spoof_ports '{ cv0123456789ab }'");

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "p1", "ifname": "eth0"}]);
    sb.cni("GC", &gc, "", "", None).ok();
    let links = sb.link_names();
    assert!(
        links.contains(&host_end(&results[0])),
        "the valid one stays: {links:?}"
    );
    for r in &results[1..] {
        assert!(!links.contains(&host_end(r)), "{links:?}");
        assert!(!sb.nft_elements().iter().any(|e| e.contains(&host_end(r))));
    }
    assert!(!sb.nft_elements().iter().any(|e| e.contains("cv0123456789ab")));
    assert_eq!(sb.leases(), ["pods|p1|eth0|10.88.0.2|"]);
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = results[0].clone();
    sb.cni("CHECK", &with_prev, "p1", "eth0", Some("/run/netns/p1"))
        .ok();
    assert_eq!(sb.who("p1", UPSTREAM4).as_deref(), Some(HOST4));

    gc["cni.dev/valid-attachments"] = json!([]);
    sb.cni("GC", &gc, "", "", None).ok();
    assert!(
        !sb.link_names()
            .iter()
            .any(|l| l.starts_with("cv") || l == "cellcni0")
    );
    assert_eq!(sb.leases(), Vec::<String>::new());
}

#[test]
fn twenty_parallel_adds_get_twenty_addresses() {
    require_root!();
    let sb = Sandbox::new();
    let conf = conf(&sb, json!({"subnet": "10.88.0.0/24"}));
    let pods: Vec<String> = (0..20).map(|i| sb.pod(&format!("p{i}"))).collect();
    let addresses: HashSet<String> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, netns)| {
                let (sb, conf) = (&sb, &conf);
                s.spawn(move || {
                    sb.cni("ADD", conf, &format!("p{i}"), "eth0", Some(netns)).ok()["ips"][0]["address"]
                        .to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(addresses.len(), 20, "{addresses:?}");
    assert_eq!(sb.leases().len(), 20);
    std::thread::scope(|s| {
        for (i, netns) in pods.iter().enumerate() {
            let (sb, conf) = (&sb, &conf);
            s.spawn(move || sb.cni("DEL", conf, &format!("p{i}"), "eth0", Some(netns)).ok());
        }
    });
    sb.assert_nothing_left();
}

#[test]
fn bad_calls_are_cni_errors_that_leave_nothing() {
    require_root!();
    let sb = Sandbox::new();
    let netns = sb.pod("pod1");
    let bad = [
        (
            conf(&sb, json!({"subnet": "10.88.0.0/33"})),
            Some(netns.as_str()),
            7,
            "invalid subnet '10.88.0.0/33'",
        ),
        (
            conf(&sb, json!({"subnet": "10.88.0.0/24", "network": "overlay"})),
            Some(&netns),
            7,
            "overlay",
        ),
        (conf(&sb, json!({"subnet": "10.88.0.0/24"})), None, 4, "CNI_NETNS"),
        (
            conf(&sb, json!({"subnet": "10.88.0.0/24"})),
            Some("/run/netns/nothere"),
            3,
            "/run/netns/nothere",
        ),
        // Fails only once the lease is taken: the undo releases it.
        (
            conf(
                &sb,
                json!({"subnet": "10.88.0.0/24", "network": "custom", "interface": "nolink0"}),
            ),
            Some(&netns),
            7,
            "nolink0",
        ),
    ];
    for (conf, netns, code, needle) in bad {
        let answer = sb.cni("ADD", &conf, "c1", "eth0", netns);
        answer.error(code, needle);
        assert_eq!(answer.json()["cniVersion"], "1.1.0");
        sb.assert_nothing_left();
        assert!(!sb.in_pod_ok("pod1", "ip -o link").contains("eth0"));
    }
}

#[test]
fn an_add_on_an_existing_interface_is_refused_and_changes_nothing() {
    require_root!();
    let sb = Sandbox::new();
    let conf = conf(&sb, json!({"subnet": "10.88.0.0/24"}));
    let netns = sb.pod("pod1");
    sb.cni("ADD", &conf, "c1", "eth0", Some(&netns)).ok();
    let before = (
        sb.link_names(),
        sb.nft_elements(),
        sb.leases(),
        addresses(&sb, "pod1", "eth0"),
    );
    sb.cni("ADD", &conf, "c1", "eth0", Some(&netns))
        .error(102, "eth0 already exists");
    // Another container whose netns already has the name.
    let other = sb.pod("pod2");
    sb.in_pod_ok("pod2", "ip link add eth0 type veth peer name x0");
    sb.cni("ADD", &conf, "c2", "eth0", Some(&other))
        .error(102, "eth0 already exists");
    let after = (
        sb.link_names(),
        sb.nft_elements(),
        sb.leases(),
        addresses(&sb, "pod1", "eth0"),
    );
    assert_eq!(before, after);
}

#[test]
fn check_names_what_is_missing() {
    require_root!();
    let sb = Sandbox::new();
    let conf = conf(&sb, json!({"subnet": "10.88.0.0/24"}));
    let netns = sb.pod("pod1");
    let result = sb.cni("ADD", &conf, "c1", "eth0", Some(&netns)).ok();
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = result.clone();
    sb.cni("CHECK", &with_prev, "c1", "eth0", Some(&netns)).ok();
    sb.cni("CHECK", &conf, "c1", "eth0", Some(&netns))
        .error(7, "prevResult");

    sb.in_pod_ok("pod1", "ip addr del 10.88.0.2/24 dev eth0");
    let host_end = result["interfaces"][1]["name"].as_str().unwrap();
    let mac = result["interfaces"][2]["mac"].as_str().unwrap();
    sb.sh_ok(&format!(
        "nft delete element bridge cell_cni allowed_mac '{{ {host_end} . {mac} }}'"
    ));
    let body = sb
        .cni("CHECK", &with_prev, "c1", "eth0", Some(&netns))
        .error(103, "10.88.0.2/24 is missing on eth0");
    let details = body["details"].as_str().unwrap();
    assert!(details.contains("allowed_mac"), "{details}");
    assert!(
        details.contains("route to 0.0.0.0/0 via 10.88.0.1 is missing"),
        "{details}"
    );
}

#[test]
fn requested_addresses_in_cni_args_are_given_if_free() {
    require_root!();
    let sb = Sandbox::new();
    let conf = conf(&sb, json!({"subnet": "10.88.0.0/24", "subnet6": "fd00:88::/64"}));
    let (p1, p2) = (sb.pod("pod1"), sb.pod("pod2"));
    let args = [(
        "CNI_ARGS",
        "IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.88.0.77,fd00:88::77",
    )];
    let result = sb.cni_with("ADD", &conf, "c1", "eth0", Some(&p1), &args).ok();
    assert_eq!(result["ips"][0]["address"], "10.88.0.77/24");
    assert_eq!(result["ips"][1]["address"], "fd00:88::77/64");
    let taken = [("CNI_ARGS", "IP=10.88.0.77")];
    sb.cni_with("ADD", &conf, "c2", "eth0", Some(&p2), &taken)
        .error(106, "10.88.0.77");
    assert!(!sb.in_pod_ok("pod2", "ip -o link").contains("eth0"));
}

#[test]
fn status_says_whether_an_add_would_work() {
    require_root!();
    let sb = Sandbox::new();
    let conf = conf(&sb, json!({"subnet": "10.88.0.0/30"}));
    sb.cni("STATUS", &conf, "", "", None).ok();
    // A file where the data directory should be.
    let file = sb.dir.path().join("plain-file");
    std::fs::write(&file, "").unwrap();
    let mut broken = conf.clone();
    broken["dataDir"] = json!(file.join("state"));
    sb.cni("STATUS", &broken, "", "", None)
        .error(50, "cell-cni cannot serve ADD");
    // Without CAP_NET_ADMIN nftables cannot be used.
    let no_admin = [("WRAPPER", "setpriv --bounding-set -net_admin")];
    sb.cni_with("STATUS", &conf, "", "", None, &no_admin)
        .error(50, "nftables is unavailable");
    // A /30 has one address besides the gateway.
    let netns = sb.pod("pod1");
    sb.cni("ADD", &conf, "c1", "eth0", Some(&netns)).ok();
    sb.cni("STATUS", &conf, "", "", None)
        .error(50, "no more inet IP's");
    // With no default route a network gets no NAT (as celld's): ADD still works.
    sb.sh_ok("ip route del default && ip -6 route del default");
    let mut nat_nowhere = conf.clone();
    nat_nowhere["name"] = json!("other");
    nat_nowhere["interface"] = json!("cni-other");
    sb.cni("STATUS", &nat_nowhere, "", "", None).ok();
    // A custom network whose parent is missing.
    let orphan = common::conf(
        &sb,
        json!({"name": "lan", "network": "custom", "interface": "nolan0", "subnet": "192.0.2.0/24"}),
    );
    sb.cni("STATUS", &orphan, "", "", None)
        .error(50, "nolan0 of network 'lan' does not exist");
}

#[test]
fn port_mappings_reach_the_pod_from_outside_from_the_node_and_from_pods() {
    require_root!();
    let sb = Sandbox::new();
    let mut conf = conf(
        &sb,
        json!({"subnet": "10.88.0.0/24", "capabilities": {"portMappings": true}}),
    );
    conf["runtimeConfig"] =
        json!({"portMappings": [{"hostPort": 8888, "containerPort": WEB, "protocol": "tcp"}]});
    let (p1, p2) = (sb.pod("web"), sb.pod("client"));
    sb.cni("ADD", &conf, "web", "eth0", Some(&p1)).ok();
    sb.serve("web");
    let plain = common::conf(&sb, json!({"subnet": "10.88.0.0/24"}));
    sb.cni("ADD", &plain, "client", "eth0", Some(&p2)).ok();

    let upstream = "ip netns exec upstream";
    assert_eq!(
        sb.who_at(upstream, HOST4, 8888).as_deref(),
        Some(UPSTREAM4),
        "from outside, as itself"
    );
    assert!(sb.who_at("", HOST4, 8888).is_some(), "from the node");
    assert!(
        sb.who_at("", "127.0.0.1", 8888).is_some(),
        "from the node's 127.0.0.1"
    );
    assert!(
        sb.who_at("ip netns exec client", HOST4, 8888).is_some(),
        "from a pod (hairpin)"
    );
    assert!(sb.nft_elements().iter().any(|e| e.starts_with("ports4_addr")));

    // A second pod may not take the same host port: refused, nothing made.
    let p3 = sb.pod("web2");
    let links = sb.link_names();
    sb.cni("ADD", &conf, "web2", "eth0", Some(&p3))
        .error(105, "host port 8888/tcp is already forwarded to container web");
    assert_eq!(sb.link_names(), links);
    assert_eq!(
        sb.who_at(upstream, HOST4, 8888).as_deref(),
        Some(UPSTREAM4),
        "still the first pod's"
    );

    // DEL takes the forward with it, whatever the runtime passes.
    sb.cni("DEL", &plain, "web", "eth0", Some(&p1)).ok();
    assert_eq!(sb.who_at(upstream, HOST4, 8888), None, "gone with the pod");
    assert!(!sb.nft_elements().iter().any(|e| e.starts_with("ports4")));
}

#[test]
fn a_dual_stack_bridge_carries_both_families_between_pods_and_out() {
    require_root!();
    let sb = Sandbox::new();
    let conf = conf(&sb, json!({"subnet": "10.88.0.0/24", "subnet6": "fd00:88::/64"}));
    let (p1, p2) = (sb.pod("pod1"), sb.pod("pod2"));
    let result = sb.cni("ADD", &conf, "c1", "eth0", Some(&p1)).ok();
    sb.cni("ADD", &conf, "c2", "eth0", Some(&p2)).ok();
    assert_eq!(result["ips"][1]["address"], "fd00:88::2/64", "{result}");
    assert_eq!(result["ips"][1]["gateway"], "fd00:88::1", "{result}");
    assert!(
        sb.in_pod_ok("pod1", "ip -6 route")
            .contains("default via fd00:88::1 dev eth0")
    );
    sb.serve("pod2");
    assert_eq!(
        sb.who("pod1", "fd00:88::3").as_deref(),
        Some("fd00:88::2"),
        "pod to pod over IPv6"
    );
    assert_eq!(
        sb.who("pod1", "10.88.0.3").as_deref(),
        Some("10.88.0.2"),
        "and over IPv4"
    );
    assert_eq!(
        sb.who("pod1", UPSTREAM6).as_deref(),
        Some("2001:db8:100::2"),
        "NATed out over IPv6"
    );
    assert_eq!(sb.who("pod1", UPSTREAM4).as_deref(), Some(HOST4), "and over IPv4");
}

#[test]
fn an_add_that_fails_half_way_undoes_everything_it_did() {
    require_root!();
    let sb = Sandbox::new();
    let conf = conf(&sb, json!({"subnet": "10.88.0.0/24", "subnet6": "fd00:88::/64"}));
    // IPv6 is off in this pod: the veth, the bridge and the elements are
    // made before adding the IPv6 address fails.
    let netns = sb.pod("pod1");
    sb.in_pod_ok("pod1", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6");
    let answer = sb.cni("ADD", &conf, "c1", "eth0", Some(&netns));
    answer.error(100, "failed to attach container c1 to network 'pods'");
    sb.assert_nothing_left();
    assert!(!sb.in_pod_ok("pod1", "ip -o link").contains("eth0"));

    // With another pod on the network, the undo leaves the network alone.
    let ok = sb.pod("pod2");
    sb.cni("ADD", &conf, "c2", "eth0", Some(&ok)).ok();
    let before = (sb.link_names(), sb.nft_elements(), sb.leases());
    sb.cni("ADD", &conf, "c1", "eth0", Some(&netns))
        .error(100, "failed to attach");
    assert_eq!((sb.link_names(), sb.nft_elements(), sb.leases()), before);
    assert_eq!(
        sb.who("pod2", UPSTREAM4).as_deref(),
        Some(HOST4),
        "the other pod is untouched"
    );
}
