//! Faults, churn and locks (issue 7, items 4, 7 and 8), end to end.
//!
//! - A pending `stop -t 30` of one container, with a `network connect` of
//!   that same container queued behind it, holds up no operation on any
//!   other container or network.
//! - A storm of runs, connects, disconnects, removals and network creates
//!   and removals, with celld killed by SIGKILL at random moments and
//!   restarted, ends with store and kernel in agreement.
//! - Cycles of run/rm and connect/disconnect leave the kernel and celld's
//!   fds and threads where they started; celld's memory is printed.
//!
//! Counts come from the environment so that `scripts/soak.sh` can run the
//! full ones: `CELL_STORM_KILLS` (default 5), `CELL_CHURN_RUNS` (100),
//! `CELL_CHURN_CONNECTS` (50); `CELL_STORM_SEED` replays a storm's choices
//! (its timing, and so its outcome, still varies).

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A count from the environment, or `default`.
fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

/// `cell -H unix://SOCKET ARGS...`, not started yet.
fn cell_command(socket: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(CELL);
    cmd.arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A `cell` command running in the background.
struct Pending {
    line: String,
    child: Child,
    started: Instant,
}

/// How a [`Pending`] command ended, or that it did not in time.
struct Finished {
    line: String,
    elapsed: Duration,
    /// `None` when it was killed at its deadline.
    output: Option<Output>,
}

impl Finished {
    fn succeeded(&self) -> bool {
        self.output.as_ref().is_some_and(|o| o.status.success())
    }

    fn describe(&self) -> String {
        match &self.output {
            Some(out) => describe(out),
            None => format!("still running after {:.1} s: killed", self.elapsed.as_secs_f64()),
        }
    }
}

impl Pending {
    /// Starts `cell LINE` (split at spaces).
    fn start(socket: &Path, line: &str) -> Self {
        let args: Vec<&str> = line.split_whitespace().collect();
        Self::start_args(socket, &args)
    }

    fn start_args(socket: &Path, args: &[&str]) -> Self {
        Self {
            line: args.join(" "),
            child: cell_command(socket, args).spawn().expect("spawn cell"),
            started: Instant::now(),
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for the command to end; kills it if it runs longer than
    /// `deadline` from its start.
    fn finish_within(mut self, deadline: Duration) -> Finished {
        loop {
            if self.child.try_wait().expect("try_wait").is_some() {
                let output = self.child.wait_with_output().expect("output");
                return Finished {
                    line: self.line,
                    elapsed: self.started.elapsed(),
                    output: Some(output),
                };
            }
            if self.started.elapsed() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Finished {
                    line: self.line,
                    elapsed: self.started.elapsed(),
                    output: None,
                };
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Polls `ready` every 20 ms until it holds; panics after `timeout`.
fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `cell LINE` (split at spaces), asserted to succeed; its stdout.
fn ok(sb: &Sandbox, line: &str) -> String {
    sb.ok(&line.split_whitespace().collect::<Vec<_>>())
}

/// Whether process `pid` holds a connected unix socket: for a `cell`
/// client, that its connect to celld's socket went through, so its request
/// is on its way or in. (Its own netns's /proc/net/unix lists its end.)
fn holds_connected_socket(pid: u32) -> bool {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/unix")).unwrap_or_default();
    table.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() >= 7 && f[5] == "03" && inodes.iter().any(|i| i == f[6])
    })
}

/// The networks a container's inspect shows endpoints on (network ids).
fn network_ids_of(sb: &Sandbox, container: &str) -> Vec<String> {
    sb.inspect(container)["container_endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["network_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn network_id(sb: &Sandbox, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&sb.ok(&["network", "inspect", name])).unwrap();
    v["network"]["id"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------
// Item 4: locks that never wait on the wrong thing.
// ---------------------------------------------------------------------------

/// How long an operation on other containers may take while the stop is
/// pending: far above its usual speed (milliseconds), far below the stop's
/// 30 s.
const OTHERS_DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn a_pending_stop_holds_up_no_operation_on_other_containers() {
    require_root!();
    let sb = Sandbox::new();
    sb.add_default_uplink();
    ok(&sb, "network create -t bridge --subnet 10.31.0.0/24 first");
    ok(&sb, "network create -t bridge --subnet 10.32.0.0/24 second");
    ok(&sb, "network create -t loopback --subnet 10.33.0.0/24 doomed");
    // An init that ignores SIGTERM, so the stop waits its whole timeout,
    // and leaves a mark when the SIGTERM came (the trap runs after the
    // current `sleep 1`).
    sb.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "-n",
        "first",
        "busybox",
        "sh",
        "-c",
        "trap 'touch /tmp/got-term' TERM; while :; do sleep 1; done",
    ]);
    ok(&sb, "run -d --name leaving -n first busybox sleep 1000000");
    ok(&sb, "run -d --name joining -n first busybox sleep 1000000");
    ok(&sb, "run -d --name evicted -n doomed busybox sleep 1000000");
    let init = sb.inspect("stubborn")["container"]["pid"].as_i64().unwrap();

    let mut stop = Pending::start(&sb.socket, "stop -t 30 stubborn");
    wait_until(
        "celld to send stubborn's init its SIGTERM",
        Duration::from_secs(20),
        || {
            sb.sh(&format!("test -e /proc/{init}/root/tmp/got-term"))
                .status
                .success()
        },
    );
    assert!(stop.is_running(), "the stop ended before its timeout");
    let mut queued_connect = Pending::start(&sb.socket, "network connect second stubborn");
    // Its request is in celld once its connection is (or it has ended, if
    // a future celld answers it without waiting for the stop).
    let connect_client = queued_connect.child.id();
    wait_until(
        "the connect of stubborn to reach celld",
        Duration::from_secs(10),
        || holds_connected_socket(connect_client) || !queued_connect.is_running(),
    );
    eprintln!(
        "stop pending after {:.2} s; connect of the same container {}",
        stop.started.elapsed().as_secs_f64(),
        if queued_connect.is_running() {
            "waiting"
        } else {
            "already done"
        }
    );

    // All at once, so that each one's wait shows even if the ones before it
    // waited too; each is timed from its own start.
    let lines = [
        "network connect second joining",
        "network disconnect first leaving",
        "network create -t bridge --subnet 10.34.0.0/24 fresh",
        "network rm doomed",
        "lsc",
        "inspect leaving",
        "network ls",
    ];
    let mut others: Vec<(Pending, Option<(Duration, bool)>)> = lines
        .iter()
        .map(|line| (Pending::start(&sb.socket, line), None))
        .collect();
    wait_until(
        "the operations on other containers",
        Duration::from_secs(90),
        || {
            let ended: Vec<usize> = (0..others.len())
                .filter(|i| others[*i].1.is_none() && !others[*i].0.is_running())
                .collect();
            // Looked at after the operations, so "pending" is never claimed
            // for a stop that ended before them.
            let stop_pending = stop.is_running();
            for i in ended {
                others[i].1 = Some((others[i].0.started.elapsed(), stop_pending));
            }
            others.iter().all(|(_, end)| end.is_some())
        },
    );
    let mut problems = Vec::new();
    for (pending, end) in others {
        let (took, stop_pending) = end.unwrap();
        let line = pending.line.clone();
        let finished = pending.finish_within(Duration::from_secs(1));
        eprintln!(
            "while the stop is pending: `cell {line}` took {:.3} s{}",
            took.as_secs_f64(),
            if stop_pending {
                ""
            } else {
                " (ended after the stop)"
            }
        );
        if !finished.succeeded() {
            problems.push(format!("`cell {line}` failed: {}", finished.describe()));
        } else if !stop_pending || took > OTHERS_DEADLINE {
            problems.push(format!(
                "`cell {line}` took {:.1} s{}",
                took.as_secs_f64(),
                if stop_pending {
                    ""
                } else {
                    ", ending only after the stop"
                }
            ));
        }
    }

    // Positive control: the stop really was pending all along: it ends,
    // by SIGKILL after its timeout, and the connect queued behind it then
    // goes through.
    let stop = stop.finish_within(Duration::from_secs(90));
    assert!(stop.succeeded(), "stop: {}", stop.describe());
    eprintln!("the stop took {:.1} s", stop.elapsed.as_secs_f64());
    let stubborn = sb.inspect("stubborn");
    assert_eq!(stubborn["container"]["running"], false, "{stubborn}");
    assert_eq!(
        stubborn["container"]["exit_code"], 137,
        "not killed after the timeout: {stubborn}"
    );
    let connect = queued_connect.finish_within(Duration::from_secs(30));
    assert!(connect.succeeded(), "connect of stubborn: {}", connect.describe());
    assert!(network_ids_of(&sb, "stubborn").contains(&network_id(&sb, "second")));

    assert!(
        problems.is_empty(),
        "operations on other containers waited for the stop of stubborn:\n{}",
        problems.join("\n")
    );

    // And the others' operations did what they say.
    assert!(network_ids_of(&sb, "joining").contains(&network_id(&sb, "second")));
    assert!(!network_ids_of(&sb, "leaving").contains(&network_id(&sb, "first")));
    network_id(&sb, "fresh");
    sb.fails(&["network", "inspect", "doomed"], "doomed");
    assert!(network_ids_of(&sb, "evicted").is_empty());
}

// ---------------------------------------------------------------------------
// Item 7: a storm of changes with celld killed at random moments.
// ---------------------------------------------------------------------------

/// A small xorshift generator: the storm needs varied choices, not good
/// randomness, and no crate for it.
struct Dice(u64);

impl Dice {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

/// The networks every storm client uses; they are never removed.
const STORM_BRIDGE: &str = "stormbr";
const STORM_LOOPBACK: &str = "stormlo";
/// How long one storm command may take before it counts as hung.
const STORM_COMMAND_DEADLINE: Duration = Duration::from_secs(60);
/// Above this many containers, clients remove rather than run.
const STORM_MAX_CONTAINERS: usize = 20;

/// What the storm's clients share.
struct Storm {
    socket: PathBuf,
    is_over: AtomicBool,
    /// Commands started so far, by all clients.
    started: AtomicUsize,
    /// Names of containers that may exist.
    containers: Mutex<Vec<String>>,
    /// `verb -> (succeeded, failed)`.
    outcomes: Mutex<BTreeMap<&'static str, (usize, usize)>>,
    /// A few of each verb's error messages, for the log.
    failures: Mutex<BTreeMap<&'static str, Vec<String>>>,
    /// Commands that did not end within their deadline.
    hung: Mutex<Vec<String>>,
}

impl Storm {
    fn run(&self, verb: &'static str, args: &[&str]) {
        self.started.fetch_add(1, Ordering::SeqCst);
        let finished = Pending::start_args(&self.socket, args).finish_within(STORM_COMMAND_DEADLINE);
        // Forget containers celld does not know (a run that never made its
        // row), so that later choices hit ones that exist.
        if let Some(out) = &finished.output {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if let Some(gone) = stderr.trim().strip_prefix("no such container: ") {
                self.containers.lock().unwrap().retain(|c| c != gone);
            }
        }
        if finished.output.is_none() {
            self.hung.lock().unwrap().push(finished.line.clone());
        }
        if let Some(out) = finished.output.as_ref().filter(|o| !o.status.success()) {
            let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let mut failures = self.failures.lock().unwrap();
            let seen = failures.entry(verb).or_default();
            if seen.len() < 4 && !seen.contains(&message) {
                seen.push(message);
            }
        }
        let mut outcomes = self.outcomes.lock().unwrap();
        let entry = outcomes.entry(verb).or_default();
        if finished.succeeded() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }

    /// One client: random operations until the storm is over.
    fn client(&self, number: usize, seed: u64) {
        let mut dice = Dice::new(seed ^ (number as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut own_networks: Vec<String> = Vec::new();
        let mut serial = 0usize;
        while !self.is_over.load(Ordering::SeqCst) {
            serial += 1;
            let mut networks = vec![STORM_BRIDGE.to_string(), STORM_LOOPBACK.to_string()];
            networks.extend(own_networks.iter().cloned());
            let network = dice.pick(&networks).unwrap().clone();
            let container = dice.pick(&self.containers.lock().unwrap()).cloned();
            let crowded = self.containers.lock().unwrap().len() > STORM_MAX_CONTAINERS;
            let roll = if crowded {
                30 + dice.below(70)
            } else {
                dice.below(100)
            };
            match (roll, container) {
                (0..30, _) => {
                    let name = format!("c{number}-{serial}");
                    self.containers.lock().unwrap().push(name.clone());
                    let vnet = network == STORM_BRIDGE && dice.below(2) == 0;
                    let mut args = vec!["run", "-d", "--name", &name, "-n", &network];
                    if vnet {
                        args.extend(["-l", "vnet"]);
                    }
                    args.extend(["busybox", "sleep", "1000000"]);
                    self.run("run -d", &args);
                }
                (30..50, Some(name)) => {
                    self.containers.lock().unwrap().retain(|c| *c != name);
                    self.run("rm -f", &["rm", "-f", &name]);
                }
                (50..68, Some(name)) => {
                    self.run("network connect", &["network", "connect", &network, &name]);
                }
                (68..83, Some(name)) => {
                    self.run("network disconnect", &["network", "disconnect", &network, &name]);
                }
                (83..91, _) => {
                    let name = format!("n{number}-{serial}");
                    let subnet = format!("10.{}.{}.0/24", 100 + number, serial % 250);
                    let kind = if dice.below(2) == 0 { "bridge" } else { "loopback" };
                    own_networks.push(name.clone());
                    self.run(
                        "network create",
                        &["network", "create", "-t", kind, "--subnet", &subnet, &name],
                    );
                }
                (91.., _) => {
                    if let Some(name) = dice.pick(&own_networks).cloned() {
                        own_networks.retain(|n| *n != name);
                        self.run("network rm", &["network", "rm", &name]);
                    }
                }
                _ => {}
            }
        }
    }

    /// Waits until `more` further commands have started.
    fn wait_for_commands(&self, more: usize) {
        let target = self.started.load(Ordering::SeqCst) + more;
        wait_until("storm commands", Duration::from_secs(300), || {
            self.started.load(Ordering::SeqCst) >= target
        });
    }
}

#[test]
fn storm_with_celld_killed_at_random_moments_leaves_store_and_kernel_in_agreement() {
    require_root!();
    let kills = env_count("CELL_STORM_KILLS", 5);
    let seed = match std::env::var("CELL_STORM_SEED") {
        Ok(v) => v.parse().expect("CELL_STORM_SEED must be a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    eprintln!("storm: {kills} kills, CELL_STORM_SEED={seed}");
    let mut sb = Sandbox::new();
    sb.add_default_uplink();
    ok(
        &sb,
        &format!("network create -t bridge --subnet 10.50.0.0/16 {STORM_BRIDGE}"),
    );
    ok(
        &sb,
        &format!("network create -t loopback --subnet 10.60.0.0/16 {STORM_LOOPBACK}"),
    );
    ok(&sb, "image create busybox");

    let storm = Storm {
        socket: sb.socket.clone(),
        is_over: AtomicBool::new(false),
        started: AtomicUsize::new(0),
        containers: Mutex::new(Vec::new()),
        outcomes: Mutex::new(BTreeMap::new()),
        failures: Mutex::new(BTreeMap::new()),
        hung: Mutex::new(Vec::new()),
    };
    let mut dice = Dice::new(seed);
    let storm_started = Instant::now();
    std::thread::scope(|scope| {
        for number in 0..3 {
            let storm = &storm;
            scope.spawn(move || storm.client(number, seed));
        }
        for kill in 1..=kills {
            // Aim at commands in flight: some more started (enough that
            // most of them meet a daemon that is up), then a moment of up
            // to 80 ms (a run's row and its processes are made within
            // that).
            storm.wait_for_commands(20 + dice.below(60));
            std::thread::sleep(Duration::from_millis(dice.below(80) as u64));
            sb.kill_celld(libc::SIGKILL);
            eprintln!(
                "kill {kill}/{kills} after {:.1} s, {} commands started",
                storm_started.elapsed().as_secs_f64(),
                storm.started.load(Ordering::SeqCst)
            );
            sb.start_celld();
        }
        // Some calm work on the last daemon, then the end of the storm.
        storm.wait_for_commands(30);
        storm.is_over.store(true, Ordering::SeqCst);
    });
    eprintln!(
        "storm over after {:.1} s: {:?}",
        storm_started.elapsed().as_secs_f64(),
        storm.outcomes.lock().unwrap()
    );
    for (verb, messages) in storm.failures.lock().unwrap().iter() {
        eprintln!("some errors of `{verb}`: {messages:?}");
    }
    let hung = storm.hung.lock().unwrap().clone();
    assert!(hung.is_empty(), "storm commands that never ended: {hung:?}");

    let problems = sb.wait_for_agreement(Duration::from_secs(30));
    let store = sb.store_snapshot();
    let running = store
        .containers
        .iter()
        .filter(|c| c["container"]["running"] == true)
        .count();
    eprintln!(
        "after the storm: {} containers ({running} running), {} networks",
        store.containers.len(),
        store.networks.len()
    );
    assert!(
        problems.is_empty(),
        "store and kernel disagree after the storm (CELL_STORM_SEED={seed}):\n{}\n--- celld log (tail)\n{}",
        problems.join("\n"),
        tail(&sb.celld_log(), 60)
    );
    // Positive controls: the storm did make things, and the check does see
    // a veth, a route and a process that the store does not name.
    let outcomes = storm.outcomes.lock().unwrap();
    assert!(
        outcomes.get("run -d").is_some_and(|(ok, _)| *ok > 0),
        "no run succeeded in the storm: {outcomes:?}"
    );
    assert_planted_leaks_are_seen(&sb);
}

/// Plants a veth named like cell's, an unreachable route and a stray
/// process in the sandbox, and asserts that the store/kernel check names
/// each of them.
fn assert_planted_leaks_are_seen(sb: &Sandbox) {
    sb.sh_ok(
        "ip link add cv0123456789ab type veth peer name plantedpeer \
         && ip route add unreachable 10.99.0.0/24",
    );
    // nsenter waits for it; the sandbox's end kills it.
    let mut stray = sb.in_ns("sleep").arg("1000000").spawn().expect("stray");
    wait_until("the stray process to run", Duration::from_secs(10), || {
        sb.sandbox_processes()
            .iter()
            .any(|p| p.cmdline == ["sleep", "1000000"] && p.ppid == 0)
    });
    let problems = sb.disagreements(&sb.store_snapshot(), &sb.kernel_snapshot());
    for needle in [
        "veth cv0123456789ab",
        "unreachable route 10.99.0.0/24",
        "[\"sleep\", \"1000000\"] descends from no supervisor",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "the check missed a planted {needle:?}: {problems:#?}"
        );
    }
    sb.sh_ok("ip link del cv0123456789ab && ip route del unreachable 10.99.0.0/24");
    let _ = stray.kill();
    let _ = stray.wait();
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------
// Item 8: no leaks under churn.
// ---------------------------------------------------------------------------

/// What churn must leave as it found it, from a kernel snapshot.
#[derive(Debug)]
struct KernelState {
    links: Vec<KernelLink>,
    routes: Vec<KernelRoute>,
    elements: Vec<SetElement>,
    rule_count: usize,
    mounts: Vec<(String, String)>,
    netns_files: Vec<String>,
    /// `(pid, command line)` of every live process in the sandbox.
    processes: Vec<(i64, String)>,
}

/// `+ ITEM` and `- ITEM` lines for what `after` has that `before` lacks
/// and the other way round.
fn list_changes<T: std::fmt::Debug + PartialEq>(what: &str, before: &[T], after: &[T]) -> Vec<String> {
    let added = after
        .iter()
        .filter(|a| !before.contains(a))
        .map(|a| format!("+ {what} {a:?}"));
    let removed = before
        .iter()
        .filter(|b| !after.contains(b))
        .map(|b| format!("- {what} {b:?}"));
    added.chain(removed).collect()
}

impl KernelState {
    /// What changed from `self` to `after`, one line each.
    fn changes_to(&self, after: &KernelState) -> Vec<String> {
        let mut changes = list_changes("link", &self.links, &after.links);
        changes.extend(list_changes("route", &self.routes, &after.routes));
        changes.extend(list_changes("set element", &self.elements, &after.elements));
        changes.extend(list_changes("mount", &self.mounts, &after.mounts));
        changes.extend(list_changes("netns", &self.netns_files, &after.netns_files));
        if self.rule_count != after.rule_count {
            changes.push(format!("rules: {} -> {}", self.rule_count, after.rule_count));
        }
        if self.processes != after.processes {
            changes.push(format!(
                "processes: {:?} -> {:?}",
                self.processes, after.processes
            ));
        }
        changes
    }
}

fn kernel_state(sb: &Sandbox) -> KernelState {
    let k = sb.kernel_snapshot();
    KernelState {
        links: k.links,
        routes: k.routes,
        elements: k.elements,
        rule_count: k.rule_count,
        mounts: k.mounts,
        netns_files: k.netns_files,
        processes: k
            .processes
            .into_iter()
            .filter(|p| !p.is_zombie())
            .map(|p| (p.pid, p.cmdline.join(" ")))
            .collect(),
    }
}

/// Mebibytes, for printing.
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[test]
fn churn_of_runs_and_connects_leaves_kernel_fds_and_threads_as_they_were() {
    require_root!();
    let runs = env_count("CELL_CHURN_RUNS", 100);
    let connects = env_count("CELL_CHURN_CONNECTS", 50);
    let sb = Sandbox::new();
    sb.add_default_uplink();
    ok(&sb, "network create -t bridge --subnet 10.70.0.0/16 churnbr");
    ok(&sb, "network create -t loopback --subnet 10.80.0.0/16 churnlo");
    ok(&sb, "run -d --name anchor -l ipnet busybox sleep 1000000");

    let run_cycle = |name: &str| {
        ok(
            &sb,
            &format!("run -d --name {name} -n churnbr busybox sleep 1000000"),
        );
        ok(&sb, &format!("rm -f {name}"));
    };
    let connect_cycle = |i: usize| {
        let network = if i.is_multiple_of(2) { "churnbr" } else { "churnlo" };
        ok(&sb, &format!("network connect {network} anchor"));
        ok(&sb, &format!("network disconnect {network} anchor"));
    };
    // One of each first, so that what celld makes once (pools, caches,
    // worker threads) is in the baseline.
    run_cycle("warmup");
    connect_cycle(0);
    connect_cycle(1);
    // The store/kernel check agrees with a container on both networks, and
    // sees its veths (so it is not vacuous).
    ok(&sb, "network connect churnbr anchor");
    ok(&sb, "network connect churnlo anchor");
    let store = sb.store_snapshot();
    let kernel = sb.kernel_snapshot();
    let problems = sb.disagreements(&store, &kernel);
    assert!(problems.is_empty(), "{problems:#?}");
    let veths = kernel.links.iter().filter(|l| is_cell_veth_name(&l.name)).count();
    assert_eq!(veths, 2, "{:?}", kernel.links);
    ok(&sb, "network disconnect churnbr anchor");
    ok(&sb, "network disconnect churnlo anchor");

    let celld = sb.celld_pid();
    let kernel_before = kernel_state(&sb);
    let before = process_figures(celld);
    let mut peak_rss = before.rss_kib;
    let mut sample = || peak_rss = peak_rss.max(process_figures(celld).rss_kib);

    let started = Instant::now();
    for i in 0..runs {
        run_cycle(&format!("churn{i}"));
        if i.is_multiple_of(10) {
            sample();
        }
    }
    let runs_took = started.elapsed();
    let after_runs = process_figures(celld);
    let started = Instant::now();
    for i in 0..connects {
        connect_cycle(i);
        if i.is_multiple_of(10) {
            sample();
        }
    }
    let connects_took = started.elapsed();
    sample();

    // The kernel must be back at once; celld's idle worker threads may
    // take a while to end (tokio keeps a blocking thread 10 s), so wait for
    // fds and threads to come back, up to a deadline.
    let kernel_after = kernel_state(&sb);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = process_figures(celld);
    while (after.open_fds > before.open_fds || after.threads > before.threads) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        after = process_figures(celld);
    }
    eprintln!(
        "churn: {runs} run/rm cycles in {:.1} s ({:.1} ms each), {connects} connect/disconnect \
         cycles in {:.1} s ({:.1} ms each)",
        runs_took.as_secs_f64(),
        runs_took.as_secs_f64() * 1000.0 / runs.max(1) as f64,
        connects_took.as_secs_f64(),
        connects_took.as_secs_f64() * 1000.0 / connects.max(1) as f64,
    );
    eprintln!(
        "celld: fds {} -> {}, threads {} -> {}, VmRSS before {:.1} MiB, after the runs {:.1} MiB, \
         after all {:.1} MiB, peak {:.1} MiB",
        before.open_fds,
        after.open_fds,
        before.threads,
        after.threads,
        mib(before.rss_kib),
        mib(after_runs.rss_kib),
        mib(after.rss_kib),
        mib(peak_rss)
    );

    let changes = kernel_before.changes_to(&kernel_after);
    assert!(
        changes.is_empty(),
        "churn left the kernel changed:\n{}",
        changes.join("\n")
    );
    assert_eq!(sb.container_count(), 1, "only the anchor is left");
    let problems = sb.disagreements(&sb.store_snapshot(), &sb.kernel_snapshot());
    assert!(problems.is_empty(), "{problems:#?}");
    // Fewer is fine: an idle worker thread of the baseline may have ended.
    assert!(
        after.open_fds <= before.open_fds && after.threads <= before.threads,
        "celld's fds went from {} to {} and its threads from {} to {}",
        before.open_fds,
        after.open_fds,
        before.threads,
        after.threads
    );
    assert!(
        after.rss_kib < 2 * before.rss_kib + 20 * 1024,
        "celld's memory grew from {:.1} MiB to {:.1} MiB",
        mib(before.rss_kib),
        mib(after.rss_kib)
    );
}
