//! The sandbox every end-to-end test runs in.
//!
//! A [`Sandbox`] is a fresh network, mount and pid namespace (held open by
//! a `sleep` that is pid 1 there) with a temporary root, and a `celld`
//! started inside it. Bridges, veths, nftables tables, overlay mounts and
//! container processes all live and die with it: dropping the sandbox kills
//! its pid 1, which kills everything in the namespace, even when the test
//! failed half-way. Nothing touches the machine's own network.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CELL: &str = env!("CARGO_BIN_EXE_cell");
pub const CELLD: &str = env!("CARGO_BIN_EXE_celld");

/// Returns early (the test passes vacuously, saying so) when not root.
#[macro_export]
macro_rules! require_root {
    () => {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: end-to-end tests need root");
            return;
        }
    };
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    unshare: Child,
    /// Host pid of the namespace's pid 1.
    pub holder: u32,
    celld: Option<Child>,
    pub socket: PathBuf,
    pub root: PathBuf,
}

/// The pids of the children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Sandbox {
    /// A sandbox with a running celld.
    pub fn new() -> Self {
        let mut sandbox = Self::without_celld();
        sandbox.start_celld();
        sandbox
    }

    /// A sandbox whose celld is not started yet.
    pub fn without_celld() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cell-test-")
            .tempdir()
            .expect("tempdir");
        let unshare = Command::new("unshare")
            .args([
                "--net",
                "--mount",
                "--pid",
                "--fork",
                "--mount-proc",
                "--propagation",
                "private",
                "--",
            ])
            .args(["sh", "-c", "ip link set lo up && exec sleep 1000000"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare");
        let unshare_pid = unshare.id();
        let mut holder = 0;
        wait_until("the sandbox", Duration::from_secs(10), || {
            holder = children(unshare_pid).first().copied().unwrap_or(0);
            holder != 0
                && std::fs::read_to_string(format!("/proc/{holder}/cmdline"))
                    .is_ok_and(|c| c.starts_with("sleep"))
        });
        let root = dir.path().join("root");
        let socket = dir.path().join("celld.sock");
        Self {
            dir,
            unshare,
            holder,
            celld: None,
            socket,
            root,
        }
    }

    /// A command run inside the sandbox's namespaces.
    pub fn in_ns(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.holder.to_string(), "-n", "-m", "-p", "--", program]);
        cmd
    }

    /// Runs a shell command inside the sandbox.
    pub fn sh(&self, script: &str) -> Output {
        self.in_ns("sh")
            .args(["-c", script])
            .output()
            .expect("nsenter sh")
    }

    /// Starts celld in the sandbox and waits for its socket.
    pub fn start_celld(&mut self) {
        self.start_celld_with(&[]);
    }

    /// The host pid of the running celld.
    pub fn celld_pid(&self) -> u32 {
        let nsenter = self.celld.as_ref().expect("celld started").id();
        children(nsenter).first().copied().expect("celld process")
    }

    /// Kills celld with `signal`, and waits for it to be gone. Containers
    /// must survive this.
    pub fn kill_celld(&mut self, signal: i32) {
        let pid = self.celld_pid();
        // SAFETY: kill has no memory-safety preconditions; pid is ours.
        unsafe { libc::kill(pid as i32, signal) };
        let mut nsenter = self.celld.take().unwrap();
        let _ = nsenter.wait();
        wait_until("celld to exit", Duration::from_secs(10), || {
            !Path::new(&format!("/proc/{pid}")).exists()
        });
    }

    /// `cell -H unix://SOCKET ARGS...`.
    pub fn cell(&self, args: &[&str]) -> Output {
        Command::new(CELL)
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("cell")
    }

    /// Runs `cell` and asserts it succeeded; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cell(args);
        assert!(
            out.status.success(),
            "cell {args:?} failed: {}\n{}",
            describe(&out),
            self.celld_log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `cell`, asserts it failed with a message holding `needle` on
    /// one line of stderr; returns stderr.
    pub fn fails(&self, args: &[&str], needle: &str) -> String {
        let out = self.cell(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "cell {args:?} should have failed: {}",
            describe(&out)
        );
        assert!(
            stderr.contains(needle),
            "cell {args:?}: stderr lacks {needle:?}: {}",
            describe(&out)
        );
        stderr
    }

    /// Container rows the daemon knows, as `container inspect` gives them.
    pub fn container_count(&self) -> usize {
        let out = self.ok(&["lsc", "-a"]);
        out.lines().skip(2).filter(|l| !l.trim().is_empty()).count()
    }

    pub fn inspect(&self, container: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["container", "inspect", container])).expect("inspect json")
    }

    /// Raw HTTP GET on the API socket; returns (status line, body).
    pub fn http_get(&self, path: &str) -> (String, String) {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: celld\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        (
            head.lines().next().unwrap_or_default().to_string(),
            body.to_string(),
        )
    }

    /// Whether `pid` (as celld sees it, in the sandbox's pid namespace) runs.
    pub fn pid_alive(&self, pid: i64) -> bool {
        self.sh(&format!("test -e /proc/{pid}")).status.success()
    }

    pub fn celld_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("celld.log")).unwrap_or_default()
    }

    /// Waits until `pred` holds of the container's inspect output.
    pub fn wait_for(&self, container: &str, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
        wait_until(what, Duration::from_secs(20), || pred(&self.inspect(container)));
    }

    /// Runs a shell command inside the sandbox, asserts it succeeded;
    /// returns its stdout.
    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(out.status.success(), "sh {script:?} failed: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Gives the sandbox an uplink like the seeds' em0 (a veth with
    /// 198.51.100.2/24) and a default route through it, so "the host's
    /// default interface" (NAT's default) is em0.
    pub fn add_default_uplink(&self) {
        self.sh_ok(
            "ip link add em0 type veth peer name em0peer && ip addr add 198.51.100.2/24 dev em0 \
             && ip link set em0 up && ip link set em0peer up && ip route add default via 198.51.100.1",
        );
    }

    /// The names of the sandbox's links, as `ip -o link` lists them (without
    /// the `@peer` part).
    pub fn link_names(&self) -> Vec<String> {
        self.sh_ok("ip -o link")
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .collect()
    }

    /// The sandbox's nftables ruleset, `nft -j list ruleset`.
    pub fn nft_ruleset(&self) -> serde_json::Value {
        serde_json::from_str(&self.sh_ok("nft -j list ruleset")).expect("nft json")
    }

    /// Every element of every nftables set in the sandbox, each as
    /// `FAMILY TABLE SET ELEMENT-JSON`, sorted.
    pub fn nft_elements(&self) -> Vec<String> {
        let ruleset = self.nft_ruleset();
        let mut elements: Vec<String> = ruleset["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("set"))
            .flat_map(|set| {
                let head = format!("{} {} {}", set["family"], set["table"], set["name"]);
                set["elem"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |e| format!("{head} {e}"))
            })
            .collect();
        elements.sort();
        elements
    }

    /// The path of a container's network namespace (the named netns celld
    /// keeps for containers with a network stack of their own).
    pub fn netns_path(&self, container: &str) -> PathBuf {
        let id = self.inspect(container)["container"]["id"]
            .as_str()
            .expect("container id")
            .to_string();
        self.root.join("netns").join(id)
    }

    /// Runs a shell command in a running container's network namespace
    /// with the sandbox's own tools (full iproute2, nft...), not the
    /// container's busybox.
    pub fn sh_in_netns(&self, container: &str, script: &str) -> Output {
        let path = self.netns_path(container);
        self.in_ns("nsenter")
            .arg(format!("--net={}", path.display()))
            .args(["sh", "-c", script])
            .output()
            .expect("nsenter into the container's netns")
    }
}

pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Killing pid 1 of the sandbox kills every process in it, and with
        // them the namespaces, mounts, links and tables.
        // SAFETY: kill has no memory-safety preconditions; the pid is ours.
        unsafe { libc::kill(self.holder as i32, libc::SIGKILL) };
        let _ = self.unshare.wait();
        if let Some(mut c) = self.celld.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `cell` client left running (an attached `run` or `exec`), whose
/// output lines are collected as they come.
pub struct RunningCell {
    child: Child,
    stdout: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::mpsc::Receiver<String>,
    /// Lines already taken from the channels, so `finish` returns them all.
    seen_stdout: Vec<String>,
    seen_stderr: Vec<String>,
}

/// How a [`RunningCell`] ended.
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

fn lines_of(pipe: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

fn next_line_holding(
    lines: &std::sync::mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    needle: &str,
    timeout: Duration,
) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let line = lines.recv_timeout(left).ok()?;
        seen.push(line.clone());
        if line.contains(needle) {
            return Some(line);
        }
    }
}

