//! The CNI operations: [`add`], [`del`], [`check`], [`status`], [`gc`]
//! and [`version`], each from a checked [`Invocation`] and [`NetConf`].
//!
//! An attachment is a `cell_core` [`Endpoint`] on a [`Network`] built
//! from the configuration, planned by the same `cell-net` drivers as
//! `celld`'s (see [`crate::plans`] for the three rewrites CNI needs).
//!
//! The order of an ADD, and why:
//!
//! 1. Everything that needs no state is checked first (the configuration,
//!    the namespace, that `CNI_IFNAME` is free inside it): a bad call
//!    changes nothing.
//! 2. Under the state's lock, the lease is taken and the firewall
//!    elements go in, in one transaction, before any link exists, so
//!    anti-spoofing holds from the first frame.
//! 3. The network's host side (bridge, forwarding) is set up when this is
//!    its first attachment, or its bridge went missing; then the
//!    attachment's links.
//! 4. If a step fails, what the plan did is undone by `cell-net`, and
//!    the elements, the lease and (for a first attachment) the network's
//!    host side by [`add`]: a failed ADD leaves nothing.
//!
//! DEL and GC keep going past failures and report them all; both treat
//! what is gone as done. The last attachment of a network takes the
//! network's host side with it (the bridge only if the plugin made it),
//! and the last of all the plugin's tables.

use crate::config::{self, Nat, NetConf, endpoint_id};
use crate::error::{CniError, Code, Failures, Result};
use crate::host::{Host, change_elements};
use crate::invocation::Invocation;
use crate::plans::{self, cni_marks, endpoint_of_alias, inside_named, take_elements};
use crate::result::{AddResult, Interface, IpConfig, Route};
use crate::state::{Lease, NetworkRecord, State};
use cell_core::model::{Endpoint, Network, NetworkType};
use cell_net::driver::{HostFacts, ROUTED_GATEWAY6, host_ifname, is_host_ifname};
use cell_net::plan::{self, Op, Place, Plan};
use cell_net::ports::{self, PortForward};
use cell_net::ruleset::{self, Element};
use cell_net::{ContainerNet, Firewall, Links, container_driver, network_driver};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

fn kernel(what: impl Into<String>) -> impl FnOnce(cell_net::NetError) -> CniError {
    let what = what.into();
    move |e| CniError::kernel(what, &e)
}

/// The network an attachment is planned on: as recorded while the network
/// has other attachments (so its elements stay those its last DEL
/// removes), else as configured now, with NAT's interface found.
fn network_for(
    conf: &NetConf,
    ifname: &str,
    record: Option<&NetworkRecord>,
    others: usize,
    links: &dyn Links,
) -> Result<Network> {
    let mut net = match record {
        Some(r) if others > 0 => r.network.clone(),
        _ => conf.network(ifname, resolve_nat(conf, links)?),
    };
    if net.net_type == NetworkType::Loopback {
        net.interface = ifname.to_string();
    }
    Ok(net)
}

/// The interface NAT leaves by: the configured one, or that of the host's
/// default route (IPv4 first). With no default route there is no NAT, as
/// for `celld`'s networks: nothing could leave anyway.
fn resolve_nat(conf: &NetConf, links: &dyn Links) -> Result<Option<String>> {
    match &conf.nat {
        Nat::Off => Ok(None),
        Nat::Interface(name) => Ok(Some(name.clone())),
        Nat::DefaultRoute => {
            let routes = links
                .list_routes()
                .map_err(kernel("failed to list the host's routes"))?;
            let mut defaults: Vec<_> = routes
                .iter()
                .filter(|r| r.dest.prefix_len() == 0 && r.kind == cell_net::RouteKind::Unicast)
                .filter_map(|r| Some((r.dest.addr().is_ipv6(), r.dev.clone()?)))
                .collect();
            defaults.sort();
            let found = defaults.into_iter().next().map(|(_, dev)| dev);
            if found.is_none() {
                tracing::warn!(
                    network = conf.name,
                    "no default route on the host: the network gets no NAT"
                );
            }
            Ok(found)
        }
    }
}

/// Addresses the runtime asks for in `CNI_ARGS` (`IP=10.1.0.5` or
/// `IP=10.1.0.5,fd00::5`, as host-local takes them).
fn requested_ips(inv: &Invocation) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>)> {
    let mut wanted = (None, None);
    for text in inv.args.get("IP").into_iter().flat_map(|v| v.split(',')) {
        let text = text.split('/').next().unwrap_or(text);
        match text.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => wanted.0 = Some(ip),
            Ok(IpAddr::V6(ip)) => wanted.1 = Some(ip),
            Err(_) => {
                return Err(CniError::new(
                    Code::InvalidEnvironment,
                    format!("CNI_ARGS IP '{text}' is not an IP address"),
                ));
            }
        }
    }
    Ok(wanted)
}

