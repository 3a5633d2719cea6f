//! The JSON of cell's own nftables tables, computed by pure functions.
//!
//! Two tables, both named [`TABLE`]: `inet cell` (forwarding policy
//! between networks, NAT, anti-spoofing on routed ports) and `bridge cell`
//! (layer 2 anti-spoofing on bridge ports, libioc's secure VNET, and icc
//! off inside a bridge). Their rules are fixed, written once by
//! [`base_ruleset`]; everything that depends on networks and containers is
//! an element of a set, so attaching a container is a few element adds in
//! one transaction and costs the same at 1 or 1000 containers.
//!
//! [`network_elements`] and [`endpoint_elements`] say which elements a
//! network or an endpoint needs; [`add_elements`] and [`delete_elements`]
//! turn them into commands, and [`batch`] wraps commands into one
//! transaction for [`crate::Firewall::apply`]. Nothing here touches the
//! kernel.

use crate::error::{NetError, Result};
use crate::mac::MacAddr;
use cell_core::model::{Endpoint, Network, NetworkType};
use ipnet::IpNet;
use serde_json::{Value, json};

/// The name of both of cell's tables.
pub const TABLE: &str = "cell";
/// The family of the layer 3 table.
pub const FAMILY_INET: &str = "inet";
/// The family of the layer 2 table.
pub const FAMILY_BRIDGE: &str = "bridge";

/// `inet cell`: forward policy between networks.
pub const CHAIN_FORWARD: &str = "forward";
/// `inet cell`: masquerade of NATed networks.
pub const CHAIN_POSTROUTING: &str = "postrouting";
/// `inet cell`: source checks on routed (loopback network) ports.
pub const CHAIN_PREROUTING_ANTISPOOF: &str = "prerouting_antispoof";
/// `bridge cell`: MAC and IP checks on bridge ports.
pub const CHAIN_BRIDGE_PREROUTING: &str = "prerouting";
/// `bridge cell`: icc off between ports of one bridge.
pub const CHAIN_BRIDGE_FORWARD: &str = "forward";

/// `inet cell`: every IPv4 subnet of cell (`ipv4_addr`, interval).
pub const SET_SUBNETS4: &str = "subnets4";
/// `inet cell`: every IPv6 subnet of cell.
pub const SET_SUBNETS6: &str = "subnets6";
/// `inet cell`: `S . S` for each IPv4 subnet whose network has icc on.
pub const SET_SAME_NET4: &str = "same_net4";
/// `inet cell`: `S . S` for each IPv6 subnet whose network has icc on.
pub const SET_SAME_NET6: &str = "same_net6";
/// `inet cell`: IPv4 subnets of internal networks.
pub const SET_INTERNAL4: &str = "internal4";
/// `inet cell`: IPv6 subnets of internal networks.
pub const SET_INTERNAL6: &str = "internal6";
/// `inet cell`: `SUBNET . NAT_IFNAME` for each NATed IPv4 subnet.
pub const SET_MASQ4: &str = "masq4";
/// `inet cell`: `SUBNET . NAT_IFNAME` for each NATed IPv6 subnet.
pub const SET_MASQ6: &str = "masq6";
/// `inet cell`: host ends of loopback-network veths with anti-spoofing.
pub const SET_ROUTED_PORTS: &str = "routed_ports";
/// `inet cell`: `ifname . ipv4_addr` a routed port may send from.
pub const SET_ROUTED_ALLOWED4: &str = "routed_allowed4";
/// `inet cell`: `ifname . ipv6_addr` a routed port may send from.
pub const SET_ROUTED_ALLOWED6: &str = "routed_allowed6";
/// `bridge cell`: bridge ports whose traffic is checked.
pub const SET_SPOOF_PORTS: &str = "spoof_ports";
/// `bridge cell`: `ifname . ether_addr` a port may send with.
pub const SET_ALLOWED_MAC: &str = "allowed_mac";
/// `bridge cell`: `ifname . ether_addr . ipv4_addr` a port may send with.
pub const SET_ALLOWED4: &str = "allowed4";
/// `bridge cell`: `ifname . ether_addr . ipv6_addr` a port may send with.
pub const SET_ALLOWED6: &str = "allowed6";
/// `bridge cell`: `ifname . ether_addr . mark` with the low 32 bits of each
/// IPv6 address a port may announce in neighbour advertisements.
pub const SET_ND_TARGETS: &str = "nd_targets";
/// `bridge cell`: bridge ports of networks with icc off; two of them may
/// not exchange frames.
pub const SET_ICC_OFF_PORTS: &str = "icc_off_ports";

