//! Networks (issue "Networks"): creating loopback, bridge and custom
//! networks and what they are in the kernel, IPAM, the ipnet and vnet
//! drivers on them, refused requests that change nothing, what survives a
//! restart of celld or of the machine, and prune.
//!
//! Command lines are written as one string and split at spaces.

mod common;
use common::*;
use serde_json::{Value, json};

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// `cell LINE`, asserted to succeed; its stdout.
fn ok(sb: &Sandbox, line: &str) -> String {
    sb.ok(&words(line))
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn is_id(s: &str) -> bool {
    s.len() == 12
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `cell network create ARGS`; the id it printed.
fn create(sb: &Sandbox, args: &str) -> String {
    let id = ok(sb, &format!("network create {args}")).trim().to_string();
    assert!(is_id(&id), "network create printed {id:?}");
    id
}

fn network(sb: &Sandbox, name: &str) -> Value {
    parse(&sb.ok(&["network", "inspect", name]))
}

/// `cell run -d --name NAME OPTS busybox sleep 1000`.
fn run_d(sb: &Sandbox, name: &str, opts: &str) {
    ok(sb, &format!("run -d --name {name} {opts} busybox sleep 1000"));
}

/// The endpoints of a container, as its inspect shows them.
fn endpoints(sb: &Sandbox, container: &str) -> Vec<Value> {
    sb.inspect(container)["container_endpoints"]
        .as_array()
        .expect("container_endpoints")
        .clone()
}

/// The IPv4 address of a container's only endpoint.
fn ip_of(sb: &Sandbox, container: &str) -> String {
    let eps = endpoints(sb, container);
    assert_eq!(eps.len(), 1, "{container}: {eps:?}");
    eps[0]["ip_address"].as_str().unwrap().to_string()
}

fn epair_of(sb: &Sandbox, container: &str) -> String {
    endpoints(sb, container)[0]["epair"]
        .as_str()
        .expect("an epair")
        .to_string()
}

/// `(interface, address/prefix)` of `family` (`inet`, `inet6`) in the
/// output of `ip -o addr`; IPv6 link-local addresses left out.
fn addrs(text: &str, family: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 3 && f[2] == family && !f[3].starts_with("fe80:"))
                .then(|| (f[1].to_string(), f[3].to_string()))
        })
        .collect()
}

fn pair(ifname: &str, addr: &str) -> (String, String) {
    (ifname.to_string(), addr.to_string())
}

/// Link names in the output of `ip -o link`.
fn link_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .collect()
}

/// The addresses inside a running container, as its own `ip -o addr` shows.
fn inside(sb: &Sandbox, container: &str, family: &str) -> Vec<(String, String)> {
    addrs(&sb.ok(&["exec", container, "ip", "-o", "addr"]), family)
}

/// The links inside a running container, as its own `ip -o link` shows.
fn links_inside(sb: &Sandbox, container: &str) -> Vec<String> {
    link_names(&sb.ok(&["exec", container, "ip", "-o", "link"]))
}

fn has_link(sb: &Sandbox, name: &str) -> bool {
    sb.link_names().iter().any(|l| l == name)
}

fn cv_links(sb: &Sandbox) -> Vec<String> {
    sb.link_names()
        .into_iter()
        .filter(|l| l.starts_with("cv"))
        .collect()
}

fn is_bridge(sb: &Sandbox, name: &str) -> bool {
    sb.sh_ok(&format!("ip -d -o link show {name}"))
        .contains(" bridge ")
}

/// `nft -j list ruleset` as text, to look for quoted values in.
fn ruleset(sb: &Sandbox) -> String {
    sb.nft_ruleset().to_string()
}

/// The network ids `network ls` lists, in its order.
/// The ids of the networks `network ls` lists, but celld's own `public`
/// (which exists from the first start).
fn network_ids(sb: &Sandbox) -> Vec<String> {
    ok(sb, "network ls")
        .lines()
        .skip(2)
        .filter(|l| l.split_whitespace().nth(1) != Some("public"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The `network ls` row of a network, split into cells.
fn ls_row(sb: &Sandbox, name: &str) -> Option<Vec<String>> {
    ok(sb, "network ls")
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cells| cells.get(1).map(String::as_str) == Some(name))
}

/// Checks `v`'s fields against `expected` (a subset of its keys).
fn assert_fields(v: &Value, expected: Value) {
    for (key, want) in expected.as_object().unwrap() {
        assert_eq!(&v[key], want, "field {key} of {v}");
    }
}

/// Everything a refused request must leave as it was.
#[derive(Debug, PartialEq)]
struct World {
    /// `network inspect` of every network, endpoints included.
    networks: Vec<Value>,
    links: Vec<String>,
    addresses: Vec<(String, String)>,
    nft: Vec<String>,
    containers: usize,
}

fn world(sb: &Sandbox) -> World {
    let ip_addr = sb.sh_ok("ip -o addr");
    let mut addresses = addrs(&ip_addr, "inet");
    addresses.extend(addrs(&ip_addr, "inet6"));
    addresses.sort();
    let mut links = sb.link_names();
    links.sort();
    World {
        networks: network_ids(sb).iter().map(|id| network(sb, id)).collect(),
        links,
        addresses,
        nft: sb.nft_elements(),
        containers: sb.container_count(),
    }
}

/// Runs each `(command line, message)`: a non-zero exit, one line of stderr
/// holding the message, and nothing changed.
fn refused(sb: &Sandbox, cases: &[(&str, &str)]) {
    let before = world(sb);
    for (line, needle) in cases {
        let stderr = sb.fails(&words(line), needle);
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "one line for {line:?}: {stderr}"
        );
        assert_eq!(
            world(sb),
            before,
            "`cell {line}` was refused but changed something"
        );
    }
}

fn ping_ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("bytes from"),
        "{what}: {}",
        describe(out)
    );
}

/// The container's ping to `ip` gets an answer (it needs allow.raw_sockets).
fn container_pings(sb: &Sandbox, container: &str, ip: &str) {
    let out = sb.cell(&["exec", container, "ping", "-c", "1", "-W", "2", ip]);
    ping_ok(&out, &format!("{container} -> {ip}"));
}

