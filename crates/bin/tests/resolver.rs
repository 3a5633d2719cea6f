//! The resolver of container names (issue 9, item 5), end to end: celld
//! answers at 127.0.0.11:53 inside containers on loopback, bridge and
//! custom networks, names only containers that share a network with the
//! asker, forwards everything else to the host's resolvers (a server in an
//! "upstream" namespace, and a stub on the host's loopback), over UDP and
//! TCP, and its names follow containers through stop, start, connect,
//! disconnect, a restart of celld and `rm`. Only containers of DNS mode
//! `cell` (the default on networks) are served.
//!
//! Every sandbox's `/etc/resolv.conf` (bind-mounted in its own mount
//! namespace) names a small DNS server of the test's on the sandbox's
//! loopback, 127.0.0.53, as systemd-resolved's stub would be: it answers
//! names under `upstream.test` and says NXDOMAIN to the rest, so a name
//! celld does not know gets a definite answer from "the host", never from
//! the machine's real resolver. Queries from containers are made with
//! their busybox `nslookup`; TCP ones with a small client here, on a
//! thread that enters the container's namespace.

mod common;
use common::*;
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// What the host's loopback stub answers for names under `upstream.test`.
const STUB_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
/// What the server in the upstream namespace answers for them.
const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const UPSTREAM4: &str = "198.51.100.1";
const HOST4: &str = "198.51.100.2";

/// Starts a DNS server in the network namespace at `netns` (a path this
/// process can open) on `address:53`, UDP and TCP: `NAME.upstream.test`
/// is `answer`, every other name NXDOMAIN. Returns once it listens; its
/// threads end with the test process.
fn start_dns_server(netns: PathBuf, address: Ipv4Addr, answer: Ipv4Addr) {
    let (ready, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ns = File::open(&netns).unwrap_or_else(|e| panic!("open {}: {e}", netns.display()));
        // SAFETY: setns changes only this thread (and the threads it
        // spawns), which serve DNS there and nothing else.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns"
        );
        let udp = UdpSocket::bind((address, 53)).expect("bind udp");
        let tcp = TcpListener::bind((address, 53)).expect("bind tcp");
        std::thread::spawn(move || {
            for mut stream in tcp.incoming().flatten() {
                let mut length = [0u8; 2];
                if stream.read_exact(&mut length).is_err() {
                    continue;
                }
                let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
                if stream.read_exact(&mut query).is_ok() {
                    let response = upstream_answer(&query, answer);
                    let _ = stream.write_all(&(response.len() as u16).to_be_bytes());
                    let _ = stream.write_all(&response);
                }
            }
        });
        ready.send(()).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let (n, peer) = udp.recv_from(&mut buf).expect("recv");
            let _ = udp.send_to(&upstream_answer(&buf[..n], answer), peer);
        }
    });
    listening
        .recv_timeout(Duration::from_secs(10))
        .expect("the test's DNS server to listen");
}

fn upstream_answer(query: &[u8], answer: Ipv4Addr) -> Vec<u8> {
    let request = Message::from_vec(query).expect("a query");
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_available = true;
    response.queries = request.queries.clone();
    let question = &request.queries[0];
    if question.name.to_ascii().ends_with(".upstream.test.") {
        if question.query_type == RecordType::A {
            response.answers.push(Record::from_rdata(
                question.name.clone(),
                60,
                RData::A(hickory_proto::rr::rdata::A(answer)),
            ));
        }
    } else {
        response.metadata.response_code = ResponseCode::NXDomain;
    }
    response.to_vec().unwrap()
}

/// A sandbox whose resolv.conf names the stub on its loopback, with celld
/// started after it.
fn sandbox() -> Sandbox {
    let mut sb = Sandbox::without_celld();
    let conf = sb.dir.path().join("resolv.conf");
    std::fs::write(&conf, "nameserver 127.0.0.53\n").unwrap();
    sb.sh_ok(&format!("mount --bind {} /etc/resolv.conf", conf.display()));
    start_dns_server(sandbox_netns(&sb), Ipv4Addr::new(127, 0, 0, 53), STUB_ANSWER);
    sb.start_celld();
    sb
}

/// The sandbox's own network namespace, as this process opens it.
fn sandbox_netns(sb: &Sandbox) -> PathBuf {
    format!("/proc/{}/ns/net", sb.holder).into()
}

