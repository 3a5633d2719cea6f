//! How the plugin adapts the plans of the `cell-net` drivers, which were
//! made for `celld`, to CNI. The drivers stay as they are; three small
//! rewrites of the plan (it is data) do the rest:
//!
//! - [`inside_named`]: `celld` names a container's interface after the
//!   network's (`cell0`); CNI names it (`CNI_IFNAME`).
//! - [`cni_marks`]: `celld` marks its host links `cell:ID`, and at start
//!   deletes marked links its store does not know. The plugin's links are
//!   marked `cell-cni:NETWORK[:ENDPOINT]` instead, which `celld` does not
//!   take for its own, and which tells GC the network a link belongs to.
//! - [`take_elements`]: the firewall steps are lifted out of the plans, so
//!   an operation's elements go in one transaction
//!   ([`crate::host::change_elements`]).

use cell_net::driver::{LINK_ALIAS_PREFIX, alias_owner};
use cell_net::plan::{Op, Place, Plan};
use cell_net::ruleset::Element;

/// The prefix of the plugin's link marks.
pub const CNI_ALIAS_PREFIX: &str = "cell-cni:";

/// The mark of a network's bridge.
pub fn network_alias(network_id: &str) -> String {
    format!("{CNI_ALIAS_PREFIX}{network_id}")
}

/// The mark of an attachment's host end.
pub fn endpoint_alias(network_id: &str, endpoint_id: &str) -> String {
    format!("{CNI_ALIAS_PREFIX}{network_id}:{endpoint_id}")
}

/// The endpoint id an alias of network `network_id` names, if it marks one
/// of its host ends.
pub fn endpoint_of_alias<'a>(alias: &'a str, network_id: &str) -> Option<&'a str> {
    alias
        .strip_prefix(CNI_ALIAS_PREFIX)?
        .strip_prefix(network_id)?
        .strip_prefix(':')
        .filter(|id| !id.is_empty())
}

/// The plan with the interface inside the container named `to` where the
/// drivers named it `from` (the network's interface). Names on the host
/// (a macvlan's parent, the bridge) are left alone.
pub fn inside_named(mut plan: Plan, from: &str, to: &str) -> Plan {
    let rename = |name: &mut String| {
        if name == from {
            *name = to.to_string();
        }
    };
    let from_key = format!("/{from}/");
    let to_key = format!("/{to}/");
    for step in &mut plan.steps {
        match (&mut step.op, step.place) {
            (Op::CreateVethPair { container_end, .. }, _) => rename(container_end),
            (Op::CreateMacvlan { name, .. }, _) => rename(name),
            (_, Place::Host) => {}
            (
                Op::SetMac { name, .. }
                | Op::SetUp { name }
                | Op::AddAddress { name, .. }
                | Op::DeleteLink { name }
                | Op::SetAlias { name, .. }
                | Op::SetMaster { name, .. },
                Place::Container,
            ) => rename(name),
            (Op::AddRoute { dev, .. }, Place::Container) => rename(dev),
            (Op::Sysctl { key, .. }, Place::Container) => *key = key.replacen(&from_key, &to_key, 1),
            _ => {}
        }
    }
    plan
}

/// The plan with every `cell:ID` mark replaced by the plugin's own.
pub fn cni_marks(mut plan: Plan, network_id: &str) -> Plan {
    for step in &mut plan.steps {
        if let Op::SetAlias { alias, .. } = &mut step.op
            && alias.starts_with(LINK_ALIAS_PREFIX)
        {
            *alias = match alias_owner(alias) {
                Some(owner) if owner == network_id => network_alias(network_id),
                Some(owner) => endpoint_alias(network_id, owner),
                None => alias.clone(),
            };
        }
    }
    plan
}

/// The plan without its firewall steps, and the elements they add or
/// delete.
pub fn take_elements(plan: Plan) -> (Plan, Vec<Element>) {
    let mut elements = Vec::new();
    for step in &plan.steps {
        if let Op::AddElements(e) | Op::DeleteElements(e) = &step.op {
            elements.extend(e.iter().cloned());
        }
    }
    let plan = plan.without(|s| matches!(s.op, Op::AddElements(_) | Op::DeleteElements(_)));
    (plan, elements)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NetConf, endpoint_id};
    use cell_core::model::{Endpoint, NetworkDriver};
    use cell_net::{container_driver, network_driver};
    use serde_json::json;

    fn attach_plan(network: &str) -> (cell_core::model::Network, Plan) {
        let conf = NetConf::parse(&json!({"cniVersion": "1.1.0", "name": "pods", "network": network,
            "interface": "em0", "subnet": "10.1.0.0/24"}))
        .unwrap();
        let net = conf.network("eth0", None);
        let ep = Endpoint {
            id: endpoint_id("pods", "c1", "eth0"),
            network_id: net.id.clone(),
            container_id: "c1".into(),
            epair: None,
            ip_address: Some("10.1.0.2".parse().unwrap()),
            ip_address6: None,
            mac: None,
        };
        let plan = network_driver(net.net_type)
            .plan_attach(&net, &ep, container_driver(NetworkDriver::Ipnet))
            .unwrap();
        (net, plan)
    }

    #[test]
    fn the_inside_interface_gets_the_runtimes_name() {
        let (net, plan) = attach_plan("bridge");
        let plan = inside_named(plan, &net.interface, "net1");
        let text = format!("{:?}", plan.ops_at(Place::Container));
        assert!(!text.contains("em0"), "{text}");
        assert!(text.contains("net1/disable_ipv6"), "{text}");
        let created = plan.ops_at(Place::Host).into_iter().find_map(|op| match op {
            Op::CreateVethPair { container_end, .. } => Some(container_end.clone()),
            _ => None,
        });
        assert_eq!(created.as_deref(), Some("net1"));
        // The bridge stays the bridge.
        assert!(
            plan.ops_at(Place::Host)
                .iter()
                .any(|op| matches!(op, Op::SetMaster { bridge, .. } if bridge == "em0"))
        );

        let (net, plan) = attach_plan("custom");
        let plan = inside_named(plan, &net.interface, "net1");
        assert!(plan.ops_at(Place::Host).contains(&&Op::CreateMacvlan {
            name: "net1".into(),
            parent: "em0".into()
        }));
    }

    #[test]
    fn links_are_marked_as_the_plugins() {
        let (net, plan) = attach_plan("bridge");
        let plan = cni_marks(plan, &net.id);
        let alias = plan
            .steps
            .iter()
            .find_map(|s| match &s.op {
                Op::SetAlias { alias, .. } => Some(alias.clone()),
                _ => None,
            })
            .unwrap();
        let ep = endpoint_id("pods", "c1", "eth0");
        assert_eq!(alias, endpoint_alias(&net.id, &ep));
        assert_eq!(endpoint_of_alias(&alias, &net.id), Some(ep.as_str()));
        assert_eq!(endpoint_of_alias(&alias, "000000000000"), None);
        assert_eq!(alias_owner(&alias), None, "celld must not take it for its own");
    }

    #[test]
    fn elements_are_lifted_out() {
        let (_, plan) = attach_plan("bridge");
        let (rest, elements) = take_elements(plan);
        assert!(!elements.is_empty());
        assert!(!rest.steps.iter().any(|s| matches!(s.op, Op::AddElements(_))));
    }
}