/// The sandbox's ping to `ip` gets an answer.
fn host_pings(sb: &Sandbox, ip: &str) {
    let out = sb.sh(&format!("busybox ping -c 1 -W 2 {ip}"));
    ping_ok(&out, &format!("host -> {ip}"));
}

/// Every address inside each of `containers`, v4 and v6.
fn all_inside(sb: &Sandbox, containers: &[&str]) -> Vec<Vec<(String, String)>> {
    containers
        .iter()
        .flat_map(|c| [inside(sb, c, "inet"), inside(sb, c, "inet6")])
        .collect()
}

const LAN0: &str =
    "ip link add lan0 type veth peer name lan0p && ip link set lan0 up && ip link set lan0p up";

#[test]
fn loopback_and_bridge_networks_get_their_defaults() {
    require_root!();
    let sb = Sandbox::new();
    sb.add_default_uplink();

    // Loopback is the default type, cell0 the first free interface, NAT
    // out of the default route's interface.
    let id = create(&sb, "--subnet 10.2.3.0/24 testnet");
    let v = network(&sb, "testnet");
    assert_eq!(v["network_endpoints"], json!([]));
    assert_fields(
        &v["network"],
        json!({
            "id": id, "name": "testnet", "type": "loopback", "interface": "cell0",
            "subnet": "10.2.3.0/24", "subnet6": "", "gateway": "", "gateway6": "",
            "nat": "em0", "icc": true, "internal": false,
        }),
    );
    assert_eq!(network(&sb, &id), v, "by id too");
    // What no container holds in a loopback subnet is refused by the
    // host, not sent out of the default route with a private source.
    assert!(
        sb.sh_ok("ip -o route show type unreachable")
            .contains("10.2.3.0/24"),
        "no unreachable route for the loopback subnet"
    );

    // A bridge: the next cellN, gateways auto, a Linux bridge holding them.
    let br = create(&sb, "-t bridge --subnet 10.4.0.0/24 --subnet6 fd00:4::/64 br");
    assert_fields(
        &network(&sb, "br")["network"],
        json!({
            "id": br, "name": "br", "type": "bridge", "interface": "cell1",
            "subnet": "10.4.0.0/24", "subnet6": "fd00:4::/64",
            "gateway": "10.4.0.1", "gateway6": "fd00:4::1",
            "nat": "em0", "icc": true, "internal": false,
        }),
    );
    assert!(is_bridge(&sb, "cell1"));
    let out = sb.sh_ok("ip -o addr show dev cell1");
    assert_eq!(addrs(&out, "inet"), [pair("cell1", "10.4.0.1/24")]);
    assert_eq!(addrs(&out, "inet6"), [pair("cell1", "fd00:4::1/64")]);

    // --gw none: a bridge without an address; --no-nat: nat "".
    create(&sb, "-t bridge --subnet 10.5.0.0/24 --gw none --no-nat nogw");
    assert_fields(
        &network(&sb, "nogw")["network"],
        json!({"interface": "cell2", "gateway": "", "gateway6": "", "nat": ""}),
    );
    assert!(is_bridge(&sb, "cell2"));
    let out = sb.sh_ok("ip -o addr show dev cell2");
    assert!(
        addrs(&out, "inet").is_empty() && addrs(&out, "inet6").is_empty(),
        "{out}"
    );

    // -i names the bridge; an explicit gateway is honoured.
    create(
        &sb,
        "-t bridge -i br-test --subnet 10.6.0.0/24 --gw 10.6.0.254 named",
    );
    assert!(is_bridge(&sb, "br-test"));
    let out = sb.sh_ok("ip -o addr show dev br-test");
    assert_eq!(addrs(&out, "inet"), [pair("br-test", "10.6.0.254/24")]);
    assert_eq!(network(&sb, "named")["network"]["gateway"], "10.6.0.254");

    // icc and internal as asked; an internal network has no NAT.
    create(&sb, "--subnet 10.8.0.0/24 --icc false --internal inner");
    assert_fields(
        &network(&sb, "inner")["network"],
        json!({"interface": "cell3", "icc": false, "internal": true, "nat": ""}),
    );
    assert!(
        sb.sh_ok("ip -o route show type unreachable")
            .contains("10.8.0.0/24")
    );
    ok(&sb, "network rm inner");
    assert!(
        !sb.sh_ok("ip -o route show type unreachable")
            .contains("10.8.0.0/24")
    );

    // ls lists them, in creation order.
    let ls = ok(&sb, "network ls");
    for col in ["NETWORK ID", "NAME", "TYPE", "INTERFACE", "SUBNET", "SUBNET6"] {
        assert!(ls.contains(col), "{ls}");
    }
    assert_eq!(network_ids(&sb).len(), 4, "{ls}");
    assert_eq!(network_ids(&sb)[0], id);
    assert_eq!(
        ls_row(&sb, "testnet").unwrap(),
        [id.as_str(), "testnet", "loopback", "cell0", "10.2.3.0/24"]
    );
    assert_eq!(
        ls_row(&sb, "br").unwrap(),
        [br.as_str(), "br", "bridge", "cell1", "10.4.0.0/24", "fd00:4::/64"]
    );

    // rm prints the id and removes the bridge; cell1 is free again.
    assert_eq!(ok(&sb, "network rm br").trim(), br);
    assert!(!has_link(&sb, "cell1"));
    assert!(ls_row(&sb, "br").is_none());
    create(&sb, "--subnet 10.7.0.0/24 again");
    assert_eq!(network(&sb, "again")["network"]["interface"], "cell1");
}