/// `inet cell`: nat prerouting, DNAT of published ports for clients
/// from outside and from containers.
pub const CHAIN_NAT_PREROUTING: &str = "nat_prerouting";
/// `inet cell`: nat output, DNAT of published ports for clients on the
/// host itself.
pub const CHAIN_NAT_OUTPUT: &str = "nat_output";
/// `inet cell`: input filter that drops new connections to 127.0.0.0/8
/// from other interfaces than `lo` (see [`crate::ports`]).
pub const CHAIN_INPUT_LOCALNET: &str = "input_localnet";
/// `inet cell`: map `inet_proto . inet_service : ipv4_addr`, the
/// container address of IPv4 ports published on every host address.
/// (nft 1.0.6 crashes on a map to `ipv4_addr . inet_service` given as
/// JSON, so address and port are two maps with the same keys.)
pub const MAP_PORTS4_ADDR: &str = "ports4_addr";
/// `inet cell`: map `inet_proto . inet_service : inet_service`, the
/// container port of IPv4 ports published on every host address.
pub const MAP_PORTS4_PORT: &str = "ports4_port";
/// `inet cell`: as [`MAP_PORTS4_ADDR`], for IPv6.
pub const MAP_PORTS6_ADDR: &str = "ports6_addr";
/// `inet cell`: as [`MAP_PORTS4_PORT`], for IPv6.
pub const MAP_PORTS6_PORT: &str = "ports6_port";
/// `inet cell`: map `ipv4_addr . inet_proto . inet_service : ipv4_addr`,
/// the container address of IPv4 ports published on one host address.
pub const MAP_ADDR_PORTS4_ADDR: &str = "addr_ports4_addr";
/// `inet cell`: map `ipv4_addr . inet_proto . inet_service :
/// inet_service`, the container port of IPv4 ports published on one host
/// address.
pub const MAP_ADDR_PORTS4_PORT: &str = "addr_ports4_port";
/// `inet cell`: as [`MAP_ADDR_PORTS4_ADDR`], for IPv6.
pub const MAP_ADDR_PORTS6_ADDR: &str = "addr_ports6_addr";
/// `inet cell`: as [`MAP_ADDR_PORTS4_PORT`], for IPv6.
pub const MAP_ADDR_PORTS6_PORT: &str = "addr_ports6_port";
/// `inet cell`: `S . S` for each IPv4 subnet of a network whose
/// containers may be published: DNATed connections inside one subnet are
/// masqueraded (hairpin).
pub const SET_HAIRPIN4: &str = "hairpin4";
/// `inet cell`: `S . S` for each IPv6 subnet, as [`SET_HAIRPIN4`].
pub const SET_HAIRPIN6: &str = "hairpin6";

// Chain priorities as numbers: the JSON parser of nft 1.0.6 takes them
// as integers (the named ones are spelled out for the reader).
const PRIO_INET_FILTER: i32 = 0; // "filter"
const PRIO_SRCNAT: i32 = 100; // "srcnat"
const PRIO_DSTNAT: i32 = -100; // "dstnat"
const PRIO_RAW: i32 = -300; // "raw": before conntrack, so spoofed packets make no state
const PRIO_BRIDGE_PREROUTING: i32 = -300; // before anything else on the bridge
const PRIO_BRIDGE_FILTER: i32 = -200; // "filter" in the bridge family

/// Wraps commands into one batch: one nftables transaction.
pub fn batch(commands: impl IntoIterator<Item = Value>) -> Value {
    json!({ "nftables": commands.into_iter().collect::<Vec<_>>() })
}

/// The same batch on tables named `table` instead of [`TABLE`], so a second
/// user of this ruleset (the CNI plugin's `inet cell_cni` and `bridge
/// cell_cni`) never touches `celld`'s tables. Objects of other tables are
/// left as they are.
pub fn retarget(batch: &Value, table: &str) -> Value {
    let mut batch = batch.clone();
    let objects = batch["nftables"].as_array_mut().into_iter().flatten();
    for object in objects.filter_map(|c| c.as_object_mut()?.values_mut().next()?.as_object_mut()) {
        for (kind, body) in object.iter_mut() {
            let key = if kind == "table" { "name" } else { "table" };
            if body.get(key).and_then(Value::as_str) == Some(TABLE) {
                body[key] = json!(table);
            }
        }
    }
    batch
}

fn set(family: &str, name: &str, types: &[&str], interval: bool) -> Value {
    let ty = if types.len() == 1 {
        json!(types[0])
    } else {
        json!(types)
    };
    let mut set = json!({"family": family, "table": TABLE, "name": name, "type": ty});
    if interval {
        set["flags"] = json!(["interval"]);
    }
    json!({"add": {"set": set}})
}

fn chain(family: &str, name: &str, ty: &str, hook: &str, prio: i32) -> Value {
    json!({"add": {"chain": {
        "family": family, "table": TABLE, "name": name,
        "type": ty, "hook": hook, "prio": prio, "policy": "accept"
    }}})
}

fn rule(family: &str, chain: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": family, "table": TABLE, "chain": chain, "expr": expr}}})
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn concat(parts: Vec<Value>) -> Value {
    json!({ "concat": parts })
}

fn is(left: Value, right: Value) -> Value {
    json!({"match": {"op": "==", "left": left, "right": right}})
}

fn is_not(left: Value, right: Value) -> Value {
    json!({"match": {"op": "!=", "left": left, "right": right}})
}

fn set_ref(name: &str) -> Value {
    json!(format!("@{name}"))
}

fn prefix(net: IpNet) -> Value {
    json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}})
}

/// `len` bits at bit `offset` of the transport header.
fn raw_th(offset: u32, len: u32) -> Value {
    json!({"payload": {"base": "th", "offset": offset, "len": len}})
}

fn verdict(v: &str) -> Value {
    json!({ v: null })
}