impl RunningCell {
    /// Waits for a line of stdout holding `needle`; returns it.
    pub fn wait_stdout(&mut self, needle: &str) -> String {
        let timeout = Duration::from_secs(20);
        match next_line_holding(&self.stdout, &mut self.seen_stdout, needle, timeout) {
            Some(line) => line,
            None => self.fail(&format!("no stdout line with {needle:?}")),
        }
    }

    /// Waits for a line of stderr holding `needle`; returns it.
    pub fn wait_stderr(&mut self, needle: &str) -> String {
        let timeout = Duration::from_secs(20);
        match next_line_holding(&self.stderr, &mut self.seen_stderr, needle, timeout) {
            Some(line) => line,
            None => self.fail(&format!("no stderr line with {needle:?}")),
        }
    }

    fn fail(&mut self, what: &str) -> ! {
        let status = self.child.try_wait();
        self.seen_stdout.extend(self.stdout.try_iter());
        self.seen_stderr.extend(self.stderr.try_iter());
        panic!(
            "{what}; cell's status {status:?}, stdout {:?}, stderr {:?}",
            self.seen_stdout, self.seen_stderr
        );
    }

    /// Waits (at most `timeout`, then fails) for the client to exit.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for cell") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "cell did not exit within {timeout:?}; stdout {:?}, stderr {:?}",
                    self.seen_stdout, self.seen_stderr
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The pipes close with the process, so the readers end.
        self.seen_stdout.extend(self.stdout.iter());
        self.seen_stderr.extend(self.stderr.iter());
        Finished {
            code: status.code(),
            stdout: std::mem::take(&mut self.seen_stdout),
            stderr: std::mem::take(&mut self.seen_stderr),
        }
    }
}