#[test]
fn endpoints_have_kleenes_shape_in_both_inspects() {
    require_root!();
    let sb = Sandbox::new();
    // A host link named cell0 makes cell1 the first free cellN.
    sb.sh_ok("ip link add cell0 type veth peer name cell0p");
    let net_id = create(&sb, "--subnet 10.2.3.0/24 testnet");
    assert_eq!(network(&sb, "testnet")["network"]["interface"], "cell1");
    assert_eq!(
        network(&sb, &net_id[..5])["network"]["name"],
        "testnet",
        "by id prefix"
    );

    let cid = ok(&sb, "create --name web -n testnet busybox sleep 1000")
        .trim()
        .to_string();
    assert_eq!(sb.inspect("web")["container"]["network_driver"], "ipnet");
    let v = network(&sb, "testnet");
    let eps = v["network_endpoints"].as_array().unwrap();
    assert_eq!(eps.len(), 1, "{v}");
    let ep = &eps[0];
    let ep_id = ep["id"].as_str().unwrap();
    assert!(is_id(ep_id), "{ep}");
    let epair = format!("cv{ep_id}");
    assert_fields(
        ep,
        json!({
            "network_id": net_id, "container_id": cid, "epair": epair,
            "ip_address": "10.2.3.1", "ip_address6": "",
        }),
    );
    assert_eq!(
        endpoints(&sb, "web"),
        std::slice::from_ref(ep),
        "the same object in container inspect"
    );

    // Started, it has its veth, and the host routes its /32 there.
    ok(&sb, "start web");
    assert!(has_link(&sb, &epair));
    let routes = sb.sh_ok("ip route");
    assert!(routes.contains(&format!("10.2.3.1 dev {epair}")), "{routes}");
}

#[test]
fn custom_network_gives_macvlans_of_its_parent_and_never_deletes_it() {
    require_root!();
    let sb = Sandbox::new();
    sb.add_default_uplink();
    sb.sh_ok(LAN0);
    let parent_index = parse(&sb.sh_ok("ip -j link show lan0"))[0]["ifindex"].clone();
    let id = create(&sb, "-t custom -i lan0 --subnet 192.168.50.0/24 lan");
    assert_fields(
        &network(&sb, "lan")["network"],
        json!({
            "id": id, "type": "custom", "interface": "lan0", "subnet": "192.168.50.0/24",
            "gateway": "", "nat": "",
        }),
    );
    run_d(&sb, "m", "-n lan");
    let ep = &endpoints(&sb, "m")[0];
    assert_eq!(ep["epair"], Value::Null, "no veth on a custom network: {ep}");
    assert_eq!(ep["ip_address"], "192.168.50.1");
    assert_eq!(
        inside(&sb, "m", "inet"),
        [pair("lo", "127.0.0.1/8"), pair("lan0", "192.168.50.1/32")]
    );
    // The container's lan0 is a macvlan whose parent is the host's lan0.
    let out = sb.sh_in_netns("m", "ip -j -d link show lan0");
    assert!(out.status.success(), "{}", describe(&out));
    let child = &parse(&String::from_utf8_lossy(&out.stdout))[0];
    assert_eq!(child["linkinfo"]["info_kind"], "macvlan", "{child}");
    assert_eq!(child["link_index"], parent_index, "{child}");
    assert!(cv_links(&sb).is_empty(), "a custom network made a veth");

    // Connect and disconnect while running: a macvlan comes and goes.
    create(&sb, "--subnet 10.2.3.0/24 lo1");
    run_d(&sb, "n", "-n lo1");
    ok(&sb, "network connect --ip 192.168.50.7 lan n");
    assert!(inside(&sb, "n", "inet").contains(&pair("lan0", "192.168.50.7/32")));
    ok(&sb, "network disconnect lan n");
    assert_eq!(links_inside(&sb, "n"), ["lo", "cell0"]);
    assert!(has_link(&sb, "lan0"));

    // rm takes the macvlan out of the running container, never the parent.
    assert_eq!(ok(&sb, "network rm lan").trim(), id);
    assert!(
        has_link(&sb, "lan0") && has_link(&sb, "lan0p"),
        "{:?}",
        sb.link_names()
    );
    assert_eq!(links_inside(&sb, "m"), ["lo"], "the macvlan outlived its network");
    assert!(endpoints(&sb, "m").is_empty());
    assert!(ls_row(&sb, "lan").is_none());
}

#[test]
fn addresses_are_handed_out_in_order_kept_and_released() {
    require_root!();
    let sb = Sandbox::new();
    create(&sb, "--subnet 10.2.3.0/24 testnet");
    create(&sb, "-t bridge --subnet 10.4.0.0/24 br");
    let run = |name: &str, net: &str| ok(&sb, &format!("run --name {name} -n {net} busybox true"));

    // Loopback (no gateway): .1 first, as in seed 001; then .2.
    run("a", "testnet");
    run("b", "testnet");
    assert_eq!(ip_of(&sb, "a"), "10.2.3.1");
    assert_eq!(ip_of(&sb, "b"), "10.2.3.2");

    // A stopped container keeps its address, and has it again when started.
    run_d(&sb, "s", "-n testnet");
    assert_eq!(ip_of(&sb, "s"), "10.2.3.3");
    ok(&sb, "stop -t 0 s");
    run("t", "testnet");
    assert_eq!(ip_of(&sb, "t"), "10.2.3.4");
    assert_eq!(ip_of(&sb, "s"), "10.2.3.3");
    ok(&sb, "start s");
    assert!(inside(&sb, "s", "inet").contains(&pair("cell0", "10.2.3.3/32")));

    // rm releases the address; the next container gets it. So does disconnect.
    ok(&sb, "rm a");
    run("c", "testnet");
    assert_eq!(ip_of(&sb, "c"), "10.2.3.1");
    ok(&sb, "network disconnect testnet b");
    assert!(endpoints(&sb, "b").is_empty());
    run("d", "testnet");
    assert_eq!(ip_of(&sb, "d"), "10.2.3.2");

    // Bridge: .1 is the gateway, containers start at .2; --ip is honoured.
    run("x", "br");
    assert_eq!(ip_of(&sb, "x"), "10.4.0.2");
    let out = ok(&sb, "run --name y -n br --ip 10.4.0.77 busybox ip -o addr");
    assert!(
        addrs(&out, "inet").contains(&pair("cell1", "10.4.0.77/32")),
        "{out}"
    );
    assert_eq!(ip_of(&sb, "y"), "10.4.0.77");
    run("z", "br");
    assert_eq!(ip_of(&sb, "z"), "10.4.0.3");
    ok(&sb, "network connect --ip 10.4.0.9 br b");
    assert_eq!(ip_of(&sb, "b"), "10.4.0.9");

    // Containers that exited hold no veth; only s runs.
    assert_eq!(cv_links(&sb).len(), 1, "{:?}", sb.link_names());
    // rm of a network takes the endpoints of stopped containers too.
    ok(&sb, "network rm br");
    for c in ["b", "x", "y", "z"] {
        assert!(endpoints(&sb, c).is_empty(), "{c}");
    }
}