/// The commands of `inet cell`, after its flush.
fn inet_table() -> Vec<Value> {
    let f = FAMILY_INET;
    let mut cmds = vec![
        set(f, SET_SUBNETS4, &["ipv4_addr"], true),
        set(f, SET_SUBNETS6, &["ipv6_addr"], true),
        set(f, SET_SAME_NET4, &["ipv4_addr", "ipv4_addr"], true),
        set(f, SET_SAME_NET6, &["ipv6_addr", "ipv6_addr"], true),
        set(f, SET_INTERNAL4, &["ipv4_addr"], true),
        set(f, SET_INTERNAL6, &["ipv6_addr"], true),
        set(f, SET_MASQ4, &["ipv4_addr", "ifname"], true),
        set(f, SET_MASQ6, &["ipv6_addr", "ifname"], true),
        set(f, SET_ROUTED_PORTS, &["ifname"], false),
        set(f, SET_ROUTED_ALLOWED4, &["ifname", "ipv4_addr"], false),
        set(f, SET_ROUTED_ALLOWED6, &["ifname", "ipv6_addr"], false),
        chain(f, CHAIN_FORWARD, "filter", "forward", PRIO_INET_FILTER),
        chain(f, CHAIN_POSTROUTING, "nat", "postrouting", PRIO_SRCNAT),
        chain(f, CHAIN_PREROUTING_ANTISPOOF, "filter", "prerouting", PRIO_RAW),
        rule(
            f,
            CHAIN_FORWARD,
            vec![
                json!({"match": {"op": "in", "left": {"ct": {"key": "state"}},
                    "right": ["established", "related"]}}),
                verdict("accept"),
            ],
        ),
    ];
    for (ip, same, internal, subnets, masq, allowed) in [
        (
            "ip",
            SET_SAME_NET4,
            SET_INTERNAL4,
            SET_SUBNETS4,
            SET_MASQ4,
            SET_ROUTED_ALLOWED4,
        ),
        (
            "ip6",
            SET_SAME_NET6,
            SET_INTERNAL6,
            SET_SUBNETS6,
            SET_MASQ6,
            SET_ROUTED_ALLOWED6,
        ),
    ] {
        let saddr = || payload(ip, "saddr");
        let daddr = || payload(ip, "daddr");
        // Order matters: same network (icc on) first, so containers of one
        // internal network still reach each other; then internal networks
        // are cut off from everything else; then different networks (or
        // icc off) are cut off from each other. The rest (to and from the
        // outside) is accepted by the policy.
        cmds.push(rule(
            f,
            CHAIN_FORWARD,
            vec![
                is(concat(vec![saddr(), daddr()]), set_ref(same)),
                verdict("accept"),
            ],
        ));
        cmds.push(rule(
            f,
            CHAIN_FORWARD,
            vec![is(saddr(), set_ref(internal)), verdict("drop")],
        ));
        cmds.push(rule(
            f,
            CHAIN_FORWARD,
            vec![is(daddr(), set_ref(internal)), verdict("drop")],
        ));
        cmds.push(rule(
            f,
            CHAIN_FORWARD,
            vec![
                is(saddr(), set_ref(subnets)),
                is(daddr(), set_ref(subnets)),
                verdict("drop"),
            ],
        ));
        cmds.push(rule(
            f,
            CHAIN_POSTROUTING,
            vec![
                is(concat(vec![saddr(), meta("oifname")]), set_ref(masq)),
                is_not(daddr(), set_ref(subnets)),
                verdict("masquerade"),
            ],
        ));
        // nft 1.0.6 has no negated lookup of a concatenation that also
        // tests set membership of its first part, so "allowed" is an
        // accept and the drop follows for the port's protocol.
        cmds.push(rule(
            f,
            CHAIN_PREROUTING_ANTISPOOF,
            vec![
                is(meta("iifname"), set_ref(SET_ROUTED_PORTS)),
                is(concat(vec![meta("iifname"), saddr()]), set_ref(allowed)),
                verdict("accept"),
            ],
        ));
        if ip == "ip6" {
            // Link-local sources and the unspecified address (DAD) are
            // needed for neighbour discovery with the host end.
            cmds.push(rule(
                f,
                CHAIN_PREROUTING_ANTISPOOF,
                vec![
                    is(meta("iifname"), set_ref(SET_ROUTED_PORTS)),
                    is(
                        saddr(),
                        json!({"set": [prefix("fe80::/10".parse().unwrap()), "::"]}),
                    ),
                    verdict("accept"),
                ],
            ));
        }
        cmds.push(rule(
            f,
            CHAIN_PREROUTING_ANTISPOOF,
            vec![
                is(meta("iifname"), set_ref(SET_ROUTED_PORTS)),
                is(meta("nfproto"), json!(if ip == "ip" { "ipv4" } else { "ipv6" })),
                verdict("drop"),
            ],
        ));
    }
    cmds.extend(inet_port_commands());
    cmds
}

fn map(name: &str, key: &[&str], data: &str) -> Value {
    json!({"add": {"map": {
        "family": FAMILY_INET, "table": TABLE, "name": name, "type": key, "map": data
    }}})
}