impl Drop for RunningCell {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An attach to an exec made by hand (`GET /execs/{id}/attach`), read frame
/// by frame. HTTP/1.0, so the body is sent as it is, up to the close.
pub struct RawAttach {
    reader: std::io::BufReader<std::os::unix::net::UnixStream>,
}

impl RawAttach {
    /// The next frame; `None` at the end of the stream.
    pub fn next_frame(&mut self) -> Option<(cell_core::frame::FrameKind, Vec<u8>)> {
        cell_core::frame::read_frame(&mut self.reader).expect("a whole frame within the read timeout")
    }

    /// Reads frames until a stdout frame holds `needle`.
    pub fn wait_stdout(&mut self, needle: &str) {
        let mut seen = String::new();
        while let Some((kind, payload)) = self.next_frame() {
            if kind == cell_core::frame::FrameKind::Stdout {
                seen.push_str(&String::from_utf8_lossy(&payload));
                if seen.contains(needle) {
                    return;
                }
            }
        }
        panic!("the attach stream ended without {needle:?} on stdout: {seen:?}");
    }
}

impl Sandbox {
    /// Starts `cell -H unix://SOCKET ARGS...` and returns at once.
    pub fn spawn_cell(&self, args: &[&str]) -> RunningCell {
        let mut child = Command::new(CELL)
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cell");
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        RunningCell {
            child,
            stdout,
            stderr,
            seen_stdout: Vec::new(),
            seen_stderr: Vec::new(),
        }
    }

    /// Attaches to an exec's output through the API, by hand.
    pub fn attach_raw(&self, exec_id: &str) -> RawAttach {
        use std::io::{BufRead, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(&self.socket).expect("connect to celld");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            stream,
            "GET /execs/{exec_id}/attach HTTP/1.0\r\nHost: celld\r\n\r\n"
        )
        .unwrap();
        let mut reader = std::io::BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "attach {exec_id}: {status}");
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header == "\r\n" || header.is_empty() {
                break;
            }
        }
        RawAttach { reader }
    }

    /// The pid of the running celld as processes in the sandbox see it.
    pub fn celld_pid_in_sandbox(&self) -> u32 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.celld_pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|pids| pids.split_whitespace().last())
            .and_then(|pid| pid.parse().ok())
            .expect("NSpid of celld")
    }

    /// Runs another celld in the sandbox with its own root and socket,
    /// beside the one the sandbox manages.
    pub fn spawn_other_celld(&self, root: &Path, socket: &Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("other-celld.log"))
            .unwrap();
        self.in_ns(CELLD)
            .args([
                "--root",
                root.to_str().unwrap(),
                "--socket",
                socket.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("celld")
    }

    /// Waits for a socket to appear, as a started celld makes it.
    pub fn wait_for_socket(&self, socket: &Path) {
        wait_until("a celld's socket", Duration::from_secs(20), || socket.exists());
    }

    /// Stops a celld from [`Sandbox::spawn_other_celld`] with SIGTERM.
    pub fn stop_other_celld(&self, mut nsenter: Child) {
        if let Some(pid) = children(nsenter.id()).first() {
            // SAFETY: kill has no memory-safety preconditions; the pid is a
            // child of our own nsenter.
            unsafe { libc::kill(*pid as i32, libc::SIGTERM) };
        }
        let _ = nsenter.wait();
    }
}

impl Sandbox {
    /// Raw HTTP on the API socket: `method path` with `body` (sent with a
    /// Content-Length even when empty); returns the status code and the
    /// body. A write the daemon cut short (it may answer 413 before it has
    /// read everything) is not an error: the answer is what matters.
    pub fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        use std::io::{Read, Write};
        // celld makes its socket file before it listens: until then a
        // connect is refused.
        let mut connected = None;
        wait_until("celld to listen", Duration::from_secs(20), || {
            connected = std::os::unix::net::UnixStream::connect(&self.socket).ok();
            connected.is_some()
        });
        let mut s = connected.unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: celld\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(head.as_bytes()).and_then(|()| s.write_all(body));
        let mut response = Vec::new();
        let _ = s.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status in {response:?}"));
        (status, body.to_string())
    }
}