#[test]
fn dual_stack_networks_give_v6_addresses_too() {
    require_root!();
    let sb = Sandbox::new();
    create(&sb, "--subnet 10.2.3.0/24 --subnet6 fd00:2::/64 lo6");
    create(&sb, "-t bridge --subnet 10.4.0.0/24 --subnet6 fd00:4::/64 br6");
    create(&sb, "-t bridge --subnet6 fd00:6::/64 only6");
    let both = |c: &str| {
        let ep = &endpoints(&sb, c)[0];
        (ep["ip_address"].clone(), ep["ip_address6"].clone())
    };

    run_d(&sb, "i", "-n lo6");
    assert_eq!(both("i"), (json!("10.2.3.1"), json!("fd00:2::1")));
    assert!(inside(&sb, "i", "inet6").contains(&pair("cell0", "fd00:2::1/128")));

    run_d(&sb, "v", "-l vnet -n br6");
    assert_eq!(both("v"), (json!("10.4.0.2"), json!("fd00:4::2")));
    assert!(inside(&sb, "v", "inet6").contains(&pair("cell1", "fd00:4::2/64")));
    let routes = ok(&sb, "exec v ip -6 route");
    assert!(routes.contains("default via fd00:4::1 dev cell1"), "{routes}");

    run_d(&sb, "w", "-l vnet -n br6 --ip6 fd00:4::99");
    assert_eq!(both("w").1, "fd00:4::99");
    assert!(inside(&sb, "w", "inet6").contains(&pair("cell1", "fd00:4::99/64")));

    run_d(&sb, "six", "-l vnet -n only6");
    assert_eq!(both("six"), (json!(""), json!("fd00:6::2")));
    assert_eq!(inside(&sb, "six", "inet"), [pair("lo", "127.0.0.1/8")]);
}

#[test]
fn concurrent_runs_get_distinct_addresses() {
    require_root!();
    let sb = Sandbox::new();
    ok(&sb, "image create busybox");
    create(&sb, "-t bridge --subnet 10.4.0.0/24 br");
    let outs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let sb = &sb;
                s.spawn(move || sb.cell(&words(&format!("run -d --name c{i} -n br busybox sleep 1000"))))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &outs {
        assert!(out.status.success(), "{}\n{}", describe(out), sb.celld_log());
    }
    let mut ips: Vec<String> = (0..10).map(|i| ip_of(&sb, &format!("c{i}"))).collect();
    ips.sort();
    let mut want: Vec<String> = (2..12).map(|i| format!("10.4.0.{i}")).collect();
    want.sort();
    assert_eq!(ips, want, "not ten distinct addresses");
    // Every one is attached: ten veths on the bridge, each container its address.
    let ports = sb.sh_ok("ip -o link show master cell0");
    assert_eq!(ports.lines().count(), 10, "{ports}");
    for i in 0..10 {
        let name = format!("c{i}");
        let ip = format!("{}/32", ip_of(&sb, &name));
        assert!(inside(&sb, &name, "inet").contains(&pair("cell0", &ip)));
    }
}

#[test]
fn an_exhausted_network_records_no_container() {
    require_root!();
    let sb = Sandbox::new();
    create(&sb, "-t bridge --subnet 10.9.0.0/30 tiny");
    run_d(&sb, "one", "-n tiny");
    assert_eq!(ip_of(&sb, "one"), "10.9.0.2");
    refused(
        &sb,
        &[
            (
                "run --name two -n tiny busybox true",
                "no more inet IP's left in network 'tiny' (10.9.0.0/30)",
            ),
            (
                "create --name two -n tiny busybox true",
                "no more inet IP's left in network 'tiny'",
            ),
        ],
    );
    assert_eq!(sb.container_count(), 1);
    sb.fails(&["container", "inspect", "two"], "no such container: two");
    // Once the address is free again, it can be had.
    ok(&sb, "rm -f one");
    ok(&sb, "run --name two -n tiny busybox true");
    assert_eq!(ip_of(&sb, "two"), "10.9.0.2");
}

#[test]
fn ipnet_on_loopback_sees_only_its_own_address_and_cannot_change_it() {
    require_root!();
    let sb = Sandbox::new();
    sb.add_default_uplink();
    create(&sb, "--subnet 10.2.3.0/24 testnet");
    let links = ok(&sb, "run -n testnet busybox ip -o link");
    assert_eq!(link_names(&links), ["lo", "cell0"]);
    let out = ok(&sb, "run -n testnet busybox ip -o addr");
    assert_eq!(
        addrs(&out, "inet"),
        [pair("lo", "127.0.0.1/8"), pair("cell0", "10.2.3.2/32")],
        "{out}"
    );
    let routes = ok(&sb, "run -n testnet busybox ip route");
    assert!(
        routes.lines().any(|l| l.starts_with("default dev cell0")),
        "{routes}"
    );

    run_d(&sb, "i", "-n testnet");
    let out = sb.cell(&words("exec i ip addr add 10.2.3.99/32 dev cell0"));
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Operation not permitted"), "{}", describe(&out));
    assert!(!ok(&sb, "exec i ip -o addr").contains("10.2.3.99"));
}

#[test]
fn vnet_on_a_bridge_has_the_subnet_a_gateway_and_net_admin() {
    require_root!();
    let sb = Sandbox::new();
    create(&sb, "-t bridge --subnet 10.4.0.0/24 br");
    run_d(&sb, "v", "-l vnet -n br");
    assert!(
        sb.sh_ok("ip -o link show master cell0")
            .contains(&epair_of(&sb, "v"))
    );
    assert_eq!(
        inside(&sb, "v", "inet"),
        [pair("lo", "127.0.0.1/8"), pair("cell0", "10.4.0.2/24")]
    );
    let routes = ok(&sb, "exec v ip route");
    assert!(routes.contains("default via 10.4.0.1 dev cell0"), "{routes}");
    // Its stack is its own to change.
    ok(&sb, "exec v ip addr add 10.4.0.200/24 dev cell0");
    assert!(inside(&sb, "v", "inet").contains(&pair("cell0", "10.4.0.200/24")));

    // ipnet on the same bridge: a /32, and no NET_ADMIN.
    run_d(&sb, "i", "-n br");
    assert_eq!(
        inside(&sb, "i", "inet"),
        [pair("lo", "127.0.0.1/8"), pair("cell0", "10.4.0.3/32")]
    );
    let out = sb.cell(&words("exec i ip addr add 10.4.0.201/32 dev cell0"));
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!ok(&sb, "exec i ip -o addr").contains("10.4.0.201"));
}