/// A path of the sandbox's mount namespace, as this process opens it.
fn in_sandbox(sb: &Sandbox, path: &Path) -> PathBuf {
    PathBuf::from(format!("/proc/{}/root", sb.holder)).join(path.strip_prefix("/").unwrap())
}

/// `nslookup -type=TYPE NAME 127.0.0.11` inside `ctr`; for `ptr`, NAME is
/// an address and no type is given (busybox turns an address into its
/// reverse name only then).
fn nslookup(sb: &Sandbox, ctr: &str, query_type: &str, name: &str) -> Output {
    let type_flag = format!("-type={query_type}");
    let mut args = vec!["exec", ctr, "nslookup"];
    if query_type != "ptr" {
        args.push(&type_flag);
    }
    args.extend([name, "127.0.0.11"]);
    sb.cell(&args)
}

/// The addresses (or PTR names) `nslookup` found for `name` from `ctr`;
/// fails the test if it found none.
fn resolve(sb: &Sandbox, ctr: &str, query_type: &str, name: &str) -> Vec<String> {
    let out = nslookup(sb, ctr, query_type, name);
    let found = answers(&out);
    assert!(
        out.status.success() && !found.is_empty(),
        "{ctr} could not resolve {name} ({query_type}): {}\n{}",
        describe(&out),
        sb.celld_log()
    );
    found
}

/// The answers in `nslookup`'s output: the `Address:` lines after the
/// `Name:` line, and the names of `name = ...` (PTR) lines.
fn answers(out: &Output) -> Vec<String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = Vec::new();
    let mut in_answer = false;
    for line in text.lines() {
        if line.starts_with("Name:") {
            in_answer = true;
        } else if let Some(address) = line.strip_prefix("Address:").filter(|_| in_answer) {
            found.push(address.trim().to_string());
        } else if let Some((_, name)) = line.split_once("name = ") {
            found.push(name.trim().to_string());
        }
    }
    found
}

/// Asserts that `name` does not exist for `ctr`: NXDOMAIN, not a timeout
/// or a failure of the server.
fn assert_nxdomain(sb: &Sandbox, ctr: &str, query_type: &str, name: &str) {
    let out = nslookup(sb, ctr, query_type, name);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && text.contains("NXDOMAIN"),
        "{ctr} should get NXDOMAIN for {name}: {}",
        describe(&out)
    );
}

fn run(sb: &Sandbox, args: &str) {
    let mut argv: Vec<&str> = vec!["run", "-d"];
    argv.extend(args.split_whitespace());
    argv.extend(["busybox", "sleep", "3600"]);
    sb.ok(&argv);
}

fn ip_of(sb: &Sandbox, ctr: &str, network: &str) -> (String, String) {
    let inspect = sb.inspect(ctr);
    let network_id = sb.ok(&["network", "inspect", network]);
    let network_id: serde_json::Value = serde_json::from_str(&network_id).unwrap();
    let network_id = network_id["network"]["id"].as_str().unwrap().to_string();
    let ep = inspect["container_endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ep| ep["network_id"] == network_id.as_str())
        .unwrap_or_else(|| panic!("{ctr} is not on {network}: {inspect}"))
        .clone();
    (
        ep["ip_address"].as_str().unwrap().to_string(),
        ep["ip_address6"].as_str().unwrap().to_string(),
    )
}

/// Sends `name`/`record_type` over TCP to 127.0.0.11:53 in `ctr`'s
/// namespace, from a thread that enters it.
fn query_tcp(sb: &Sandbox, ctr: &str, name: &str, record_type: RecordType) -> Message {
    let netns = in_sandbox(sb, &sb.netns_path(ctr));
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
    let query = query.to_vec().unwrap();
    let response = std::thread::spawn(move || {
        let ns = File::open(&netns).unwrap_or_else(|e| panic!("open {}: {e}", netns.display()));
        // SAFETY: only this short-lived thread changes namespace.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns"
        );
        let server: SocketAddr = "127.0.0.11:53".parse().unwrap();
        let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(5)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Two queries on one connection, as RFC 7766 allows.
        let mut responses = Vec::new();
        for _ in 0..2 {
            stream.write_all(&(query.len() as u16).to_be_bytes()).unwrap();
            stream.write_all(&query).unwrap();
            let mut length = [0u8; 2];
            stream.read_exact(&mut length).expect("a length");
            let mut response = vec![0u8; usize::from(u16::from_be_bytes(length))];
            stream.read_exact(&mut response).expect("a response");
            responses.push(response);
        }
        assert_eq!(responses[0][2..], responses[1][2..], "both answers alike");
        responses.remove(0)
    })
    .join()
    .unwrap();
    let response = Message::from_vec(&response).unwrap();
    assert_eq!(response.metadata.message_type, MessageType::Response);
    response
}