impl Sandbox {
    /// Starts celld in the sandbox with the sandbox's root and socket and
    /// `extra` arguments (e.g. `--config FILE`), and waits for its socket.
    pub fn start_celld_with(&mut self, extra: &[&str]) {
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("celld.log"))
            .unwrap();
        let child = self
            .in_ns(CELLD)
            .args(extra)
            .args([
                "--root",
                self.root.to_str().unwrap(),
                "--socket",
                self.socket.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("celld");
        self.celld = Some(child);
        let socket = self.socket.clone();
        wait_until("celld's socket", Duration::from_secs(20), || socket.exists());
    }

    /// Starts celld in the sandbox with `config` (TOML) as its `--config`,
    /// and waits for its socket.
    pub fn start_celld_with_config(&mut self, config: &str) {
        let path = self.dir.path().join("celld.toml");
        std::fs::write(&path, config).unwrap();
        self.start_celld_with(&["--config", path.to_str().unwrap()]);
    }
}

// ---------------------------------------------------------------------------
// Store and kernel snapshots (issue 7, items 7 and 8): what celld says it
// holds, what the sandbox's kernel holds, and the ways the two can disagree.
// The fault, churn and lock tests (faults.rs) compare them; they look only
// at the CLI's JSON and at the kernel, so they hold whatever the engine's
// inside looks like.
// ---------------------------------------------------------------------------

/// One link of the sandbox, as `ip -d -j link` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelLink {
    pub name: String,
    /// `veth`, `bridge`, `macvlan`...; empty for `lo`.
    pub kind: String,
    pub master: String,
    pub mac: String,
}

/// One route of the sandbox's main table, as `ip -j route` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelRoute {
    /// `unicast`, `unreachable`...
    pub kind: String,
    /// As iproute2 writes it: `10.6.0.1` for a host route, `10.6.0.0/24`.
    pub dst: String,
    pub dev: String,
    pub protocol: String,
}

/// One element of an nftables set: where it is and its JSON.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SetElement {
    /// `FAMILY TABLE SET`.
    pub set: String,
    pub element: String,
}

/// One process of the sandbox's pid namespace (container processes, in
/// namespaces of their own below it, included), with the sandbox's pids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxProcess {
    pub pid: i64,
    pub ppid: i64,
    /// `R`, `S`, `Z`... as /proc/PID/status gives it.
    pub state: String,
    pub cmdline: Vec<String>,
}

impl SandboxProcess {
    /// Whether it has ended and waits only to be reaped. The sandbox's
    /// pid 1 is a `sleep` that reaps nothing, so every supervisor that ends
    /// stays a zombie there; a zombie holds nothing but its pid.
    pub fn is_zombie(&self) -> bool {
        self.state.starts_with('Z')
    }
}

/// What the sandbox's kernel holds that cell may have made.
#[derive(Debug, Clone)]
pub struct KernelSnapshot {
    pub links: Vec<KernelLink>,
    /// IPv4 and IPv6 routes of the main table.
    pub routes: Vec<KernelRoute>,
    pub elements: Vec<SetElement>,
    pub rule_count: usize,
    /// `(fstype, mount point)` of the sandbox's mount namespace.
    pub mounts: Vec<(String, String)>,
    /// The names in `ROOT/netns`.
    pub netns_files: Vec<String>,
    pub processes: Vec<SandboxProcess>,
}

/// What celld says it holds, through the CLI's JSON.
#[derive(Debug, Clone)]
pub struct StoreSnapshot {
    /// `cell inspect ID` of every container, stopped ones included.
    pub containers: Vec<serde_json::Value>,
    /// `cell network inspect ID` of every network.
    pub networks: Vec<serde_json::Value>,
}

/// Counters of one process, from `/proc/PID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessFigures {
    pub open_fds: usize,
    pub threads: usize,
    pub rss_kib: u64,
}

/// The open fds, threads and resident memory of host pid `pid`.
pub fn process_figures(pid: u32) -> ProcessFigures {
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status_field(&status, "VmRSS:")
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    ProcessFigures {
        open_fds,
        threads,
        rss_kib,
    }
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim)
}

fn json_str(v: &serde_json::Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// The string leaves of an nftables element (addresses, interface names,
/// MACs) and its prefixes, written `ADDR/LEN`.
fn element_leaves(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Object(o) if o.contains_key("prefix") => {
            let p = &o["prefix"];
            out.push(format!("{}/{}", json_str(p, "addr"), p["len"]));
        }
        serde_json::Value::Object(o) => o.values().for_each(|v| element_leaves(v, out)),
        serde_json::Value::Array(a) => a.iter().for_each(|v| element_leaves(v, out)),
        _ => {}
    }
}