#[test]
fn drivers_that_cannot_join_a_network_are_refused() {
    require_root!();
    let sb = Sandbox::new();
    sb.sh_ok(LAN0);
    create(&sb, "--subnet 10.2.3.0/24 lo1");
    create(&sb, "-t custom -i lan0 --subnet 192.168.50.0/24 lan");
    ok(&sb, "create --name h busybox true");
    ok(&sb, "create --name v -l vnet busybox true");
    ok(&sb, "create --name d -l disabled busybox true");
    let vnet_lo = "containers using the 'vnet' network-driver can't connect to loopback networks";
    let vnet_custom = "containers using the 'vnet' network-driver can't connect to custom networks";
    refused(
        &sb,
        &[
            ("run -l vnet -n lo1 busybox true", vnet_lo),
            ("run -l vnet -n lan busybox true", vnet_custom),
            (
                "run -l host -n lo1 busybox true",
                "containers using the 'host' network driver cannot join networks",
            ),
            (
                "run -l disabled -n lo1 busybox true",
                "containers using the 'disabled' network driver cannot join networks",
            ),
            ("network connect lo1 v", vnet_lo),
            ("network connect lan v", vnet_custom),
            ("network connect lo1 h", "'host' network driver cannot join"),
            ("network connect lo1 d", "'disabled' network driver cannot join"),
        ],
    );
}

#[test]
fn connect_and_disconnect_change_a_running_container() {
    require_root!();
    let sb = Sandbox::new();
    create(&sb, "--subnet 10.2.3.0/24 a");
    create(&sb, "-t bridge --subnet 10.4.0.0/24 b");
    run_d(&sb, "c", "-n a");
    assert_eq!(links_inside(&sb, "c"), ["lo", "cell0"]);

    let ep_id = ok(&sb, "network connect b c").trim().to_string();
    assert!(is_id(&ep_id), "{ep_id}");
    let eps = endpoints(&sb, "c");
    assert_eq!(eps.len(), 2, "{eps:?}");
    assert!(
        eps.iter()
            .any(|e| e["id"] == ep_id.as_str() && e["ip_address"] == "10.4.0.2")
    );
    assert!(inside(&sb, "c", "inet").contains(&pair("cell1", "10.4.0.2/32")));
    let epair = format!("cv{ep_id}");
    assert!(sb.sh_ok("ip -o link show master cell1").contains(&epair));

    ok(&sb, "network disconnect b c");
    assert_eq!(links_inside(&sb, "c"), ["lo", "cell0"]);
    assert!(!has_link(&sb, &epair), "the veth outlived disconnect");
    assert_eq!(endpoints(&sb, "c").len(), 1);
    assert_eq!(network(&sb, "b")["network_endpoints"], json!([]));

    // A stopped container connected later gets the interface when it starts.
    ok(&sb, "create --name late -n a busybox sleep 1000");
    ok(&sb, "network connect b late");
    ok(&sb, "start late");
    let late = inside(&sb, "late", "inet");
    assert!(late.contains(&pair("cell1", "10.4.0.2/32")), "{late:?}");
    ok(&sb, "rm -f late");

    // One container on two networks from the start: both interfaces.
    run_d(&sb, "two", "-n a -n b");
    assert_eq!(endpoints(&sb, "two").len(), 2);
    assert_eq!(
        inside(&sb, "two", "inet"),
        [
            pair("lo", "127.0.0.1/8"),
            pair("cell0", "10.2.3.2/32"),
            pair("cell1", "10.4.0.2/32")
        ]
    );
}

