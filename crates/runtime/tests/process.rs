//! `cell_runtime::process::find_shim` against real processes whose command
//! line is a supervisor's (`cell-shim-test shim STATE_DIR` in idle mode),
//! without root: found through `shim.pid`, through a scan of `/proc` when
//! that file is missing or stale, and not found once the process is gone
//! or for another state directory.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cell_runtime::process::{find_shim, is_alive, is_our_shim, wait_for_exit};
use cell_runtime::shim::pid_path;

const SHIM: &str = env!("CARGO_BIN_EXE_cell-shim-test");

/// A process that looks like the supervisor of `state_dir` and stays until
/// its stdin is closed.
fn fake_shim(state_dir: &Path) -> Child {
    Command::new(SHIM)
        .arg("shim")
        .arg(state_dir)
        .env("CELL_SHIM_TEST_IDLE", "1")
        .stdin(Stdio::piped())
        .spawn()
        .expect("the test shim runs")
}

/// Waits until `child`'s command line is visible in /proc (exec done).
fn wait_until_ours(child: &Child, state_dir: &Path) {
    let pid = child.id() as i32;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !is_our_shim(pid, state_dir) {
        assert!(
            std::time::Instant::now() < deadline,
            "{pid} never looked like a shim"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn stop(mut child: Child) {
    drop(child.stdin.take());
    child.wait().unwrap();
}

#[test]
fn finds_the_supervisor_by_pid_file_or_by_scan() {
    let tmp = tempfile::tempdir().unwrap();
    let state_dir = tmp.path().join("exec-1");
    let other_dir = tmp.path().join("exec-2");
    std::fs::create_dir_all(&state_dir).unwrap();
    std::fs::create_dir_all(&other_dir).unwrap();
    assert_eq!(find_shim(&state_dir), None);

    let ours = fake_shim(&state_dir);
    let other = fake_shim(&other_dir);
    wait_until_ours(&ours, &state_dir);
    wait_until_ours(&other, &other_dir);
    let pid = ours.id() as i32;
    assert!(!is_our_shim(pid, &other_dir));

    // No shim.pid: celld was killed before anything was recorded.
    assert_eq!(find_shim(&state_dir), Some(pid));
    assert_eq!(find_shim(&other_dir), Some(other.id() as i32));
    // A stale pid file naming an unrelated process (this test) is not
    // trusted; the scan still finds the supervisor.
    let mut file = std::fs::File::create(pid_path(&state_dir)).unwrap();
    writeln!(file, "{}", std::process::id()).unwrap();
    assert_eq!(find_shim(&state_dir), Some(pid));
    // A pid file naming the supervisor of another state dir neither.
    std::fs::write(pid_path(&state_dir), format!("{}\n", other.id())).unwrap();
    assert_eq!(find_shim(&state_dir), Some(pid));
    std::fs::write(pid_path(&state_dir), format!("{pid}\n")).unwrap();
    assert_eq!(find_shim(&state_dir), Some(pid));

    stop(ours);
    assert!(!is_alive(pid));
    assert!(wait_for_exit(pid, Some(Duration::ZERO)));
    assert_eq!(find_shim(&state_dir), None);
    // Positive control: the other one is still found.
    assert_eq!(find_shim(&other_dir), Some(other.id() as i32));
    stop(other);
    assert_eq!(find_shim(&other_dir), None);
}
