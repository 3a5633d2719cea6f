//! The engine's use cases on fakes, without root: a [`FakeNetKernel`]
//! world of namespaces, a [`FakeRuntime`] of pretend processes and a real
//! store in a temporary directory. Failures are injected at every kernel
//! call an operation makes, and each test checks that nothing is left: no
//! row, no link, no firewall element, no namespace.

use crate::containers::CreateContainer;
use crate::networks::{ConnectRequest, CreateNetwork, DisconnectRequest};
use crate::{Backends, Engine, EngineConfig, FakeRuntime, FixedClock, RecordingResolver};
use cell_core::model::{Container, Exec};
use cell_net::{FakeNetKernel, FakeSeam, Links, NetKernel};
use cell_store::{ExecRecord, Store};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

struct World {
    dir: tempfile::TempDir,
    net: Arc<FakeNetKernel>,
    runtime: Arc<FakeRuntime>,
    ports: Arc<crate::FakeHostPorts>,
    resolver: Arc<RecordingResolver>,
    engine: Arc<Engine>,
}

/// What the kernel holds, as far as a test can tell it apart.
#[derive(Debug, PartialEq, Eq)]
struct KernelState {
    host_links: Vec<String>,
    elements: BTreeSet<String>,
    namespaces: Vec<PathBuf>,
    netns_links: Vec<Vec<String>>,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs-source");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::write(rootfs.join("bin/sh"), "#!/bin/true\n").unwrap();
        let net = Arc::new(FakeNetKernel::new());
        let runtime = Arc::new(FakeRuntime::new());
        let ports = Arc::new(crate::FakeHostPorts::new(cell_core::port::PortRange {
            start: 40000,
            end: 40099,
        }));

        let resolver = Arc::new(RecordingResolver::default());
        let engine = open(dir.path(), &net, &runtime, &ports, &resolver);
        engine.import_image("img", &rootfs).unwrap();
        Self {
            dir,
            net,
            runtime,
            ports,
            resolver,
            engine,
        }
    }

    /// The engine of a celld started again on the same state and kernel.
    fn restart(&mut self) {
        // The old engine's sockets close with its process.
        self.engine.release_all_reservations();
        self.engine = open(
            self.dir.path(),
            &self.net,
            &self.runtime,
            &self.ports,
            &self.resolver,
        );
    }

    fn store(&self) -> Store {
        Store::open(&self.dir.path().join("root/cell.db")).unwrap()
    }

    fn network(&self, name: &str, net_type: &str, subnet: &str) -> cell_core::model::Network {
        self.engine
            .create_network(&CreateNetwork {
                name: name.into(),
                net_type: Some(net_type.into()),
                subnet: Some(subnet.into()),
                ..CreateNetwork::default()
            })
            .unwrap()
    }

    fn container(&self, name: &str, driver: &str, networks: &[&str]) -> Container {
        self.engine
            .create_container(&CreateContainer {
                image: "img".into(),
                name: Some(name.into()),
                driver: Some(driver.into()),
                networks: networks.iter().map(|n| n.to_string()).collect(),
                ..CreateContainer::default()
            })
            .unwrap()
    }

    fn running(&self, name: &str, driver: &str, networks: &[&str]) -> Container {
        let c = self.container(name, driver, networks);
        self.engine.start_container(&c.id).unwrap();
        self.engine.find_container(&c.id).unwrap()
    }

    fn kernel(&self) -> KernelState {
        let namespaces = self.net.namespaces();
        KernelState {
            host_links: self.net.links.link_names(),
            elements: self.net.elements(),
            netns_links: namespaces
                .iter()
                .map(|p| self.net.netns(p).unwrap().links.link_names())
                .collect(),
            namespaces,
        }
    }

    fn endpoint_count(&self) -> usize {
        self.store().endpoints().unwrap().len()
    }
}

/// The networks but celld's own `public`, which exists from the first start.
fn user_networks(engine: &Engine) -> Vec<cell_core::model::Network> {
    let mut networks = engine.networks().unwrap();
    networks.retain(|n| n.name != crate::pools::PUBLIC_NETWORK);
    networks
}

fn open(
    dir: &Path,
    net: &Arc<FakeNetKernel>,
    runtime: &Arc<FakeRuntime>,
    ports: &Arc<crate::FakeHostPorts>,
    resolver: &Arc<RecordingResolver>,
) -> Arc<Engine> {
    Engine::open(
        EngineConfig {
            root: dir.join("root"),
            busybox: "/nonexistent/busybox".into(),
            log_limits: Default::default(),
            port_range: None,
            stack: Default::default(),
            pools: Default::default(),
        },
        Backends {
            net: net.clone(),
            runtime: runtime.clone(),
            clock: Arc::new(FixedClock::at(chrono::DateTime::UNIX_EPOCH)),
            ports: ports.clone(),
            resolver: resolver.clone(),
        },
    )
    .unwrap()
}

/// How many calls of `seam` `op` makes, measured on a world of its own.
fn calls_of(seam: FakeSeam, setup: impl Fn() -> World, op: impl Fn(&World)) -> usize {
    let world = setup();
    let before = world.net.calls(seam);
    op(&world);
    world.net.calls(seam) - before
}

