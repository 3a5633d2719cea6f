//! Containers outlive celld: a killed or stopped daemon leaves them
//! running, and a restarted one finds them, or records how they ended.

mod common;
use common::*;

#[test]
fn containers_outlive_a_killed_daemon() {
    require_root!();
    let mut sb = Sandbox::new();
    sb.ok(&["run", "-d", "--name", "survivor", "busybox", "sleep", "1000"]);
    sb.ok(&[
        "run",
        "-d",
        "--name",
        "shortlived",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 5",
    ]);
    let pid = sb.inspect("survivor")["container"]["pid"].as_i64().unwrap();

    sb.kill_celld(libc::SIGKILL);
    assert!(sb.pid_alive(pid), "container died with celld");
    // shortlived ends while celld is down.
    std::thread::sleep(std::time::Duration::from_millis(1500));

    sb.start_celld();
    let c = sb.inspect("survivor");
    assert_eq!(c["container"]["running"], true);
    assert_eq!(c["container"]["pid"], pid);
    let c = sb.inspect("shortlived");
    assert_eq!(c["container"]["running"], false, "{c}");
    assert_eq!(c["container"]["exit_code"], 5);

    // The restarted daemon still controls the survivor, and sees its exit.
    assert_eq!(sb.ok(&["exec", "survivor", "hostname"]), "survivor\n");
    sb.ok(&["stop", "-t", "0", "survivor"]);
    assert_eq!(sb.inspect("survivor")["container"]["exit_code"], 137);
}

#[test]
fn a_gracefully_stopped_daemon_leaves_containers_running_and_watched() {
    require_root!();
    let mut sb = Sandbox::new();
    sb.ok(&[
        "run",
        "-d",
        "--name",
        "waiter",
        "busybox",
        "sh",
        "-c",
        "sleep 2; exit 9",
    ]);
    sb.kill_celld(libc::SIGTERM);
    assert!(!sb.socket.exists(), "celld left its socket behind");
    sb.start_celld();
    assert_eq!(sb.inspect("waiter")["container"]["running"], true);
    // The new daemon watches it again and records its end.
    sb.wait_for("waiter", "waiter to exit", |v| v["container"]["running"] == false);
    assert_eq!(sb.inspect("waiter")["container"]["exit_code"], 9);
}