#[test]
fn bad_network_creates_are_refused_and_change_nothing() {
    require_root!();
    let sb = Sandbox::new();
    sb.add_default_uplink();
    create(&sb, "-t bridge --subnet 10.5.0.0/16 base");
    create(&sb, "--subnet6 fd00:5::/64 base6");
    let cases: Vec<(String, &str)> = [
        ("--subnet 10.2.3/24 x", "invalid subnet '10.2.3/24'"),
        ("--subnet 10.2.3.0/33 x", "invalid subnet '10.2.3.0/33'"),
        ("--subnet banana x", "invalid subnet 'banana'"),
        (
            "--subnet 10.2.3.5/24 x",
            "invalid subnet '10.2.3.5/24': host bits are set",
        ),
        (
            "--subnet fd00::/64 x",
            "invalid subnet 'fd00::/64': not an IPv4 CIDR",
        ),
        (
            "--subnet6 10.0.0.0/24 x",
            "invalid subnet6 '10.0.0.0/24': not an IPv6 CIDR",
        ),
        (
            "-t bridge --subnet 10.6.0.0/24 --gw 10.9.9.1 x",
            "gateway '10.9.9.1' is outside the subnet 10.6.0.0/24",
        ),
        (
            "-t bridge --subnet 10.6.0.0/24 --gw fd00::1 x",
            "invalid gateway 'fd00::1': not an IPv4 address",
        ),
        (
            "-t bridge --subnet6 fd00::/64 --gw6 10.6.0.1 x",
            "invalid gateway6 '10.6.0.1': not an IPv6 address",
        ),
        (
            "-t bridge --subnet 10.5.1.0/24 x",
            "subnet 10.5.1.0/24 overlaps subnet 10.5.0.0/16 of network 'base'",
        ),
        // A subnet holding base's (10.0.0.0/8 would meet public's block of
        // the pool, 10.192.0.0/24, first).
        (
            "--subnet 10.4.0.0/14 x",
            "subnet 10.4.0.0/14 overlaps subnet 10.5.0.0/16 of network 'base'",
        ),
        (
            "--subnet6 fd00:5::/48 x",
            "subnet fd00:5::/48 overlaps subnet fd00:5::/64 of network 'base6'",
        ),
        (
            "-t bridge --subnet 10.6.0.0/24 base",
            "network name 'base' is already in use",
        ),
        (
            "-t bridge -i cell0 --subnet 10.6.0.0/24 x",
            "interface 'cell0' is already used by network 'base'",
        ),
        (
            "-i cell0 --subnet 10.6.0.0/24 x",
            "interface 'cell0' is already used by network 'base'",
        ),
        (
            "-t bridge -i em0 --subnet 10.6.0.0/24 x",
            "interface 'em0' already exists on the host",
        ),
        (
            "-t bridge -i abcdefghijklmnop --subnet 10.6.0.0/24 x",
            "invalid interface name 'abcdefghijklmnop'",
        ),
        (
            "-t custom -i nosuch0 --subnet 10.6.0.0/24 x",
            "host interface 'nosuch0' does not exist",
        ),
        (
            "-t custom --subnet 10.6.0.0/24 x",
            "custom networks need -i IFNAME",
        ),
        // Valid for cell, refused by the kernel: undone.
        (
            "-t bridge -i all --subnet 10.6.0.0/24 x",
            "failed to create bridge all",
        ),
        ("--subnet 10.6.0.0/24 host", "network name 'host' is reserved"),
        ("--subnet 10.6.0.0/24 a/b", "'a/b'"),
        // Without --subnet a network takes a block of the pool, but a
        // custom network's subnet is its LAN's.
        (
            "-t custom -i lo x",
            "custom network 'x' needs --subnet or --subnet6",
        ),
    ]
    .iter()
    .map(|(args, needle)| (format!("network create {args}"), *needle))
    .collect();
    let mut cases: Vec<(&str, &str)> = cases.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    cases.push((
        "network create -t vxlan --subnet 10.6.0.0/24 x",
        "unknown network type 'vxlan'",
    ));
    refused(&sb, &cases);
    assert_eq!(network_ids(&sb).len(), 2);
    // 15 characters is the limit, not over it.
    create(&sb, "-t bridge -i abcdefghijklmno --subnet 10.6.0.0/24 x");
    assert!(is_bridge(&sb, "abcdefghijklmno"));
}

#[test]
fn bad_addresses_and_connections_are_refused_and_change_nothing() {
    require_root!();
    let sb = Sandbox::new();
    create(&sb, "-t bridge --subnet 10.4.0.0/24 br");
    create(&sb, "--subnet 10.2.3.0/24 lo1");
    run_d(&sb, "a", "-n br");
    ok(&sb, "create --name idle -n lo1 busybox true");
    let run: Vec<(String, &str)> = [
        (
            "-n br --ip 10.9.9.9",
            "IP address '10.9.9.9' is outside the subnet 10.4.0.0/24 of network 'br'",
        ),
        (
            "-n br --ip 10.4.0.1",
            "IP address '10.4.0.1' is the gateway of network 'br'",
        ),
        (
            "-n br --ip 10.4.0.2",
            "IP address '10.4.0.2' is already in use in network 'br'",
        ),
        (
            "-n br --ip 10.4.0.255",
            "IP address '10.4.0.255' is the broadcast address of network 'br'",
        ),
        ("-n br --ip 10.4.0.300", "invalid IP address '10.4.0.300'"),
        ("-n br --ip6 fd00::5", "network 'br' has no IPv6 subnet"),
        ("--ip 10.4.0.5", "--ip needs a network"),
        ("-n nosuch", "no such network: nosuch"),
        ("-n br -n br", "network 'br' is given twice"),
    ]
    .iter()
    .map(|(opts, needle)| (format!("run --name x {opts} busybox true"), *needle))
    .collect();
    let mut cases: Vec<(&str, &str)> = run.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    cases.extend([
        (
            "network connect br a",
            "container 'a' is already connected to network 'br'",
        ),
        (
            "network connect --ip 10.4.0.2 br idle",
            "IP address '10.4.0.2' is already in use in network 'br'",
        ),
        (
            "network connect --ip 10.9.9.9 br idle",
            "IP address '10.9.9.9' is outside the subnet",
        ),
        (
            "network disconnect br idle",
            "container 'idle' is not connected to network 'br'",
        ),
        ("network connect nosuch a", "no such network: nosuch"),
        ("network disconnect nosuch a", "no such network: nosuch"),
        ("network rm nosuch", "no such network: nosuch"),
        ("network inspect nosuch", "no such network: nosuch"),
        ("network connect br ghost", "no such container: ghost"),
        ("network rm host", "the host network cannot be removed"),
    ]);
    refused(&sb, &cases);
    assert_eq!(sb.container_count(), 2);
}

#[test]
fn a_killed_celld_leaves_addresses_and_connectivity_alone() {
    require_root!();
    let mut sb = Sandbox::new();
    sb.add_default_uplink();
    sb.sh_ok(LAN0);
    create(&sb, "--subnet 10.2.3.0/24 --subnet6 fd00:2::/64 testnet");
    create(&sb, "-t bridge --subnet 10.4.0.0/24 --subnet6 fd00:4::/64 br");
    create(&sb, "-t custom -i lan0 --subnet 192.168.50.0/24 lan");
    run_d(&sb, "i", "-n testnet -J allow.raw_sockets");
    run_d(&sb, "v", "-l vnet -n br -J allow.raw_sockets");
    run_d(&sb, "m", "-n lan");
    let connected = |sb: &Sandbox| {
        container_pings(sb, "i", "198.51.100.2");
        container_pings(sb, "v", "10.4.0.1");
        container_pings(sb, "v", "fd00:4::1");
        host_pings(sb, "10.2.3.1");
        host_pings(sb, "fd00:2::1");
        host_pings(sb, "10.4.0.2");
    };
    connected(&sb);
    let before = world(&sb);
    let inside_before = all_inside(&sb, &["i", "v", "m"]);
    let ls = ok(&sb, "network ls");

    sb.kill_celld(libc::SIGKILL);
    host_pings(&sb, "10.2.3.1");
    host_pings(&sb, "10.4.0.2");
    sb.start_celld();

    assert_eq!(ok(&sb, "network ls"), ls);
    assert_eq!(world(&sb), before);
    assert_eq!(all_inside(&sb, &["i", "v", "m"]), inside_before);
    connected(&sb);
}

