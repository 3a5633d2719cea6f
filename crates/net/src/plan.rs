//! Plans: what a driver wants the kernel to hold, as data, and the one
//! step that makes it so.
//!
//! A [`Plan`] is a list of [`Step`]s, each an [`Op`] (create a veth pair or
//! a bridge, set a link up, add an address or a route, write a sysctl, add
//! firewall elements...) tagged with the [`Place`] it applies to: the
//! host's namespace or the container's. The drivers ([`crate::driver`])
//! only compute plans, so their tests assert on plans without any kernel;
//! a backend for another kernel (FreeBSD's epair, jail parameters and pf)
//! would render the same plans.
//!
//! Two functions apply a plan through the kernel traits ([`Links`],
//! [`crate::Firewall`], [`Sysctl`]):
//!
//! - [`apply`] runs the steps in order and stops at the first failure;
//!   it then undoes the steps already done, in reverse order, and returns
//!   the failure together with every failure of the undo
//!   ([`NetError::Undo`]). Undoing a step that made a link deletes the
//!   link, which takes its addresses, routes and settings with it, so
//!   those are not undone one by one.
//! - [`apply_teardown`] runs every step whatever fails, treats "not
//!   found" as done, and returns every failure ([`NetErrors`]): teardown
//!   is safe to run twice, and reconciliation does.

use crate::driver::{ContainerKernel, HostKernel};
use crate::error::{NetError, NetErrors, Result};
use crate::links::Links;
use crate::mac::MacAddr;
use crate::ruleset::{self, Element};
use crate::sysctl::Sysctl;
use ipnet::IpNet;
use std::net::IpAddr;

/// Which network namespace a step applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The host's namespace (where `celld` or the CNI plugin runs).
    Host,
    /// The container's namespace.
    Container,
}

/// One kernel operation of a plan. Links are named; the names are those
/// of the namespace the step applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Creates a veth pair from the host: `host_end` in the host's
    /// namespace, `container_end` directly in the container's (one
    /// message, no move). Applies at [`Place::Host`].
    CreateVethPair {
        /// The end that stays on the host.
        host_end: String,
        /// The end created in the container's namespace.
        container_end: String,
    },
    /// Creates a bridge (down).
    CreateBridge {
        /// The bridge's name.
        name: String,
    },
    /// Creates a macvlan child of the host's `parent` directly in the
    /// container's namespace. Applies at [`Place::Host`].
    CreateMacvlan {
        /// The child's name inside the container.
        name: String,
        /// The host's interface it is a child of.
        parent: String,
    },
    /// Marks a link as cell's (`IFLA_IFALIAS`).
    SetAlias {
        /// The link.
        name: String,
        /// The mark, see [`crate::driver::link_alias`].
        alias: String,
    },
    /// Sets a link's MAC address.
    SetMac {
        /// The link.
        name: String,
        /// The address.
        mac: MacAddr,
    },
    /// Makes a link a port of a bridge.
    SetMaster {
        /// The port.
        name: String,
        /// The bridge.
        bridge: String,
    },
    /// Turns on hairpin mode of a bridge port (see [`Links::set_hairpin`]).
    SetHairpin {
        /// The port.
        name: String,
    },
    /// Sets a link up.
    SetUp {
        /// The link.
        name: String,
    },
    /// Adds an address to a link.
    AddAddress {
        /// The link.
        name: String,
        /// The address with its prefix length.
        addr: IpNet,
    },
    /// Adds a main-table route out of a link.
    AddRoute {
        /// The destination.
        dest: IpNet,
        /// The output link.
        dev: String,
        /// The next hop; `None` for an on-link destination.
        gateway: Option<IpAddr>,
    },
    /// Adds an `unreachable` route.
    AddUnreachableRoute {
        /// The destination.
        dest: IpNet,
    },
    /// Deletes an `unreachable` route.
    DelUnreachableRoute {
        /// The destination.
        dest: IpNet,
    },
    /// Adds a `local` route to `dest` on `dev` (see
    /// [`Links::add_local_route`]); goes with the link.
    AddLocalRoute {
        /// The destination (cell uses `::1/128`).
        dest: IpNet,
        /// The link it arrives on.
        dev: String,
    },
    /// Sends IPv6 replies to `::1` that arrive on the bridge `link` to
    /// `lo` (see [`crate::ports`]): a base chain of `netdev cell` on its
    /// ingress. Idempotent.
    AddLoopbackRedirect6 {
        /// The bridge.
        link: String,
    },
    /// Deletes what [`Op::AddLoopbackRedirect6`] made; done if absent.
    DelLoopbackRedirect6 {
        /// The bridge.
        link: String,
    },
    /// Writes a kernel parameter.
    Sysctl {
        /// The key as a path under `/proc/sys`.
        key: String,
        /// The value.
        value: String,
    },
    /// Adds elements to cell's firewall sets, in one transaction.
    AddElements(Vec<Element>),
    /// Deletes elements from cell's firewall sets, in one transaction.
    DeleteElements(Vec<Element>),
    /// Deletes a link (both ends of a veth); done if it is absent.
    DeleteLink {
        /// The link.
        name: String,
    },
}

