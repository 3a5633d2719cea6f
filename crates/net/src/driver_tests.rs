//! Tests of the network-type drivers: their plans as data, and the
//! plan-and-apply functions on the fakes, failures injected.

use super::*;
use crate::links::{FakeLinks, LinkOp};
use crate::nft::FakeFirewall;
use crate::sysctl::FakeSysctl;
use crate::test_fixtures::network;

struct Fakes {
    links: FakeLinks,
    firewall: FakeFirewall,
    sysctl: FakeSysctl,
    ctr: FakeLinks,
    ctr_sysctl: FakeSysctl,
}

impl Fakes {
    fn new() -> Self {
        Self {
            links: FakeLinks::new(),
            firewall: FakeFirewall::new(),
            sysctl: FakeSysctl::default(),
            ctr: FakeLinks::new(),
            ctr_sysctl: FakeSysctl::default(),
        }
    }

    fn kernel(&self) -> HostKernel<'_> {
        HostKernel {
            links: &self.links,
            firewall: &self.firewall,
            sysctl: &self.sysctl,
        }
    }

    fn container(&self) -> ContainerKernel<'_> {
        ContainerKernel {
            links: &self.ctr,
            sysctl: &self.ctr_sysctl,
            netns_fd: 7,
        }
    }

    /// The container end appears in the container's namespace when the
    /// host creates the pair; the fakes are two separate models.
    fn attach(&self, net: &Network, ep: &Endpoint, driver: NetworkDriver) -> Result<()> {
        let name = net.interface.as_str();
        self.ctr.insert(
            name,
            Some(if uses_veth(net.net_type) {
                "veth"
            } else {
                "macvlan"
            }),
        );
        attach(self.kernel(), self.container(), net, ep, driver)
    }
}

