//! Container drivers: how a container is networked (`host`, `disabled`,
//! `ipnet`, `vnet`), as real drivers behind one trait, so the engine asks
//! them instead of testing for the absent cases (as netavark's `fwnone`
//! firewall driver does for "no firewall").
//!
//! | driver     | own netns | at start | joins                    | ports | `CAP_NET_ADMIN` |
//! |------------|-----------|----------|--------------------------|-------|-----------------|
//! | `host`     | no        | nothing  | nothing                  | no    | no              |
//! | `disabled` | yes       | `lo` up  | nothing                  | no    | no              |
//! | `ipnet`    | yes       | `lo` up  | loopback, bridge, custom | yes   | no              |
//! | `vnet`     | yes       | `lo` up  | bridge                   | yes   | yes             |
//!
//! A network-type driver ([`crate::driver::NetworkTypeDriver`]) asks the
//! container driver how to address the container ([`Addressing`]).

use crate::plan::{Op, Plan};
use cell_core::CoreError;
use cell_core::model::{Network, NetworkDriver, NetworkType, Stack};

/// How a container's address is configured on a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// The subnet's mask and a default route to the gateway, like any host
    /// on a LAN (a VNET jail).
    SubnetMask,
    /// Only its own address (/32, /128) and an on-link route to the
    /// subnet (an IP alias of a jail).
    HostOnly,
}

/// What a container's network driver decides. Implementations are
/// stateless; get one with [`container_driver`].
pub trait ContainerDriver: Send + Sync {
    /// Which driver this is.
    fn kind(&self) -> NetworkDriver;

    /// Whether the container gets a network namespace of its own (all but
    /// `host`, which shares the host's).
    fn has_own_netns(&self) -> bool;

    /// What the container's own namespace needs when it starts, before
    /// any network is attached (applied with [`crate::plan::apply`] and
    /// the container's kernel). Empty without an own namespace.
    fn plan_start(&self) -> Plan;

    /// Refuses, with the message users see, a network this driver cannot
    /// join.
    fn check_join(&self, network: &Network) -> cell_core::error::Result<()>;

    /// Refuses, with the message users see, publishing ports.
    fn check_publish(&self) -> cell_core::error::Result<()>;

    /// Whether processes of the container keep `CAP_NET_ADMIN`: only a
    /// vnet container, like a VNET jail, may configure its own interfaces.
    fn keeps_net_admin(&self) -> bool;

    /// How the container is addressed on the networks it joins.
    fn addressing(&self) -> Addressing;
}

/// The driver of `kind`.
pub fn container_driver(kind: NetworkDriver) -> &'static dyn ContainerDriver {
    match kind {
        NetworkDriver::Host => &HostDriver,
        NetworkDriver::Disabled => &DisabledDriver,
        NetworkDriver::Ipnet => &IpnetDriver,
        NetworkDriver::Vnet => &VnetDriver,
    }
}

/// `host`: the host's own stack, without the right to change it.
#[derive(Debug)]
pub struct HostDriver;

/// `disabled`: a namespace of its own holding only `lo`.
#[derive(Debug)]
pub struct DisabledDriver;

/// `ipnet`: addresses on any network type, no interface rights.
#[derive(Debug)]
pub struct IpnetDriver;

/// `vnet`: a full virtual stack on a bridge network.
#[derive(Debug)]
pub struct VnetDriver;

fn cannot_join(kind: NetworkDriver) -> CoreError {
    CoreError::invalid(format!(
        "containers using the '{kind}' network driver cannot join networks"
    ))
}

fn cannot_publish(kind: NetworkDriver) -> CoreError {
    CoreError::invalid(format!(
        "cannot publish ports of a container using the '{kind}' network driver"
    ))
}