#[test]
fn a_reboot_is_repaired_when_celld_starts() {
    require_root!();
    let mut sb = Sandbox::new();
    sb.add_default_uplink();
    create(&sb, "-t bridge --subnet 10.4.0.0/24 --subnet6 fd00:4::/64 br");
    create(&sb, "--subnet 10.2.3.0/24 --subnet6 fd00:2::/64 testnet");
    run_d(&sb, "v", "-l vnet -n br -J allow.raw_sockets");
    run_d(&sb, "i", "-n testnet -J allow.raw_sockets");
    container_pings(&sb, "v", "10.4.0.1");
    let before = world(&sb);
    assert!(!before.nft.is_empty());
    let inside_before = all_inside(&sb, &["v", "i"]);
    let v_netns = sb.netns_path("v");

    // What a reboot takes: the bridge, the veths, cell's tables.
    sb.kill_celld(libc::SIGTERM);
    sb.sh_ok(
        "ip link del cell0 && for l in $(ip -o link | grep -o 'cv[0-9a-f]\\{12\\}' | sort -u); \
         do ip link del $l; done && nft delete table inet cell && nft delete table bridge cell",
    );
    assert!(!has_link(&sb, "cell0") && cv_links(&sb).is_empty());
    assert!(sb.nft_elements().is_empty());
    let in_v = sb.sh_ok(&format!("nsenter --net={} ip -o link", v_netns.display()));
    assert_eq!(
        link_names(&in_v),
        ["lo"],
        "the container kept its end of the veth"
    );

    sb.start_celld();
    assert!(is_bridge(&sb, "cell0"));
    let out = sb.sh_ok("ip -o addr show dev cell0");
    assert_eq!(addrs(&out, "inet"), [pair("cell0", "10.4.0.1/24")]);
    assert_eq!(addrs(&out, "inet6"), [pair("cell0", "fd00:4::1/64")]);
    let after = world(&sb);
    assert_eq!(after.nft, before.nft, "the tables came back with other elements");
    assert_eq!(after, before);
    assert_eq!(all_inside(&sb, &["v", "i"]), inside_before);
    let routes = ok(&sb, "exec v ip route");
    assert!(routes.contains("default via 10.4.0.1 dev cell0"), "{routes}");
    container_pings(&sb, "v", "10.4.0.1");
    container_pings(&sb, "v", "fd00:4::1");
    container_pings(&sb, "i", "198.51.100.2");
    host_pings(&sb, "fd00:2::1");
}

#[test]
fn orphan_veths_are_removed_when_celld_starts() {
    require_root!();
    let mut sb = Sandbox::new();
    create(&sb, "-t bridge --subnet 10.4.0.0/24 br");
    run_d(&sb, "v", "-l vnet -n br");
    let epair = epair_of(&sb, "v");
    // A stopped container's veth left behind (say, a teardown cut short):
    // it belongs to an endpoint cell knows, so it goes.
    sb.ok(&words("create --name stopped -l vnet -n br busybox"));
    let stale = endpoints(&sb, "stopped")[0]["epair"]
        .as_str()
        .unwrap()
        .to_string();
    sb.sh_ok(&format!("ip link add {stale} type veth peer name cvpeer0"));
    // A link of the same shape that no endpoint names is someone else's.
    sb.sh_ok("ip link add cv0123456789ab type veth peer name userpeer0");
    sb.kill_celld(libc::SIGKILL);
    sb.start_celld();
    assert!(
        !has_link(&sb, &stale) && !has_link(&sb, "cvpeer0"),
        "{:?}",
        sb.link_names()
    );
    assert!(has_link(&sb, "cv0123456789ab"), "{:?}", sb.link_names());
    assert!(
        sb.sh_ok("ip -o link show master cell0").contains(&epair),
        "the live container's veth went too"
    );
}

#[test]
fn stale_network_namespaces_are_removed_when_celld_starts() {
    require_root!();
    let mut sb = Sandbox::new();
    create(&sb, "-t bridge --subnet 10.4.0.0/24 br");
    run_d(&sb, "live", "-l vnet -n br");
    // A namespace of a container that does not run, left by a teardown
    // cut short: a bind mount under the root's netns/.
    let stale = sb.root.join("netns").join("0123456789ab");
    sb.sh_ok(&format!(
        "touch {p} && unshare --net mount --bind /proc/self/ns/net {p}",
        p = stale.display()
    ));
    assert!(sb.sh_ok("cat /proc/self/mounts").contains("0123456789ab"));
    sb.kill_celld(libc::SIGKILL);
    sb.start_celld();
    let mounts = sb.sh_ok("cat /proc/self/mounts");
    assert!(!mounts.contains("0123456789ab"), "{mounts}");
    assert!(!stale.exists());
    // The running container's namespace stays, and it still works.
    assert!(sb.netns_path("live").exists());
    assert!(sb.sh_in_netns("live", "ip -o addr show cell0").status.success());
}

#[test]
fn a_container_that_died_while_celld_was_down_leaves_nothing_behind() {
    require_root!();
    let mut sb = Sandbox::new();
    create(&sb, "-t bridge --subnet 10.4.0.0/24 br");
    create(&sb, "--subnet 10.2.3.0/24 testnet");
    run_d(&sb, "stays", "-l vnet -n br");
    let stays = epair_of(&sb, "stays");
    for (name, net) in [("short4", "br"), ("short2", "testnet")] {
        let line = format!("run -d --name {name} -n {net} busybox sh -c");
        let mut args = words(&line);
        args.push("sleep 1; exit 3");
        sb.ok(&args);
    }
    let gone = [
        endpoints(&sb, "short4")[0].clone(),
        endpoints(&sb, "short2")[0].clone(),
    ];
    let pids: Vec<i64> = ["short4", "short2"]
        .iter()
        .map(|c| {
            sb.inspect(c)["container"]["pid"]
                .as_i64()
                .expect("a running container's pid")
        })
        .collect();
    sb.kill_celld(libc::SIGKILL);
    // Both end on their own while celld is down.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while pids.iter().any(|pid| sb.pid_alive(*pid)) {
        assert!(std::time::Instant::now() < deadline, "the containers did not end");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sb.start_celld();
    for c in ["short4", "short2"] {
        assert_eq!(sb.inspect(c)["container"]["exit_code"], 3);
    }
    assert_eq!(cv_links(&sb), [stays], "veths of the dead containers are left");
    let rs = ruleset(&sb);
    for ep in &gone {
        for key in ["ip_address", "epair"] {
            let v = format!("\"{}\"", ep[key].as_str().unwrap());
            assert!(!rs.contains(&v), "{v} is still in the ruleset: {rs}");
        }
    }
    // It keeps its address, and gets its link back when started.
    assert_eq!(ip_of(&sb, "short4"), "10.4.0.3");
    ok(&sb, "start short4");
    assert!(inside(&sb, "short4", "inet").contains(&pair("cell0", "10.4.0.3/32")));
}

