//! Bad input, everywhere (issue 7, item 9): one test per row of the table.
//!
//! Every row sends one malformed request, through `cell` or as raw HTTP on
//! the socket, and asserts the three promises: a 4xx status (the CLI: a
//! non-zero exit), one line naming the bad value (`{"message": ...}` for the
//! API), and nothing changed: no container, network or image row, no new
//! link in the sandbox, no new directory under celld's root. Each row then
//! sends the same request with a good value, the positive control that
//! shows the check would have seen a change.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// What a refused request must leave as it was.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    containers: BTreeSet<String>,
    networks: BTreeSet<String>,
    images: BTreeSet<String>,
    links: BTreeSet<String>,
    dirs: BTreeSet<String>,
}

/// The `key` of every object the API lists at `path`.
fn listed(sb: &Sandbox, path: &str, key: &str) -> BTreeSet<String> {
    let (status, body) = sb.http("GET", path, b"");
    assert_eq!(status, 200, "GET {path}: {body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|o| o[key].as_str().unwrap().to_string())
        .collect()
}

/// The directories under celld's root, two levels deep (`images/ID`,
/// `containers/ID`, `execs/ID`, `netns`...).
fn dirs(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for level1 in std::fs::read_dir(root).unwrap().flatten() {
        if !level1.file_type().unwrap().is_dir() {
            continue;
        }
        let name = level1.file_name().to_string_lossy().into_owned();
        for level2 in std::fs::read_dir(level1.path()).unwrap().flatten() {
            if level2.file_type().unwrap().is_dir() {
                out.insert(format!("{name}/{}", level2.file_name().to_string_lossy()));
            }
        }
        out.insert(name);
    }
    out
}

fn snapshot(sb: &Sandbox) -> Snapshot {
    Snapshot {
        containers: listed(sb, "/containers?all=true", "id"),
        networks: listed(sb, "/networks", "name"),
        images: listed(sb, "/images", "id"),
        links: sb.link_names().into_iter().collect(),
        dirs: dirs(&sb.root),
    }
}

/// Asserts that a one-line message names `needle`.
fn one_line_naming(message: &str, needle: &str) {
    let message = message.trim_end_matches('\n');
    assert!(!message.contains('\n'), "more than one line: {message:?}");
    assert!(message.contains(needle), "{message:?} does not name {needle:?}");
}

/// Sends a request that must be refused with `status` and a message
/// holding `needle`, changing nothing; returns the message.
fn api_refuses(sb: &Sandbox, method: &str, path: &str, body: &[u8], status: u16, needle: &str) -> String {
    let before = snapshot(sb);
    let (got, answer) = sb.http(method, path, body);
    let value: Value = serde_json::from_str(&answer)
        .unwrap_or_else(|_| panic!("{method} {path}: {got} with a body that is not JSON: {answer:?}"));
    let message = value["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path}: no message in {answer}"))
        .to_string();
    assert_eq!(got, status, "{method} {path}: {message}");
    one_line_naming(&message, needle);
    assert_eq!(snapshot(sb), before, "{method} {path} changed something");
    message
}

/// Sends a request that must succeed with `status`; returns its answer.
fn api_ok(sb: &Sandbox, method: &str, path: &str, body: &[u8], status: u16) -> Value {
    let (got, answer) = sb.http(method, path, body);
    assert_eq!(got, status, "{method} {path}: {answer}\n{}", sb.celld_log());
    serde_json::from_str(&answer).unwrap()
}