/// Whether `name` is a host end cell names its veths with: `cv` and 12 hex.
pub fn is_cell_veth_name(name: &str) -> bool {
    name.len() == 14
        && name.starts_with("cv")
        && name[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Sandbox {
    /// What the sandbox's kernel holds now: links, routes, set elements,
    /// rules, mounts, netns files and processes.
    pub fn kernel_snapshot(&self) -> KernelSnapshot {
        let links_json: serde_json::Value =
            serde_json::from_str(&self.sh_ok("ip -d -j link show")).expect("ip link json");
        let mut links: Vec<KernelLink> = links_json
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| KernelLink {
                name: json_str(l, "ifname"),
                kind: json_str(&l["linkinfo"], "info_kind"),
                master: json_str(l, "master"),
                mac: json_str(l, "address"),
            })
            .collect();
        links.sort();

        let mut routes = Vec::new();
        for family in ["-4", "-6"] {
            let text = self.sh_ok(&format!("ip {family} -j route show table main"));
            let list: serde_json::Value = serde_json::from_str(&text).expect("ip route json");
            routes.extend(list.as_array().into_iter().flatten().map(|r| KernelRoute {
                kind: r["type"].as_str().unwrap_or("unicast").to_string(),
                dst: json_str(r, "dst"),
                dev: json_str(r, "dev"),
                protocol: json_str(r, "protocol"),
            }));
        }
        routes.sort();

        let ruleset = self.nft_ruleset();
        let objects = ruleset["nftables"].as_array().cloned().unwrap_or_default();
        let rule_count = objects.iter().filter(|o| o.get("rule").is_some()).count();
        let mut elements: Vec<SetElement> = objects
            .iter()
            .filter_map(|o| o.get("set"))
            .flat_map(|set| {
                let head = format!(
                    "{} {} {}",
                    json_str(set, "family"),
                    json_str(set, "table"),
                    json_str(set, "name")
                );
                set["elem"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |e| SetElement {
                        set: head.clone(),
                        element: e.to_string(),
                    })
            })
            .collect();
        elements.sort();

        // The holder's mount table is the sandbox's.
        let mut mounts: Vec<(String, String)> =
            std::fs::read_to_string(format!("/proc/{}/mounts", self.holder))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() > 2).then(|| (f[2].to_string(), f[1].to_string()))
                })
                .collect();
        mounts.sort();

        let mut netns_files: Vec<String> = std::fs::read_dir(self.root.join("netns"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        netns_files.sort();

        KernelSnapshot {
            links,
            routes,
            elements,
            rule_count,
            mounts,
            netns_files,
            processes: self.sandbox_processes(),
        }
    }

    /// The processes of the sandbox's pid namespace, read from its own
    /// /proc (through the holder's root, which resolves in the sandbox's
    /// mount namespace), so pids are the ones celld records.
    pub fn sandbox_processes(&self) -> Vec<SandboxProcess> {
        let proc_dir = format!("/proc/{}/root/proc", self.holder);
        let mut processes: Vec<SandboxProcess> = std::fs::read_dir(&proc_dir)
            .expect("the sandbox's /proc")
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.parse::<i64>().ok())
            .filter_map(|pid| {
                let status = std::fs::read_to_string(format!("{proc_dir}/{pid}/status")).ok()?;
                let cmdline = std::fs::read(format!("{proc_dir}/{pid}/cmdline")).ok()?;
                Some(SandboxProcess {
                    pid,
                    ppid: status_field(&status, "PPid:")?.parse().ok()?,
                    state: status_field(&status, "State:")?.to_string(),
                    cmdline: cmdline
                        .split(|b| *b == 0)
                        .filter(|a| !a.is_empty())
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect(),
                })
            })
            .collect();
        processes.sort_by_key(|p| p.pid);
        processes
    }

    /// Every container and network celld knows, as the CLI's JSON shows
    /// them.
    pub fn store_snapshot(&self) -> StoreSnapshot {
        let ids = |args: &[&str]| -> Vec<String> {
            self.ok(args)
                .lines()
                .skip(2)
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        };
        let containers = ids(&["lsc", "-a"]).iter().map(|id| self.inspect(id)).collect();
        let networks = ids(&["network", "ls"])
            .iter()
            .map(|id| {
                serde_json::from_str(&self.ok(&["network", "inspect", id])).expect("network inspect json")
            })
            .collect();
        StoreSnapshot { containers, networks }
    }

    /// Every way in which `kernel` and `store` disagree, one sentence each;
    /// empty when every endpoint of a running container has its veth,
    /// routes and set elements, the kernel holds no veth, bridge, route, set
    /// element, mount, netns, supervisor or container process the store
    /// does not name, and no network hands out an address twice.
    pub fn disagreements(&self, store: &StoreSnapshot, kernel: &KernelSnapshot) -> Vec<String> {
        use std::collections::{BTreeMap, BTreeSet};
        let mut problems = Vec::new();
        let networks: BTreeMap<String, &serde_json::Value> = store
            .networks
            .iter()
            .map(|n| (json_str(&n["network"], "id"), &n["network"]))
            .collect();
        let running: Vec<&serde_json::Value> = store
            .containers
            .iter()
            .filter(|c| c["container"]["running"] == true)
            .collect();
        let links: BTreeMap<&str, &KernelLink> = kernel.links.iter().map(|l| (l.name.as_str(), l)).collect();

        // What the kernel may hold, from the store.
        let mut wanted_veths = BTreeSet::new();
        let mut wanted_leaves = BTreeSet::new();
        let mut wanted_netns = BTreeSet::new();
        let mut running_pids = BTreeMap::new();
        for n in networks.values() {
            for key in ["subnet", "subnet6", "gateway", "gateway6", "interface", "nat"] {
                wanted_leaves.insert(json_str(n, key));
            }
            if let Some(bridge) = links.get(json_str(n, "interface").as_str()) {
                wanted_leaves.insert(bridge.mac.clone());
            }
        }
        for c in &running {
            let id = json_str(&c["container"], "id");
            let name = json_str(&c["container"], "name");
            wanted_netns.insert(id.clone());
            if let Some(pid) = c["container"]["pid"].as_i64() {
                running_pids.insert(pid, name.clone());
            }
            for e in c["container_endpoints"].as_array().into_iter().flatten() {
                let epair = json_str(e, "epair");
                let addresses: Vec<String> = ["ip_address", "ip_address6"]
                    .iter()
                    .map(|k| json_str(e, k))
                    .filter(|a| !a.is_empty())
                    .collect();
                wanted_veths.insert(epair.clone());
                wanted_leaves.insert(epair.clone());
                wanted_leaves.insert(json_str(e, "mac"));
                wanted_leaves.extend(addresses.iter().cloned());
                let Some(network) = networks.get(&json_str(e, "network_id")) else {
                    problems.push(format!(
                        "container {name} has an endpoint on network {} that does not exist",
                        json_str(e, "network_id")
                    ));
                    continue;
                };
                let network_type = json_str(network, "type");
                if network_type == "custom" {
                    continue;
                }
                match links.get(epair.as_str()) {
                    None => problems.push(format!(
                        "running container {name} has no veth {epair} for network {}",
                        json_str(network, "name")
                    )),
                    Some(link) if network_type == "bridge" => {
                        let bridge = json_str(network, "interface");
                        if link.master != bridge {
                            problems.push(format!(
                                "veth {epair} of {name} is on {:?}, not on bridge {bridge}",
                                link.master
                            ));
                        }
                    }
                    Some(_) => {}
                }
                for address in &addresses {
                    if network_type == "loopback"
                        && !kernel.routes.iter().any(|r| &r.dst == address && r.dev == epair)
                    {
                        problems.push(format!(
                            "running container {name} has no host route {address} dev {epair}"
                        ));
                    }
                    let quoted = format!("\"{address}\"");
                    if !kernel.elements.iter().any(|el| el.element.contains(&quoted)) {
                        problems.push(format!(
                            "no nftables set element holds {address} of running container {name}"
                        ));
                    }
                }
            }
        }

        // What the kernel holds that the store does not name.
        let bridges: BTreeSet<String> = networks
            .values()
            .filter(|n| n["type"] == "bridge")
            .map(|n| json_str(n, "interface"))
            .collect();
        for link in &kernel.links {
            if is_cell_veth_name(&link.name) && !wanted_veths.contains(&link.name) {
                problems.push(format!("veth {} belongs to no running endpoint", link.name));
            }
            if link.kind == "bridge" && !bridges.contains(&link.name) {
                problems.push(format!("bridge {} belongs to no network", link.name));
            }
        }
        for route in &kernel.routes {
            if is_cell_veth_name(&route.dev) && !wanted_veths.contains(&route.dev) {
                problems.push(format!("route {} dev {} names no endpoint", route.dst, route.dev));
            }
            let is_loopback_subnet = |n: &&&serde_json::Value| {
                n["type"] == "loopback"
                    && (json_str(n, "subnet") == route.dst || json_str(n, "subnet6") == route.dst)
            };
            if route.kind == "unreachable" && !networks.values().any(|n| is_loopback_subnet(&n)) {
                problems.push(format!(
                    "unreachable route {} belongs to no loopback network",
                    route.dst
                ));
            }
        }
        for element in &kernel.elements {
            let mut leaves = Vec::new();
            element_leaves(
                &serde_json::from_str(&element.element).unwrap_or_default(),
                &mut leaves,
            );
            for leaf in leaves {
                let is_address = leaf
                    .split('/')
                    .next()
                    .unwrap()
                    .parse::<std::net::IpAddr>()
                    .is_ok();
                let is_mac = leaf.len() == 17 && leaf.bytes().filter(|b| *b == b':').count() == 5;
                let is_cell_name = is_cell_veth_name(&leaf) || leaf.starts_with("cell");
                if (is_address || is_mac || is_cell_name) && !wanted_leaves.contains(&leaf) {
                    problems.push(format!(
                        "set element {} in {} names {leaf}, which nothing in the store holds",
                        element.element, element.set
                    ));
                }
            }
        }
        // Only netns bind mounts live in the sandbox's mount namespace; a
        // container's overlay root lives in its own, so a leaked overlay
        // comes with a leaked process, which the process check finds.
        let root = format!("{}/", self.root.display());
        for (fstype, target) in &kernel.mounts {
            let Some(rest) = target.strip_prefix(&root) else {
                continue;
            };
            let is_wanted_netns = rest
                .strip_prefix("netns/")
                .is_some_and(|id| wanted_netns.contains(id));
            if !is_wanted_netns {
                problems.push(format!("{fstype} mount {target} belongs to no running container"));
            }
        }
        for file in &kernel.netns_files {
            if !wanted_netns.contains(file) {
                problems.push(format!("netns {file} belongs to no running container"));
            }
        }

        // Processes: pid 1 is the holder, celld runs once, every supervisor
        // supervises a running container, and every other process descends
        // from a supervisor.
        let live: Vec<&SandboxProcess> = kernel.processes.iter().filter(|p| !p.is_zombie()).collect();
        let by_pid: BTreeMap<i64, &SandboxProcess> = live.iter().map(|p| (p.pid, *p)).collect();
        let is_celld = |p: &SandboxProcess| {
            p.cmdline
                .first()
                .is_some_and(|a| a.ends_with("/celld") || a == "celld")
        };
        let is_supervisor = |p: &SandboxProcess| is_celld(p) && p.cmdline.get(1).is_some_and(|a| a == "shim");
        let daemons = live.iter().filter(|p| is_celld(p) && !is_supervisor(p)).count();
        if daemons != 1 {
            problems.push(format!("{daemons} celld daemons run in the sandbox, not one"));
        }
        for p in live.iter().copied() {
            if p.pid == 1 || is_celld(p) && !is_supervisor(p) {
                continue;
            }
            if is_supervisor(p) {
                let children: Vec<i64> = live.iter().filter(|c| c.ppid == p.pid).map(|c| c.pid).collect();
                if !children.iter().any(|c| running_pids.contains_key(c)) {
                    problems.push(format!(
                        "supervisor {} {:?} runs children {children:?}, none a running container's",
                        p.pid, p.cmdline
                    ));
                }
                continue;
            }
            // Walk up to the supervisor this process descends from.
            let mut ancestor = p;
            let mut top = p;
            while let Some(parent) = by_pid.get(&ancestor.ppid) {
                if is_supervisor(parent) {
                    break;
                }
                top = parent;
                ancestor = parent;
            }
            let supervised = by_pid.get(&top.ppid).is_some_and(|s| is_supervisor(s));
            if !supervised {
                problems.push(format!(
                    "process {} {:?} descends from no supervisor",
                    p.pid, p.cmdline
                ));
            } else if top.pid == p.pid && !running_pids.contains_key(&p.pid) {
                problems.push(format!(
                    "process {} {:?} is no running container's init ({})",
                    p.pid,
                    p.cmdline,
                    self.whose_process(p.pid, store)
                ));
            }
        }
        for (pid, name) in &running_pids {
            let supervised = by_pid
                .get(pid)
                .and_then(|p| by_pid.get(&p.ppid))
                .is_some_and(|s| is_supervisor(s));
            if !supervised {
                problems.push(format!(
                    "running container {name} has no supervised process {pid}"
                ));
            }
        }

        // No address twice in one network.
        for n in &store.networks {
            let mut seen = BTreeSet::new();
            for e in n["network_endpoints"].as_array().into_iter().flatten() {
                for key in ["ip_address", "ip_address6"] {
                    let address = json_str(e, key);
                    if !address.is_empty() && !seen.insert(address.clone()) {
                        problems.push(format!(
                            "address {address} is held twice in network {}",
                            json_str(&n["network"], "name")
                        ));
                    }
                }
            }
        }
        problems
    }

    /// Which container a process belongs to, by its hostname (a
    /// container's name), and what the store says of that container.
    fn whose_process(&self, pid: i64, store: &StoreSnapshot) -> String {
        let out = self.sh(&format!("nsenter -t {pid} -u hostname"));
        let hostname = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || hostname.is_empty() {
            return "its hostname is unknown".to_string();
        }
        match store
            .containers
            .iter()
            .find(|c| c["container"]["name"] == hostname.as_str())
        {
            Some(c) => format!(
                "hostname {hostname}: the store has that container, running: {}, pid: {}",
                c["container"]["running"], c["container"]["pid"]
            ),
            None => format!("hostname {hostname}: no container of that name in the store"),
        }
    }

    /// Waits (up to `timeout`) until store and kernel agree; returns the
    /// disagreements of the last look, empty if they agreed.
    pub fn wait_for_agreement(&self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let store = self.store_snapshot();
            let problems = self.disagreements(&store, &self.kernel_snapshot());
            if problems.is_empty() || Instant::now() >= deadline {
                return problems;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A `cell` client whose stdin, stdout and stderr are the slave of a
/// pseudo-terminal the test holds the master of: what a user at a terminal
/// sees and types. Its output is collected as it comes.
pub struct PtyCell {
    child: Child,
    master: std::fs::File,
    /// The test's own hold on the slave, to read its settings.
    slave: std::fs::File,
    output: std::sync::Arc<(std::sync::Mutex<Vec<u8>>, std::sync::Condvar)>,
    /// How much of the output earlier waits consumed.
    seen: usize,
}

impl Sandbox {
    /// Starts `cell -H unix://SOCKET ARGS...` on a new terminal of
    /// `rows x cols`, as the session leader with it as controlling
    /// terminal (so a resize sends it SIGWINCH).
    pub fn spawn_cell_in_pty(&self, args: &[&str], rows: u16, cols: u16) -> PtyCell {
        use std::os::fd::FromRawFd;
        use std::os::unix::process::CommandExt;
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors into the valid pointers and
        // reads the winsize; the name and termios pointers may be null.
        let opened = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty just returned these descriptors to us alone.
        let (master, slave) = unsafe {
            (
                std::fs::File::from_raw_fd(master),
                std::fs::File::from_raw_fd(slave),
            )
        };
        let mut command = Command::new(CELL);
        command
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave.try_clone().unwrap());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("cell on a terminal");
        drop(command);
        let output = std::sync::Arc::new((std::sync::Mutex::new(Vec::new()), std::sync::Condvar::new()));
        let reader = master.try_clone().unwrap();
        let sink = std::sync::Arc::clone(&output);
        std::thread::spawn(move || {
            use std::io::Read;
            let mut reader = reader;
            let mut buf = [0u8; 4096];
            // EIO once the client and everything holding the slave exited.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.0.lock().unwrap().extend_from_slice(&buf[..n]);
                sink.1.notify_all();
            }
        });
        PtyCell {
            child,
            master,
            slave,
            output,
            seen: 0,
        }
    }
}