fn answer_data(response: &Message) -> Vec<String> {
    response.answers.iter().map(|r| r.data.to_string()).collect()
}

#[test]
fn names_resolve_on_loopback_bridge_and_custom_networks_for_containers_that_share_one() {
    require_root!();
    let sb = sandbox();
    sb.sh_ok("ip link add lan0 type veth peer name lan0p && ip link set lan0 up && ip link set lan0p up");
    sb.ok(&["network", "create", "--subnet", "10.11.0.0/24", "loop"]);
    sb.ok(&[
        "network",
        "create",
        "-t",
        "bridge",
        "--subnet",
        "10.12.0.0/24",
        "--subnet6",
        "fd00:12::/64",
        "br",
    ]);
    sb.ok(&[
        "network",
        "create",
        "-t",
        "custom",
        "-i",
        "lan0",
        "--subnet",
        "10.13.0.0/24",
        "lan",
    ]);
    run(&sb, "--name a1 -n loop");
    run(&sb, "--name a2 -n loop");
    run(&sb, "--name b1 -l vnet -n br");
    run(&sb, "--name b2 -n br");
    run(&sb, "--name c1 -n lan");
    run(&sb, "--name c2 -n lan");
    for (asker, other, network) in [("a1", "a2", "loop"), ("b1", "b2", "br"), ("c1", "c2", "lan")] {
        let (v4, _) = ip_of(&sb, other, network);
        assert_eq!(
            resolve(&sb, asker, "a", other),
            [v4.as_str()],
            "{asker} asks for {other}"
        );
        assert_eq!(
            resolve(&sb, asker, "a", &format!("{other}.{network}")),
            [v4.as_str()]
        );
        assert_eq!(resolve(&sb, asker, "ptr", &v4), [other.to_string()]);
        // Isolation: the same names from the other networks do not exist
        // (the lines above are the positive control).
        for stranger in ["a1", "b1", "c1"].into_iter().filter(|s| *s != asker) {
            assert_nxdomain(&sb, stranger, "a", other);
            assert_nxdomain(&sb, stranger, "a", &format!("{other}.{network}"));
            assert_nxdomain(&sb, stranger, "ptr", &v4);
        }
    }
    let (_, v6) = ip_of(&sb, "b2", "br");
    assert!(!v6.is_empty());
    assert_eq!(resolve(&sb, "b1", "aaaa", "b2"), [v6.as_str()]);
    assert_eq!(resolve(&sb, "b1", "ptr", &v6), ["b2"]);
}

#[test]
fn other_names_are_forwarded_to_the_hosts_resolvers_upstream_and_on_its_loopback() {
    require_root!();
    let sb = sandbox();
    sb.sh_ok(&format!(
        "set -e
        mkdir -p /run/netns
        mount -t tmpfs cell-resolver-netns /run/netns
        ip netns add upstream
        ip -n upstream link set lo up
        ip link add em0 type veth peer name uplink netns upstream
        ip addr add {HOST4}/24 dev em0
        ip link set em0 up
        ip -n upstream addr add {UPSTREAM4}/24 dev uplink
        ip -n upstream link set uplink up
        ip route add default via {UPSTREAM4}"
    ));
    start_dns_server(
        in_sandbox(&sb, Path::new("/run/netns/upstream")),
        UPSTREAM4.parse().unwrap(),
        UPSTREAM_ANSWER,
    );
    sb.ok(&[
        "network",
        "create",
        "-t",
        "bridge",
        "--subnet",
        "10.12.0.0/24",
        "br",
    ]);
    run(&sb, "--name web -n br");
    // The host resolves through the stub on its loopback, which no
    // container could reach: celld forwards from the host's namespace.
    assert_eq!(
        resolve(&sb, "web", "a", "www.upstream.test"),
        [STUB_ANSWER.to_string()]
    );
    assert_nxdomain(&sb, "web", "a", "missing.example");
    // The host's resolv.conf changes (written in place, as some tools do):
    // the next query goes to the new server, in the upstream namespace.
    std::fs::write(
        sb.dir.path().join("resolv.conf"),
        format!("nameserver {UPSTREAM4}\n"),
    )
    .unwrap();
    assert_eq!(
        resolve(&sb, "web", "a", "www.upstream.test"),
        [UPSTREAM_ANSWER.to_string()]
    );
    let forwarded = query_tcp(&sb, "web", "tcp.upstream.test.", RecordType::A);
    assert_eq!(answer_data(&forwarded), [UPSTREAM_ANSWER.to_string()]);
}

