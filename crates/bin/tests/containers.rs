//! Containers: run, exec, lifecycle, names and lookup, inspect and lsc,
//! namespaces and the files cell writes into them.

mod common;
use common::*;

#[test]
fn run_attached_prints_kleenes_lines_and_exits_with_the_code() {
    require_root!();
    let sb = Sandbox::new();
    let out = sb.cell(&["run", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert_eq!(lines[0].len(), 12, "container id first: {stderr}");
    let exec_id = lines[1]
        .strip_prefix("created execution instance ")
        .expect("exec line");
    assert_eq!(lines[2], "err");
    assert_eq!(
        lines[3],
        format!("executable {exec_id} and its container exited with exit-code 3")
    );
    let c = sb.inspect(lines[0]);
    assert_eq!(c["container"]["running"], false);
    assert_eq!(c["container"]["exit_code"], 3);
}

#[test]
fn a_missing_command_exits_127() {
    require_root!();
    let sb = Sandbox::new();
    let out = sb.cell(&["run", "busybox", "no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command"));
}

#[test]
fn detached_run_exec_and_lifecycle() {
    require_root!();
    let sb = Sandbox::new();
    let out = sb.cell(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]);
    assert!(out.status.success(), "{}", describe(&out));
    // Detached, the container id is the result, on stdout.
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(cell_core::ids::is_id_prefix(&id) && id.len() == 12, "{id:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .next()
            .unwrap()
            .starts_with("created execution instance "),
        "{stderr}"
    );

    let c = sb.inspect("web");
    assert_eq!(c["container"]["id"], id.as_str());
    assert_eq!(c["container"]["running"], true);
    let pid = c["container"]["pid"].as_i64().unwrap();
    assert!(pid > 0);

    // exec: Kleene's lines, the exit code, and the container runs on.
    let out = sb.cell(&["exec", "web", "sh", "-c", "echo $$ in $(hostname); exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with(" in web\n"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let exec_id = stderr
        .lines()
        .next()
        .unwrap()
        .strip_prefix("created execution instance ")
        .unwrap()
        .to_string();
    assert!(
        stderr.contains(&format!("{exec_id} has exited with exit-code 4")),
        "{stderr}"
    );
    assert_eq!(sb.inspect("web")["container"]["running"], true);

    // exec -d returns at once; the process runs in the container.
    let out = sb.cell(&["exec", "-d", "web", "sh", "-c", "echo detached > /tmp/d"]);
    assert!(out.status.success());
    // It ran when the file it writes is there (a generous deadline, no sleep).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sb.cell(&["exec", "web", "test", "-s", "/tmp/d"]).status.code() != Some(0) {
        assert!(std::time::Instant::now() < deadline, "exec -d never wrote /tmp/d");
    }
    assert_eq!(sb.ok(&["exec", "web", "cat", "/tmp/d"]), "detached\n");

    // The container's init is pid 1 of its own pid namespace.
    let ps = sb.ok(&["exec", "web", "ps"]);
    assert!(
        ps.lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains("sleep 1000")),
        "{ps}"
    );

    // lsc shows running ones; -a shows all, with every column.
    let lsc = sb.ok(&["lsc"]);
    for col in [
        "CONTAINER ID",
        "NAME",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PID",
    ] {
        assert!(lsc.contains(col), "{lsc}");
    }
    assert!(
        lsc.contains("web") && lsc.contains("running") && lsc.contains("sleep 1000"),
        "{lsc}"
    );
    assert!(lsc.contains(&pid.to_string()));

    // stop: SIGTERM is ignored by pid 1 without a handler, so SIGKILL follows.
    sb.ok(&["stop", "-t", "1", "web"]);
    let c = sb.inspect("web");
    assert_eq!(c["container"]["running"], false);
    assert_eq!(c["container"]["exit_code"], 137);
    assert!(!sb.pid_alive(pid), "init still alive");
    assert!(!sb.ok(&["lsc"]).contains("web"));
    assert!(sb.ok(&["lsc", "-a"]).contains("stopped"));
    sb.fails(&["exec", "web", "true"], "container 'web' is not running");

    // start again, then restart: a new init each time.
    sb.ok(&["start", "web"]);
    let first = sb.inspect("web")["container"]["pid"].as_i64().unwrap();
    sb.ok(&["restart", "-t", "1", "web"]);
    let second = sb.inspect("web")["container"]["pid"].as_i64().unwrap();
    assert_ne!(first, second);
    assert_eq!(sb.inspect("web")["container"]["running"], true);

    // rm refuses a running container, rm -f kills it.
    sb.fails(&["rm", "web"], "container 'web' is running");
    assert_eq!(sb.inspect("web")["container"]["running"], true);
    sb.ok(&["rm", "-f", "web"]);
    sb.fails(&["container", "inspect", "web"], "no such container: web");
    assert!(!sb.pid_alive(second));
}

#[test]
fn stop_lets_a_process_with_a_handler_exit_cleanly() {
    require_root!();
    let sb = Sandbox::new();
    sb.ok(&[
        "run",
        "-d",
        "--name",
        "polite",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' TERM; while true; do sleep 0.1; done",
    ]);
    sb.ok(&["stop", "-t", "10", "polite"]);
    assert_eq!(sb.inspect("polite")["container"]["exit_code"], 7);
}

#[test]
fn inspect_has_kleenes_shape() {
    require_root!();
    let sb = Sandbox::new();
    let id = sb
        .ok(&["create", "-e", "A=1", "busybox", "echo", "hi"])
        .trim()
        .to_string();
    let v = sb.inspect(&id);
    let c = &v["container"];
    for key in [
        "id",
        "name",
        "image_id",
        "cmd",
        "user",
        "env",
        "network_driver",
        "public_ports",
        "params",
        "created",
        "running",
        "pid",
    ] {
        assert!(c.get(key).is_some(), "container.{key} missing: {v}");
    }
    assert_eq!(c["id"], id.as_str());
    assert_eq!(c["cmd"], serde_json::json!(["echo", "hi"]));
    assert_eq!(c["env"], serde_json::json!(["A=1"]));
    assert_eq!(c["network_driver"], "host");
    assert_eq!(c["user"], "root");
    assert!(v["container_endpoints"].is_array());
    assert!(v["container_mountpoints"].is_array());
    // A random adjective_surname name.
    let name = c["name"].as_str().unwrap();
    let (adjective, surname) = name.split_once('_').expect("adjective_surname");
    assert!(!adjective.is_empty() && !surname.is_empty(), "{name}");
}

#[test]
fn names_ids_and_prefixes() {
    require_root!();
    let sb = Sandbox::new();
    sb.ok(&["create", "--name", "alpha", "busybox", "true"]);
    sb.fails(
        &["create", "--name", "alpha", "busybox", "true"],
        "container name 'alpha' is already in use",
    );
    sb.fails(
        &["create", "--name", "a/b", "busybox", "true"],
        "invalid container name 'a/b'",
    );
    sb.fails(
        &["create", "--name", "a b", "busybox", "true"],
        "invalid container name 'a b'",
    );
    assert_eq!(sb.container_count(), 1);

    // Make ids until two share a first hex digit, then that digit is ambiguous.
    let mut ids: Vec<String> = vec![
        sb.inspect("alpha")["container"]["id"]
            .as_str()
            .unwrap()
            .to_string(),
    ];
    let shared = loop {
        let id = sb.ok(&["create", "busybox", "true"]).trim().to_string();
        if let Some(other) = ids.iter().find(|o| o[..1] == id[..1]) {
            break (id[..1].to_string(), other.clone(), id);
        }
        ids.push(id);
    };
    let (prefix, a, b) = shared;
    let before = sb.container_count();
    let err = sb.fails(
        &["rm", &prefix],
        &format!("ambiguous container id prefix '{prefix}'"),
    );
    assert!(err.contains(&a) && err.contains(&b), "{err}");
    assert_eq!(
        sb.container_count(),
        before,
        "an ambiguous prefix removed something"
    );
    // A full id and an unambiguous prefix both work.
    let unique = &a[..12];
    sb.ok(&["container", "inspect", unique]);
    sb.ok(&["rm", &b[..10]]);
    sb.fails(&["container", "inspect", &b], "no such container");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    require_root!();
    let sb = Sandbox::new();
    sb.ok(&["image", "create", "busybox"]);
    let cases: &[(&[&str], &str)] = &[
        (&["run", "nosuchimage", "true"], "no such image: nosuchimage"),
        (
            &["run", "-l", "bogus", "busybox", "true"],
            "unknown network driver 'bogus'",
        ),
        (
            &["run", "-p", "8080", "busybox"],
            "cannot publish ports of a container using the 'host' network driver",
        ),
        (
            &["run", "-l", "disabled", "-p", "80", "busybox"],
            "cannot publish ports of a container using the 'disabled' network driver",
        ),
        (
            &["run", "-l", "ipnet", "-p", "99999", "busybox"],
            "invalid port spec '99999'",
        ),
        (
            &["run", "-l", "ipnet", "-p", "80/sctp", "busybox"],
            "invalid port spec '80/sctp'",
        ),
        (
            &["run", "-e", "NOEQUALS", "busybox", "true"],
            "invalid environment variable 'NOEQUALS'",
        ),
        (
            &["run", "-J", "allow.everything", "busybox", "true"],
            "unknown parameter 'allow.everything'",
        ),
        (
            &["run", "-n", "nosuchnet", "busybox", "true"],
            "no such network: nosuchnet",
        ),
        (
            &["start", "nosuchcontainer"],
            "no such container: nosuchcontainer",
        ),
        (
            &["exec", "nosuchcontainer", "true"],
            "no such container: nosuchcontainer",
        ),
    ];
    for (args, message) in cases {
        let stderr = sb.fails(args, message);
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "one line for {args:?}: {stderr}"
        );
    }
    assert_eq!(sb.container_count(), 0, "a refused request left a container");
    assert_eq!(std::fs::read_dir(sb.root.join("containers")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(sb.root.join("execs")).unwrap().count(), 0);
}

#[test]
fn container_files_hostname_and_namespaces() {
    require_root!();
    let sb = Sandbox::new();
    let hosts = sb.ok(&["run", "--name", "files", "busybox", "cat", "/etc/hosts"]);
    assert!(hosts.lines().any(|l| l.ends_with("\tfiles")), "{hosts}");
    assert_eq!(sb.ok(&["start", "files"]).trim(), "files");
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    assert_eq!(sb.ok(&["run", "busybox", "cat", "/etc/resolv.conf"]), host_resolv);
    assert_eq!(
        sb.ok(&["run", "--name", "named", "busybox", "hostname"]),
        "named\n"
    );
    // Own mount namespace: the overlay root is not visible in the sandbox.
    let mounts = String::from_utf8_lossy(&sb.sh("cat /proc/mounts").stdout).into_owned();
    assert!(
        !mounts.contains("overlay"),
        "overlay leaked into celld's mount namespace: {mounts}"
    );
    // A minimal /dev, /proc and /sys inside.
    let dev = sb.ok(&["run", "busybox", "ls", "/dev"]);
    for node in ["null", "zero", "urandom", "tty", "pts", "shm"] {
        assert!(dev.contains(node), "{dev}");
    }
    assert_eq!(
        sb.ok(&[
            "run",
            "busybox",
            "sh",
            "-c",
            "test -d /proc/self && test -d /sys/class && echo ok"
        ]),
        "ok\n"
    );
    // Writes go to the container's upper layer, not to the image.
    sb.ok(&[
        "run",
        "--name",
        "writer",
        "busybox",
        "sh",
        "-c",
        "echo x > /written",
    ]);
    assert!(
        sb.ok(&["run", "busybox", "ls", "/"])
            .lines()
            .all(|l| l != "written")
    );
}

#[test]
fn prune_removes_only_stopped_containers() {
    require_root!();
    let sb = Sandbox::new();
    sb.ok(&["run", "--name", "done1", "busybox", "true"]);
    sb.ok(&["run", "--name", "done2", "busybox", "true"]);
    sb.ok(&["run", "-d", "--name", "alive", "busybox", "sleep", "100"]);
    let pruned = sb.ok(&["container", "prune"]);
    assert_eq!(pruned.lines().count(), 2, "{pruned}");
    let all = sb.ok(&["lsc", "-a"]);
    assert!(
        all.contains("alive") && !all.contains("done1") && !all.contains("done2"),
        "{all}"
    );
}