/// An [`Op`] and where it applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The namespace the operation applies to.
    pub place: Place,
    /// The operation.
    pub op: Op,
}

/// What a driver wants done, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The steps, applied first to last.
    pub steps: Vec<Step>,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a step on the host.
    pub fn host(&mut self, op: Op) -> &mut Self {
        self.steps.push(Step {
            place: Place::Host,
            op,
        });
        self
    }

    /// Appends a step in the container.
    pub fn container(&mut self, op: Op) -> &mut Self {
        self.steps.push(Step {
            place: Place::Container,
            op,
        });
        self
    }

    /// Appends the steps of `other`.
    pub fn extend(&mut self, other: Plan) -> &mut Self {
        self.steps.extend(other.steps);
        self
    }

    /// The plan without the steps `drop` picks.
    pub fn without(mut self, drop: impl Fn(&Step) -> bool) -> Self {
        self.steps.retain(|s| !drop(s));
        self
    }

    /// The operations applied at `place`, in order.
    pub fn ops_at(&self, place: Place) -> Vec<&Op> {
        self.steps
            .iter()
            .filter(|s| s.place == place)
            .map(|s| &s.op)
            .collect()
    }

    /// Whether any step applies inside the container.
    pub fn touches_container(&self) -> bool {
        self.steps.iter().any(|s| s.place == Place::Container)
    }
}

/// What the steps inside the container apply to. Creation steps on the
/// host need the namespace's fd; deletions need only its links.
#[derive(Clone, Copy)]
struct Inside<'a> {
    links: Option<&'a dyn Links>,
    sysctl: Option<&'a dyn Sysctl>,
    netns_fd: Option<std::os::fd::RawFd>,
}

impl<'a> Inside<'a> {
    fn of(c: Option<ContainerKernel<'a>>) -> Self {
        Self {
            links: c.map(|c| c.links),
            sysctl: c.map(|c| c.sysctl),
            netns_fd: c.map(|c| c.netns_fd),
        }
    }
}

/// Applies `plan` in order. On the first failure the steps already done
/// are undone in reverse order, and the failure is returned (with every
/// failure of the undo, as [`NetError::Undo`]). `container` is needed when
/// the plan has steps in (or creating links into) the container's
/// namespace; without it such a plan fails before any step.
pub fn apply(plan: &Plan, host: HostKernel<'_>, container: Option<ContainerKernel<'_>>) -> Result<()> {
    apply_timed(plan, host, container).0
}

/// [`apply`], with the time each step took.
pub(crate) fn apply_timed(
    plan: &Plan,
    host: HostKernel<'_>,
    container: Option<ContainerKernel<'_>>,
) -> (Result<()>, StepClock) {
    let mut clock = StepClock::new();
    let inside = Inside::of(container);
    if inside.links.is_none() && plan.steps.iter().any(needs_container) {
        return (Err(NetError::NoContainer), clock);
    }
    for (done, step) in plan.steps.iter().enumerate() {
        let applied = run(step, host, inside);
        clock.lap(step);
        if let Err(error) = applied {
            tracing::debug!(steps = %clock, "plan failed at step {}", done + 1);
            let undo = undo(&plan.steps[..done], host, inside);
            let error = match undo.is_empty() {
                true => error,
                false => NetError::Undo {
                    error: Box::new(error),
                    undo,
                },
            };
            return (Err(error), clock);
        }
    }
    tracing::debug!(steps = %clock, "plan applied");
    (Ok(()), clock)
}