/// The maps, chains and rules of published ports in `inet cell` (see
/// [`crate::ports`]): fixed, whatever the number of ports.
fn inet_port_commands() -> Vec<Value> {
    let f = FAMILY_INET;
    let any = ["inet_proto", "inet_service"];
    let one4 = ["ipv4_addr", "inet_proto", "inet_service"];
    let one6 = ["ipv6_addr", "inet_proto", "inet_service"];
    let mut cmds = vec![
        map(MAP_PORTS4_ADDR, &any, "ipv4_addr"),
        map(MAP_PORTS4_PORT, &any, "inet_service"),
        map(MAP_PORTS6_ADDR, &any, "ipv6_addr"),
        map(MAP_PORTS6_PORT, &any, "inet_service"),
        map(MAP_ADDR_PORTS4_ADDR, &one4, "ipv4_addr"),
        map(MAP_ADDR_PORTS4_PORT, &one4, "inet_service"),
        map(MAP_ADDR_PORTS6_ADDR, &one6, "ipv6_addr"),
        map(MAP_ADDR_PORTS6_PORT, &one6, "inet_service"),
        set(f, SET_HAIRPIN4, &["ipv4_addr", "ipv4_addr"], true),
        set(f, SET_HAIRPIN6, &["ipv6_addr", "ipv6_addr"], true),
        chain(f, CHAIN_NAT_PREROUTING, "nat", "prerouting", PRIO_DSTNAT),
        chain(f, CHAIN_NAT_OUTPUT, "nat", "output", PRIO_DSTNAT),
        chain(f, CHAIN_INPUT_LOCALNET, "filter", "input", PRIO_INET_FILTER),
    ];
    let l4 = || vec![meta("l4proto"), payload("th", "dport")];
    let lookup =
        |key: &[Value], map: &str| json!({"map": {"key": concat(key.to_vec()), "data": set_ref(map)}});
    let dnat = |ip: &str, key: Vec<Value>, (addr, port): (&str, &str)| json!({"dnat": {"family": ip, "addr": lookup(&key, addr), "port": lookup(&key, port)}});
    for (ip, nfproto, any, by_addr, internal, hairpin, localhost) in [
        (
            "ip",
            "ipv4",
            (MAP_PORTS4_ADDR, MAP_PORTS4_PORT),
            (MAP_ADDR_PORTS4_ADDR, MAP_ADDR_PORTS4_PORT),
            SET_INTERNAL4,
            SET_HAIRPIN4,
            prefix("127.0.0.0/8".parse().unwrap()),
        ),
        (
            "ip6",
            "ipv6",
            (MAP_PORTS6_ADDR, MAP_PORTS6_PORT),
            (MAP_ADDR_PORTS6_ADDR, MAP_ADDR_PORTS6_PORT),
            SET_INTERNAL6,
            SET_HAIRPIN6,
            json!("::1"),
        ),
    ] {
        for chain in [CHAIN_NAT_PREROUTING, CHAIN_NAT_OUTPUT] {
            // A failed map lookup ends the rule, so a packet tries the
            // ports of its destination address first, then those of
            // every address; the latter only for the host's own
            // addresses (not for traffic the host routes or sends away).
            let mut key = vec![payload(ip, "daddr")];
            key.extend(l4());
            cmds.push(rule(f, chain, vec![dnat(ip, key, by_addr)]));
            cmds.push(rule(
                f,
                chain,
                vec![
                    is(meta("nfproto"), json!(nfproto)),
                    is(
                        json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                        json!("local"),
                    ),
                    dnat(ip, l4(), any),
                ],
            ));
        }
        let dnatted = || json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}});
        // Inserted, so they come before the isolation drops of the
        // forward chain: a published port is reachable from other
        // networks and on icc off, but internal networks stay shut in.
        cmds.push(json!({"insert": {"rule": {
            "family": f, "table": TABLE, "chain": CHAIN_FORWARD,
            "expr": [dnatted(), is_not(payload(ip, "saddr"), set_ref(internal)), verdict("accept")]
        }}}));
        cmds.push(rule(
            f,
            CHAIN_POSTROUTING,
            vec![
                dnatted(),
                is(
                    concat(vec![payload(ip, "saddr"), payload(ip, "daddr")]),
                    set_ref(hairpin),
                ),
                verdict("masquerade"),
            ],
        ));
        cmds.push(rule(
            f,
            CHAIN_POSTROUTING,
            vec![
                dnatted(),
                is(payload(ip, "saddr"), localhost),
                verdict("masquerade"),
            ],
        ));
    }
    // route_localnet lets 127.0.0.0/8 in on cell's host-side interfaces
    // (so replies to the host's own 127.0.0.1 clients come back); nothing
    // else may use that: new connections to it from outside `lo` are
    // dropped, as kube-proxy does for the same sysctl.
    cmds.push(rule(
        f,
        CHAIN_INPUT_LOCALNET,
        vec![
            is_not(meta("iif"), json!("lo")),
            is(payload("ip", "daddr"), prefix("127.0.0.0/8".parse().unwrap())),
            is_not(
                json!({"ct": {"key": "state"}}),
                json!({"set": ["established", "related"]}),
            ),
            verdict("drop"),
        ],
    ));
    cmds
}

/// The elements of a network that published ports need: `S . S` for each
/// subnet of a bridge or loopback network, for the hairpin masquerade.
pub fn network_port_elements(net: &Network) -> Vec<Element> {
    if !matches!(net.net_type, NetworkType::Bridge | NetworkType::Loopback) {
        return Vec::new();
    }
    let v4 = net.subnet.map(|s| (SET_HAIRPIN4, IpNet::V4(s).trunc()));
    let v6 = net.subnet6.map(|s| (SET_HAIRPIN6, IpNet::V6(s).trunc()));
    v4.into_iter()
        .chain(v6)
        .map(|(set, s)| Element::new(FAMILY_INET, set, concat(vec![prefix(s), prefix(s)])))
        .collect()
}