impl PtyCell {
    /// Waits until the output after the previous wait holds `needle`;
    /// returns that output, up to and including the needle.
    pub fn wait_output(&mut self, needle: &str) -> String {
        match self.try_wait_output(needle, Duration::from_secs(20)) {
            Ok(taken) => taken,
            Err(fresh) => panic!("no {needle:?} on the terminal; it shows {fresh:?}"),
        }
    }

    /// Like [`PtyCell::wait_output`], but gives up after `timeout` and
    /// returns what the terminal shows instead.
    pub fn try_wait_output(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let mut output = self.output.0.lock().unwrap();
        loop {
            let fresh = String::from_utf8_lossy(&output[self.seen..]).into_owned();
            if let Some(at) = fresh.find(needle) {
                let taken = &fresh[..at + needle.len()];
                self.seen += taken.len();
                return Ok(taken.to_string());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(fresh);
            }
            output = self.output.1.wait_timeout(output, left).unwrap().0;
        }
    }

    /// Types `keys` at the terminal.
    pub fn type_keys(&mut self, keys: &str) {
        use std::io::Write;
        self.master.write_all(keys.as_bytes()).unwrap();
    }

    /// Resizes the terminal (its session leader, cell, gets SIGWINCH).
    pub fn resize(&self, rows: u16, cols: u16) {
        use std::os::fd::AsRawFd;
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the valid pointer.
        let done = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(done, 0, "resize: {}", std::io::Error::last_os_error());
    }

    /// Waits (at most `timeout`, then fails) for the client to exit; returns
    /// its exit code and everything the terminal showed.
    pub fn finish(&mut self, timeout: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for cell") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("cell did not exit within {timeout:?}: {}", self.shown());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        (status.code(), self.shown())
    }

    /// Whether the terminal is in raw mode (no canonical input, no echo),
    /// as cell sets it while a session is attached.
    pub fn is_raw(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut termios = std::mem::MaybeUninit::<libc::termios>::zeroed();
        // SAFETY: tcgetattr fills the termios behind the valid pointer.
        assert_eq!(
            unsafe { libc::tcgetattr(self.slave.as_raw_fd(), termios.as_mut_ptr()) },
            0
        );
        // SAFETY: filled by tcgetattr above.
        let termios = unsafe { termios.assume_init() };
        termios.c_lflag & (libc::ICANON | libc::ECHO) == 0
    }

    /// Sends `signal` to the client.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill takes a pid and a signal number.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Everything the terminal showed so far.
    pub fn shown(&self) -> String {
        String::from_utf8_lossy(&self.output.0.lock().unwrap()).into_owned()
    }
}

impl Drop for PtyCell {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