fn endpoint() -> Endpoint {
    Endpoint {
        id: "aabbccddeeff".into(),
        network_id: "0123456789ab".into(),
        container_id: "bbbbbbbbbbbb".into(),
        epair: Some("cvaabbccddeeff".into()),
        ip_address: Some("10.1.0.2".parse().unwrap()),
        ip_address6: Some("fd00:1::2".parse().unwrap()),
        mac: None,
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn names_and_macs_come_from_the_endpoint_id() {
    assert_eq!(host_ifname("aabbccddeeff"), "cvaabbccddeeff");
    assert!(is_host_ifname("cvaabbccddeeff"));
    assert!(!is_host_ifname("cv0"));
    assert!(!is_host_ifname("cell0"));
    assert!(!is_host_ifname("cvaabbccddeefg"));
    assert_eq!(mac_from_id("aabbccddeeff").to_string(), "02:aa:bb:cc:dd:ee");
}

#[test]
fn bridge_network_gets_bridge_gateways_and_forwarding() {
    let f = Fakes::new();
    let n = network(NetworkType::Bridge);
    setup_network(f.kernel(), &n).unwrap();
    let ops = f.links.ops();
    assert!(ops.contains(&LinkOp::CreateBridge { name: "cell0".into() }));
    assert!(ops.contains(&LinkOp::SetMac {
        name: "cell0".into(),
        mac: "02:01:23:45:67:89".parse().unwrap()
    }));
    assert!(ops.contains(&LinkOp::AddAddress {
        name: "cell0".into(),
        addr: net("10.1.0.1/24")
    }));
    assert!(ops.contains(&LinkOp::AddAddress {
        name: "cell0".into(),
        addr: net("fd00:1::1/64")
    }));
    assert_eq!(
        f.sysctl.writes(),
        vec![
            ("net/ipv4/conf/cell0/route_localnet".into(), "1".into()),
            ("net/ipv4/ip_forward".into(), "1".into()),
            ("net/ipv6/conf/all/forwarding".into(), "1".into())
        ]
    );
    assert_eq!(f.firewall.batches().len(), 1);
    // Again: the bridge exists, nothing is created twice.
    f.links.clear_ops();
    setup_network(f.kernel(), &n).unwrap();
    assert!(
        !f.links
            .ops()
            .iter()
            .any(|op| matches!(op, LinkOp::CreateBridge { .. }))
    );
    teardown_network(f.kernel(), &n).unwrap();
    assert_eq!(f.links.link_index("cell0").unwrap(), None);
}

#[test]
fn restoring_a_networks_links_leaves_the_firewall_alone() {
    // At celld start restore_firewall has put every element back in
    // one batch already.
    let f = Fakes::new();
    setup_network_links(f.kernel(), &network(NetworkType::Bridge)).unwrap();
    assert!(f.links.link_index("cell0").unwrap().is_some());
    assert!(f.firewall.batches().is_empty());
}

#[test]
fn loopback_subnets_are_unreachable_but_for_their_containers() {
    let f = Fakes::new();
    let n = network(NetworkType::Loopback);
    setup_network(f.kernel(), &n).unwrap();
    let ops = f.links.ops();
    assert!(ops.contains(&LinkOp::AddUnreachableRoute {
        dest: net("10.1.0.0/24")
    }));
    assert!(ops.contains(&LinkOp::AddUnreachableRoute {
        dest: net("fd00:1::/64")
    }));
    teardown_network(f.kernel(), &n).unwrap();
    assert!(f.links.ops().contains(&LinkOp::DelUnreachableRoute {
        dest: net("10.1.0.0/24")
    }));
}

#[test]
fn custom_network_needs_its_parent_and_never_deletes_it() {
    let f = Fakes::new();
    let mut n = network(NetworkType::Custom);
    n.interface = "eth7".into();
    let err = setup_network(f.kernel(), &n).unwrap_err();
    assert!(err.to_string().contains("eth7"), "{err}");
    f.links.insert("eth7", None);
    setup_network(f.kernel(), &n).unwrap();
    teardown_network(f.kernel(), &n).unwrap();
    assert!(f.links.link_index("eth7").unwrap().is_some());
    assert!(f.sysctl.writes().is_empty());
}

#[test]
fn loopback_attach_routes_each_address_to_its_veth() {
    let f = Fakes::new();
    let n = network(NetworkType::Loopback);
    let ep = endpoint();
    f.attach(&n, &ep, NetworkDriver::Ipnet).unwrap();
    let host = f.links.ops();
    assert_eq!(
        host[0],
        LinkOp::CreateVethPair {
            host_end: "cvaabbccddeeff".into(),
            peer_end: "cell0".into(),
            peer_netns_fd: Some(7)
        }
    );
    for (dest, dev) in [
        ("10.1.0.2/32", "cvaabbccddeeff"),
        ("fd00:1::2/128", "cvaabbccddeeff"),
    ] {
        assert!(host.contains(&LinkOp::AddRoute {
            dest: net(dest),
            dev: dev.into(),
            gateway: None
        }));
    }
    assert!(
        f.sysctl
            .writes()
            .contains(&("net/ipv4/conf/cvaabbccddeeff/proxy_arp".into(), "1".into()))
    );
    let inside = f.ctr.ops();
    assert!(inside.contains(&LinkOp::AddAddress {
        name: "cell0".into(),
        addr: net("10.1.0.2/32")
    }));
    assert!(inside.contains(&LinkOp::AddRoute {
        dest: net("0.0.0.0/0"),
        dev: "cell0".into(),
        gateway: None
    }));
    assert!(inside.contains(&LinkOp::AddRoute {
        dest: net("::/0"),
        dev: "cell0".into(),
        gateway: Some("fe80::1".parse().unwrap())
    }));
    // Elements first: anti-spoofing holds before the link exists.
    let batch = &f.firewall.batches()[0];
    assert!(batch.to_string().contains("routed_allowed4"), "{batch}");
}

#[test]
fn links_of_networks_without_ipv6_have_it_off() {
    let f = Fakes::new();
    let mut n = network(NetworkType::Loopback);
    n.subnet6 = None;
    f.attach(&n, &endpoint(), NetworkDriver::Ipnet).unwrap();
    let off = |name: &str| (format!("net/ipv6/conf/{name}/disable_ipv6"), "1".to_string());
    assert!(f.sysctl.writes().contains(&off("cvaabbccddeeff")));
    assert!(f.ctr_sysctl.writes().contains(&off("cell0")));
    // With a subnet6 the routed host end keeps IPv6 (it holds fe80::1).
    let f = Fakes::new();
    f.attach(&network(NetworkType::Loopback), &endpoint(), NetworkDriver::Ipnet)
        .unwrap();
    assert!(!f.sysctl.writes().contains(&off("cvaabbccddeeff")));
    assert!(f.ctr_sysctl.writes().is_empty());
}

#[test]
fn vnet_on_a_bridge_gets_the_mask_and_a_gateway() {
    let f = Fakes::new();
    let n = network(NetworkType::Bridge);
    f.links.insert("cell0", Some("bridge"));
    let ep = endpoint();
    f.attach(&n, &ep, NetworkDriver::Vnet).unwrap();
    assert!(f.links.ops().contains(&LinkOp::SetMaster {
        name: "cvaabbccddeeff".into(),
        bridge: "cell0".into()
    }));
    let inside = f.ctr.ops();
    assert_eq!(
        inside[0],
        LinkOp::SetMac {
            name: "cell0".into(),
            mac: "02:aa:bb:cc:dd:ee".parse().unwrap()
        }
    );
    assert!(inside.contains(&LinkOp::AddAddress {
        name: "cell0".into(),
        addr: net("10.1.0.2/24")
    }));
    assert!(inside.contains(&LinkOp::AddRoute {
        dest: net("0.0.0.0/0"),
        dev: "cell0".into(),
        gateway: Some("10.1.0.1".parse().unwrap())
    }));
    let batch = f.firewall.batches()[0].to_string();
    assert!(batch.contains("02:aa:bb:cc:dd:ee"), "{batch}");
}

#[test]
fn ipnet_on_a_bridge_gets_a_host_address_and_an_on_link_route() {
    let f = Fakes::new();
    let n = network(NetworkType::Bridge);
    f.links.insert("cell0", Some("bridge"));
    f.attach(&n, &endpoint(), NetworkDriver::Ipnet).unwrap();
    let inside = f.ctr.ops();
    assert!(inside.contains(&LinkOp::AddAddress {
        name: "cell0".into(),
        addr: net("10.1.0.2/32")
    }));
    assert!(inside.contains(&LinkOp::AddRoute {
        dest: net("10.1.0.0/24"),
        dev: "cell0".into(),
        gateway: None
    }));
}

#[test]
fn custom_attach_makes_a_macvlan_of_the_parent() {
    let f = Fakes::new();
    let mut n = network(NetworkType::Custom);
    n.interface = "eth7".into();
    f.links.insert("eth7", None);
    f.attach(&n, &endpoint(), NetworkDriver::Ipnet).unwrap();
    assert_eq!(
        f.links.ops()[0],
        LinkOp::CreateMacvlan {
            name: "eth7".into(),
            parent: "eth7".into(),
            netns_fd: Some(7)
        }
    );
    assert!(f.firewall.batches().is_empty());
    detach(f.kernel(), Some(&f.ctr), &n, &endpoint()).unwrap();
    assert!(f.ctr.ops().contains(&LinkOp::DeleteLink { name: "eth7".into() }));
    assert!(f.links.link_index("eth7").unwrap().is_some());
}

#[test]
fn a_failed_attach_is_undone() {
    let f = Fakes::new();
    let n = network(NetworkType::Bridge);
    f.links.insert("cell0", Some("bridge"));
    let ep = endpoint();
    // The host side works, the container side fails at its third call.
    f.ctr.insert("cell0", Some("veth"));
    f.ctr.fail_call(3);
    let err = attach(f.kernel(), f.container(), &n, &ep, NetworkDriver::Vnet).unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(f.links.link_index("cvaabbccddeeff").unwrap(), None);
    let batches = f.firewall.batches();
    let last = batches.last().unwrap().to_string();
    assert!(last.contains("\"delete\""), "{last}");
}

#[test]
fn repair_recreates_a_lost_veth_and_keeps_a_present_one() {
    let f = Fakes::new();
    let n = network(NetworkType::Bridge);
    f.links.insert("cell0", Some("bridge"));
    let ep = endpoint();
    f.ctr.insert("cell0", Some("veth"));
    repair_endpoint(f.kernel(), f.container(), &n, &ep, NetworkDriver::Vnet).unwrap();
    assert!(matches!(f.links.ops()[1], LinkOp::CreateVethPair { .. }));
    f.links.clear_ops();
    repair_endpoint(f.kernel(), f.container(), &n, &ep, NetworkDriver::Vnet).unwrap();
    assert!(
        !f.links
            .ops()
            .iter()
            .any(|op| matches!(op, LinkOp::CreateVethPair { .. }))
    );
    assert!(f.links.ops().contains(&LinkOp::SetMaster {
        name: "cvaabbccddeeff".into(),
        bridge: "cell0".into()
    }));
}

#[test]
fn restore_rebuilds_tables_with_every_element_in_one_batch() {
    let fw = FakeFirewall::new();
    let n = network(NetworkType::Bridge);
    let ep = endpoint();
    restore_firewall(&fw, std::slice::from_ref(&n), &[(&n, &ep)]).unwrap();
    let batches = fw.batches();
    assert_eq!(batches.len(), 1);
    let cmds = batches[0]["nftables"].as_array().unwrap();
    assert!(cmds[1].get("delete").is_some());
    let text = batches[0].to_string();
    assert!(text.contains("allowed4") && text.contains("masq4"), "{text}");
}

#[test]
fn only_the_named_links_are_removed() {
    let links = FakeLinks::new();
    links.insert("cvaabbccddeeff", Some("veth"));
    links.insert("cv0123456789ab", Some("veth"));
    links.insert("cell0", Some("bridge"));
    let stale = HashSet::from(["cvaabbccddeeff".to_string(), "cvffffffffffff".to_string()]);
    let removed = remove_links(&links, &stale).unwrap();
    assert_eq!(removed, vec!["cvaabbccddeeff".to_string()]);
    assert!(links.link_index("cv0123456789ab").unwrap().is_some());
    assert!(links.link_index("cell0").unwrap().is_some());
}

// Plans as data: no kernel at all.

fn plan_of(t: NetworkType, kind: NetworkDriver) -> Result<Plan> {
    let mut n = network(t);
    if t == NetworkType::Custom {
        n.interface = "eth7".into();
    }
    network_driver(t).plan_attach(&n, &endpoint(), container_driver(kind))
}

fn v4_only(t: NetworkType) -> Network {
    let mut n = network(t);
    n.subnet6 = None;
    n.gateway6 = None;
    n
}

fn v4_endpoint() -> Endpoint {
    Endpoint {
        ip_address6: None,
        ..endpoint()
    }
}

fn host_op(op: Op) -> plan::Step {
    plan::Step {
        place: plan::Place::Host,
        op,
    }
}

fn inside_op(op: Op) -> plan::Step {
    plan::Step {
        place: plan::Place::Container,
        op,
    }
}

#[test]
fn vnet_on_a_bridge_plans_exactly_this() {
    let n = v4_only(NetworkType::Bridge);
    let ep = v4_endpoint();
    let plan = BridgeDriver
        .plan_attach(&n, &ep, container_driver(NetworkDriver::Vnet))
        .unwrap();
    let elements = endpoint_elements(&n, &ep).unwrap();
    let s = |x: &str| x.to_string();
    assert_eq!(
        plan.steps,
        vec![
            host_op(Op::AddElements(elements)),
            host_op(Op::CreateVethPair {
                host_end: s("cvaabbccddeeff"),
                container_end: s("cell0")
            }),
            host_op(Op::SetAlias {
                name: s("cvaabbccddeeff"),
                alias: s("cell:aabbccddeeff")
            }),
            host_op(sysctl("net/ipv6/conf/cvaabbccddeeff/disable_ipv6", "1")),
            host_op(Op::SetMaster {
                name: s("cvaabbccddeeff"),
                bridge: s("cell0")
            }),
            host_op(Op::SetUp {
                name: s("cvaabbccddeeff")
            }),
            inside_op(sysctl("net/ipv6/conf/cell0/disable_ipv6", "1")),
            inside_op(Op::SetMac {
                name: s("cell0"),
                mac: "02:aa:bb:cc:dd:ee".parse().unwrap()
            }),
            inside_op(Op::SetUp { name: s("cell0") }),
            inside_op(Op::AddAddress {
                name: s("cell0"),
                addr: net("10.1.0.2/24")
            }),
            inside_op(Op::AddRoute {
                dest: net("0.0.0.0/0"),
                dev: s("cell0"),
                gateway: Some("10.1.0.1".parse().unwrap())
            }),
        ]
    );
}

#[test]
fn ipnet_plans_host_addresses_on_every_type() {
    for t in [NetworkType::Loopback, NetworkType::Bridge, NetworkType::Custom] {
        let plan = plan_of(t, NetworkDriver::Ipnet).unwrap();
        let inside = plan.ops_at(plan::Place::Container);
        let ifname = if t == NetworkType::Custom { "eth7" } else { "cell0" };
        assert!(
            inside.contains(&&Op::AddAddress {
                name: ifname.into(),
                addr: net("10.1.0.2/32")
            }),
            "{t}: {inside:?}"
        );
        assert!(
            inside.contains(&&Op::AddAddress {
                name: ifname.into(),
                addr: net("fd00:1::2/128")
            }),
            "{t}"
        );
        // Never the subnet's mask.
        assert!(
            !inside
                .iter()
                .any(|op| matches!(op, Op::AddAddress { addr, .. } if addr.prefix_len() == 24)),
            "{t}"
        );
        let host = plan.ops_at(plan::Place::Host);
        let creates: Vec<_> = host
            .iter()
            .filter(|op| matches!(op, Op::CreateVethPair { .. } | Op::CreateMacvlan { .. }))
            .collect();
        assert_eq!(creates.len(), 1, "{t}: one link per endpoint");
        // Only cell's own host-side links are marked; a macvlan has none.
        let marked = host.iter().any(|op| matches!(op, Op::SetAlias { .. }));
        assert_eq!(marked, t != NetworkType::Custom, "{t}");
    }
}

#[test]
fn loopback_attach_plans_routes_to_the_veth_and_a_default_route_inside() {
    let plan = plan_of(NetworkType::Loopback, NetworkDriver::Ipnet).unwrap();
    let host = plan.ops_at(plan::Place::Host);
    for dest in ["10.1.0.2/32", "fd00:1::2/128"] {
        assert!(host.contains(&&Op::AddRoute {
            dest: net(dest),
            dev: "cvaabbccddeeff".into(),
            gateway: None
        }));
    }
    assert!(host.contains(&&sysctl("net/ipv4/conf/cvaabbccddeeff/proxy_arp", "1")));
    assert!(!host.iter().any(|op| matches!(op, Op::SetMaster { .. })));
    let inside = plan.ops_at(plan::Place::Container);
    assert!(inside.contains(&&Op::AddRoute {
        dest: net("0.0.0.0/0"),
        dev: "cell0".into(),
        gateway: None
    }));
}

#[test]
fn drivers_that_may_not_join_get_no_plan() {
    let refusals = [
        (
            NetworkType::Loopback,
            NetworkDriver::Vnet,
            "can't connect to loopback networks",
        ),
        (
            NetworkType::Custom,
            NetworkDriver::Vnet,
            "can't connect to custom networks",
        ),
        (
            NetworkType::Bridge,
            NetworkDriver::Host,
            "'host' network driver cannot join networks",
        ),
        (
            NetworkType::Bridge,
            NetworkDriver::Disabled,
            "'disabled' network driver cannot join",
        ),
        (NetworkType::Loopback, NetworkDriver::Host, "cannot join networks"),
    ];
    for (t, kind, message) in refusals {
        let err = plan_of(t, kind).unwrap_err();
        assert!(matches!(err, NetError::Refused(_)), "{t} {kind}: {err:?}");
        assert!(err.to_string().contains(message), "{t} {kind}: {err}");
    }
    // Positive control: the same networks take an ipnet container.
    for t in [NetworkType::Loopback, NetworkType::Custom, NetworkType::Bridge] {
        plan_of(t, NetworkDriver::Ipnet).unwrap();
    }
}

#[test]
fn setup_plans_follow_what_the_host_holds() {
    let bridge = network(NetworkType::Bridge);
    let fresh = BridgeDriver.plan_setup(&bridge, &HostFacts::default()).unwrap();
    assert_eq!(fresh.steps[0], host_op(Op::CreateBridge { name: "cell0".into() }));
    assert!(fresh.steps.contains(&host_op(Op::SetAlias {
        name: "cell0".into(),
        alias: "cell:0123456789ab".into()
    })));
    assert!(matches!(fresh.steps.last().unwrap().op, Op::AddElements(_)));
    let there = BridgeDriver
        .plan_setup(&bridge, &HostFacts::with_links(["cell0"]))
        .unwrap();
    assert_eq!(there.steps, fresh.steps[1..].to_vec());
    assert!(!fresh.touches_container());

    let mut custom = network(NetworkType::Custom);
    custom.interface = "eth7".into();
    let err = CustomDriver
        .plan_setup(&custom, &HostFacts::default())
        .unwrap_err();
    assert!(err.is_not_found() && err.to_string().contains("eth7"), "{err}");
    let plan = CustomDriver
        .plan_setup(&custom, &HostFacts::with_links(["eth7"]))
        .unwrap();
    assert!(plan.steps.iter().all(|s| matches!(s.op, Op::AddElements(_))));
}

#[test]
fn teardown_plans_remove_what_setup_made_and_never_a_parent() {
    let bridge = network(NetworkType::Bridge);
    let plan = BridgeDriver.plan_teardown(&bridge);
    assert!(matches!(plan.steps[0].op, Op::DeleteElements(_)));
    assert_eq!(
        plan.steps.last().unwrap().op,
        Op::DeleteLink { name: "cell0".into() }
    );
    let lo = LoopbackDriver.plan_teardown(&network(NetworkType::Loopback));
    assert!(lo.steps.contains(&host_op(Op::DelUnreachableRoute {
        dest: net("fd00:1::/64")
    })));
    let custom = CustomDriver.plan_teardown(&network(NetworkType::Custom));
    assert!(!custom.steps.iter().any(|s| matches!(s.op, Op::DeleteLink { .. })));
    // Detach of a macvlan happens inside; of a veth, on the host.
    let ep = endpoint();
    let detach = CustomDriver
        .plan_detach(&network(NetworkType::Custom), &ep)
        .unwrap();
    assert_eq!(
        detach.ops_at(plan::Place::Container),
        vec![&Op::DeleteLink { name: "cell0".into() }]
    );
    let detach = BridgeDriver.plan_detach(&bridge, &ep).unwrap();
    assert_eq!(
        detach.steps.last().unwrap(),
        &host_op(Op::DeleteLink {
            name: "cvaabbccddeeff".into()
        })
    );
}

#[test]
fn validation_refuses_networks_that_do_not_fit_their_driver() {
    let bridge = network(NetworkType::Bridge);
    BridgeDriver.validate(&bridge).unwrap();
    let err = LoopbackDriver.validate(&bridge).unwrap_err();
    assert!(
        err.to_string()
            .contains("a bridge network given to the loopback driver"),
        "{err}"
    );
    let mut outside = bridge.clone();
    outside.gateway = Some("10.9.0.1".parse().unwrap());
    let err = BridgeDriver
        .plan_setup(&outside, &HostFacts::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid network web: gateway 10.9.0.1 is outside subnet 10.1.0.0/24"
    );
    let mut long = bridge;
    long.interface = "a-name-too-long-for-linux".into();
    assert!(matches!(
        BridgeDriver.validate(&long),
        Err(NetError::InvalidLinkName { .. })
    ));
}

#[test]
fn only_marked_links_of_unknown_owners_are_unwanted() {
    let links = FakeLinks::new();
    links.insert("cvaabbccddeeff", Some("veth"));
    links.insert("cv0123456789ab", Some("veth"));
    links.insert("cvffffffffffff", Some("veth"));
    links.insert("cell0", Some("bridge"));
    links.set_alias("cvaabbccddeeff", "cell:aabbccddeeff").unwrap();
    links.set_alias("cv0123456789ab", "cell:0123456789ab").unwrap();
    links.set_alias("cell0", "cell:0123456789ab").unwrap();
    // Named like one of cell's veths, but not marked: a user's.
    links.set_alias("cvffffffffffff", "mine").unwrap();
    let wanted = HashSet::from(["0123456789ab".to_string()]);
    let all = links.list_links().unwrap();
    assert_eq!(
        unwanted_marked_links(&all, &wanted),
        vec!["cvaabbccddeeff".to_string()]
    );
    // Positive control: with nothing wanted, every marked link goes.
    let mut none = unwanted_marked_links(&all, &HashSet::new());
    none.sort();
    assert_eq!(none, vec!["cell0", "cv0123456789ab", "cvaabbccddeeff"]);
}

#[test]
fn aliases_name_their_owner() {
    assert_eq!(link_alias("0123456789ab"), "cell:0123456789ab");
    assert_eq!(alias_owner("cell:0123456789ab"), Some("0123456789ab"));
    assert_eq!(alias_owner("cell:"), None);
    assert_eq!(alias_owner("uplink"), None);
}

// Applying plans on the fakes, failures injected.

/// Which fake fails.
#[derive(Debug, Clone, Copy)]
enum Failing {
    HostLinks,
    HostSysctl,
    Firewall,
    ContainerLinks,
    ContainerSysctl,
}

impl Fakes {
    fn fail(&self, which: Failing, n: usize) {
        match which {
            Failing::HostLinks => self.links.fail_call(n),
            Failing::HostSysctl => self.sysctl.fail_call(n),
            Failing::Firewall => self.firewall.fail_call(n),
            Failing::ContainerLinks => self.ctr.fail_call(n),
            Failing::ContainerSysctl => self.ctr_sysctl.fail_call(n),
        }
    }

    fn calls(&self, which: Failing) -> usize {
        match which {
            Failing::HostLinks => self.links.ops().len(),
            Failing::HostSysctl => self.sysctl.writes().len(),
            Failing::Firewall => self.firewall.batches().len(),
            Failing::ContainerLinks => self.ctr.ops().len(),
            Failing::ContainerSysctl => self.ctr_sysctl.writes().len(),
        }
    }

    /// A host holding the network's interface and a container holding
    /// the end of its link, as the kernel would after the create.
    fn ready(t: NetworkType) -> (Self, Network) {
        let f = Self::new();
        let mut n = v4_only(t);
        if t == NetworkType::Custom {
            n.interface = "eth7".into();
            f.links.insert("eth7", None);
        } else if t == NetworkType::Bridge {
            f.links.insert("cell0", Some("bridge"));
        }
        let kind = if uses_veth(t) { "veth" } else { "macvlan" };
        f.ctr.insert(&n.interface, Some(kind));
        (f, n)
    }
}

/// Whether the firewall holds none of what the batches added: every
/// batch that added elements was followed by one deleting them.
fn firewall_is_clean(fw: &FakeFirewall) -> bool {
    let batches = fw.batches();
    let adds = batches
        .iter()
        .filter(|b| !b.to_string().contains("\"delete\""))
        .count();
    let deletes = batches
        .iter()
        .filter(|b| b.to_string().contains("\"delete\""))
        .count();
    adds == deletes
}

#[test]
fn an_attach_failing_at_any_call_leaves_nothing() {
    let combos = [
        (NetworkType::Loopback, NetworkDriver::Ipnet),
        (NetworkType::Bridge, NetworkDriver::Ipnet),
        (NetworkType::Bridge, NetworkDriver::Vnet),
        (NetworkType::Custom, NetworkDriver::Ipnet),
    ];
    let fakes = [
        Failing::HostLinks,
        Failing::HostSysctl,
        Failing::Firewall,
        Failing::ContainerLinks,
        Failing::ContainerSysctl,
    ];
    let ep = v4_endpoint();
    let host_if = host_ifname(&ep.id);
    let mut failures = 0;
    for (t, kind) in combos {
        // Positive control: the whole attach works and leaves links.
        let (f, n) = Fakes::ready(t);
        attach(f.kernel(), f.container(), &n, &ep, kind).unwrap();
        let counts: Vec<usize> = fakes.iter().map(|&w| f.calls(w)).collect();
        if uses_veth(t) {
            assert!(f.links.link_index(&host_if).unwrap().is_some(), "{t}");
        }
        for (&which, &count) in fakes.iter().zip(&counts) {
            for call in 1..=count {
                let (f, n) = Fakes::ready(t);
                f.fail(which, call);
                let what = format!("{t} {kind}, {which:?} call {call}");
                let Err(err) = attach(f.kernel(), f.container(), &n, &ep, kind) else {
                    panic!("{what}: the attach worked");
                };
                assert!(matches!(err, NetError::Injected { .. }), "{what}: {err}");
                let host_ops = f.links.ops();
                let made_macvlan = host_ops.iter().enumerate().any(|(i, op)| {
                    matches!(op, LinkOp::CreateMacvlan { .. })
                        && !(matches!(which, Failing::HostLinks) && i + 1 == call)
                });
                assert_eq!(f.links.link_index(&host_if).unwrap(), None, "{what}");
                assert!(firewall_is_clean(&f.firewall), "{what}");
                if made_macvlan {
                    assert!(
                        f.ctr.ops().contains(&LinkOp::DeleteLink { name: "eth7".into() }),
                        "{what}: {:?}",
                        f.ctr.ops()
                    );
                }
                failures += 1;
            }
        }
    }
    assert!(failures > 40, "only {failures} failures were tried");
}

#[test]
fn a_network_setup_failing_at_any_call_leaves_nothing() {
    for t in [NetworkType::Bridge, NetworkType::Loopback] {
        let f = Fakes::new();
        let n = network(t);
        setup_network(f.kernel(), &n).unwrap();
        let counts = [
            f.links.ops().len(),
            f.sysctl.writes().len(),
            f.firewall.batches().len(),
        ];
        for (which, count) in [Failing::HostLinks, Failing::HostSysctl, Failing::Firewall]
            .into_iter()
            .zip(counts)
        {
            for call in 1..=count {
                let f = Fakes::new();
                f.fail(which, call);
                let what = format!("{t}, {which:?} call {call}");
                setup_network(f.kernel(), &n).unwrap_err();
                assert_eq!(f.links.link_index("cell0").unwrap(), None, "{what}");
                assert!(f.links.list_routes().unwrap().is_empty(), "{what}");
                assert!(firewall_is_clean(&f.firewall), "{what}");
            }
        }
    }
}

#[test]
fn a_failing_undo_is_reported_with_the_original_error() {
    let (f, n) = Fakes::ready(NetworkType::Bridge);
    // The container side fails; then the undo's firewall delete fails.
    f.ctr.fail_call(1);
    f.firewall.fail_call(2);
    let err = attach(f.kernel(), f.container(), &n, &v4_endpoint(), NetworkDriver::Vnet).unwrap_err();
    let NetError::Undo { error, undo } = &err else {
        panic!("not an undo error: {err:?}");
    };
    assert!(matches!(**error, NetError::Injected { call: 1 }), "{error}");
    assert_eq!(undo.0.len(), 1);
    assert_eq!(
        err.to_string(),
        "injected failure of call 1; undoing it failed too: injected failure of call 2"
    );
    // The undo went on past the firewall: the veth is gone.
    assert_eq!(f.links.link_index("cvaabbccddeeff").unwrap(), None);
}

#[test]
fn teardown_goes_on_past_failures_and_reports_them_all() {
    let (f, n) = Fakes::ready(NetworkType::Bridge);
    let ep = v4_endpoint();
    attach(f.kernel(), f.container(), &n, &ep, NetworkDriver::Vnet).unwrap();
    f.firewall.fail_call(1);
    f.links.fail_call(1);
    let err = detach(f.kernel(), None, &n, &ep).unwrap_err();
    let NetError::Several(errors) = &err else {
        panic!("not a list: {err:?}");
    };
    assert_eq!(errors.0.len(), 2, "{err}");
    assert!(err.to_string().starts_with("2 errors: "), "{err}");
    // Both were tried; run again, it finishes the job.
    detach(f.kernel(), None, &n, &ep).unwrap();
    assert_eq!(f.links.link_index("cvaabbccddeeff").unwrap(), None);
    assert!(firewall_is_clean(&f.firewall));
    // Twice is fine: absent things count as removed.
    detach(f.kernel(), None, &n, &ep).unwrap();
    teardown_network(f.kernel(), &n).unwrap();
    teardown_network(f.kernel(), &n).unwrap();
}

#[test]
fn a_network_teardown_collects_errors_and_keeps_going() {
    let f = Fakes::new();
    let n = network(NetworkType::Loopback);
    setup_network(f.kernel(), &n).unwrap();
    f.firewall.fail_call(1);
    let err = teardown_network(f.kernel(), &n).unwrap_err();
    assert!(matches!(err, NetError::Injected { .. }), "{err}");
    // The routes were removed even though the firewall failed first.
    assert!(f.links.list_routes().unwrap().is_empty());
}

#[test]
fn plans_with_container_steps_need_a_container() {
    let f = Fakes::new();
    let plan = plan_of(NetworkType::Bridge, NetworkDriver::Vnet).unwrap();
    let err = plan::apply(&plan, f.kernel(), None).unwrap_err();
    assert!(matches!(err, NetError::NoContainer), "{err}");
    assert!(f.links.ops().is_empty() && f.firewall.batches().is_empty());
}

#[test]
fn the_start_plan_of_a_disabled_container_sets_up_lo_only() {
    let f = Fakes::new();
    let plan = container_driver(NetworkDriver::Disabled).plan_start();
    plan::apply(&plan, f.kernel(), Some(f.container())).unwrap();
    assert_eq!(f.ctr.ops(), vec![LinkOp::SetUp { name: "lo".into() }]);
    assert!(f.links.ops().is_empty());
}