/// The commands of `bridge cell`, after its flush.
fn bridge_table() -> Vec<Value> {
    let f = FAMILY_BRIDGE;
    let c = CHAIN_BRIDGE_PREROUTING;
    let iif = || meta("iifname");
    let ether_saddr = || payload("ether", "saddr");
    let ether_type = |t: &str| is(payload("ether", "type"), json!(t));
    vec![
        set(f, SET_SPOOF_PORTS, &["ifname"], false),
        set(f, SET_ALLOWED_MAC, &["ifname", "ether_addr"], false),
        set(f, SET_ALLOWED4, &["ifname", "ether_addr", "ipv4_addr"], false),
        set(f, SET_ALLOWED6, &["ifname", "ether_addr", "ipv6_addr"], false),
        set(f, SET_ICC_OFF_PORTS, &["ifname"], false),
        set(f, SET_ND_TARGETS, &["ifname", "ether_addr", "mark"], false),
        chain(f, c, "filter", "prerouting", PRIO_BRIDGE_PREROUTING),
        chain(f, CHAIN_BRIDGE_FORWARD, "filter", "forward", PRIO_BRIDGE_FILTER),
        // Frames from ports without anti-spoofing leave the chain at once.
        rule(
            f,
            c,
            vec![is_not(iif(), set_ref(SET_SPOOF_PORTS)), verdict("accept")],
        ),
        rule(
            f,
            c,
            vec![
                ether_type("ip"),
                is(
                    concat(vec![iif(), ether_saddr(), payload("ip", "saddr")]),
                    set_ref(SET_ALLOWED4),
                ),
                verdict("accept"),
            ],
        ),
        // ARP: the frame's and the ARP sender's MAC must both be the port's,
        // and the sender IP one of its addresses (or 0.0.0.0, an ARP probe).
        rule(
            f,
            c,
            vec![
                ether_type("arp"),
                is(
                    concat(vec![iif(), ether_saddr(), payload("arp", "saddr ip")]),
                    set_ref(SET_ALLOWED4),
                ),
                is(
                    concat(vec![iif(), payload("arp", "saddr ether")]),
                    set_ref(SET_ALLOWED_MAC),
                ),
                verdict("accept"),
            ],
        ),
        rule(
            f,
            c,
            vec![
                ether_type("arp"),
                is(concat(vec![iif(), ether_saddr()]), set_ref(SET_ALLOWED_MAC)),
                is(
                    concat(vec![iif(), payload("arp", "saddr ether")]),
                    set_ref(SET_ALLOWED_MAC),
                ),
                is(payload("arp", "saddr ip"), json!("0.0.0.0")),
                verdict("accept"),
            ],
        ),
        // A container must not act as a router for its neighbours.
        rule(
            f,
            c,
            vec![
                ether_type("ip6"),
                is(
                    payload("icmpv6", "type"),
                    json!({"set": ["nd-router-advert", "nd-redirect"]}),
                ),
                verdict("drop"),
            ],
        ),
        // Neighbour advertisements are IPv6's ARP replies: the address they
        // announce (the target, bits 64 to 191 of the ICMPv6 header) must be the
        // port's too, or a container could poison its neighbours' caches
        // from its own source address. nft 1.0.6 has no `icmpv6 taddr` and
        // cannot look a raw 128-bit field up in a set, so the check is on
        // the target's low 32 bits, carried in the mark: within one
        // on-link subnet cell's addresses differ there. Link-local targets
        // need only the port's own MAC, like link-local sources below.
        rule(
            f,
            c,
            vec![
                ether_type("ip6"),
                is(payload("icmpv6", "type"), json!("nd-neighbor-advert")),
                is(raw_th(64, 10), json!(0x3fa)),
                is(concat(vec![iif(), ether_saddr()]), set_ref(SET_ALLOWED_MAC)),
                verdict("accept"),
            ],
        ),
        rule(
            f,
            c,
            vec![
                ether_type("ip6"),
                is(payload("icmpv6", "type"), json!("nd-neighbor-advert")),
                json!({"mangle": {"key": meta("mark"), "value": raw_th(160, 32)}}),
            ],
        ),
        rule(
            f,
            c,
            vec![
                ether_type("ip6"),
                is(payload("icmpv6", "type"), json!("nd-neighbor-advert")),
                is(
                    concat(vec![iif(), ether_saddr(), meta("mark")]),
                    set_ref(SET_ND_TARGETS),
                ),
                verdict("accept"),
            ],
        ),
        rule(
            f,
            c,
            vec![
                ether_type("ip6"),
                is(payload("icmpv6", "type"), json!("nd-neighbor-advert")),
                verdict("drop"),
            ],
        ),
        rule(
            f,
            c,
            vec![
                ether_type("ip6"),
                is(
                    concat(vec![iif(), ether_saddr(), payload("ip6", "saddr")]),
                    set_ref(SET_ALLOWED6),
                ),
                verdict("accept"),
            ],
        ),
        rule(
            f,
            c,
            vec![
                ether_type("ip6"),
                is(concat(vec![iif(), ether_saddr()]), set_ref(SET_ALLOWED_MAC)),
                is(
                    payload("ip6", "saddr"),
                    json!({"set": [prefix("fe80::/10".parse().unwrap()), "::"]}),
                ),
                verdict("accept"),
            ],
        ),
        rule(f, c, vec![verdict("drop")]),
        // The bridge family's `meta ibrname` is not supported by these
        // kernels ("Operation not supported"), so icc off is a set of ports
        // rather than of bridges. Traffic to the gateway on the bridge
        // itself goes to the input hook, not here, and stays allowed.
        rule(
            f,
            CHAIN_BRIDGE_FORWARD,
            vec![
                is(iif(), set_ref(SET_ICC_OFF_PORTS)),
                is(meta("oifname"), set_ref(SET_ICC_OFF_PORTS)),
                verdict("drop"),
            ],
        ),
    ]
}

/// The batch that creates both of cell's tables with all their chains, sets
/// and fixed rules.
///
/// Idempotent, and touches only cell's tables. It works by `add table`
/// (a no-op if present), `flush table` (which removes the rules but keeps
/// the sets and their elements), then `add` of every set and chain (no-ops
/// if present) and of the rules. Flushing rather than deleting the table
/// means a daemon restart keeps every container's elements, so traffic is
/// not cut while the daemon reconciles. If a new version changes a set's
/// type, `add set` fails: apply [`delete_tables`] first.
pub fn base_ruleset() -> Value {
    batch(base_commands())
}

/// The commands of [`base_ruleset`], to combine with others in one batch.
pub fn base_commands() -> Vec<Value> {
    let mut cmds = Vec::new();
    for (family, body) in [(FAMILY_INET, inet_table()), (FAMILY_BRIDGE, bridge_table())] {
        let table = json!({"family": family, "name": TABLE});
        cmds.push(json!({"add": {"table": table.clone()}}));
        cmds.push(json!({"flush": {"table": table}}));
        cmds.extend(body);
    }
    cmds
}

