//! The sandbox the plugin's end-to-end tests run in: a fresh network,
//! mount and pid namespace (held by a `sleep` that is its pid 1) with a
//! private `/run` for `ip netns` names, an "upstream" namespace at
//! 198.51.100.1 (2001:db8:100::1) behind the sandbox's `em0` standing in
//! for the internet, and busybox web servers in upstream and on the
//! sandbox's host whose CGI prints the peer address they saw. Pods are
//! named network namespaces made with `ip netns add`. Dropping the sandbox
//! kills its pid 1, and with it every namespace, link and table.
#![allow(dead_code)]

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_cell-cni");
pub const UPSTREAM4: &str = "198.51.100.1";
pub const UPSTREAM6: &str = "2001:db8:100::1";
pub const HOST4: &str = "198.51.100.2";
/// The "who am I" server in upstream and on the sandbox's host.
pub const WEB: u16 = 8080;

const WHO_CGI: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\npeer=%s\\n' \"$REMOTE_ADDR\"\n";

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
    pub holder: u32,
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
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

/// What one plugin call answered.
#[derive(Debug)]
pub struct Answer {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Answer {
    /// The stdout as JSON (the result, or the error).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts success and returns the stdout's JSON (or null).
    pub fn ok(&self) -> Value {
        assert_eq!(self.code, Some(0), "{self:?}");
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts a CNI error with `code` whose message holds `needle`.
    pub fn error(&self, code: u64, needle: &str) -> Value {
        assert_eq!(self.code, Some(1), "{self:?}");
        let body = self.json();
        assert_eq!(body["code"], code, "{self:?}");
        assert!(
            body["msg"].as_str().unwrap_or_default().contains(needle),
            "{needle:?} not in {self:?}"
        );
        body
    }
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cell-cni-test-")
            .tempdir()
            .expect("tempdir");
        let unshare = Command::new("unshare")
            .args(["--net", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private", "--"])
            .args(["sh", "-c", "mount -t tmpfs cell-cni-run /run && mkdir -p /run/netns && ip link set lo up && exec sleep 1000000"])
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
        let sb = Self { dir, unshare, holder };
        let www = sb.dir.path().join("www");
        std::fs::create_dir_all(www.join("cgi-bin")).unwrap();
        let cgi = www.join("cgi-bin/who");
        std::fs::write(&cgi, WHO_CGI).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cgi, std::fs::Permissions::from_mode(0o755)).unwrap();
        sb.sh_ok(&format!(
            "set -e
            ip netns add upstream
            ip -n upstream link set lo up
            ip link add em0 type veth peer name uplink netns upstream
            ip addr add {HOST4}/24 dev em0
            ip addr add 2001:db8:100::2/64 dev em0 nodad
            ip link set em0 up
            ip -n upstream addr add {UPSTREAM4}/24 dev uplink
            ip -n upstream addr add {UPSTREAM6}/64 dev uplink nodad
            ip -n upstream link set uplink up
            ip route add default via {UPSTREAM4}
            ip -6 route add default via {UPSTREAM6}
            busybox httpd -p {WEB} -h {www}
            ip netns exec upstream busybox httpd -p {WEB} -h {www}",
            www = www.display()
        ));
        sb.wait_listening("", WEB);
        sb.wait_listening("ip netns exec upstream", WEB);
        sb
    }

    fn wait_listening(&self, prefix: &str, port: u16) {
        wait_until(
            &format!("a listener on {port} ({prefix})"),
            Duration::from_secs(10),
            || {
                let out = self.sh(&format!("{prefix} busybox netstat -ltn"));
                String::from_utf8_lossy(&out.stdout).contains(&format!(":{port} "))
            },
        );
    }

    pub fn in_ns(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.holder.to_string(), "-n", "-m", "-p", "--", program]);
        cmd
    }

    pub fn sh(&self, script: &str) -> Output {
        self.in_ns("sh")
            .args(["-c", script])
            .output()
            .expect("nsenter sh")
    }

    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(out.status.success(), "sh {script:?} failed: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The plugin's data directory for these tests (outside the sandbox's
    /// private /run, so the test can read the leases).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("cni-state")
    }

    /// A new pod: a named netns `name` (`/run/netns/NAME`).
    pub fn pod(&self, name: &str) -> String {
        self.sh_ok(&format!("ip netns add {name}"));
        format!("/run/netns/{name}")
    }

    /// Runs a script in pod `name`.
    pub fn in_pod(&self, name: &str, script: &str) -> Output {
        self.sh(&format!("ip netns exec {name} sh -c '{script}'"))
    }

    /// Starts the "who am I" web server in pod `name` on [`WEB`].
    pub fn serve(&self, name: &str) {
        let www = self.dir.path().join("www");
        self.sh_ok(&format!(
            "ip netns exec {name} busybox httpd -p {WEB} -h {}",
            www.display()
        ));
        self.wait_listening(&format!("ip netns exec {name}"), WEB);
    }