/// A fresh namespace has `lo` down; nearly everything needs it up.
/// What a container's own namespace needs for its network stack (pot's
/// `-S`), applied with [`ContainerDriver::plan_start`]'s plan: with stack
/// `ipv4`, IPv6 off on every interface there is (`all`, loopback's `::1`
/// included) and every one made later (`default`, the interfaces attaches
/// move in). Stack `ipv6` needs nothing here: its endpoints get no IPv4
/// address, and loopback keeps `127.0.0.1` (issue 9: "no IPv4 address but
/// loopback"), which local programs expect.
pub fn plan_stack(stack: Stack) -> Plan {
    let mut plan = Plan::new();
    if !stack.has_ipv6() {
        for scope in ["all", "default"] {
            plan.container(Op::Sysctl {
                key: format!("net/ipv6/conf/{scope}/disable_ipv6"),
                value: "1".into(),
            });
        }
    }
    plan
}

fn loopback_up() -> Plan {
    let mut plan = Plan::new();
    plan.container(Op::SetUp { name: "lo".into() });
    plan
}

impl ContainerDriver for HostDriver {
    fn kind(&self) -> NetworkDriver {
        NetworkDriver::Host
    }

    fn has_own_netns(&self) -> bool {
        false
    }

    fn plan_start(&self) -> Plan {
        Plan::new()
    }

    fn check_join(&self, _: &Network) -> cell_core::error::Result<()> {
        Err(cannot_join(self.kind()))
    }

    fn check_publish(&self) -> cell_core::error::Result<()> {
        Err(cannot_publish(self.kind()))
    }

    fn keeps_net_admin(&self) -> bool {
        false
    }

    fn addressing(&self) -> Addressing {
        Addressing::HostOnly
    }
}

impl ContainerDriver for DisabledDriver {
    fn kind(&self) -> NetworkDriver {
        NetworkDriver::Disabled
    }

    fn has_own_netns(&self) -> bool {
        true
    }

    fn plan_start(&self) -> Plan {
        loopback_up()
    }

    fn check_join(&self, _: &Network) -> cell_core::error::Result<()> {
        Err(cannot_join(self.kind()))
    }

    fn check_publish(&self) -> cell_core::error::Result<()> {
        Err(cannot_publish(self.kind()))
    }

    fn keeps_net_admin(&self) -> bool {
        false
    }

    fn addressing(&self) -> Addressing {
        Addressing::HostOnly
    }
}

impl ContainerDriver for IpnetDriver {
    fn kind(&self) -> NetworkDriver {
        NetworkDriver::Ipnet
    }

    fn has_own_netns(&self) -> bool {
        true
    }

    fn plan_start(&self) -> Plan {
        loopback_up()
    }

    fn check_join(&self, _: &Network) -> cell_core::error::Result<()> {
        Ok(())
    }

    fn check_publish(&self) -> cell_core::error::Result<()> {
        Ok(())
    }

    fn keeps_net_admin(&self) -> bool {
        false
    }

    fn addressing(&self) -> Addressing {
        Addressing::HostOnly
    }
}

impl ContainerDriver for VnetDriver {
    fn kind(&self) -> NetworkDriver {
        NetworkDriver::Vnet
    }

    fn has_own_netns(&self) -> bool {
        true
    }

    fn plan_start(&self) -> Plan {
        loopback_up()
    }

    fn check_join(&self, network: &Network) -> cell_core::error::Result<()> {
        // A virtual stack needs a LAN: a loopback network has no L2 and a
        // macvlan child could not be reconfigured safely from inside.
        if network.net_type != NetworkType::Bridge {
            return Err(CoreError::invalid(format!(
                "containers using the 'vnet' network-driver can't connect to {} networks",
                network.net_type
            )));
        }
        Ok(())
    }

    fn check_publish(&self) -> cell_core::error::Result<()> {
        Ok(())
    }

    fn keeps_net_admin(&self) -> bool {
        true
    }