/// Applies a teardown `plan`: every step runs whatever failed before it,
/// "not found" counts as done, and every other failure is returned.
/// Steps inside the container are skipped when `container_links` is
/// `None`: the namespace is gone, and its links with it.
pub fn apply_teardown(
    plan: &Plan,
    host: HostKernel<'_>,
    container_links: Option<&dyn Links>,
) -> std::result::Result<(), NetErrors> {
    let inside = Inside {
        links: container_links,
        sysctl: None,
        netns_fd: None,
    };
    let mut errors = NetErrors::default();
    for step in &plan.steps {
        if step.place == Place::Container && container_links.is_none() {
            continue;
        }
        match run(step, host, inside) {
            Err(e) if !e.is_not_found() => errors.push(e),
            _ => {}
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

fn needs_container(step: &Step) -> bool {
    step.place == Place::Container || matches!(step.op, Op::CreateVethPair { .. } | Op::CreateMacvlan { .. })
}

/// Undoes `done` in reverse order, keeping going; returns the failures.
fn undo(done: &[Step], host: HostKernel<'_>, inside: Inside<'_>) -> NetErrors {
    let mut errors = NetErrors::default();
    for step in done.iter().rev() {
        let Some(inverse) = inverse(step) else {
            continue;
        };
        match run(&inverse, host, inside) {
            Err(e) if !e.is_not_found() => errors.push(e),
            _ => {}
        }
    }
    errors
}

/// The step that undoes `step`, if one is needed. Whatever a plan set on
/// a link it made (addresses, routes, MAC, master, per-link sysctls) goes
/// with the link. What it set on a link it did not make (a bridge's
/// gateway address when the bridge was there) is left, as it may have
/// been there before: the add verbs succeed on what exists. Forwarding
/// stays on, as other networks may need it.
fn inverse(step: &Step) -> Option<Step> {
    let at = |place, op| Some(Step { place, op });
    match &step.op {
        Op::CreateVethPair { host_end, .. } => at(
            Place::Host,
            Op::DeleteLink {
                name: host_end.clone(),
            },
        ),
        Op::CreateBridge { name } => at(step.place, Op::DeleteLink { name: name.clone() }),
        Op::CreateMacvlan { name, .. } => at(Place::Container, Op::DeleteLink { name: name.clone() }),
        Op::AddUnreachableRoute { dest } => at(step.place, Op::DelUnreachableRoute { dest: *dest }),
        Op::AddElements(elements) => at(step.place, Op::DeleteElements(elements.clone())),
        Op::AddLoopbackRedirect6 { link } => at(step.place, Op::DelLoopbackRedirect6 { link: link.clone() }),
        _ => None,
    }
}

/// Runs one step.
fn run(step: &Step, host: HostKernel<'_>, inside: Inside<'_>) -> Result<()> {
    let (links, sysctl): (&dyn Links, Option<&dyn Sysctl>) = match step.place {
        Place::Host => (host.links, Some(host.sysctl)),
        Place::Container => (inside.links.ok_or(NetError::NoContainer)?, inside.sysctl),
    };
    match &step.op {
        Op::CreateVethPair {
            host_end,
            container_end,
        } => {
            let fd = inside.netns_fd.ok_or(NetError::NoContainer)?;
            links.create_veth_pair(host_end, container_end, Some(fd))
        }
        Op::CreateBridge { name } => links.create_bridge(name),
        Op::CreateMacvlan { name, parent } => {
            let fd = inside.netns_fd.ok_or(NetError::NoContainer)?;
            links.create_macvlan(name, parent, Some(fd))
        }
        Op::SetAlias { name, alias } => links.set_alias(name, alias),
        Op::SetMac { name, mac } => links.set_mac(name, *mac),
        Op::SetMaster { name, bridge } => links.set_master(name, bridge),
        Op::SetHairpin { name } => links.set_hairpin(name),
        Op::SetUp { name } => links.set_up(name),
        Op::AddAddress { name, addr } => links.add_address(name, *addr),
        Op::AddRoute { dest, dev, gateway } => links.add_route(*dest, dev, *gateway),
        Op::AddUnreachableRoute { dest } => links.add_unreachable_route(*dest),
        Op::DelUnreachableRoute { dest } => links.del_unreachable_route(*dest),
        Op::AddLocalRoute { dest, dev } => links.add_local_route(*dest, dev),
        Op::AddLoopbackRedirect6 { link } => firewall(host, ruleset::add_loopback_redirect6(link)),
        Op::DelLoopbackRedirect6 { link } => match firewall(host, ruleset::delete_loopback_redirect6(link)) {
            // The chain went with its table or (older kernels) its device.
            Err(NetError::NftApply { message, .. }) if message.contains("No such file or directory") => {
                Ok(())
            }
            other => other,
        },
        Op::Sysctl { key, value } => sysctl.ok_or(NetError::NoContainer)?.set(key, value),
        Op::AddElements(elements) => firewall(host, ruleset::add_elements(elements)),
        Op::DeleteElements(elements) => firewall(host, ruleset::delete_elements(elements)),
        Op::DeleteLink { name } => links.delete_link(name),
    }
}

/// Applies firewall commands in one transaction; none, no transaction.
fn firewall(host: HostKernel<'_>, commands: Vec<serde_json::Value>) -> Result<()> {
    if commands.is_empty() {
        return Ok(());
    }
    host.firewall.apply(&ruleset::batch(commands))
}

/// Microseconds per step of a plan, for debug logs (`CELL_LOG=debug`).
pub(crate) struct StepClock {
    last: std::time::Instant,
    laps: Vec<(Place, &'static str, u128)>,
}

impl StepClock {
    fn new() -> Self {
        Self {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, step: &Step) {
        let now = std::time::Instant::now();
        self.laps
            .push((step.place, op_name(&step.op), (now - self.last).as_micros()));
        self.last = now;
    }

    /// The time of an attach in the four parts `scripts/bench-attach.sh`
    /// reads: `firewall=..us create=..us host=..us inside=..us`.
    pub(crate) fn attach_summary(&self) -> String {
        let mut parts = [("firewall", 0), ("create", 0), ("host", 0), ("inside", 0)];
        for (place, name, us) in &self.laps {
            let part = match (place, *name) {
                (_, "add_elements" | "delete_elements") => 0,
                (_, "create_veth" | "create_macvlan") => 1,
                (Place::Host, _) => 2,
                (Place::Container, _) => 3,
            };
            parts[part].1 += us;
        }
        let text: Vec<String> = parts.iter().map(|(name, us)| format!("{name}={us}us")).collect();
        text.join(" ")
    }
}

impl std::fmt::Display for StepClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: u128 = self.laps.iter().map(|(_, _, us)| us).sum();
        write!(f, "total={total}us")?;
        for (_, step, us) in &self.laps {
            write!(f, " {step}={us}us")?;
        }
        Ok(())
    }
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::CreateVethPair { .. } => "create_veth",
        Op::CreateBridge { .. } => "create_bridge",
        Op::CreateMacvlan { .. } => "create_macvlan",
        Op::SetAlias { .. } => "set_alias",
        Op::SetMac { .. } => "set_mac",
        Op::SetMaster { .. } => "set_master",
        Op::SetHairpin { .. } => "set_hairpin",
        Op::SetUp { .. } => "set_up",
        Op::AddAddress { .. } => "add_address",
        Op::AddRoute { .. } => "add_route",
        Op::AddUnreachableRoute { .. } => "add_unreachable",
        Op::DelUnreachableRoute { .. } => "del_unreachable",
        Op::AddLocalRoute { .. } => "add_local_route",
        Op::AddLoopbackRedirect6 { .. } => "add_loopback_redirect6",
        Op::DelLoopbackRedirect6 { .. } => "del_loopback_redirect6",
        Op::Sysctl { .. } => "sysctl",
        Op::AddElements(_) => "add_elements",
        Op::DeleteElements(_) => "delete_elements",
        Op::DeleteLink { .. } => "delete_link",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::HostKernel;
    use crate::links::FakeLinks;
    use crate::nft::FakeFirewall;
    use crate::sysctl::FakeSysctl;

    #[test]
    fn the_attach_summary_has_the_four_parts_the_benchmark_reads() {
        let links = FakeLinks::new();
        let (firewall, sysctl) = (FakeFirewall::new(), FakeSysctl::default());
        let host = HostKernel {
            links: &links,
            firewall: &firewall,
            sysctl: &sysctl,
        };
        let mut plan = Plan::new();
        plan.host(Op::CreateBridge { name: "b0".into() })
            .host(Op::SetUp { name: "b0".into() });
        let (applied, clock) = apply_timed(&plan, host, None);
        applied.unwrap();
        let summary = clock.attach_summary();
        let keys: Vec<&str> = summary.split(' ').map(|p| p.split('=').next().unwrap()).collect();
        assert_eq!(keys, ["firewall", "create", "host", "inside"], "{summary}");
        assert!(clock.to_string().starts_with("total="), "{clock}");
    }

    #[test]
    fn an_undo_deletes_what_the_plan_made_in_reverse_order() {
        let links = FakeLinks::new();
        let (firewall, sysctl) = (FakeFirewall::new(), FakeSysctl::default());
        let host = HostKernel {
            links: &links,
            firewall: &firewall,
            sysctl: &sysctl,
        };
        let dest: IpNet = "10.9.0.0/24".parse().unwrap();
        let mut plan = Plan::new();
        plan.host(Op::CreateBridge { name: "b0".into() })
            .host(Op::AddUnreachableRoute { dest })
            .host(Op::SetUp {
                name: "nothere".into(),
            });
        let err = apply(&plan, host, None).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        let ops = links.ops();
        use crate::links::LinkOp;
        assert_eq!(
            ops[ops.len() - 2..],
            [
                LinkOp::DelUnreachableRoute { dest },
                LinkOp::DeleteLink { name: "b0".into() }
            ]
        );
    }
}