    pub fn in_pod_ok(&self, name: &str, script: &str) -> String {
        let out = self.in_pod(name, script);
        assert!(
            out.status.success(),
            "in pod {name}: {script:?} failed: {}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The "who am I" answer of the web server at `ip` as pod `name` gets
    /// it: `Some(peer address)`, or `None` when the connection fails
    /// within 2 s.
    pub fn who(&self, pod: &str, ip: &str) -> Option<String> {
        self.who_at(&format!("ip netns exec {pod}"), ip, WEB)
    }

    /// The "who am I" answer of the web server at `ip`:`port` as a client
    /// run behind `prefix` (`ip netns exec NS`, or empty for the sandbox's
    /// host) gets it.
    pub fn who_at(&self, prefix: &str, ip: &str, port: u16) -> Option<String> {
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        let out = self.sh(&format!(
            "{prefix} busybox timeout 2 busybox wget -q -O- http://{host}:{port}/cgi-bin/who"
        ));
        let text = String::from_utf8_lossy(&out.stdout);
        // busybox httpd listens on IPv6 and shows IPv4 peers mapped and
        // bracketed: [::ffff:10.88.0.2].
        text.lines().find_map(|l| l.strip_prefix("peer=")).map(|p| {
            let p = p.trim().trim_start_matches('[').trim_end_matches(']');
            p.strip_prefix("::ffff:")
                .filter(|v4| v4.contains('.'))
                .unwrap_or(p)
                .to_string()
        })
    }

    /// Runs the plugin inside the sandbox with the CNI variables; `netns`
    /// `None` leaves `CNI_NETNS` unset.
    pub fn cni(
        &self,
        command: &str,
        conf: &Value,
        container: &str,
        ifname: &str,
        netns: Option<&str>,
    ) -> Answer {
        self.cni_with(command, conf, container, ifname, netns, &[])
    }

    pub fn cni_with(
        &self,
        command: &str,
        conf: &Value,
        container: &str,
        ifname: &str,
        netns: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut cmd = self.in_ns("env");
        cmd.arg(format!("CNI_COMMAND={command}"))
            .arg(format!("CNI_CONTAINERID={container}"))
            .arg(format!("CNI_IFNAME={ifname}"))
            .arg("CNI_PATH=/opt/cni/bin");
        if let Some(netns) = netns {
            cmd.arg(format!("CNI_NETNS={netns}"));
        }
        let mut wrapper: &[&str] = &[];
        for (k, v) in extra {
            match *k {
                // Not a variable: a program to run the plugin through.
                "WRAPPER" => wrapper = std::slice::from_ref(v),
                _ => {
                    cmd.arg(format!("{k}={v}"));
                }
            }
        }
        for w in wrapper {
            cmd.args(w.split(' '));
        }
        let mut child = cmd
            .arg(PLUGIN)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the plugin");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Answer {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The names of the sandbox's links (without `@peer`).
    pub fn link_names(&self) -> Vec<String> {
        self.sh_ok("ip -o link")
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .collect()
    }

    /// The sandbox's nftables tables, as `FAMILY NAME`.
    pub fn nft_tables(&self) -> Vec<String> {
        self.sh_ok("nft list tables")
            .lines()
            .map(|l| l.trim_start_matches("table ").to_string())
            .collect()
    }

    /// Every element of every set and map of the plugin's tables, as `SET ELEMENT`.
    pub fn nft_elements(&self) -> Vec<String> {
        let ruleset: Value = serde_json::from_str(&self.sh_ok("nft -j list ruleset")).unwrap();
        ruleset["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("set").or_else(|| o.get("map")))
            .filter(|s| s["table"] == "cell_cni")
            .flat_map(|set| {
                let name = set["name"].as_str().unwrap_or_default().to_string();
                set["elem"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |e| format!("{name} {e}"))
            })
            .collect()
    }

    /// The leases in the data directory, as `network container ifname ip4 ip6`.
    pub fn leases(&self) -> Vec<String> {
        let db = self.data_dir().join("leases.db");
        if !db.exists() {
            return Vec::new();
        }
        let out = Command::new("sqlite3")
            .arg(&db)
            .arg("SELECT network, container_id, ifname, ip4, ip6 FROM leases ORDER BY 1, 2, 3")
            .output()
            .expect("sqlite3");
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Asserts that the plugin left nothing in the sandbox: no link but
    /// `lo` and `em0`, no table of its own, no lease.
    pub fn assert_nothing_left(&self) {
        let links = self.link_names();
        assert_eq!(links, ["lo", "em0"], "links left");
        let tables = self.nft_tables();
        assert!(
            !tables.iter().any(|t| t.contains("cell_cni")),
            "tables left: {tables:?}"
        );
        assert_eq!(self.leases(), Vec::<String>::new(), "leases left");
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is ours.
        unsafe { libc::kill(self.holder as i32, libc::SIGKILL) };
        let _ = self.unshare.wait();
    }
}

/// A configuration on the sandbox's data directory.
pub fn conf(sb: &Sandbox, extra: Value) -> Value {
    let mut conf = serde_json::json!({
        "cniVersion": "1.1.0", "name": "pods", "type": "cell-cni",
        "dataDir": sb.data_dir(),
    });
    for (k, v) in extra.as_object().unwrap() {
        conf[k] = v.clone();
    }
    conf
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