#[test]
fn a_connect_that_fails_at_any_kernel_call_leaves_no_row_and_no_kernel_object() {
    for (net_type, driver) in [("bridge", "vnet"), ("bridge", "ipnet"), ("loopback", "ipnet")] {
        let setup = || {
            let world = World::new();
            world.network("front", net_type, "10.1.0.0/24");
            world.network("back", net_type, "10.2.0.0/24");
            world.running("web", driver, &["front"]);
            world
        };
        let connect = |world: &World| {
            world
                .engine
                .connect(
                    "back",
                    &ConnectRequest {
                        container: "web".into(),
                        ..ConnectRequest::default()
                    },
                )
                .map(|_| ())
        };
        let world = setup();
        let mut injected = 0;
        for seam in FakeSeam::ALL {
            let calls = calls_of(seam, setup, |w| connect(w).unwrap());
            for n in 1..=calls {
                let before = world.kernel();
                let endpoints = world.endpoint_count();
                world.net.fail_call(seam, n);
                let err = connect(&world).expect_err("the injected failure is reported");
                assert!(
                    err.to_string().contains("injected"),
                    "{net_type}/{driver} {seam:?} {n}: {err}"
                );
                assert_eq!(
                    world.endpoint_count(),
                    endpoints,
                    "{net_type}/{driver} {seam:?} call {n}: a row is left"
                );
                assert_eq!(
                    world.kernel(),
                    before,
                    "{net_type}/{driver} {seam:?} call {n}: kernel objects are left"
                );
                injected += 1;
            }
        }
        assert!(injected > 10, "{net_type}/{driver}: only {injected} calls tried");
        // Positive control: the same connect on the same world works.
        connect(&world).unwrap();
        assert_eq!(world.endpoint_count(), 2);
    }
}

#[test]
fn a_network_create_that_fails_half_way_leaves_nothing() {
    let create = |world: &World| {
        world
            .engine
            .create_network(&CreateNetwork {
                name: "front".into(),
                net_type: Some("bridge".into()),
                subnet: Some("10.1.0.0/24".into()),
                subnet6: Some("fd00:1::/64".into()),
                ..CreateNetwork::default()
            })
            .map(|_| ())
    };
    let world = World::new();
    for seam in [FakeSeam::HostLinks, FakeSeam::Firewall, FakeSeam::HostSysctl] {
        let calls = calls_of(seam, World::new, |w| create(w).unwrap());
        assert!(calls > 0, "{seam:?}");
        for n in 1..=calls {
            let before = world.kernel();
            world.net.fail_call(seam, n);
            let err = create(&world).expect_err("the injected failure is reported");
            assert!(err.to_string().contains("injected"), "{seam:?} {n}: {err}");
            assert!(
                user_networks(&world.engine).is_empty(),
                "{seam:?} {n}: a row is left"
            );
            assert_eq!(world.kernel().host_links, before.host_links, "{seam:?} {n}");
            assert_eq!(world.kernel().elements, before.elements, "{seam:?} {n}");
        }
    }
    create(&world).unwrap();
    assert!(world.net.links.link_names().contains(&"cell0".to_string()));
}

#[test]
fn network_rm_with_a_failing_endpoint_reports_it_and_removes_the_rest() {
    let world = World::new();
    let net = world.network("front", "bridge", "10.1.0.0/24");
    let names = ["a", "b", "c"];
    for name in names {
        world.running(name, "vnet", &["front"]);
    }
    // Each detach is one firewall batch: the second one fails.
    world.net.fail_call(FakeSeam::Firewall, 2);
    let err = world.engine.remove_network("front").unwrap_err();
    let failed = world.store().endpoints().unwrap();
    assert_eq!(failed.len(), 1, "the other endpoints are removed");
    assert!(err.to_string().contains(&failed[0].container_id), "{err}");
    // The detach went on past the failed batch: the veth is gone, the row
    // and the elements stay for the retry.
    assert!(!world.net.links.link_names().iter().any(|l| l.starts_with("cv")));
    assert!(
        world
            .net
            .elements()
            .iter()
            .any(|e| e.contains(&failed[0].ip_address.unwrap().to_string()))
    );
    // The network stays, marked: it takes no new container.
    assert_eq!(
        world.store().networks_being_removed().unwrap(),
        vec![net.id.clone()]
    );
    let refused = world.engine.connect(
        "front",
        &ConnectRequest {
            container: world.container("d", "vnet", &[]).id,
            ..ConnectRequest::default()
        },
    );
    assert!(refused.unwrap_err().to_string().contains("being removed"));
    // Again: now it goes, with its bridge and every element.
    world.engine.remove_network("front").unwrap();
    assert!(user_networks(&world.engine).is_empty());
    assert!(
        !world
            .net
            .links
            .link_names()
            .iter()
            .any(|l| l == "cell0" || l.starts_with("cv"))
    );
    assert!(
        world.net.elements().iter().all(|e| !e.contains("10.1.0.")),
        "{:?}",
        world.net.elements()
    );
}

#[test]
fn a_failed_start_is_undone_and_a_failed_undo_is_reported_with_it() {
    let world = World::new();
    world.network("front", "bridge", "10.1.0.0/24");
    let c = world.container("web", "vnet", &["front"]);
    let before = world.kernel();
    world.runtime.fail_next_spawn("no such file");
    let err = world.engine.start_container(&c.id).unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");
    assert_eq!(world.kernel(), before);
    assert!(
        world.store().running_execs().unwrap().is_empty(),
        "no exec row is left"
    );
    assert!(!world.engine.find_container("web").unwrap().running);

    // Now the teardown fails too: both are said.
    world.runtime.fail_next_spawn("no such file");
    let setup = || {
        let w = World::new();
        w.network("front", "bridge", "10.1.0.0/24");
        w.container("web", "vnet", &["front"]);
        w
    };
    let host_calls = calls_of(FakeSeam::HostLinks, setup, |w| {
        w.runtime.fail_next_spawn("x");
        let _ = w.engine.start_container("web");
    });
    // The last host call of a failed start is the veth's deletion.
    world.net.fail_call(FakeSeam::HostLinks, host_calls);
    let err = world.engine.start_container(&c.id).unwrap_err().to_string();
    assert!(
        err.contains("no such file") && err.contains("undoing it failed too") && err.contains("injected"),
        "{err}"
    );
}