#[test]
fn tcp_queries_are_answered_too() {
    require_root!();
    let sb = sandbox();
    sb.ok(&["network", "create", "--subnet", "10.11.0.0/24", "loop"]);
    run(&sb, "--name a1 -n loop");
    run(&sb, "--name a2 -n loop");
    let (v4, _) = ip_of(&sb, "a2", "loop");
    // Through the container's resolv.conf (mode cell, the default).
    let out = sb.ok(&["exec", "a1", "nslookup", "a2"]);
    assert!(out.contains(&format!("Address: {v4}")), "{out}");
    let response = query_tcp(&sb, "a1", "a2.", RecordType::A);
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer_data(&response), [v4]);
    let response = query_tcp(&sb, "a1", "nobody.", RecordType::A);
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn names_follow_stop_start_connect_disconnect_a_restart_of_celld_and_rm() {
    require_root!();
    let mut sb = sandbox();
    sb.ok(&[
        "network",
        "create",
        "-t",
        "bridge",
        "--subnet",
        "10.12.0.0/24",
        "front",
    ]);
    sb.ok(&[
        "network",
        "create",
        "-t",
        "bridge",
        "--subnet",
        "10.14.0.0/24",
        "back",
    ]);
    run(&sb, "--name web -n front");
    run(&sb, "--name db -n back");
    assert_nxdomain(&sb, "web", "a", "db");
    sb.ok(&["network", "connect", "front", "db"]);
    let (db_front, _) = ip_of(&sb, "db", "front");
    assert_eq!(resolve(&sb, "web", "a", "db"), [db_front.as_str()]);
    assert_nxdomain(&sb, "web", "a", "db.back");
    sb.ok(&["network", "disconnect", "front", "db"]);
    assert_nxdomain(&sb, "web", "a", "db");
    sb.ok(&["network", "connect", "front", "db"]);
    let (db_front, _) = ip_of(&sb, "db", "front");

    sb.ok(&["stop", "-t", "0", "db"]);
    assert_nxdomain(&sb, "web", "a", "db");
    sb.ok(&["start", "db"]);
    assert_eq!(resolve(&sb, "web", "a", "db"), [db_front.as_str()]);
    // db's own queries are answered again in its new namespace.
    let (web_front, _) = ip_of(&sb, "web", "front");
    assert_eq!(resolve(&sb, "db", "a", "web"), [web_front.as_str()]);

    // celld dies; the next one opens the sockets again and knows the names.
    sb.kill_celld(libc::SIGKILL);
    sb.start_celld();
    assert_eq!(resolve(&sb, "web", "a", "db"), [db_front.as_str()]);
    assert_eq!(resolve(&sb, "db", "a", "web.front"), [web_front]);

    // Another DNS mode: named for others, but its own queries are not
    // answered (nothing listens at 127.0.0.11 in its namespace).
    run(&sb, "--name own --dns inherit -n front");
    let (own_front, _) = ip_of(&sb, "own", "front");
    assert_eq!(resolve(&sb, "web", "a", "own"), [own_front.as_str()]);
    let out = nslookup(&sb, "own", "a", "web");
    assert!(
        !out.status.success() && answers(&out).is_empty(),
        "{}",
        describe(&out)
    );

    sb.ok(&["rm", "-f", "db"]);
    assert_nxdomain(&sb, "web", "a", "db");
    assert_nxdomain(&sb, "web", "ptr", &db_front);
}