/// The batch that removes both of cell's tables; succeeds if they are gone.
pub fn delete_tables() -> Value {
    batch(delete_table_commands())
}

/// The commands of [`delete_tables`], to combine with others in one batch.
pub fn delete_table_commands() -> Vec<Value> {
    let mut cmds = Vec::new();
    for family in [FAMILY_INET, FAMILY_BRIDGE] {
        let table = json!({"family": family, "name": TABLE});
        // The add makes the delete succeed when the table is absent.
        cmds.push(json!({"add": {"table": table.clone()}}));
        cmds.push(json!({"delete": {"table": table}}));
    }
    cmds
}

/// One element of one of cell's sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    /// [`FAMILY_INET`] or [`FAMILY_BRIDGE`].
    pub family: &'static str,
    /// The set, one of the `SET_*` constants.
    pub set: &'static str,
    /// The element as nft JSON (a value, a prefix or a concatenation).
    pub value: Value,
}

impl Element {
    fn new(family: &'static str, set: &'static str, value: Value) -> Self {
        Self { family, set, value }
    }

    fn command(&self, verb: &str) -> Value {
        json!({ verb: {"element": {
            "family": self.family, "table": TABLE, "name": self.set, "elem": [self.value]
        }}})
    }
}

/// The commands that add `elements`; adding one that exists is a no-op.
pub fn add_elements(elements: &[Element]) -> Vec<Value> {
    elements.iter().map(|e| e.command("add")).collect()
}

/// The commands that delete `elements`, the exact inverse of
/// [`add_elements`]. Idempotent: nft 1.0.6 has no `destroy`, and deleting a
/// missing element fails the whole transaction, so each delete is preceded
/// by an add of the same element in the same transaction.
pub fn delete_elements(elements: &[Element]) -> Vec<Value> {
    elements
        .iter()
        .flat_map(|e| [e.command("add"), e.command("delete")])
        .collect()
}

/// The elements a network needs in `inet cell`: its subnets, same-network
/// pairs when icc is on, internal subnets, masquerade out of its NAT
/// interface (unless internal), and the hairpin pairs of published ports
/// ([`network_port_elements`]).
pub fn network_elements(net: &Network) -> Vec<Element> {
    let f = FAMILY_INET;
    let mut elems = Vec::new();
    let subnets = [
        net.subnet.map(|s| {
            (
                IpNet::V4(s),
                SET_SUBNETS4,
                SET_SAME_NET4,
                SET_INTERNAL4,
                SET_MASQ4,
            )
        }),
        net.subnet6.map(|s| {
            (
                IpNet::V6(s),
                SET_SUBNETS6,
                SET_SAME_NET6,
                SET_INTERNAL6,
                SET_MASQ6,
            )
        }),
    ];
    for (subnet, all, same, internal, masq) in subnets.into_iter().flatten() {
        let subnet = subnet.trunc();
        elems.push(Element::new(f, all, prefix(subnet)));
        if net.icc {
            elems.push(Element::new(
                f,
                same,
                concat(vec![prefix(subnet), prefix(subnet)]),
            ));
        }
        if net.internal {
            elems.push(Element::new(f, internal, prefix(subnet)));
        } else if let Some(nat) = &net.nat {
            elems.push(Element::new(f, masq, concat(vec![prefix(subnet), json!(nat)])));
        }
    }
    elems.extend(network_port_elements(net));
    elems
}