    fn addressing(&self) -> Addressing {
        Addressing::SubnetMask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Place;
    use crate::test_fixtures::network;

    const ALL: [NetworkDriver; 4] = [
        NetworkDriver::Host,
        NetworkDriver::Disabled,
        NetworkDriver::Ipnet,
        NetworkDriver::Vnet,
    ];

    #[test]
    fn stack_ipv4_turns_ipv6_off_in_the_whole_namespace() {
        let ops = |stack| {
            plan_stack(stack)
                .ops_at(Place::Container)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        let off = |scope: &str| Op::Sysctl {
            key: format!("net/ipv6/conf/{scope}/disable_ipv6"),
            value: "1".into(),
        };
        assert_eq!(ops(Stack::Ipv4), vec![off("all"), off("default")]);
        assert!(ops(Stack::Ipv6).is_empty());
        assert!(ops(Stack::Dual).is_empty());
        assert!(plan_stack(Stack::Ipv4).ops_at(Place::Host).is_empty());
    }

    #[test]
    fn each_kind_gets_its_own_driver() {
        for kind in ALL {
            assert_eq!(container_driver(kind).kind(), kind);
        }
    }

    #[test]
    fn rights_per_driver() {
        // (kind, own netns, keeps CAP_NET_ADMIN, may publish, may join a bridge)
        for (kind, netns, net_admin, publish, join) in [
            (NetworkDriver::Host, false, false, false, false),
            (NetworkDriver::Disabled, true, false, false, false),
            (NetworkDriver::Ipnet, true, false, true, true),
            (NetworkDriver::Vnet, true, true, true, true),
        ] {
            let d = container_driver(kind);
            assert_eq!(d.has_own_netns(), netns, "{kind}");
            assert_eq!(d.keeps_net_admin(), net_admin, "{kind}");
            assert_eq!(d.check_publish().is_ok(), publish, "{kind}");
            let bridge = network(NetworkType::Bridge);
            assert_eq!(d.check_join(&bridge).is_ok(), join, "{kind}");
        }
    }

    #[test]
    fn host_and_disabled_join_nothing_and_publish_nothing() {
        for (kind, name) in [
            (NetworkDriver::Host, "host"),
            (NetworkDriver::Disabled, "disabled"),
        ] {
            let d = container_driver(kind);
            for t in [NetworkType::Loopback, NetworkType::Bridge, NetworkType::Custom] {
                let err = d.check_join(&network(t)).unwrap_err();
                assert_eq!(
                    err.message,
                    format!("containers using the '{name}' network driver cannot join networks")
                );
                assert_eq!(err.kind, cell_core::ErrorKind::Invalid);
            }
            assert_eq!(
                d.check_publish().unwrap_err().message,
                format!("cannot publish ports of a container using the '{name}' network driver")
            );
        }
    }

    #[test]
    fn vnet_joins_bridges_only_and_ipnet_joins_all() {
        let vnet = container_driver(NetworkDriver::Vnet);
        let ipnet = container_driver(NetworkDriver::Ipnet);
        assert_eq!(
            vnet.check_join(&network(NetworkType::Loopback))
                .unwrap_err()
                .message,
            "containers using the 'vnet' network-driver can't connect to loopback networks"
        );
        assert!(
            vnet.check_join(&network(NetworkType::Custom))
                .unwrap_err()
                .message
                .ends_with("custom networks")
        );
        vnet.check_join(&network(NetworkType::Bridge)).unwrap();
        for t in [NetworkType::Loopback, NetworkType::Bridge, NetworkType::Custom] {
            ipnet.check_join(&network(t)).unwrap();
        }
        assert_eq!(vnet.addressing(), Addressing::SubnetMask);
        assert_eq!(ipnet.addressing(), Addressing::HostOnly);
    }

    #[test]
    fn only_containers_with_a_namespace_set_it_up_at_start() {
        assert!(
            container_driver(NetworkDriver::Host)
                .plan_start()
                .steps
                .is_empty()
        );
        for kind in [NetworkDriver::Disabled, NetworkDriver::Ipnet, NetworkDriver::Vnet] {
            let plan = container_driver(kind).plan_start();
            assert_eq!(
                plan.ops_at(Place::Container),
                vec![&Op::SetUp { name: "lo".into() }]
            );
            assert!(plan.ops_at(Place::Host).is_empty());
        }
    }
}