fn endpoint(net: &Network, lease: Option<&Lease>, ep_id: &str, container_id: &str) -> Endpoint {
    Endpoint {
        id: ep_id.to_string(),
        network_id: net.id.clone(),
        container_id: container_id.to_string(),
        epair: network_driver(net.net_type)
            .uses_veth()
            .then(|| host_ifname(ep_id)),
        ip_address: lease.and_then(|l| l.ip4),
        ip_address6: lease.and_then(|l| l.ip6),
        mac: None,
    }
}

/// The DNAT forwards of an attachment's leased ports.
fn forwards(net: &Network, ep: &Endpoint, lease: Option<&Lease>) -> Vec<PortForward> {
    let specs = lease.map(|l| l.ports.as_slice()).unwrap_or_default();
    ports::container_forwards([(net, ep)], specs)
}

/// The firewall elements of `forwards`.
fn port_elements(forwards: &[PortForward]) -> Result<Vec<Element>> {
    ports::port_elements(forwards)
        .map_err(|e| CniError::caused(Code::InvalidConfig, cell_core::error::chain(&e), &e))
}

/// Refuses host ports another attachment (of any network) forwards: the
/// kernel would refuse the map element anyway, but not say whose it is.
fn check_ports_free(state: &State, wanted: &[cell_core::port::PortSpec], ep_id: &str) -> Result<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    for lease in state.all_leases()?.iter().filter(|l| l.endpoint_id != ep_id) {
        for taken in &lease.ports {
            let clash = wanted.iter().find(|w| {
                w.host_port == taken.host_port
                    && w.protocol == taken.protocol
                    && (w.host_ip.is_none() || taken.host_ip.is_none() || w.host_ip == taken.host_ip)
            });
            if let Some(w) = clash {
                return Err(CniError::new(
                    Code::PortInUse,
                    format!(
                        "portMappings: host port {}/{} is already forwarded to container {} on network '{}'",
                        w.host_port, w.protocol, lease.container_id, lease.network
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn open_netns(path: &Path) -> Result<ContainerNet> {
    ContainerNet::open(path).map_err(|e| {
        CniError::caused(
            Code::UnknownContainer,
            format!(
                "cannot open the network namespace {}: {}",
                path.display(),
                cell_core::error::chain(&e)
            ),
            &e,
        )
    })
}

/// Whether the plugin may treat the bridge `name` as its own: it does not
/// exist yet, or it carries the plugin's mark for `network_id`.
fn bridge_is_ours(links: &dyn Links, name: &str, network_id: &str) -> Result<bool> {
    let all = links
        .list_links()
        .map_err(kernel("failed to list the host's links"))?;
    Ok(all
        .iter()
        .find(|l| l.name == name)
        .is_none_or(|l| l.alias.as_deref() == Some(plans::network_alias(network_id).as_str())))
}

/// The plan that sets up `net` on the host, without its elements; a
/// bridge that is not the plugin's keeps its own MAC and mark.
fn setup_plan(net: &Network, facts: &HostFacts, owns: bool) -> Result<(Plan, Vec<Element>)> {
    let plan = network_driver(net.net_type)
        .plan_setup(net, facts)
        .map_err(|e| CniError::caused(Code::InvalidConfig, cell_core::error::chain(&e), &e))?;
    let plan = cni_marks(plan, &net.id).without(|s| {
        !owns
            && matches!(&s.op, Op::SetAlias { name, .. } | Op::SetMac { name, .. } if *name == net.interface)
    });
    Ok(take_elements(plan))
}

/// The plan that removes `net`'s host side, without its elements.
fn teardown_plan(net: &Network, owns: bool) -> (Plan, Vec<Element>) {
    let plan = network_driver(net.net_type).plan_teardown(net);
    let plan = plan.without(|s| {
        !owns
            && net.net_type != NetworkType::Loopback
            && matches!(&s.op, Op::DeleteLink { name } if *name == net.interface)
    });
    take_elements(plan)
}

/// ADD: attaches the container; returns the result in the configuration's
/// version.
pub fn add(inv: &Invocation, conf: &NetConf) -> Result<Value> {
    let netns = inv
        .netns
        .as_deref()
        .expect("Invocation requires CNI_NETNS for ADD");
    let requested = requested_ips(inv)?;
    let container = open_netns(netns)?;
    let inside = container.kernel();
    let existing = inside.links.link_index(&inv.ifname).map_err(kernel(format!(
        "failed to look up {} in {}",
        inv.ifname,
        netns.display()
    )))?;
    if existing.is_some() {
        return Err(CniError::new(
            Code::InterfaceExists,
            format!("interface {} already exists in {}", inv.ifname, netns.display()),
        ));
    }
    let host = Host::open()?;
    let state = State::open(&conf.data_dir)?;
    let ep_id = endpoint_id(&conf.name, &inv.container_id, &inv.ifname);
    let host_end = host_ifname(&ep_id);
    let driver = network_driver(conf.net_type);
    if driver.uses_veth()
        && host
            .links
            .link_index(&host_end)
            .map_err(kernel(format!("failed to look up {host_end}")))?
            .is_some()
    {
        return Err(CniError::new(
            Code::InterfaceExists,
            format!(
                "the host end {host_end} of container {} interface {} on network '{}' already exists (DEL the attachment first)",
                inv.container_id, inv.ifname, conf.name
            ),
        ));
    }
    let others = state
        .leases(&conf.name)?
        .iter()
        .filter(|l| {
            (l.container_id.as_str(), l.ifname.as_str()) != (inv.container_id.as_str(), inv.ifname.as_str())
        })
        .count();
    let record = state.network(&conf.name)?;
    let net = network_for(conf, &inv.ifname, record.as_ref(), others, &host.links)?;
    let facts =
        HostFacts::gather(&host.links, &net).map_err(kernel("failed to look up the network's interface"))?;
    let bridge_missing = net.net_type == NetworkType::Bridge && !facts.has_link(&net.interface);
    let first = others == 0 || record.is_none();
    let set_up = first || bridge_missing;
    let owns = match net.net_type {
        NetworkType::Bridge if set_up => {
            record.as_ref().is_some_and(|r| r.owns_interface)
                || bridge_is_ours(&host.links, &net.interface, &net.id)?
        }
        NetworkType::Bridge => record.as_ref().is_some_and(|r| r.owns_interface),
        _ => false,
    };
    if !conf.port_mappings.is_empty() && !ports::can_target(&net) {
        return Err(CniError::new(
            Code::InvalidConfig,
            format!(
                "portMappings: ports cannot be forwarded into network '{}': only bridge and loopback networks that are not internal take them",
                conf.name
            ),
        ));
    }
    check_ports_free(&state, &conf.port_mappings, &ep_id)?;
    let lease = state.allocate(
        &net,
        &inv.container_id,
        &inv.ifname,
        &ep_id,
        requested,
        &conf.port_mappings,
    )?;
    let ep = endpoint(&net, Some(&lease), &ep_id, &inv.container_id);
    let forwards = forwards(&net, &ep, Some(&lease));
    let setup = set_up.then_some((&facts, owns));
    match attach(
        &host,
        &container,
        &net,
        &ep,
        &forwards,
        conf,
        &inv.ifname,
        netns,
        setup,
    ) {
        Ok(result) => {
            if set_up {
                state.record_network(&NetworkRecord {
                    network: net.clone(),
                    owns_interface: owns,
                })?;
            }
            let result = match &conf.prev_result {
                Some(prev) => AddResult::from_value(prev)?.merge(result),
                None => result,
            };
            Ok(result.render(&conf.cni_version))
        }
        Err(error) => {
            // The plan undid its own steps and `attach` its elements; what
            // is left is the lease and, for a first attachment, the
            // network's host side.
            let mut failures = Failures::default();
            if let Err(e) = state.release(&conf.name, &inv.container_id, &inv.ifname) {
                failures.push(e.msg);
            }
            if first {
                let (teardown, elements) = teardown_plan(&net, owns);
                // As after the last DEL: with no attachment left anywhere,
                // the tables go too.
                let none_left = state.all_endpoint_ids().is_ok_and(|ids| ids.is_empty());
                let removed = if none_left {
                    host.firewall
                        .apply(&ruleset::batch(ruleset::delete_table_commands()))
                } else {
                    change_elements(&host.firewall, &[], &elements)
                };
                if let Err(e) = removed {
                    failures.push(cell_core::error::chain(&e));
                }
                if let Err(errors) = plan::apply_teardown(&teardown, host.kernel(), None) {
                    failures.push(cell_core::error::chain(&errors));
                }
                if let Err(e) = state.forget_network(&conf.name) {
                    failures.push(e.msg);
                }
            }
            match failures.into_result(error.code, "undo") {
                Ok(()) => Err(error),
                Err(undo) => Err(CniError {
                    details: format!("{}; and undoing it failed: {}", error.details, undo.details),
                    ..error
                }),
            }
        }
    }
}

/// The kernel part of an ADD: elements (the endpoint's, its port
/// forwards', and the network's when `setup` says so), the network's host
/// side (with the host's facts and whether the bridge is the plugin's),
/// the attachment's links. Undoes its elements on failure.
#[allow(clippy::too_many_arguments)]
fn attach(
    host: &Host,
    container: &ContainerNet,
    net: &Network,
    ep: &Endpoint,
    forwards: &[PortForward],
    conf: &NetConf,
    ifname: &str,
    netns: &Path,
    setup: Option<(&HostFacts, bool)>,
) -> Result<AddResult> {
    let (setup_plan, network_elements) = match setup {
        Some((facts, owns)) => setup_plan(net, facts, owns)?,
        None => (Plan::new(), Vec::new()),
    };
    let attach_plan = network_driver(net.net_type)
        .plan_attach(net, ep, container_driver(conf.driver))
        .map_err(|e| CniError::caused(Code::InvalidConfig, cell_core::error::chain(&e), &e))?;
    let attach_plan = inside_named(cni_marks(attach_plan, &net.id), &net.interface, ifname);
    let (attach_plan, mut endpoint_elements) = take_elements(attach_plan);
    endpoint_elements.extend(port_elements(forwards)?);
    let mut elements = endpoint_elements.clone();
    elements.extend(network_elements);
    change_elements(&host.firewall, &elements, &[]).map_err(kernel("failed to add the firewall elements"))?;
    let applied = plan::apply(&setup_plan, host.kernel(), None)
        .map_err(kernel(format!("failed to set up network '{}'", net.name)))
        .and_then(|()| {
            plan::apply(&attach_plan, host.kernel(), Some(container.kernel())).map_err(kernel(format!(
                "failed to attach container {} to network '{}'",
                ep.container_id, net.name
            )))
        });
    if let Err(error) = applied {
        if let Err(e) = change_elements(&host.firewall, &[], &endpoint_elements) {
            return Err(CniError {
                details: format!(
                    "{}; and removing its firewall elements failed: {}",
                    error.details,
                    cell_core::error::chain(&e)
                ),
                ..error
            });
        }
        return Err(error);
    }
    result_of(host, container, net, &attach_plan, ifname, netns)
}

/// The result of an attach: its interfaces, and the addresses and routes
/// its plan put inside.
fn result_of(
    host: &Host,
    container: &ContainerNet,
    net: &Network,
    attach_plan: &Plan,
    ifname: &str,
    netns: &Path,
) -> Result<AddResult> {
    let mac = |links: &dyn Links, name: &str| {
        links
            .link_mac(name)
            .map(|m| m.to_string())
            .map_err(kernel(format!("failed to read the MAC of {name}")))
    };
    let mut result = AddResult::default();
    if net.net_type == NetworkType::Bridge {
        result.interfaces.push(Interface {
            name: net.interface.clone(),
            mac: mac(&host.links, &net.interface)?,
            sandbox: String::new(),
        });
    }
    for op in attach_plan.ops_at(Place::Host) {
        if let Op::CreateVethPair { host_end, .. } = op {
            result.interfaces.push(Interface {
                name: host_end.clone(),
                mac: mac(&host.links, host_end)?,
                sandbox: String::new(),
            });
        }
    }
    let index = result.interfaces.len();
    result.interfaces.push(Interface {
        name: ifname.to_string(),
        mac: mac(container.links(), ifname)?,
        sandbox: netns.display().to_string(),
    });
    for op in attach_plan.ops_at(Place::Container) {
        match op {
            Op::AddAddress { addr, .. } => {
                let gateway = match (net.net_type, addr) {
                    (NetworkType::Loopback, ipnet::IpNet::V6(_)) => Some(IpAddr::V6(ROUTED_GATEWAY6)),
                    (NetworkType::Loopback, _) => None,
                    (_, ipnet::IpNet::V4(_)) => net.gateway.map(IpAddr::V4),
                    (_, ipnet::IpNet::V6(_)) => net.gateway6.map(IpAddr::V6),
                };
                result.ips.push(IpConfig {
                    address: *addr,
                    gateway,
                    interface: Some(index),
                });
            }
            Op::AddRoute { dest, gateway, .. } => result.routes.push(Route {
                dst: *dest,
                gw: *gateway,
            }),
            _ => {}
        }
    }
    Ok(result)
}

/// DEL: detaches the container; done if it is not attached. Needs neither
/// the namespace (only a custom network's macvlan lives there alone, and
/// it dies with the namespace) nor a previous result.
pub fn del(inv: &Invocation, conf: &NetConf) -> Result<()> {
    let host = Host::open()?;
    let state = State::open(&conf.data_dir)?;
    let ep_id = endpoint_id(&conf.name, &inv.container_id, &inv.ifname);
    let lease = state.lease(&conf.name, &inv.container_id, &inv.ifname)?;
    let record = state.network(&conf.name)?;
    let others = state
        .leases(&conf.name)?
        .iter()
        .filter(|l| l.endpoint_id != ep_id)
        .count();
    let all_others = state
        .all_endpoint_ids()?
        .into_iter()
        .filter(|id| *id != ep_id)
        .count();
    let mut net = match &record {
        Some(r) => r.network.clone(),
        None => conf.network(&inv.ifname, None),
    };
    if net.net_type == NetworkType::Loopback {
        net.interface = inv.ifname.clone();
    }
    let ep = endpoint(&net, lease.as_ref(), &ep_id, &inv.container_id);
    let mut failures = Failures::default();

    let detach = network_driver(net.net_type)
        .plan_detach(&net, &ep)
        .map_err(|e| CniError::caused(Code::InvalidConfig, cell_core::error::chain(&e), &e))?;
    let (detach, mut elements) = take_elements(inside_named(detach, &net.interface, &inv.ifname));
    elements.extend(port_elements(&forwards(&net, &ep, lease.as_ref()))?);
    let last = others == 0 && record.is_some();
    let owns = record.as_ref().is_some_and(|r| r.owns_interface);
    let (teardown, network_elements) = teardown_plan(&net, owns);
    if last {
        elements.extend(network_elements);
    }
    let removed = if last && all_others == 0 {
        // The last attachment of all: the tables go, elements and all.
        host.firewall
            .apply(&ruleset::batch(ruleset::delete_table_commands()))
    } else {
        change_elements(&host.firewall, &[], &elements)
    };
    if let Err(e) = removed {
        failures.push(format!(
            "failed to remove the firewall elements: {}",
            cell_core::error::chain(&e)
        ));
    }
    let container = inv.netns.as_deref().and_then(|p| ContainerNet::open(p).ok());
    let inside: Option<&dyn Links> = container.as_ref().map(|c| c.links() as &dyn Links);
    if let Err(errors) = plan::apply_teardown(&detach, host.kernel(), inside) {
        failures.push(cell_core::error::chain(&errors));
    }
    if last {
        if let Err(errors) = plan::apply_teardown(&teardown, host.kernel(), None) {
            failures.push(cell_core::error::chain(&errors));
        }
        if failures.is_empty() {
            state.forget_network(&conf.name)?;
        }
    }
    // A lease is kept while its kernel objects may remain, so that the
    // runtime's retry of DEL still finds the addresses of its elements.
    if failures.is_empty() {
        state.release(&conf.name, &inv.container_id, &inv.ifname)?;
    }
    failures.into_result(
        Code::CleanupFailed,
        &format!(
            "failed to detach container {} from network '{}'",
            inv.container_id, conf.name
        ),
    )
}

/// CHECK: verifies the attachment against the previous result and the
/// plugin's state; the error names everything missing.
pub fn check(inv: &Invocation, conf: &NetConf) -> Result<()> {
    if !config::version_at_least(&conf.cni_version, 0, 4) {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            format!(
                "CHECK needs cniVersion 0.4.0 or later, not '{}'",
                conf.cni_version
            ),
        ));
    }
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            Code::InvalidConfig,
            "CHECK needs the previous result (\"prevResult\")",
        )
    })?;
    let prev = AddResult::from_value(prev)?;
    let netns = inv
        .netns
        .as_deref()
        .expect("Invocation requires CNI_NETNS for CHECK");
    let container = open_netns(netns)?;
    let host = Host::open()?;
    let state = State::open(&conf.data_dir)?;
    let ifname = &inv.ifname;
    let mut missing = Failures::default();

    let ep_id = endpoint_id(&conf.name, &inv.container_id, ifname);
    let lease = state.lease(&conf.name, &inv.container_id, ifname)?;
    if lease.is_none() {
        missing.push(format!(
            "no lease for container {} interface {ifname}",
            inv.container_id
        ));
    }
    let record = state.network(&conf.name)?;
    let Some(record) = record else {
        missing.push(format!("network '{}' is not set up", conf.name));
        return missing.into_result(Code::CheckFailed, "check failed");
    };
    let mut net = record.network.clone();
    if net.net_type == NetworkType::Loopback {
        net.interface = ifname.clone();
    }

    // Inside: the interface, its MAC, addresses and routes.
    let inside = container.links();
    let our_index = prev.sandbox_interface(ifname);
    match inside.link_mac(ifname) {
        Err(_) => missing.push(format!("interface {ifname} is missing in {}", netns.display())),
        Ok(mac) => {
            if let Some(want) = our_index
                .map(|i| &prev.interfaces[i].mac)
                .filter(|m| !m.is_empty())
                && !want.eq_ignore_ascii_case(&mac.to_string())
            {
                missing.push(format!("interface {ifname} has MAC {mac}, not {want}"));
            }
            let addrs = inside.list_addresses(ifname).unwrap_or_default();
            for ip in prev
                .ips
                .iter()
                .filter(|ip| ip.interface.is_none() || ip.interface == our_index)
            {
                if !addrs.contains(&ip.address) {
                    missing.push(format!("address {} is missing on {ifname}", ip.address));
                }
                let leased = match ip.address.addr() {
                    IpAddr::V4(a) => lease.as_ref().and_then(|l| l.ip4) == Some(a),
                    IpAddr::V6(a) => lease.as_ref().and_then(|l| l.ip6) == Some(a),
                };
                if lease.is_some() && !leased {
                    missing.push(format!("address {} is not the lease's", ip.address));
                }
            }
            let routes = inside.list_routes().unwrap_or_default();
            for route in &prev.routes {
                let present = routes
                    .iter()
                    .any(|r| r.dest == route.dst && (route.gw.is_none() || r.gateway == route.gw));
                if !present {
                    let via = route.gw.map(|g| format!(" via {g}")).unwrap_or_default();
                    missing.push(format!(
                        "route to {}{via} is missing in {}",
                        route.dst,
                        netns.display()
                    ));
                }
            }
        }
    }

    // The host end and its bridge.
    if network_driver(net.net_type).uses_veth() {
        let host_end = host_ifname(&ep_id);
        let links = host
            .links
            .list_links()
            .map_err(kernel("failed to list the host's links"))?;
        match links.iter().find(|l| l.name == host_end) {
            None => missing.push(format!("host end {host_end} is missing")),
            Some(link) => {
                if !link.up {
                    missing.push(format!("host end {host_end} is down"));
                }
                if net.net_type == NetworkType::Bridge {
                    let bridge = links.iter().find(|l| l.name == net.interface);
                    match bridge {
                        None => missing.push(format!("bridge {} is missing", net.interface)),
                        Some(b) if link.master != Some(b.index) => missing.push(format!(
                            "host end {host_end} is not a port of bridge {}",
                            net.interface
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
    }

    // The firewall elements of the attachment and of its network.
    let ep = endpoint(&net, lease.as_ref(), &ep_id, &inv.container_id);
    let mut wanted = network_driver(net.net_type)
        .plan_attach(&net, &ep, container_driver(conf.driver))
        .map(|p| take_elements(p).1)
        .unwrap_or_default();
    wanted.extend(port_elements(&forwards(&net, &ep, lease.as_ref())).unwrap_or_default());
    let present = host
        .firewall
        .elements()
        .map_err(kernel("failed to list the plugin's tables"))?;
    for element in wanted.iter().chain(ruleset::network_elements(&net).iter()) {
        let found = present.iter().any(|(family, set, value)| {
            family == element.family && set == element.set && *value == element.value
        });
        if !found {
            missing.push(format!(
                "firewall element {} is missing from set {} of table {} {}",
                element.value,
                element.set,
                element.family,
                crate::host::TABLE
            ));
        }
    }
    missing.into_result(Code::CheckFailed, "check failed")
}

/// STATUS: whether an ADD would work now: the state can be opened, the
/// plugin's tables can be read, a custom network's parent exists, and the
/// network has a free address.
pub fn status(conf: &NetConf) -> Result<()> {
    let unavailable = |e: CniError| CniError {
        code: Code::NotAvailable,
        msg: format!("cell-cni cannot serve ADD: {}", e.msg),
        ..e
    };
    let state = State::open(&conf.data_dir).map_err(unavailable)?;
    let host = Host::open().map_err(unavailable)?;
    host.firewall
        .list(ruleset::FAMILY_INET)
        .map_err(|e| unavailable(CniError::kernel("nftables is unavailable", &e)))?;
    let net = conf.network("eth0", resolve_nat(conf, &host.links).map_err(unavailable)?);
    if net.net_type == NetworkType::Custom {
        let parent = host
            .links
            .link_index(&net.interface)
            .map_err(|e| unavailable(CniError::kernel("failed to look up the parent interface", &e)))?;
        if parent.is_none() {
            return Err(unavailable(CniError::new(
                Code::InvalidConfig,
                format!(
                    "the parent interface {} of network '{}' does not exist",
                    net.interface, net.name
                ),
            )));
        }
    }
    let leases = state.leases(&conf.name)?;
    let used4: HashSet<Ipv4Addr> = leases.iter().filter_map(|l| l.ip4).collect();
    let used6: HashSet<Ipv6Addr> = leases.iter().filter_map(|l| l.ip6).collect();
    let exhausted = |e: cell_core::CoreError| unavailable(CniError::new(Code::AddressesExhausted, e.message));
    if net.subnet.is_some() {
        cell_core::ipam::allocate_v4(&net, &used4).map_err(exhausted)?;
    }
    if net.subnet6.is_some() {
        cell_core::ipam::allocate_v6(&net, &used6).map_err(exhausted)?;
    }
    Ok(())
}

/// GC: removes every lease, host link and firewall element of the network
/// that `cni.dev/valid-attachments` does not name, and elements no lease
/// of any network explains; keeps going and reports every failure.
pub fn gc(conf: &NetConf) -> Result<()> {
    let valid: HashSet<String> = conf
        .valid_attachments
        .iter()
        .flatten()
        .map(|a| endpoint_id(&conf.name, &a.container_id, &a.ifname))
        .collect();
    let host = Host::open()?;
    let state = State::open(&conf.data_dir)?;
    let record = state.network(&conf.name)?;
    let net_id = conf.network_id();
    let mut failures = Failures::default();
    let mut stale_elements = Vec::new();
    let mut stale_links = HashSet::new();

    let leases = state.leases(&conf.name)?;
    let net_of = |ifname: &str| {
        let mut net = match &record {
            Some(r) => r.network.clone(),
            None => conf.network(ifname, None),
        };
        if net.net_type == NetworkType::Loopback {
            net.interface = ifname.to_string();
        }
        net
    };
    let stale: Vec<&Lease> = leases
        .iter()
        .filter(|l| !valid.contains(&l.endpoint_id))
        .collect();
    for lease in &stale {
        let net = net_of(&lease.ifname);
        let ep = endpoint(&net, Some(lease), &lease.endpoint_id, &lease.container_id);
        match network_driver(net.net_type).plan_detach(&net, &ep) {
            Ok(plan) => {
                let (plan, elements) = take_elements(plan);
                stale_elements.extend(elements);
                match port_elements(&forwards(&net, &ep, Some(lease))) {
                    Ok(elements) => stale_elements.extend(elements),
                    Err(e) => failures.push(e.msg),
                }
                for op in plan.ops_at(Place::Host) {
                    if let Op::DeleteLink { name } = op {
                        stale_links.insert(name.clone());
                    }
                }
            }
            Err(e) => failures.push(cell_core::error::chain(&e)),
        }
    }
    // Host ends marked as this network's whose attachment is not valid,
    // leased or not.
    match host.links.list_links() {
        Ok(links) => {
            for link in links {
                let ep = link.alias.as_deref().and_then(|a| endpoint_of_alias(a, &net_id));
                if ep.is_some_and(|ep| !valid.contains(ep)) {
                    stale_links.insert(link.name);
                }
            }
        }
        Err(e) => failures.push(format!(
            "failed to list the host's links: {}",
            cell_core::error::chain(&e)
        )),
    }
    // Elements that no lease of any network explains (a crash between the
    // elements and the lease, or lost state): those of host ends without a
    // lease, and port forwards to addresses without one.
    let stale_ids: HashSet<&str> = stale.iter().map(|l| l.endpoint_id.as_str()).collect();
    let kept: Vec<Lease> = state
        .all_leases()?
        .into_iter()
        .filter(|l| !stale_ids.contains(l.endpoint_id.as_str()))
        .collect();
    let known_ids: HashSet<&str> = kept.iter().map(|l| l.endpoint_id.as_str()).collect();
    let known_ips: HashSet<String> = kept
        .iter()
        .flat_map(|l| [l.ip4.map(IpAddr::V4), l.ip6.map(IpAddr::V6)])
        .flatten()
        .map(|ip| ip.to_string())
        .collect();
    match host.firewall.elements() {
        Ok(present) => {
            let mut orphan_keys = Vec::new();
            for (family, set, value) in &present {
                let port = value
                    .get("concat")
                    .and_then(|c| c.get(0))
                    .unwrap_or(value)
                    .as_str()
                    .unwrap_or_default();
                if KNOWN_SETS.contains(&set.as_str())
                    && is_host_ifname(port)
                    && !known_ids.contains(&port[2..])
                {
                    stale_elements.push(element_of(family, set, value.clone()));
                }
                let target = value.get(1).and_then(Value::as_str).unwrap_or_default();
                if let Some((_, port_map)) = PORT_MAPS.iter().find(|(addr_map, _)| addr_map == set)
                    && !known_ips.contains(target)
                {
                    stale_elements.push(element_of(family, set, value.clone()));
                    orphan_keys.push((*port_map, value[0].clone()));
                }
            }
            for (family, set, value) in &present {
                if orphan_keys
                    .iter()
                    .any(|(map, key)| map == set && value.get(0) == Some(key))
                {
                    stale_elements.push(element_of(family, set, value.clone()));
                }
            }
            let mut seen = Vec::new();
            stale_elements.retain(|e| {
                let fresh = !seen.contains(e);
                seen.push(e.clone());
                fresh
            });
        }
        Err(e) => failures.push(format!(
            "failed to list the plugin's tables: {}",
            cell_core::error::chain(&e)
        )),
    }

    if let Err(e) = change_elements(&host.firewall, &[], &stale_elements) {
        failures.push(format!(
            "failed to remove stale firewall elements: {}",
            cell_core::error::chain(&e)
        ));
    }
    for name in &stale_links {
        if let Err(e) = host.links.delete_link(name)
            && !e.is_not_found()
        {
            failures.push(format!(
                "failed to delete link {name}: {}",
                cell_core::error::chain(&e)
            ));
        }
    }
    if failures.is_empty() {
        for lease in &stale {
            if let Err(e) = state.release(&lease.network, &lease.container_id, &lease.ifname) {
                failures.push(e.msg);
            }
        }
    }
    // With no attachment left, the network's host side goes too.
    if let Some(record) = &record
        && state.leases(&conf.name)?.is_empty()
        && failures.is_empty()
    {
        let (teardown, elements) = teardown_plan(&record.network, record.owns_interface);
        if let Err(e) = change_elements(&host.firewall, &[], &elements) {
            failures.push(format!(
                "failed to remove the network's elements: {}",
                cell_core::error::chain(&e)
            ));
        }
        if let Err(errors) = plan::apply_teardown(&teardown, host.kernel(), None) {
            failures.push(cell_core::error::chain(&errors));
        }
        if failures.is_empty() {
            state.forget_network(&conf.name)?;
        }
    }
    tracing::debug!(
        leases = stale.len(),
        links = stale_links.len(),
        elements = stale_elements.len(),
        "gc"
    );
    failures.into_result(Code::CleanupFailed, &format!("gc of network '{}'", conf.name))
}

/// An element read back from the kernel, to delete it.
fn element_of(family: &str, set: &str, value: Value) -> Element {
    // The constants, so an element keeps the `'static` names of its type.
    let family = [ruleset::FAMILY_INET, ruleset::FAMILY_BRIDGE]
        .into_iter()
        .find(|f| *f == family)
        .unwrap_or(ruleset::FAMILY_INET);
    let set = KNOWN_SETS
        .iter()
        .chain(PORT_MAPS.iter().flat_map(|(a, p)| [a, p]))
        .find(|s| **s == set)
        .copied()
        .expect("only elements of known sets are read back");
    Element { family, set, value }
}

/// The port maps: each map to addresses, with its twin to ports.
const PORT_MAPS: &[(&str, &str)] = &[
    (ruleset::MAP_PORTS4_ADDR, ruleset::MAP_PORTS4_PORT),
    (ruleset::MAP_PORTS6_ADDR, ruleset::MAP_PORTS6_PORT),
    (ruleset::MAP_ADDR_PORTS4_ADDR, ruleset::MAP_ADDR_PORTS4_PORT),
    (ruleset::MAP_ADDR_PORTS6_ADDR, ruleset::MAP_ADDR_PORTS6_PORT),
];

const KNOWN_SETS: &[&str] = &[
    ruleset::SET_SPOOF_PORTS,
    ruleset::SET_ALLOWED_MAC,
    ruleset::SET_ALLOWED4,
    ruleset::SET_ALLOWED6,
    ruleset::SET_ND_TARGETS,
    ruleset::SET_ICC_OFF_PORTS,
    ruleset::SET_ROUTED_PORTS,
    ruleset::SET_ROUTED_ALLOWED4,
    ruleset::SET_ROUTED_ALLOWED6,
];

/// VERSION: the versions the plugin speaks.
pub fn version(cni_version: &str) -> Value {
    json!({"cniVersion": cni_version, "supportedVersions": config::SUPPORTED_VERSIONS})
}