/// The elements an endpoint needs: on a bridge network with anti-spoofing,
/// its port and the MAC and addresses it may send with; on a bridge
/// network with icc off, its port; on a loopback network with
/// anti-spoofing, its routed port and addresses. Custom (macvlan) networks
/// have no host-side port and need none.
///
/// `host_ifname` is the host end of the endpoint's veth; `mac` is the MAC
/// of the container's end, defaulting to `ep.mac`. Fails only if
/// anti-spoofing on a bridge needs a MAC that neither gives.
pub fn endpoint_elements(
    net: &Network,
    ep: &Endpoint,
    host_ifname: &str,
    mac: Option<MacAddr>,
) -> Result<Vec<Element>> {
    let mut elems = Vec::new();
    let port = || json!(host_ifname);
    match net.net_type {
        NetworkType::Bridge => {
            if net.antispoof {
                let mac = match mac {
                    Some(mac) => mac,
                    None => ep
                        .mac
                        .as_deref()
                        .ok_or_else(|| NetError::MissingMac {
                            endpoint: ep.id.clone(),
                            network: net.name.clone(),
                        })?
                        .parse()?,
                };
                let mac = json!(mac.to_string());
                let b = FAMILY_BRIDGE;
                elems.push(Element::new(b, SET_SPOOF_PORTS, port()));
                elems.push(Element::new(
                    b,
                    SET_ALLOWED_MAC,
                    concat(vec![port(), mac.clone()]),
                ));
                if let Some(ip) = ep.ip_address {
                    let v = concat(vec![port(), mac.clone(), json!(ip.to_string())]);
                    elems.push(Element::new(b, SET_ALLOWED4, v));
                }
                if let Some(ip) = ep.ip_address6 {
                    let v = concat(vec![port(), mac.clone(), json!(ip.to_string())]);
                    elems.push(Element::new(b, SET_ALLOWED6, v));
                    // The mark holds the packet's bytes as they are, and a mark is
                    // a host-order number: read the bytes in host order too.
                    let low32 = u32::from_ne_bytes(ip.octets()[12..].try_into().unwrap());
                    let v = concat(vec![port(), mac.clone(), json!(low32)]);
                    elems.push(Element::new(b, SET_ND_TARGETS, v));
                }
            }
            if !net.icc {
                elems.push(Element::new(FAMILY_BRIDGE, SET_ICC_OFF_PORTS, port()));
            }
        }
        NetworkType::Loopback if net.antispoof => {
            let f = FAMILY_INET;
            elems.push(Element::new(f, SET_ROUTED_PORTS, port()));
            if let Some(ip) = ep.ip_address {
                let v = concat(vec![port(), json!(ip.to_string())]);
                elems.push(Element::new(f, SET_ROUTED_ALLOWED4, v));
            }
            if let Some(ip) = ep.ip_address6 {
                let v = concat(vec![port(), json!(ip.to_string())]);
                elems.push(Element::new(f, SET_ROUTED_ALLOWED6, v));
            }
        }
        NetworkType::Loopback | NetworkType::Custom => {}
    }
    Ok(elems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::network;

    fn endpoint() -> Endpoint {
        Endpoint {
            id: "aaaaaaaaaaaa".into(),
            network_id: "0123456789ab".into(),
            container_id: "bbbbbbbbbbbb".into(),
            epair: Some("vh0".into()),
            ip_address: Some("10.1.0.2".parse().unwrap()),
            ip_address6: Some("fd00:1::2".parse().unwrap()),
            mac: Some("02:00:00:00:00:02".into()),
        }
    }

    fn sets_of(elems: &[Element]) -> Vec<(&str, &str)> {
        elems.iter().map(|e| (e.family, e.set)).collect()
    }

    #[test]
    fn base_ruleset_owns_only_cells_tables() {
        let base = base_ruleset();
        let cmds = base["nftables"].as_array().unwrap();
        for cmd in cmds {
            let (verb, body) = cmd.as_object().unwrap().iter().next().unwrap();
            assert!(verb == "add" || verb == "flush" || verb == "insert", "{cmd}");
            let object = body.as_object().unwrap().values().next().unwrap();
            let table = object.get("table").unwrap_or(&object["name"]);
            assert_eq!(table, TABLE, "{cmd}");
            assert!(["inet", "bridge"].contains(&object["family"].as_str().unwrap()));
        }
        // The flush of each table comes right after its add and before any
        // rule of it.
        assert_eq!(
            cmds[1],
            json!({"flush": {"table": {"family": "inet", "name": "cell"}}})
        );
        assert!(!base.to_string().contains("ruleset"));
    }

    #[test]
    fn forward_chain_checks_same_network_first() {
        let base = base_ruleset();
        let rules: Vec<&Value> = base["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["add"].get("rule"))
            .filter(|r| r["family"] == "inet" && r["chain"] == CHAIN_FORWARD)
            .collect();
        assert_eq!(rules.len(), 9);
        assert_eq!(rules[0]["expr"][0]["match"]["left"]["ct"]["key"], "state");
        assert_eq!(rules[1]["expr"][0]["match"]["right"], "@same_net4");
        assert_eq!(rules[1]["expr"][1], json!({"accept": null}));
        assert_eq!(rules[4]["expr"][0]["match"]["right"], "@subnets4");
        assert_eq!(rules[4]["expr"][1]["match"]["right"], "@subnets4");
        assert_eq!(rules[4]["expr"][2], json!({"drop": null}));
    }

    fn rules_of(base: &Value, chain: &str) -> Vec<Value> {
        base["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["add"].get("rule").or_else(|| c["insert"].get("rule")))
            .filter(|r| r["family"] == "inet" && r["chain"] == chain)
            .cloned()
            .collect()
    }

    #[test]
    fn published_ports_are_looked_up_in_maps_by_fixed_rules() {
        let base = base_ruleset();
        // Per family: the one-address map, then every address for local
        // destinations only, in both nat chains.
        for chain in [CHAIN_NAT_PREROUTING, CHAIN_NAT_OUTPUT] {
            let rules = rules_of(&base, chain);
            assert_eq!(rules.len(), 4, "{chain}");
            let text: Vec<String> = rules.iter().map(|r| r["expr"].to_string()).collect();
            assert!(text[0].contains("\"@addr_ports4_addr\""), "{}", text[0]);
            assert!(text[0].contains("\"@addr_ports4_port\""), "{}", text[0]);
            assert!(
                text[1].contains("\"@ports4_addr\"") && text[1].contains("\"fib\""),
                "{}",
                text[1]
            );
            assert!(text[2].contains("\"@addr_ports6_addr\""), "{}", text[2]);
            assert!(
                text[3].contains("\"@ports6_port\"") && text[3].contains("\"local\""),
                "{}",
                text[3]
            );
        }
        // DNATed connections pass the forward chain's isolation drops:
        // inserted, so they come first, but not from internal networks.
        let inserted: Vec<&Value> = base["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c.get("insert"))
            .collect();
        assert_eq!(inserted.len(), 2);
        for rule in inserted {
            assert_eq!(rule["rule"]["chain"], CHAIN_FORWARD);
            assert_eq!(rule["rule"]["expr"][0]["match"]["right"], "dnat");
            assert!(
                rule["rule"]["expr"][1]["match"]["right"]
                    .as_str()
                    .unwrap()
                    .starts_with("@internal")
            );
        }
        let post = rules_of(&base, CHAIN_POSTROUTING);
        let masq: Vec<&Value> = post
            .iter()
            .filter(|r| r["expr"][0]["match"]["right"] == "dnat")
            .collect();
        assert_eq!(masq.len(), 4, "hairpin and loopback sources, per family");
        assert_eq!(rules_of(&base, CHAIN_INPUT_LOCALNET).len(), 1);
    }

    #[test]
    fn the_rule_count_does_not_depend_on_ports() {
        // Ports are elements: the ruleset has no input that could make
        // it grow, and a thousand ports are a thousand elements of
        // one transaction.
        let rules = |b: &Value| {
            b["nftables"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["add"].get("rule").is_some() || c["insert"].get("rule").is_some())
                .count()
        };
        assert_eq!(rules(&base_ruleset()), 44);
        let forwards: Vec<crate::PortForward> = (1..=1000)
            .map(|p| crate::PortForward {
                host_ip: None,
                host_port: p,
                container_ip: "10.1.0.2".parse().unwrap(),
                container_port: p,
                protocol: cell_core::port::Protocol::Tcp,
            })
            .collect();
        let elements = crate::ports::port_elements(&forwards).unwrap();
        let cmds = add_elements(&elements);
        assert_eq!(cmds.len(), 2000, "an address and a port per forward");
        assert!(cmds.iter().all(|c| c["add"].get("element").is_some()));
    }

    #[test]
    fn network_elements_follow_the_flags() {
        let mut net = network(NetworkType::Bridge);
        let elems = network_elements(&net);
        assert_eq!(
            sets_of(&elems),
            vec![
                ("inet", SET_SUBNETS4),
                ("inet", SET_SAME_NET4),
                ("inet", SET_MASQ4),
                ("inet", SET_SUBNETS6),
                ("inet", SET_SAME_NET6),
                ("inet", SET_MASQ6),
                ("inet", SET_HAIRPIN4),
                ("inet", SET_HAIRPIN6),
            ]
        );
        assert_eq!(
            elems[2].value,
            json!({"concat": [{"prefix": {"addr": "10.1.0.0", "len": 24}}, "eth0"]})
        );
        net.icc = false;
        net.internal = true;
        net.subnet6 = None;
        let elems = network_elements(&net);
        assert_eq!(
            sets_of(&elems),
            vec![
                ("inet", SET_SUBNETS4),
                ("inet", SET_INTERNAL4),
                ("inet", SET_HAIRPIN4)
            ]
        );
        net.internal = false;
        net.nat = None;
        assert_eq!(
            sets_of(&network_elements(&net)),
            vec![("inet", SET_SUBNETS4), ("inet", SET_HAIRPIN4)]
        );
        net.net_type = NetworkType::Custom;
        assert_eq!(sets_of(&network_elements(&net)), vec![("inet", SET_SUBNETS4)]);
        assert_eq!(
            network_port_elements(&network(NetworkType::Loopback))[0].value,
            json!({"concat": [
                {"prefix": {"addr": "10.1.0.0", "len": 24}},
                {"prefix": {"addr": "10.1.0.0", "len": 24}}
            ]})
        );
    }

    #[test]
    fn endpoint_elements_per_network_type() {
        let ep = endpoint();
        let mut net = network(NetworkType::Bridge);
        let elems = endpoint_elements(&net, &ep, "vh0", None).unwrap();
        assert_eq!(
            sets_of(&elems),
            vec![
                ("bridge", SET_SPOOF_PORTS),
                ("bridge", SET_ALLOWED_MAC),
                ("bridge", SET_ALLOWED4),
                ("bridge", SET_ALLOWED6),
                ("bridge", SET_ND_TARGETS),
            ]
        );
        assert_eq!(
            elems[4].value,
            json!({"concat": ["vh0", "02:00:00:00:00:02", u32::from_ne_bytes([0, 0, 0, 2])]}),
            "the low 32 bits of fd00:1::2, as the mark holds them"
        );
        assert_eq!(
            elems[2].value,
            json!({"concat": ["vh0", "02:00:00:00:00:02", "10.1.0.2"]})
        );
        net.icc = false;
        net.antispoof = false;
        let elems = endpoint_elements(&net, &ep, "vh0", None).unwrap();
        assert_eq!(sets_of(&elems), vec![("bridge", SET_ICC_OFF_PORTS)]);

        let mut net = network(NetworkType::Loopback);
        let elems = endpoint_elements(&net, &ep, "vh0", None).unwrap();
        assert_eq!(
            sets_of(&elems),
            vec![
                ("inet", SET_ROUTED_PORTS),
                ("inet", SET_ROUTED_ALLOWED4),
                ("inet", SET_ROUTED_ALLOWED6)
            ]
        );
        net.antispoof = false;
        assert!(endpoint_elements(&net, &ep, "vh0", None).unwrap().is_empty());
        let net = network(NetworkType::Custom);
        assert!(endpoint_elements(&net, &ep, "vh0", None).unwrap().is_empty());
    }

    #[test]
    fn antispoof_needs_a_mac() {
        let net = network(NetworkType::Bridge);
        let mut ep = endpoint();
        ep.mac = None;
        let err = endpoint_elements(&net, &ep, "vh0", None).unwrap_err();
        assert!(err.to_string().contains("needs a MAC"), "{err}");
        let mac: MacAddr = "02:00:00:00:00:09".parse().unwrap();
        let elems = endpoint_elements(&net, &ep, "vh0", Some(mac)).unwrap();
        assert_eq!(elems[1].value, json!({"concat": ["vh0", "02:00:00:00:00:09"]}));
    }

    #[test]
    fn delete_is_add_then_delete_of_the_same_elements() {
        let elems = network_elements(&network(NetworkType::Bridge));
        let adds = add_elements(&elems);
        let dels = delete_elements(&elems);
        assert_eq!(dels.len(), 2 * adds.len());
        for (i, add) in adds.iter().enumerate() {
            assert_eq!(&dels[2 * i], add);
            assert_eq!(dels[2 * i + 1]["delete"], add["add"]);
        }
    }
}