#[test]
fn removing_a_network_or_container_removes_its_kernel_objects() {
    require_root!();
    let sb = Sandbox::new();
    create(&sb, "-t bridge --subnet 10.4.0.0/24 br");
    create(&sb, "--subnet 10.2.3.0/24 testnet");
    run_d(&sb, "v", "-l vnet -n br");
    run_d(&sb, "i", "-n testnet");
    let ep_v = endpoints(&sb, "v")[0].clone();
    let ep_i = endpoints(&sb, "i")[0].clone();
    let quoted = |ep: &Value, key: &str| format!("\"{}\"", ep[key].as_str().unwrap());
    for ep in [&ep_v, &ep_i] {
        assert!(has_link(&sb, ep["epair"].as_str().unwrap()));
        let ip = quoted(ep, "ip_address");
        assert!(ruleset(&sb).contains(&ip), "no element for {ip} to begin with");
    }

    // network rm with a running container: its veth and elements go.
    ok(&sb, "network rm br");
    assert!(!has_link(&sb, "cell0") && !has_link(&sb, ep_v["epair"].as_str().unwrap()));
    let rs = ruleset(&sb);
    for key in ["ip_address", "epair", "mac"] {
        let v = quoted(&ep_v, key);
        assert!(!rs.contains(&v), "{v} is still in the ruleset: {rs}");
    }
    assert!(
        !rs.contains("\"10.4.0.0\""),
        "the subnet is still in the ruleset: {rs}"
    );
    assert_eq!(sb.inspect("v")["container"]["running"], true);
    assert!(endpoints(&sb, "v").is_empty());
    assert_eq!(links_inside(&sb, "v"), ["lo"]);

    // rm -f of a running container: no cv* link, no element with its address.
    ok(&sb, "rm -f i");
    assert!(cv_links(&sb).is_empty(), "{:?}", sb.link_names());
    let rs = ruleset(&sb);
    for key in ["ip_address", "epair"] {
        let v = quoted(&ep_i, key);
        assert!(!rs.contains(&v), "{v} is still in the ruleset: {rs}");
    }

    // Stopping one removes its veth and elements too.
    run_d(&sb, "j", "-n testnet");
    assert_eq!(cv_links(&sb).len(), 1);
    ok(&sb, "stop -t 0 j");
    assert!(cv_links(&sb).is_empty(), "{:?}", sb.link_names());
    assert!(!ruleset(&sb).contains(&format!("\"{}\"", ip_of(&sb, "j"))));
}

#[test]
fn prune_removes_only_networks_without_endpoints() {
    require_root!();
    let sb = Sandbox::new();
    let a = create(&sb, "-t bridge --subnet 10.4.0.0/24 a");
    let b = create(&sb, "--subnet 10.2.3.0/24 b");
    let c = create(&sb, "-t bridge --subnet 10.6.0.0/24 c");
    let d = create(&sb, "-t bridge --subnet 10.8.0.0/24 d");
    // b has a stopped container, d a running one: both stay.
    ok(&sb, "create --name user -n b busybox true");
    run_d(&sb, "runner", "-n d");
    let mut pruned: Vec<String> = ok(&sb, "network prune").lines().map(str::to_string).collect();
    pruned.sort();
    let mut want = vec![a, c];
    want.sort();
    assert_eq!(pruned, want);
    assert_eq!(network_ids(&sb), [b, d]);
    assert!(
        !has_link(&sb, "cell0") && !has_link(&sb, "cell2"),
        "{:?}",
        sb.link_names()
    );
    assert!(is_bridge(&sb, "cell3"));
    let rs = ruleset(&sb);
    assert!(
        !rs.contains("\"10.4.0.0\"") && !rs.contains("\"10.6.0.0\""),
        "{rs}"
    );
    assert!(rs.contains("\"10.8.0.0\""), "{rs}");
    assert_eq!(ok(&sb, "network prune"), "");
}

#[test]
fn interfaces_named_like_cells_veths_are_refused_or_kept() {
    require_root!();
    let mut sb = Sandbox::new();
    // cell names the host ends of its veths cv + 12 hex digits, and deletes
    // those it does not know when it starts. A network's own interface of
    // that shape must be refused, or survive that.
    sb.sh_ok("ip link add cv00000000000a type veth peer name lanp0 && ip link set cv00000000000a up");
    let custom = sb.cell(&words(
        "network create -t custom -i cv00000000000a --subnet 192.168.9.0/24 lan",
    ));
    let bridge = sb.cell(&words(
        "network create -t bridge -i cv00000000000b --subnet 10.9.0.0/24 br",
    ));
    for (out, ifname) in [(&custom, "cv00000000000a"), (&bridge, "cv00000000000b")] {
        let refused_by_name = String::from_utf8_lossy(&out.stderr).contains(ifname);
        assert!(out.status.success() || refused_by_name, "{}", describe(out));
    }
    sb.kill_celld(libc::SIGTERM);
    sb.start_celld();
    assert!(
        has_link(&sb, "cv00000000000a"),
        "restarting celld deleted the user's interface cv00000000000a, parent of network lan: {:?}",
        sb.link_names()
    );
    assert!(
        !bridge.status.success() || has_link(&sb, "cv00000000000b"),
        "restarting celld deleted the bridge of network br: {:?}",
        sb.link_names()
    );
}