#[test]
fn a_teardown_goes_on_past_errors_and_reports_them() {
    let world = World::new();
    world.network("front", "bridge", "10.1.0.0/24");
    world.network("back", "bridge", "10.2.0.0/24");
    let c = world.running("web", "vnet", &["front", "back"]);
    // The first detach's firewall batch fails; the second detach and the
    // namespace's removal still happen. (Called directly: after a stop,
    // the watcher and the stop race to record the exit, and the teardown's
    // errors go to whichever wins.)
    world.net.fail_call(FakeSeam::Firewall, 1);
    let err = world.engine.teardown_container_net(&c.id).unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    let veths: Vec<String> = world
        .net
        .links
        .link_names()
        .into_iter()
        .filter(|l| l.starts_with("cv"))
        .collect();
    assert!(veths.is_empty(), "{veths:?}");
    assert!(world.net.namespaces().is_empty());
    // The endpoint whose elements could not be removed keeps them, until a
    // teardown runs again (it is safe to): here, when the process ends.
    assert!(world.net.elements().iter().any(|e| e.contains("10.1.0.2")));
    assert!(world.net.elements().iter().all(|e| !e.contains("10.2.0.2")));
    world.runtime.exit(c.pid.unwrap(), 0);
    // The exit is recorded before its teardown runs, so the state to wait
    // for is the teardown's own: the elements gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while world.net.elements().iter().any(|e| e.contains("10.1.0.2")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the teardown after the exit never removed the endpoint's elements"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!world.engine.find_container("web").unwrap().running);
}