/// Runs `cell ARGS` that must fail with one line naming `needle`, changing
/// nothing; returns that line. Progress lines cell prints before it asks
/// the daemon (`importing image ...`) may come first.
fn cli_refuses(sb: &Sandbox, args: &[&str], needle: &str) -> String {
    let before = snapshot(sb);
    let out = sb.cell(args);
    assert!(
        !out.status.success(),
        "cell {args:?} was accepted: {}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut lines: Vec<&str> = stderr.lines().collect();
    let error = lines.pop().unwrap_or_default();
    for line in lines {
        assert!(
            line.starts_with("importing image ") || line.starts_with("building image "),
            "cell {args:?}: the error is not one line: {stderr:?}"
        );
    }
    one_line_naming(error, needle);
    assert_eq!(snapshot(sb), before, "cell {args:?} changed something");
    error.to_string()
}

/// A bridge network `net` on 10.9.0.0/24, for rows about addresses.
fn with_network(sb: &Sandbox) {
    sb.ok(&[
        "network",
        "create",
        "-t",
        "bridge",
        "--subnet",
        "10.9.0.0/24",
        "net",
    ]);
}

/// A running busybox container `c`.
fn with_running_container(sb: &Sandbox) {
    sb.ok(&["run", "-d", "--name", "c", "busybox", "sleep", "1000"]);
}

/// One test per row: `row!(name, |sb| ...)` runs the body against a fresh
/// sandbox with celld.
macro_rules! row {
    ($name:ident, $body:expr) => {
        #[test]
        fn $name() {
            require_root!();
            let sb = Sandbox::new();
            let body: fn(&Sandbox) = $body;
            body(&sb);
        }
    };
}

// Subnets that no network of containers may have.

fn subnet_refused(sb: &Sandbox, flag: &str, cidr: &str, reason: &str) {
    let error = cli_refuses(
        sb,
        &["network", "create", "-t", "bridge", flag, cidr, "n"],
        reason,
    );
    let name = flag.trim_start_matches("--");
    assert!(
        error.starts_with(&format!("invalid {name} '{cidr}': ")),
        "{error}"
    );
    let good = if flag == "--subnet" {
        "10.9.0.0/24"
    } else {
        "fd00:9::/64"
    };
    sb.ok(&["network", "create", "-t", "bridge", flag, good, "n"]);
    assert!(listed(sb, "/networks", "name").contains("n"));
}

row!(subnet_everything_v4, |sb| subnet_refused(
    sb,
    "--subnet",
    "0.0.0.0/0",
    "the prefix /0 is shorter than /8"
));
row!(subnet_everything_v6, |sb| subnet_refused(
    sb,
    "--subnet6",
    "::/0",
    "the prefix /0 is shorter than /16"
));
row!(subnet_loopback_v4, |sb| subnet_refused(
    sb,
    "--subnet",
    "127.0.0.0/8",
    "the loopback range"
));
row!(subnet_loopback_v6, |sb| subnet_refused(
    sb,
    "--subnet6",
    "::1/128",
    "the loopback address"
));
row!(subnet_multicast_v4, |sb| subnet_refused(
    sb,
    "--subnet",
    "224.0.0.0/4",
    "the multicast range"
));
row!(subnet_multicast_v6, |sb| subnet_refused(
    sb,
    "--subnet6",
    "ff00::/8",
    "the multicast range"
));
row!(subnet_link_local_v4, |sb| subnet_refused(
    sb,
    "--subnet",
    "169.254.0.0/16",
    "the link-local range"
));
row!(subnet_link_local_v6, |sb| subnet_refused(
    sb,
    "--subnet6",
    "fe80::/64",
    "the link-local range"
));
row!(subnet_unspecified_v4, |sb| subnet_refused(
    sb,
    "--subnet",
    "0.0.0.0/8",
    "unspecified address"
));
row!(subnet_broadcast_v4, |sb| subnet_refused(
    sb,
    "--subnet",
    "255.255.255.255/32",
    "limited broadcast"
));

// Addresses a container may not have.

row!(ip_network_address, |sb| {
    with_network(sb);
    cli_refuses(
        sb,
        &[
            "create", "--name", "c", "-n", "net", "--ip", "10.9.0.0", "busybox",
        ],
        "'10.9.0.0' is the network address",
    );
    sb.ok(&[
        "create", "--name", "c", "-n", "net", "--ip", "10.9.0.7", "busybox",
    ]);
});

row!(ip_broadcast_address_on_connect, |sb| {
    with_network(sb);
    sb.ok(&["create", "--name", "c", "-l", "ipnet", "busybox"]);
    cli_refuses(
        sb,
        &["network", "connect", "--ip", "10.9.0.255", "net", "c"],
        "'10.9.0.255' is the broadcast address",
    );
    sb.ok(&["network", "connect", "--ip", "10.9.0.7", "net", "c"]);
    assert_eq!(
        sb.inspect("c")["container_endpoints"].as_array().unwrap().len(),
        1
    );
});

// Names.

row!(container_name_with_newline, |sb| {
    cli_refuses(
        sb,
        &["create", "--name", "a\nb", "busybox"],
        r#"invalid container name "a\nb""#,
    );
    sb.ok(&["create", "--name", "ab", "busybox"]);
    assert_eq!(sb.container_count(), 1);
});

row!(container_name_with_nul, |sb| {
    api_refuses(
        sb,
        "POST",
        "/containers",
        br#"{"image":"busybox","name":"a\u0000b"}"#,
        400,
        r#"invalid container name "a\0b""#,
    );
    api_ok(
        sb,
        "POST",
        "/containers",
        br#"{"image":"busybox","name":"ab"}"#,
        201,
    );
});

row!(network_name_with_slash, |sb| {
    cli_refuses(
        sb,
        &["network", "create", "--subnet", "10.9.0.0/24", "a/b"],
        "invalid network name 'a/b'",
    );
    sb.ok(&["network", "create", "--subnet", "10.9.0.0/24", "ab"]);
});

row!(network_name_too_long, |sb| {
    let long = "n".repeat(65);
    cli_refuses(
        sb,
        &["network", "create", "--subnet", "10.9.0.0/24", &long],
        "it is longer than 64 characters",
    );
    sb.ok(&["network", "create", "--subnet", "10.9.0.0/24", &long[..64]]);
});

row!(image_name_dot_dot, |sb| {
    let tarball = good_tarball(sb);
    cli_refuses(
        sb,
        &["image", "import", "..", &tarball],
        "invalid image name '..'",
    );
    sb.ok(&["image", "import", "fine", &tarball]);
});

row!(image_name_with_nul, |sb| {
    api_refuses(
        sb,
        "POST",
        "/images",
        br#"{"name":"bb\u0000"}"#,
        400,
        r#"invalid image name "bb\0""#,
    );
    api_ok(sb, "POST", "/images", br#"{"name":"bb"}"#, 200);
});

// Commands and environment.

row!(command_with_nul, |sb| {
    api_refuses(
        sb,
        "POST",
        "/containers",
        br#"{"image":"busybox","cmd":["echo","a\u0000b"]}"#,
        400,
        r#"invalid command argument "a\0b": it holds NUL"#,
    );
    api_ok(
        sb,
        "POST",
        "/containers",
        br#"{"image":"busybox","cmd":["echo","ab"]}"#,
        201,
    );
});

row!(exec_command_with_nul, |sb| {
    with_running_container(sb);
    api_refuses(
        sb,
        "POST",
        "/containers/c/exec",
        br#"{"cmd":["true\u0000"]}"#,
        400,
        r#"invalid command argument "true\0""#,
    );
    let exec = api_ok(sb, "POST", "/containers/c/exec", br#"{"cmd":["true"]}"#, 200);
    assert_eq!(exec["id"].as_str().unwrap().len(), 12);
});

row!(env_with_nul, |sb| {
    api_refuses(
        sb,
        "POST",
        "/containers",
        br#"{"image":"busybox","env":["A=b\u0000c"]}"#,
        400,
        r#"invalid environment variable "A=b\0c": it holds NUL"#,
    );
    api_ok(
        sb,
        "POST",
        "/containers",
        br#"{"image":"busybox","env":["A=bc"]}"#,
        201,
    );
});

row!(env_without_value, |sb| {
    cli_refuses(
        sb,
        &["create", "-e", "NOVALUE", "busybox"],
        "invalid environment variable 'NOVALUE'",
    );
    sb.ok(&["create", "-e", "NOVALUE=1", "busybox"]);
});

row!(unknown_param, |sb| {
    cli_refuses(
        sb,
        &["create", "-J", "allow.mount", "busybox"],
        "unknown parameter 'allow.mount'",
    );
    sb.ok(&["create", "-J", "allow.raw_sockets", "busybox"]);
});

row!(port_out_of_range, |sb| {
    with_network(sb);
    port_refused(
        sb,
        "70000",
        "invalid port spec '70000': '70000' is not a host port (1-65535)",
    );
});

// Issue 8: every bad `-p`. Each row refuses one spec on a container that
// could publish (ipnet on a bridge network), then publishes 8080 the same
// way (the positive control).

/// `create -n net -p SPEC` is refused naming `needle`; `-p 8080` is not.
fn port_refused(sb: &Sandbox, spec: &str, needle: &str) {
    cli_refuses(sb, &["create", "-n", "net", "-p", spec, "busybox"], needle);
    sb.ok(&["create", "-n", "net", "-p", "8080", "busybox"]);
}

row!(port_zero_as_container_port, |sb| {
    with_network(sb);
    port_refused(sb, "80:0", "'0' is not a container port");
});

row!(port_not_a_number, |sb| {
    with_network(sb);
    port_refused(sb, "abc", "invalid port spec 'abc': 'abc' is not a host port");
});

row!(port_ranges_of_different_sizes, |sb| {
    with_network(sb);
    port_refused(
        sb,
        "8000-8010:9000-9005",
        "the host ports 8000-8010 and the container ports 9000-9005 differ in number",
    );
});

row!(port_range_backwards, |sb| {
    with_network(sb);
    port_refused(sb, "9000-8000", "the host port range '9000-8000' is backwards");
});

row!(port_unknown_protocol, |sb| {
    with_network(sb);
    port_refused(sb, "80/sctp", "unknown protocol 'sctp'");
});

row!(port_malformed_host_address, |sb| {
    with_network(sb);
    port_refused(sb, "1.2.3:80:80", "'1.2.3' is not an IPv4 address");
});

row!(port_on_an_address_the_host_does_not_hold, |sb| {
    with_network(sb);
    port_refused(
        sb,
        "192.0.2.9:80:80",
        "cannot publish on 192.0.2.9: it is not an address of this host",
    );
});

row!(port_already_published, |sb| {
    with_network(sb);
    sb.ok(&["create", "--name", "a", "-n", "net", "-p", "8080:80", "busybox"]);
    cli_refuses(
        sb,
        &["create", "-n", "net", "-p", "8080:81", "busybox"],
        "host port 8080/tcp is already published by container 'a'",
    );
    cli_refuses(
        sb,
        &["port", "add", "a", "8080/tcp"],
        "host port 8080/tcp is already published by container 'a'",
    );
    sb.ok(&["create", "-n", "net", "-p", "8081:80", "busybox"]);
});

row!(port_a_host_process_listens_on, |sb| {
    with_network(sb);
    sb.sh_ok("busybox nc -l -p 18091 >/dev/null 2>&1 </dev/null & echo started");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sb.sh_ok("busybox netstat -ltn").contains(":18091 ") {
        assert!(
            std::time::Instant::now() < deadline,
            "the host's listener never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    port_refused(
        sb,
        "18091:80",
        "host port 18091/tcp is in use by a process of the host",
    );
});

row!(port_with_host_or_disabled_driver, |sb| {
    cli_refuses(
        sb,
        &["create", "-p", "8080", "busybox"],
        "cannot publish ports of a container using the 'host' network driver",
    );
    cli_refuses(
        sb,
        &["create", "-l", "disabled", "-p", "8080", "busybox"],
        "cannot publish ports of a container using the 'disabled' network driver",
    );
    with_network(sb);
    sb.ok(&["create", "-n", "net", "-p", "8080", "busybox"]);
});

row!(port_of_a_custom_only_container, |sb| {
    sb.sh_ok("ip link add em9 type veth peer name em9peer && ip link set em9 up");
    sb.ok(&[
        "network",
        "create",
        "-t",
        "custom",
        "-i",
        "em9",
        "--subnet",
        "192.168.77.0/24",
        "lan",
    ]);
    cli_refuses(
        sb,
        &["create", "-n", "lan", "-p", "8080", "busybox"],
        "its only networks are custom (macvlan) networks, where it serves on its own LAN address",
    );
    with_network(sb);
    sb.ok(&["create", "-n", "lan", "-n", "net", "-p", "8080", "busybox"]);
});

row!(port_on_an_internal_network, |sb| {
    sb.ok(&[
        "network",
        "create",
        "-t",
        "bridge",
        "--subnet",
        "10.8.0.0/24",
        "--internal",
        "inner",
    ]);
    cli_refuses(
        sb,
        &["create", "-n", "inner", "-p", "8080", "busybox"],
        "network 'inner' is internal",
    );
    with_network(sb);
    sb.ok(&["create", "-n", "net", "-p", "8080", "busybox"]);
});

row!(port_rm_of_a_port_not_published, |sb| {
    with_network(sb);
    sb.ok(&["create", "--name", "a", "-n", "net", "-p", "8080:80", "busybox"]);
    cli_refuses(
        sb,
        &["port", "rm", "a", "9090"],
        "container 'a' does not publish '9090'",
    );
    cli_refuses(sb, &["port", "add", "a", "80:0"], "'0' is not a container port");
    sb.ok(&["port", "rm", "a", "8080"]);
});

row!(unknown_driver, |sb| {
    cli_refuses(
        sb,
        &["create", "-l", "jail", "busybox"],
        "unknown network driver 'jail'",
    );
    sb.ok(&["create", "-l", "disabled", "busybox"]);
});

// Bodies.

row!(unknown_field_in_container, |sb| {
    api_refuses(
        sb,
        "POST",
        "/containers",
        br#"{"image":"busybox","nmae":"c"}"#,
        400,
        "unknown field `nmae`",
    );
    api_ok(
        sb,
        "POST",
        "/containers",
        br#"{"image":"busybox","name":"c"}"#,
        201,
    );
});

row!(unknown_field_in_network, |sb| {
    api_refuses(
        sb,
        "POST",
        "/networks",
        br#"{"name":"n","subnet":"10.9.0.0/24","type":"bridge","natt":"eth0"}"#,
        400,
        "unknown field `natt`",
    );
    api_ok(
        sb,
        "POST",
        "/networks",
        br#"{"name":"n","subnet":"10.9.0.0/24","type":"bridge"}"#,
        201,
    );
});

row!(unknown_field_in_connect, |sb| {
    with_network(sb);
    sb.ok(&["create", "--name", "c", "-l", "ipnet", "busybox"]);
    api_refuses(
        sb,
        "POST",
        "/networks/net/connect",
        br#"{"container":"c","ipv4":"10.9.0.7"}"#,
        400,
        "unknown field `ipv4`",
    );
    api_ok(
        sb,
        "POST",
        "/networks/net/connect",
        br#"{"container":"c","ip":"10.9.0.7"}"#,
        200,
    );
});

/// A body `POST /networks` takes: the positive control of the body rows.
const GOOD_NETWORK: &[u8] = br#"{"name":"n","subnet":"10.9.0.0/24"}"#;

row!(invalid_json, |sb| {
    api_refuses(
        sb,
        "POST",
        "/networks",
        br#"{"name":"n","#,
        400,
        "invalid request body",
    );
    api_ok(sb, "POST", "/networks", GOOD_NETWORK, 201);
});

row!(invalid_utf8, |sb| {
    api_refuses(
        sb,
        "POST",
        "/networks",
        b"{\"name\":\"n\xff\",\"subnet\":\"10.9.0.0/24\"}",
        400,
        "invalid request body",
    );
    api_ok(sb, "POST", "/networks", GOOD_NETWORK, 201);
});

row!(body_over_the_limit, |sb| {
    let mut body = br#"{"name":"n","subnet":"10.9.0.0/24","interface":""#.to_vec();
    body.resize(1024 * 1024 + 1, b'x');
    api_refuses(
        sb,
        "POST",
        "/networks",
        &body,
        413,
        "larger than the limit of 1048576 bytes",
    );
    api_ok(sb, "POST", "/networks", GOOD_NETWORK, 201);
});

row!(method_not_allowed, |sb| {
    api_refuses(
        sb,
        "PUT",
        "/networks",
        b"",
        405,
        "method PUT is not allowed on /networks",
    );
    api_ok(sb, "GET", "/networks", b"", 200);
});

row!(path_not_utf8, |sb| {
    api_refuses(sb, "GET", "/containers/%FF", b"", 400, "");
    sb.ok(&["create", "--name", "c", "busybox"]);
    api_ok(sb, "GET", "/containers/c", b"", 200);
});

// Timeouts and query strings.

row!(stop_timeout_overflow, |sb| {
    with_running_container(sb);
    api_refuses(
        sb,
        "POST",
        "/containers/c/stop?timeout=18446744073709551615",
        b"",
        400,
        "invalid timeout '18446744073709551615': at most 86400 seconds",
    );
    assert_eq!(sb.inspect("c")["container"]["running"], true);
    api_ok(sb, "POST", "/containers/c/stop?timeout=0", b"", 200);
    assert_eq!(sb.inspect("c")["container"]["running"], false);
});

row!(restart_timeout_over_a_day, |sb| {
    with_running_container(sb);
    let pid = sb.inspect("c")["container"]["pid"].clone();
    api_refuses(
        sb,
        "POST",
        "/containers/c/restart?timeout=86401",
        b"",
        400,
        "invalid timeout '86401'",
    );
    assert_eq!(sb.inspect("c")["container"]["pid"], pid);
});

row!(stop_time_flag_over_a_day, |sb| {
    with_running_container(sb);
    cli_refuses(
        sb,
        &["stop", "-t", "86401", "c"],
        "invalid value '86401' for '--time <TIME>'",
    );
    assert_eq!(sb.inspect("c")["container"]["running"], true);
    sb.ok(&["stop", "-t", "0", "c"]);
});

row!(bad_query_value, |sb| {
    sb.ok(&["create", "--name", "c", "busybox"]);
    api_refuses(
        sb,
        "DELETE",
        "/containers/c?force=maybe",
        b"",
        400,
        "invalid value 'maybe' of query parameter 'force'",
    );
    api_refuses(
        sb,
        "DELETE",
        "/containers/c?froce=true",
        b"",
        400,
        "unknown query parameter 'froce'",
    );
    api_ok(sb, "DELETE", "/containers/c?force=true", b"", 200);
    assert_eq!(sb.container_count(), 0);
});

row!(unknown_query_parameter, |sb| {
    api_refuses(
        sb,
        "GET",
        "/networks?name=n",
        b"",
        400,
        "unknown query parameter 'name'",
    );
    api_refuses(
        sb,
        "POST",
        "/networks?dry_run=1",
        GOOD_NETWORK,
        400,
        "unknown query parameter 'dry_run'",
    );
    api_ok(sb, "POST", "/networks", GOOD_NETWORK, 201);
});

// Image tarballs.

/// A tarball of a minimal rootfs (a `bin/sh` file) in the sandbox's
/// directory; returns its path.
fn good_tarball(sb: &Sandbox) -> String {
    let tree = sb.dir.path().join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("bin/sh"), "#!").unwrap();
    let tarball = sb.dir.path().join("good.tar");
    tar(&[
        "-cf",
        tarball.to_str().unwrap(),
        "-C",
        tree.to_str().unwrap(),
        ".",
    ]);
    tarball.to_str().unwrap().to_string()
}

fn tar(args: &[&str]) {
    let out = std::process::Command::new("tar").args(args).output().unwrap();
    assert!(out.status.success(), "tar {args:?}: {}", describe(&out));
}

/// Imports `tarball` as an image, which must be refused naming `needle`;
/// checks nothing appeared at `outside`, then imports a good one.
fn import_refused(sb: &Sandbox, tarball: &Path, needle: &str, outside: &Path) {
    cli_refuses(
        sb,
        &["image", "import", "evil", tarball.to_str().unwrap()],
        needle,
    );
    assert!(!outside.exists(), "{} was written", outside.display());
    let good = good_tarball(sb);
    sb.ok(&["image", "import", "evil", &good]);
}

row!(image_tarball_climbing_out, |sb| {
    let dir = sb.dir.path();
    let tarball = good_tarball(sb);
    // GNU tar keeps '..' in member names with -P, as a hostile tarball
    // would. Unpacked naively under ROOT/images/ID/rootfs.tmp-..., the
    // member would land in ROOT itself.
    std::fs::create_dir_all(dir.join("tree/x/y/z")).unwrap();
    std::fs::write(dir.join("tree/escaped"), "x").unwrap();
    tar(&[
        "-rPf",
        &tarball,
        "-C",
        dir.join("tree/x/y/z").to_str().unwrap(),
        "../../../escaped",
    ]);
    std::fs::remove_file(dir.join("tree/escaped")).unwrap();
    import_refused(
        sb,
        Path::new(&tarball),
        "refused entry '../../../escaped': it has a '..' component",
        &sb.root.join("escaped"),
    );
});

row!(image_tarball_through_a_symlink, |sb| {
    let dir = sb.dir.path();
    let outside = dir.join("outside");
    std::fs::create_dir(&outside).unwrap();
    let tarball = good_tarball(sb);
    // First `etc -> OUTSIDE`, then `etc/passwd`: unpacked naively, the
    // second would land in OUTSIDE.
    let stage1 = dir.join("stage1");
    std::fs::create_dir(&stage1).unwrap();
    std::os::unix::fs::symlink(&outside, stage1.join("etc")).unwrap();
    tar(&["-rf", &tarball, "-C", stage1.to_str().unwrap(), "etc"]);
    let stage2 = dir.join("stage2");
    std::fs::create_dir_all(stage2.join("etc")).unwrap();
    std::fs::write(stage2.join("etc/passwd"), "root::0:0").unwrap();
    tar(&["-rf", &tarball, "-C", stage2.to_str().unwrap(), "etc/passwd"]);
    import_refused(
        sb,
        Path::new(&tarball),
        "refused entry 'etc/passwd': its parent 'etc' is a symlink",
        &outside.join("passwd"),
    );
});

row!(image_tarball_with_a_device_node, |sb| {
    let dir = sb.dir.path();
    let tarball = good_tarball(sb);
    let stage = dir.join("devstage");
    std::fs::create_dir_all(stage.join("dev")).unwrap();
    let made = std::process::Command::new("mknod")
        .arg(stage.join("dev/sda"))
        .args(["b", "8", "0"])
        .status()
        .unwrap();
    assert!(made.success());
    tar(&["-rf", &tarball, "-C", stage.to_str().unwrap(), "dev/sda"]);
    import_refused(
        sb,
        Path::new(&tarball),
        "refused entry 'dev/sda': device nodes are not imported",
        &dir.join("no-such-file"),
    );
});

// Networks the host's own interfaces forbid.

row!(subnet_over_the_hosts_uplink, |sb| {
    sb.add_default_uplink();
    let error = cli_refuses(
        sb,
        &[
            "network",
            "create",
            "-t",
            "bridge",
            "--subnet",
            "198.51.100.0/24",
            "n",
        ],
        "198.51.100.2/24",
    );
    assert!(error.contains("em0"), "{error}");
    // The host still has its address and its default route.
    assert!(sb.sh_ok("ip -4 route show default").contains("198.51.100.1"));
    sb.ok(&[
        "network",
        "create",
        "-t",
        "bridge",
        "--subnet",
        "198.51.101.0/24",
        "n",
    ]);
});

row!(nat_interface_missing, |sb| {
    sb.add_default_uplink();
    cli_refuses(
        sb,
        &[
            "network",
            "create",
            "-t",
            "bridge",
            "--subnet",
            "10.9.0.0/24",
            "--nat",
            "nosuch0",
            "n",
        ],
        "'nosuch0'",
    );
    sb.ok(&[
        "network",
        "create",
        "-t",
        "bridge",
        "--subnet",
        "10.9.0.0/24",
        "--nat",
        "em0",
        "n",
    ]);
});