#[test]
fn stop_holds_no_lock_while_it_waits_for_the_process() {
    let world = World::new();
    world.network("front", "bridge", "10.1.0.0/24");
    world.network("back", "bridge", "10.2.0.0/24");
    world.runtime.ignore_term(true);
    let slow = world.running("slow", "vnet", &["front"]);
    world.runtime.ignore_term(false);
    world.running("other", "vnet", &["front"]);
    let engine = Arc::clone(&world.engine);
    let stop = std::thread::spawn(move || engine.stop_container("slow", Duration::from_secs(60)));
    // Wait until the SIGTERM is sent: the stop is now waiting.
    let init_pid = slow.pid.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !world.runtime.signals().contains(&(init_pid, libc::SIGTERM)) {
        assert!(std::time::Instant::now() < deadline, "no SIGTERM sent");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Everything else goes on, for others and for the container itself.
    let connect = |container: &str| ConnectRequest {
        container: container.into(),
        ..ConnectRequest::default()
    };
    world.engine.connect("back", &connect("other")).unwrap();
    world
        .engine
        .disconnect(
            "back",
            &DisconnectRequest {
                container: "other".into(),
            },
        )
        .unwrap();
    world.engine.connect("back", &connect("slow")).unwrap();
    world.engine.inspect_container("slow").unwrap();
    world.engine.containers(false).unwrap();
    world.network("third", "loopback", "10.3.0.0/24");
    world.engine.remove_network("third").unwrap();
    assert!(!stop.is_finished(), "the stop is still waiting for its process");
    world.runtime.exit(init_pid, 0);
    stop.join().unwrap().unwrap();
    let slow = world.engine.find_container("slow").unwrap();
    assert!(!slow.running);
    // Its two endpoints were torn down with it.
    assert!(world.net.namespaces().iter().all(|p| !p.ends_with(&slow.id)));
}

#[test]
fn reads_never_wait_for_the_writer() {
    let world = World::new();
    world.container("web", "host", &[]);
    let writer = world.engine.store();
    let engine = Arc::clone(&world.engine);
    let reader = std::thread::spawn(move || {
        engine.find_container("web").unwrap();
        engine.containers(true).unwrap().len()
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !reader.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "a read waited for the writer"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(writer);
    assert_eq!(reader.join().unwrap(), 1);
}

#[test]
fn a_process_started_before_its_pids_were_recorded_is_stopped_at_start() {
    let mut world = World::new();
    let c = world.container("web", "host", &[]);
    // celld died after recording the exec and spawning its supervisor, but
    // before it could record the pids.
    let exec = Exec {
        id: "e0000000000e".into(),
        container_id: c.id.clone(),
        cmd: vec!["sleep".into()],
        is_init: true,
        created: chrono::Utc::now(),
        exit_code: None,
    };
    world
        .store()
        .insert_exec(&ExecRecord {
            exec: exec.clone(),
            shim_pid: None,
            pid: None,
        })
        .unwrap();
    let dir = world.dir.path().join("root/execs").join(&exec.id);
    std::fs::create_dir_all(&dir).unwrap();
    let spec = crate::execs::process_spec(
        &c,
        &exec,
        &[],
        cell_runtime::spec::Target::Exec { init_pid: 1 },
        Default::default(),
    );
    let orphan = world.runtime.adopt(&dir, spec);
    world.restart();
    assert!(
        world
            .runtime
            .running()
            .iter()
            .all(|p| p.shim_pid != orphan.shim_pid)
    );
    assert!(world.runtime.signals().contains(&(orphan.pid, libc::SIGKILL)));
    assert!(world.store().running_execs().unwrap().is_empty());
    assert!(!world.engine.find_container("web").unwrap().running);
}

#[test]
fn removals_cut_short_by_a_crash_are_finished_at_start() {
    let mut world = World::new();
    let front = world.network("front", "bridge", "10.1.0.0/24");
    world.network("back", "bridge", "10.2.0.0/24");
    world.running("web", "vnet", &["back"]);
    let ep = world.store().endpoints().unwrap().remove(0);
    // A `network rm front` and a `disconnect back web` marked their intent,
    // then celld died before touching the kernel.
    world.store().mark_network_removing(&front.id, false).unwrap();
    world.store().mark_endpoint_detaching(&ep.id).unwrap();
    world.restart();
    let names: Vec<String> = world
        .engine
        .networks()
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, vec!["public", "back"]);
    assert!(!world.net.links.link_names().contains(&"cell0".to_string()));
    assert!(world.store().endpoints().unwrap().is_empty());
    assert!(!world.net.links.link_names().contains(ep.epair.as_ref().unwrap()));
    assert!(world.net.elements().iter().all(|e| !e.contains("10.2.0.2")));
    // The container still runs, on no network.
    assert!(world.engine.find_container("web").unwrap().running);
}

#[test]
fn a_network_recorded_before_a_crash_gets_its_kernel_objects_at_start() {
    let mut world = World::new();
    let net = world.network("front", "bridge", "10.1.0.0/24");
    // As if celld died after writing the row and before the kernel work:
    // the kernel of a rebooted machine has none of it.
    world.net.links.forget(&net.interface);
    assert!(!world.net.links.link_names().contains(&net.interface));
    world.restart();
    assert!(world.net.links.link_names().contains(&net.interface));
    world.running("web", "vnet", &["front"]);
}

#[test]
fn an_exit_is_announced_once_it_is_recorded() {
    let world = World::new();
    let c = world.running("web", "host", &[]);
    let init = world.store().running_init_exec(&c.id).unwrap().unwrap();
    // Still running: the wait ends at its deadline, saying so.
    assert!(
        !world
            .engine
            .wait_exit_recorded(&init.exec.id, Duration::from_millis(50))
            .unwrap()
    );
    let engine = Arc::clone(&world.engine);
    let id = init.exec.id.clone();
    let waiter = std::thread::spawn(move || engine.wait_exit_recorded(&id, Duration::from_secs(30)).unwrap());
    world.runtime.exit(c.pid.unwrap(), 3);
    assert!(waiter.join().unwrap());
    let c = world.engine.find_container("web").unwrap();
    assert_eq!((c.running, c.exit_code), (false, Some(3)));
}

#[test]
fn a_network_over_the_hosts_own_addresses_or_a_missing_nat_interface_is_refused() {
    let world = World::new();
    world
        .net
        .links
        .add_address("em0", "198.51.100.2/24".parse().unwrap())
        .unwrap();
    let before = world.kernel();
    let create = |subnet: &str, nat: Option<&str>| {
        world.engine.create_network(&CreateNetwork {
            name: "lan".into(),
            net_type: Some("bridge".into()),
            subnet: Some(subnet.into()),
            nat: nat.map(str::to_string),
            ..CreateNetwork::default()
        })
    };
    let err = create("198.51.100.0/24", None).unwrap_err().to_string();
    assert!(err.contains("198.51.100.2/24") && err.contains("em0"), "{err}");
    let err = create("198.51.0.0/16", None).unwrap_err().to_string();
    assert!(err.contains("em0"), "{err}");
    let err = create("10.9.0.0/24", Some("nosuch0")).unwrap_err().to_string();
    assert!(err.contains("'nosuch0'"), "{err}");
    assert!(user_networks(&world.engine).is_empty());
    assert_eq!(world.kernel(), before);
    // Positive control: a subnet beside the host's, NAT out of a real interface.
    create("10.9.0.0/24", Some("em0")).unwrap();
}

#[test]
fn marked_links_the_store_does_not_name_are_removed_at_start_and_others_stay() {
    let mut world = World::new();
    world.network("front", "bridge", "10.1.0.0/24");
    world.running("web", "vnet", &["front"]);
    let links = world.net.host().links;
    // A bridge and a veth end of cell's whose rows are gone, and a user's
    // link named like one of cell's, without the mark.
    links.create_bridge("cell7").unwrap();
    links
        .set_alias("cell7", &cell_net::driver::link_alias("0123456789ab"))
        .unwrap();
    links.create_veth_pair("cvfedcba987654", "peer0", None).unwrap();
    links
        .set_alias("cvfedcba987654", &cell_net::driver::link_alias("fedcba987654"))
        .unwrap();
    links.create_bridge("cell9").unwrap();
    world.restart();
    let names = world.net.links.link_names();
    assert!(!names.contains(&"cell7".to_string()), "{names:?}");
    assert!(!names.contains(&"cvfedcba987654".to_string()), "{names:?}");
    assert!(
        names.contains(&"cell9".to_string()),
        "a user's link stays: {names:?}"
    );
    // Positive control: cell's own links that the store names stay.
    assert!(names.contains(&"cell0".to_string()), "{names:?}");
    let ep = world.store().endpoints().unwrap().remove(0);
    assert!(names.contains(ep.epair.as_ref().unwrap()), "{names:?}");
}

#[test]
fn stdio_reaches_the_spec_of_a_start_and_of_an_exec_and_a_bare_window_is_refused() {
    use cell_runtime::spec::{Stdio, WindowSize};
    let world = World::new();
    let terminal = Stdio {
        stdin: true,
        tty: true,
        window: Some(WindowSize { rows: 30, cols: 100 }),
    };
    let c = world.container("tty", "host", &[]);
    world.engine.start_container_with_stdio(&c.id, terminal).unwrap();
    let sh = vec!["sh".to_string()];
    let piped = Stdio {
        stdin: true,
        ..Stdio::default()
    };
    world.engine.exec_with_stdio("tty", &sh, &[], piped).unwrap();
    world.engine.exec("tty", &sh, &[]).unwrap();
    let specs: Vec<Stdio> = world.runtime.processes().iter().map(|p| p.spec.stdio).collect();
    assert_eq!(specs, vec![terminal, piped, Stdio::default()]);

    let bare_window = Stdio {
        tty: false,
        ..terminal
    };
    let err = world
        .engine
        .exec_with_stdio("tty", &sh, &[], bare_window)
        .unwrap_err();
    assert!(err.to_string().contains("without a terminal"), "{err}");
    let err = world
        .engine
        .start_container_with_stdio("tty", bare_window)
        .unwrap_err();
    assert!(err.to_string().contains("without a terminal"), "{err}");
    assert_eq!(
        world.runtime.processes().len(),
        3,
        "a refused request started something"
    );
}

// Issue 8: published ports.

fn create_with_ports(
    world: &World,
    name: &str,
    driver: &str,
    networks: &[&str],
    ports: &[&str],
) -> crate::Result<Container> {
    world.engine.create_container(&CreateContainer {
        image: "img".into(),
        name: Some(name.into()),
        driver: Some(driver.into()),
        networks: networks.iter().map(|n| n.to_string()).collect(),
        ports: ports.iter().map(|p| p.to_string()).collect(),
        ..CreateContainer::default()
    })
}

fn port_elements(world: &World) -> Vec<String> {
    world
        .net
        .elements()
        .into_iter()
        .filter(|e| e.contains("\"ports4_") || e.contains("\"ports6_") || e.contains("\"addr_ports"))
        .collect()
}

/// The host's `lo` with 127.0.0.1, which the fake kernel lacks.
fn with_loopback(world: &World) {
    world.net.links.insert("lo", None);
    world
        .net
        .links
        .add_address("lo", "127.0.0.1/8".parse().unwrap())
        .unwrap();
}

fn ports_request(ports: &[&str]) -> crate::ports::PortsRequest {
    crate::ports::PortsRequest {
        ports: ports.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn published_ports_are_reserved_while_the_container_exists_and_forwarded_while_it_runs() {
    let world = World::new();
    with_loopback(&world);
    world.network("front", "bridge", "10.1.0.0/24");
    let web = create_with_ports(&world, "web", "vnet", &["front"], &["8080:80", ":53/udp"]).unwrap();
    // The automatic port comes from the range and is recorded.
    assert_eq!(web.public_ports[1].host_port, 40000);
    assert_eq!(
        world.store().ports_of_container(&web.id).unwrap(),
        web.public_ports
    );
    assert_eq!(world.ports.held(), ["40000/udp", "8080/tcp"]);
    assert!(port_elements(&world).is_empty(), "not forwarded before it runs");

    world.engine.start_container("web").unwrap();
    let forwarded = port_elements(&world);
    // Two elements (address, port) per forward, one forward per port.
    assert_eq!(forwarded.len(), 4, "{forwarded:#?}");
    assert!(
        forwarded
            .iter()
            .any(|e| e.contains("8080") && e.contains("10.1.0.2"))
    );
    let lines: Vec<String> = world
        .engine
        .container_ports("web")
        .unwrap()
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(
        lines,
        [
            "0.0.0.0 port 8080 -> 10.1.0.2 port 80/tcp",
            "0.0.0.0 port 40000 -> 10.1.0.2 port 53/udp"
        ]
    );

    // Live changes.
    let added = world
        .engine
        .publish_ports("web", &ports_request(&["127.0.0.1::81"]))
        .unwrap();
    assert_eq!(added[0].host_port, 40001);
    assert_eq!(port_elements(&world).len(), 6);
    let removed = world
        .engine
        .unpublish_ports("web", &ports_request(&["8080"]))
        .unwrap();
    assert_eq!(removed, vec!["8080:80".parse().unwrap()]);
    assert_eq!(port_elements(&world).len(), 4);
    assert!(!port_elements(&world).iter().any(|e| e.contains("8080")));
    assert_eq!(world.ports.held(), ["127.0.0.1:40001/tcp", "40000/udp"]);

    // Stop closes them, start restores them; rm frees everything.
    world.engine.stop_container("web", Duration::ZERO).unwrap();
    assert!(port_elements(&world).is_empty());
    assert_eq!(world.ports.held().len(), 2, "still reserved while stopped");
    world.engine.start_container("web").unwrap();
    assert_eq!(port_elements(&world).len(), 4);
    world.engine.remove_container("web", true).unwrap();
    assert!(port_elements(&world).is_empty());
    assert!(world.ports.held().is_empty());
    assert!(world.store().published_ports().unwrap().is_empty());
}

#[test]
fn published_ports_come_back_after_a_restart() {
    let mut world = World::new();
    world.network("front", "bridge", "10.1.0.0/24");
    create_with_ports(&world, "web", "ipnet", &["front"], &["8080:80"]).unwrap();
    world.engine.start_container("web").unwrap();
    create_with_ports(&world, "idle", "ipnet", &["front"], &["9090:90"]).unwrap();
    let before = port_elements(&world);
    world.restart();
    assert_eq!(
        port_elements(&world),
        before,
        "the maps are rebuilt for running containers only"
    );
    assert_eq!(world.ports.held(), ["8080/tcp", "9090/tcp"], "reserved again");
}

#[test]
fn a_host_port_is_refused_when_taken_and_nothing_is_created() {
    let world = World::new();
    with_loopback(&world);
    world.network("front", "bridge", "10.1.0.0/24");
    create_with_ports(&world, "web", "vnet", &["front"], &["8080:80"]).unwrap();
    world.ports.host_process_binds("2222");
    let refused = [
        (
            vec!["127.0.0.1:8080:81"],
            "host port 127.0.0.1:8080/tcp is already published by container 'web'",
        ),
        (
            vec!["2222:22"],
            "host port 2222/tcp is in use by a process of the host",
        ),
        (
            vec!["192.0.2.9:80"],
            "cannot publish on 192.0.2.9: it is not an address of this host",
        ),
        (
            vec!["[fd00::1]:80"],
            "none of its networks gives it an IPv6 address",
        ),
        (vec!["7000:70", "7000:71"], "host port 7000/tcp is given twice"),
        (vec!["70000"], "invalid port spec '70000'"),
    ];
    for (ports, message) in refused {
        let err = create_with_ports(&world, "db", "vnet", &["front"], &ports).unwrap_err();
        assert!(err.to_string().contains(message), "{ports:?}: {err}");
        assert!(
            world.engine.find_container("db").is_err(),
            "{ports:?}: a row is left"
        );
        assert_eq!(world.ports.held(), ["8080/tcp"], "{ports:?}");
    }
    // The same request on a free port works (positive control).
    create_with_ports(&world, "db", "vnet", &["front"], &["8081:80/tcp", "8080:80/udp"]).unwrap();
}

#[test]
fn publishing_is_refused_where_no_network_can_take_it() {
    let world = World::new();
    world.network("front", "bridge", "10.1.0.0/24");
    world
        .engine
        .create_network(&CreateNetwork {
            name: "lan".into(),
            net_type: Some("custom".into()),
            interface: Some("em0".into()),
            subnet: Some("192.168.7.0/24".into()),
            ..CreateNetwork::default()
        })
        .map(|_| ())
        .or_else(|_| {
            world.net.links.insert("em0", None);
            world
                .engine
                .create_network(&CreateNetwork {
                    name: "lan".into(),
                    net_type: Some("custom".into()),
                    interface: Some("em0".into()),
                    subnet: Some("192.168.7.0/24".into()),
                    ..CreateNetwork::default()
                })
                .map(|_| ())
        })
        .unwrap();
    world
        .engine
        .create_network(&CreateNetwork {
            name: "inner".into(),
            net_type: Some("bridge".into()),
            subnet: Some("10.9.0.0/24".into()),
            internal: true,
            ..CreateNetwork::default()
        })
        .unwrap();
    for (driver, networks, message) in [
        (
            "host",
            vec![],
            "cannot publish ports of a container using the 'host' network driver",
        ),
        (
            "disabled",
            vec![],
            "cannot publish ports of a container using the 'disabled' network driver",
        ),
        (
            "ipnet",
            vec!["lan"],
            "its only networks are custom (macvlan) networks",
        ),
        ("vnet", vec!["inner"], "network 'inner' is internal"),
        ("ipnet", vec![], "it is on no network"),
        (
            "vnet",
            vec!["front"],
            "none of its networks gives it an IPv6 address",
        ),
    ] {
        let ports: &[&str] = if message.contains("IPv6") {
            &["[::1]:80"]
        } else {
            &["80"]
        };
        let err = create_with_ports(&world, "web", driver, &networks, ports).unwrap_err();
        assert!(err.to_string().contains(message), "{driver} {networks:?}: {err}");
        assert!(world.engine.find_container("web").is_err());
    }
    // A custom network beside a bridge one: the bridge one takes the ports.
    let both = create_with_ports(&world, "web", "ipnet", &["lan", "front"], &["80"]).unwrap();
    assert_eq!(both.public_ports.len(), 1);
    // port add is checked alike.
    world.container("plain", "ipnet", &["lan"]);
    let err = world
        .engine
        .publish_ports("plain", &ports_request(&["81"]))
        .unwrap_err();
    assert!(err.to_string().contains("custom (macvlan)"), "{err}");
    let err = world
        .engine
        .unpublish_ports("web", &ports_request(&["81"]))
        .unwrap_err();
    assert_eq!(err.to_string(), "container 'web' does not publish '81'");
}

#[test]
fn concurrent_automatic_ports_are_all_distinct() {
    let world = Arc::new(World::new());
    world.network("front", "bridge", "10.1.0.0/24");
    world.ports.host_process_binds("40003");
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let world = world.clone();
            std::thread::spawn(move || {
                create_with_ports(&world, &format!("c{i}"), "ipnet", &["front"], &[":80", ":80/udp"])
                    .unwrap()
                    .public_ports
            })
        })
        .collect();
    let mut tcp: Vec<u16> = Vec::new();
    for t in threads {
        for p in t.join().unwrap() {
            if p.protocol == cell_core::port::Protocol::Tcp {
                tcp.push(p.host_port);
            }
        }
    }
    tcp.sort();
    let mut distinct = tcp.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 8, "{tcp:?}");
    assert!(
        !tcp.contains(&40003),
        "a port a host process holds is skipped: {tcp:?}"
    );
    assert!(tcp.iter().all(|p| (40000..=40099).contains(p)));
}

#[test]
fn a_start_with_ports_that_fails_at_any_kernel_call_leaves_no_element() {
    let setup = || {
        let world = World::new();
        world.network("front", "bridge", "10.1.0.0/24");
        create_with_ports(&world, "web", "vnet", &["front"], &["8080:80"]).unwrap();
        world
    };
    let start = |world: &World| world.engine.start_container("web").map(|_| ());
    let world = setup();
    for seam in FakeSeam::ALL {
        let calls = calls_of(seam, setup, |w| start(w).unwrap());
        for n in 1..=calls {
            let before = world.kernel();
            world.net.fail_call(seam, n);
            if start(&world).is_ok() {
                // A seam a start does not reach on this world; undo it.
                world.engine.stop_container("web", Duration::ZERO).unwrap();
                continue;
            }
            assert_eq!(
                world.kernel(),
                before,
                "{seam:?} call {n}: kernel objects are left"
            );
            assert_eq!(world.ports.held(), ["8080/tcp"], "the reservation stays");
        }
    }
    start(&world).unwrap();
    assert_eq!(port_elements(&world).len(), 2);
}

/// What the resolver holds now: per container name, its networks and
/// whether its own queries are served.
fn published_names(world: &World) -> Vec<(String, Vec<String>, bool)> {
    world
        .resolver
        .published()
        .into_values()
        .map(|n| {
            let networks = n.endpoints.iter().map(|e| e.network.clone()).collect();
            (n.name, networks, n.netns.is_some())
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn names_follow_containers_through_start_connect_disconnect_stop_restart_and_rm() {
    let mut world = World::new();
    world.network("front", "bridge", "10.1.0.0/24");
    world.network("back", "loopback", "10.2.0.0/24");
    let web = world.running("web", "ipnet", &["front"]);
    world.running("db", "ipnet", &["back"]);
    world.running("local", "host", &[]);
    world.container("idle", "ipnet", &["front"]);
    let names = |n: &str, nets: &[&str]| (n.to_string(), nets.iter().map(|s| s.to_string()).collect(), true);
    // Running containers on networks only; the host-driver one has no
    // address to give, the created one does not run.
    assert_eq!(
        published_names(&world),
        vec![names("db", &["back"]), names("web", &["front"])]
    );
    // A container of another DNS mode is named, but not served.
    let own = create(
        &world,
        CreateContainer {
            name: Some("own".into()),
            driver: Some("ipnet".into()),
            networks: vec!["front".into()],
            dns: Some(cell_core::model::Dns::Inherit),
            ..CreateContainer::default()
        },
    )
    .unwrap();
    world.engine.start_container(&own.id).unwrap();
    let published = world.resolver.published();
    assert_eq!(published[&own.id].netns, None);
    world.engine.remove_container("own", true).unwrap();
    let web_names = &published[&web.id];
    assert_eq!(
        web_names.netns,
        Some(world.dir.path().join("root/netns").join(&web.id))
    );
    assert_eq!(web_names.endpoints[0].ipv4, Some("10.1.0.2".parse().unwrap()));

    let connect = |c: &str| ConnectRequest {
        container: c.into(),
        ..ConnectRequest::default()
    };
    world.engine.connect("back", &connect("web")).unwrap();
    assert!(published_names(&world).contains(&names("web", &["front", "back"])));
    world
        .engine
        .disconnect(
            "front",
            &DisconnectRequest {
                container: "web".into(),
            },
        )
        .unwrap();
    assert!(published_names(&world).contains(&names("web", &["back"])));
    // A stopped container's connect publishes nothing; its start does.
    world.engine.connect("back", &connect("idle")).unwrap();
    assert!(!published_names(&world).iter().any(|(n, _, _)| n == "idle"));

    world.engine.stop_container("db", Duration::from_secs(1)).unwrap();
    assert_eq!(published_names(&world), vec![names("web", &["back"])]);
    // Leaving its last network withdraws it.
    world.engine.remove_network("back").unwrap();
    assert!(
        published_names(&world).is_empty(),
        "{:?}",
        published_names(&world)
    );

    // celld's next start publishes every running container again.
    world.engine.connect("front", &connect("web")).unwrap();
    let before = published_names(&world);
    crate::Resolver::withdraw(&*world.resolver, &web.id);
    world.restart();
    assert_eq!(published_names(&world), before);

    world.engine.remove_container("web", true).unwrap();
    assert!(published_names(&world).is_empty());
}

#[test]
fn a_failed_start_withdraws_the_names_it_published() {
    let world = World::new();
    world.network("front", "bridge", "10.1.0.0/24");
    let c = world.container("web", "vnet", &["front"]);
    world.runtime.fail_next_spawn("no such file");
    world.engine.start_container(&c.id).unwrap_err();
    assert!(world.resolver.published().is_empty());
    assert!(matches!(
        world.resolver.calls().as_slice(),
        [crate::ResolverCall::Publish(_), crate::ResolverCall::Withdraw(id)] if *id == c.id
    ));
}

fn create(world: &World, req: CreateContainer) -> crate::Result<Container> {
    world.engine.create_container(&CreateContainer {
        image: "img".into(),
        ..req
    })
}

#[test]
fn a_stack_decides_the_addresses_the_sysctls_and_the_socket_filter() {
    use cell_core::model::Stack;
    use cell_runtime::seccomp::SocketFamily;
    let world = World::new();
    world
        .engine
        .create_network(&CreateNetwork {
            name: "dual".into(),
            net_type: Some("bridge".into()),
            subnet: Some("10.70.0.0/24".into()),
            subnet6: Some("fd70::/64".into()),
            ..CreateNetwork::default()
        })
        .unwrap();
    let with_stack = |name: &str, driver: &str, networks: &[&str], stack: &str| {
        let c = create(
            &world,
            CreateContainer {
                name: Some(name.into()),
                driver: Some(driver.into()),
                networks: networks.iter().map(|n| n.to_string()).collect(),
                stack: Some(stack.into()),
                ..CreateContainer::default()
            },
        )
        .unwrap();
        world.engine.start_container(&c.id).unwrap();
        c
    };
    let v4 = with_stack("v4", "vnet", &["dual"], "ipv4");
    let v6 = with_stack("v6", "vnet", &["dual"], "ipv6");
    assert_eq!(v4.stack, Stack::Ipv4);
    let endpoint = |c: &Container| world.store().endpoints_of_container(&c.id).unwrap().remove(0);
    assert!(endpoint(&v4).ip_address.is_some() && endpoint(&v4).ip_address6.is_none());
    assert!(endpoint(&v6).ip_address.is_none() && endpoint(&v6).ip_address6.is_some());
    let sysctls = |c: &Container| {
        let path = world.dir.path().join("root/netns").join(&c.id);
        world.net.netns(&path).unwrap().sysctl.writes()
    };
    let off = |scope: &str| (format!("net/ipv6/conf/{scope}/disable_ipv6"), "1".to_string());
    assert!(sysctls(&v4).contains(&off("all")) && sysctls(&v4).contains(&off("default")));
    assert!(!sysctls(&v6).contains(&off("all")));

    // The socket filter is for the host's stack only.
    with_stack("h4", "host", &[], "ipv4");
    with_stack("h6", "host", &[], "ipv6");
    with_stack("hd", "host", &[], "dual");
    let refused: Vec<Option<SocketFamily>> = world
        .runtime
        .processes()
        .iter()
        .map(|p| p.spec.refused_socket_family)
        .collect();
    assert_eq!(
        refused,
        vec![
            None,
            None,
            Some(SocketFamily::Inet6),
            Some(SocketFamily::Inet),
            None
        ]
    );
    world.engine.exec("h4", &["true".to_string()], &[]).unwrap();
    let last = world
        .runtime
        .processes()
        .last()
        .unwrap()
        .spec
        .refused_socket_family;
    assert_eq!(last, Some(SocketFamily::Inet6), "an exec is filtered as its init");
}

#[test]
fn a_dns_container_is_started_before_its_client_and_a_failed_one_stops_the_start() {
    use cell_core::model::Dns;
    let world = World::new();
    world.network("net", "bridge", "10.71.0.0/24");
    let ns = world.container("ns", "ipnet", &["net"]);
    let client = create(
        &world,
        CreateContainer {
            name: Some("client".into()),
            networks: vec!["net".into()],
            dns: Some(Dns::Container {
                container: "ns".into(),
            }),
            ..CreateContainer::default()
        },
    )
    .unwrap();
    assert_eq!(
        client.dns,
        Dns::Container {
            container: ns.id.clone()
        }
    );
    world.engine.start_container(&client.id).unwrap();
    let order: Vec<String> = world
        .runtime
        .processes()
        .iter()
        .map(|p| p.spec.container_id.clone())
        .collect();
    assert_eq!(order, vec![ns.id.clone(), client.id.clone()]);
    let ns_address = world.store().endpoints_of_container(&ns.id).unwrap()[0]
        .ip_address
        .unwrap();
    let files = match &world.runtime.processes()[1].spec.target {
        cell_runtime::spec::Target::Init { files, .. } => files.clone(),
        other => panic!("not an init: {other:?}"),
    };
    assert!(files.contains(&("/etc/resolv.conf".into(), format!("nameserver {ns_address}\n"))));

    // A DNS container that fails to start fails its client's start, which
    // then leaves no namespace behind.
    world.engine.stop_container("client", Duration::ZERO).unwrap();
    world.engine.stop_container("ns", Duration::ZERO).unwrap();
    world.runtime.fail_next_spawn("no such binary");
    let err = world.engine.start_container("client").unwrap_err();
    assert!(
        err.to_string()
            .contains("failed to start 'ns', the dns container of 'client'"),
        "{err}"
    );
    assert!(world.net.namespaces().is_empty(), "{:?}", world.net.namespaces());
    assert!(!world.engine.find_container("client").unwrap().running);
}

#[test]
fn public_exists_from_the_start_and_gets_its_bridge_at_its_first_join() {
    let mut world = World::new();
    let public = world.engine.find_network("public").unwrap();
    assert_eq!(public.subnet, Some("10.192.0.0/24".parse().unwrap()));
    assert_eq!(public.gateway, Some("10.192.0.1".parse().unwrap()));
    assert_eq!(public.interface, "cellpub");
    // No bridge until a container joins; a stopped one does not count.
    let has_bridge = |w: &World| w.net.links.link_names().contains(&"cellpub".to_string());
    assert!(!has_bridge(&world));
    world.container("idle", "vnet", &["public"]);
    world.restart();
    assert!(!has_bridge(&world));
    // The positive control: the first running container brings it up.
    let web = world.running("web", "vnet", &["public"]);
    assert!(has_bridge(&world));
    let ep = world.store().endpoints_of_container(&web.id).unwrap();
    assert_eq!(ep[0].ip_address, Some("10.192.0.3".parse().unwrap()));
    // It stays while celld runs, and a restart keeps it for the running one.
    world.engine.stop_container(&web.id, Duration::ZERO).unwrap();
    assert!(has_bridge(&world));
    world.engine.start_container(&web.id).unwrap();
    world.restart();
    assert!(has_bridge(&world));
    // With no running container on it, a restart removes it.
    world.engine.stop_container(&web.id, Duration::ZERO).unwrap();
    world.restart();
    assert!(!has_bridge(&world));
    // rm refuses it, prune leaves it; the same id across restarts.
    let err = world.engine.remove_network("public").unwrap_err();
    assert_eq!(
        err.to_string(),
        "network 'public' is celld's predefined network and cannot be removed"
    );
    world.engine.prune_networks().unwrap();
    assert_eq!(world.engine.find_network("public").unwrap().id, public.id);
}

#[test]
fn networks_without_a_subnet_are_carved_from_the_pool() {
    let world = World::new();
    let create = |name: &str, size: Option<u32>, subnet6: Option<&str>| {
        world.engine.create_network(&CreateNetwork {
            name: name.into(),
            net_type: Some("bridge".into()),
            size,
            subnet6: subnet6.map(str::to_string),
            ..CreateNetwork::default()
        })
    };
    // public holds 10.192.0.0/24.
    let a = create("a", None, None).unwrap();
    assert_eq!(a.subnet, Some("10.192.1.0/24".parse().unwrap()));
    let small = create("small", Some(4), Some("auto")).unwrap();
    assert_eq!(small.subnet, Some("10.192.2.0/29".parse().unwrap()));
    assert_eq!(small.gateway, Some("10.192.2.1".parse().unwrap()));
    let pool6 = world.engine.pools().pool6;
    let subnet6 = small.subnet6.unwrap();
    assert!(
        pool6.contains(&subnet6) && subnet6.prefix_len() == 64,
        "{subnet6}"
    );
    let next = create("next", Some(4), None).unwrap();
    assert_eq!(next.subnet, Some("10.192.2.8/29".parse().unwrap()));
    // A subnet of one's own may not overlap the pool; beside it, it may.
    let err = world
        .engine
        .create_network(&CreateNetwork {
            name: "mine".into(),
            subnet: Some("10.200.0.0/24".into()),
            ..CreateNetwork::default()
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("subnet 10.200.0.0/24 of network 'mine' overlaps celld's pool 10.192.0.0/10"),
        "{err}"
    );
    world.network("mine", "bridge", "10.3.0.0/24");
    // Too large for the pool: refused, nothing made.
    let err = create("huge", Some(5_000_000), None).unwrap_err();
    assert!(
        err.to_string().contains("larger than celld's pool 10.192.0.0/10"),
        "{err}"
    );
    assert!(world.engine.find_network("huge").is_err());
}
