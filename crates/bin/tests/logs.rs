//! `cell logs`: a container's output kept on disk by its supervisor
//! (bounded by rotation), printed whole, as a tail, with timestamps,
//! followed live, after the container stopped and after a celld restart;
//! and its bad input.

mod common;
use common::*;
use std::time::Duration;

/// A container that prints `ready`, then echoes each line written to the
/// fifo `/p` as `got LINE`, and exits after `bye`. It holds the fifo open
/// for writing itself, so a writer that closes never makes `read` see the
/// end of the file (reopening the fifo per line would race with the
/// writer's close).
const ECHO_FIFO: &str = "mkfifo /p; exec 3<>/p; echo ready; \
     while read line <&3; do echo \"got $line\"; [ \"$line\" = bye ] && exit 0; done";

fn stopped(c: &serde_json::Value) -> bool {
    c["container"]["running"] == false
}

/// `cell logs ARGS...`: (stdout, stderr), asserting it succeeded.
fn logs(sb: &Sandbox, args: &[&str]) -> (String, String) {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    let out = sb.cell(&all);
    assert!(out.status.success(), "{}\n{}", describe(&out), sb.celld_log());
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn logs_of_a_stopped_container_every_run_tail_and_timestamps() {
    require_root!();
    let sb = Sandbox::new();
    let script = "echo one; echo two >&2; echo three; printf 'four'";
    sb.ok(&["run", "-d", "--name", "web", "busybox", "sh", "-c", script]);
    sb.wait_for("web", "the container to stop", stopped);

    // stdout to stdout, stderr to stderr; an unfinished last line too.
    let (stdout, stderr) = logs(&sb, &["web"]);
    assert_eq!(stdout, "one\nthree\nfour");
    assert_eq!(stderr, "two\n");

    // The last 2 lines of both streams together. The supervisor reads the
    // two pipes in turn, so how `two` falls between the stdout lines is
    // not fixed; the order within each stream is.
    let (stdout, stderr) = logs(&sb, &["--tail", "2", "web"]);
    assert_eq!(
        stdout.lines().count() + stderr.lines().count(),
        2,
        "{stdout:?} {stderr:?}"
    );
    assert!(stdout.ends_with("\nfour") || stdout == "four", "{stdout:?}");
    let (stdout, _) = logs(&sb, &["--tail", "3", "web"]);
    assert!(stdout.ends_with("three\nfour"), "{stdout:?}");
    let (stdout, stderr) = logs(&sb, &["--tail", "0", "web"]);
    assert_eq!((stdout.as_str(), stderr.as_str()), ("", ""));

    // RFC 3339 in UTC with nanoseconds, a space, then the line.
    let (stdout, _) = logs(&sb, &["--timestamps", "web"]);
    let now = chrono::Utc::now();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (line, text) in lines.iter().zip(["one", "three", "four"]) {
        let (stamp, rest) = line.split_once(' ').expect("a timestamp and a space");
        assert_eq!(rest, text);
        assert_eq!(stamp.len(), "2026-01-01T00:00:00.000000000Z".len(), "{stamp}");
        assert!(stamp.ends_with('Z'), "{stamp}");
        let time = chrono::DateTime::parse_from_rfc3339(stamp).expect("RFC 3339");
        let age = now.signed_duration_since(time);
        assert!(
            age >= chrono::TimeDelta::zero() && age < chrono::TimeDelta::minutes(5),
            "{stamp}"
        );
    }

    // Every run since create, oldest first, as Docker shows them.
    sb.ok(&["start", "web"]);
    sb.wait_for("web", "the second run to stop", stopped);
    let (stdout, stderr) = logs(&sb, &["web"]);
    assert_eq!(stdout, "one\nthree\nfourone\nthree\nfour");
    assert_eq!(stderr, "two\ntwo\n");
}

#[test]
fn follow_prints_new_lines_live_and_ends_when_the_container_stops() {
    require_root!();
    let sb = Sandbox::new();
    sb.ok(&["run", "-d", "--name", "web", "busybox", "sh", "-c", ECHO_FIFO]);
    let mut follower = sb.spawn_cell(&["logs", "-f", "--timestamps", "web"]);
    follower.wait_stdout("ready");

    // Output written after `logs -f` started reaches it.
    sb.ok(&["exec", "web", "sh", "-c", "echo late > /p"]);
    let line = follower.wait_stdout("got late");
    assert!(line.ends_with("Z got late"), "{line}");

    // A plain `logs` of the running container returns at once (the
    // positive control: the follower above is still waiting).
    let (stdout, _) = logs(&sb, &["web"]);
    assert_eq!(stdout, "ready\ngot late\n");

    // The container ends on `bye`, and its end may kill this exec (the
    // init of its pid namespace is gone) before it exits: its own exit
    // code does not matter here.
    let _ = sb.cell(&["exec", "web", "sh", "-c", "echo bye > /p"]);
    follower.wait_stdout("got bye");
    let finished = follower.finish(Duration::from_secs(20));
    assert_eq!(finished.code, Some(0), "{:?}", finished.stderr);

    // After the container stopped, everything is still there.
    sb.wait_for("web", "the container to stop", stopped);
    let (stdout, _) = logs(&sb, &["--tail", "2", "web"]);
    assert_eq!(stdout, "got late\ngot bye\n");
}

#[test]
fn logs_survive_a_celld_restart_and_follow_on_from_the_next_celld() {
    require_root!();
    let mut sb = Sandbox::new();
    sb.ok(&["run", "-d", "--name", "web", "busybox", "sh", "-c", ECHO_FIFO]);
    let mut follower = sb.spawn_cell(&["logs", "-f", "web"]);
    follower.wait_stdout("ready");
    drop(follower);

    sb.kill_celld(libc::SIGKILL);
    sb.start_celld();
    let (stdout, _) = logs(&sb, &["web"]);
    assert_eq!(stdout, "ready\n");

    let mut follower = sb.spawn_cell(&["logs", "-f", "web"]);
    follower.wait_stdout("ready");
    sb.ok(&["exec", "web", "sh", "-c", "echo again > /p"]);
    follower.wait_stdout("got again");
    sb.ok(&["stop", "-t", "1", "web"]);
    let finished = follower.finish(Duration::from_secs(30));
    assert_eq!(finished.code, Some(0), "{:?}", finished.stderr);

    // Stopped by `cell stop`: the logs remain.
    let (stdout, _) = logs(&sb, &["web"]);
    assert_eq!(stdout, "ready\ngot again\n");
}

#[test]
fn rotation_keeps_the_log_under_the_cap_with_the_newest_lines() {
    require_root!();
    let mut sb = Sandbox::without_celld();
    let (max_bytes, files) = (4096u64, 2usize);
    sb.start_celld_with_config(&format!("log_max_bytes = {max_bytes}\nlog_files = {files}\n"));
    let script = "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo line $i; done";
    sb.ok(&["run", "-d", "--name", "web", "busybox", "sh", "-c", script]);
    sb.wait_for("web", "the container to stop", stopped);

    // Some 30 KB were printed; at most `files` files of the cap are kept.
    let execs: Vec<_> = std::fs::read_dir(sb.root.join("execs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(execs.len(), 1, "{execs:?}");
    let mut kept = Vec::new();
    let mut on_disk = 0;
    for entry in std::fs::read_dir(&execs[0]).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let len = entry.metadata().unwrap().len();
        if name.starts_with("output.log") {
            // Time indexes count towards the cap too.
            on_disk += len;
            if !name.ends_with(".times") {
                kept.push((name, len));
            }
        }
    }
    kept.sort();
    assert_eq!(kept.len(), files, "{kept:?}");
    assert!(kept.iter().all(|(_, len)| *len <= max_bytes), "{kept:?}");
    assert!(on_disk <= max_bytes * files as u64, "{on_disk} bytes kept");

    let (stdout, _) = logs(&sb, &["web"]);
    // Files hold whole frames, and a frame is what one read of the pipe
    // got, so the oldest line kept may have lost its start.
    let mut lines: Vec<&str> = stdout.lines().collect();
    if !lines[0].starts_with("line ") {
        lines.remove(0);
    }
    let numbers: Vec<u32> = lines
        .iter()
        .map(|l| l.strip_prefix("line ").unwrap().parse().unwrap())
        .collect();
    assert_eq!(numbers.last(), Some(&3000));
    assert!(numbers[0] > 1, "the oldest lines were dropped: {}", numbers[0]);
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap in {numbers:?}"
    );

    // An attach to the finished run replays the same kept output, rotated
    // files first, then its exit code.
    let exec_id = execs[0].file_name().unwrap().to_str().unwrap();
    let mut attach = sb.attach_raw(exec_id);
    let mut replayed = String::new();
    let mut exit = None;
    while let Some((kind, payload)) = attach.next_frame() {
        match kind {
            cell_core::frame::FrameKind::Stdout => replayed.push_str(&String::from_utf8_lossy(&payload)),
            cell_core::frame::FrameKind::Exit => exit = Some(cell_core::frame::exit_code(&payload).unwrap()),
            other => panic!("unexpected {other:?} frame"),
        }
    }
    assert_eq!(replayed, stdout);
    assert_eq!(exit, Some(0));
}

#[test]
fn bad_input_is_refused_in_one_line_and_changes_nothing() {
    require_root!();
    let sb = Sandbox::new();
    sb.ok(&[
        "run",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two",
    ]);
    // The positive control: a good tail works.
    assert_eq!(logs(&sb, &["--tail", "1", "web"]).0, "two\n");
    assert_eq!(logs(&sb, &["-n", "1", "web"]).0, "two\n");

    let stderr = sb.fails(&["logs", "nosuch"], "nosuch");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for bad in ["-1", "abc"] {
        let stderr = sb.fails(&["logs", "--tail", bad, "web"], &format!("'{bad}'"));
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("tail"), "{stderr}");
    }
    let (status, body) = sb.http("GET", "/containers/web/logs?tail=-1", b"");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid tail '-1'"), "{body}");
    let (status, body) = sb.http("GET", "/containers/nosuch/logs", b"");
    assert_eq!(status, 404, "{body}");
    let (status, body) = sb.http("GET", "/containers/web/logs?follow=maybe", b"");
    assert_eq!(status, 400, "{body}");

    // Nothing changed.
    assert_eq!(logs(&sb, &["web"]).0, "one\ntwo\n");
    assert_eq!(sb.container_count(), 1);
}

#[test]
fn a_follower_is_told_in_one_line_when_celld_stops() {
    require_root!();
    let mut sb = Sandbox::new();
    sb.ok(&["run", "-d", "--name", "web", "busybox", "sh", "-c", ECHO_FIFO]);
    let mut follower = sb.spawn_cell(&["logs", "-f", "web"]);
    follower.wait_stdout("ready");

    sb.kill_celld(libc::SIGTERM);
    let finished = follower.finish(Duration::from_secs(20));
    assert_eq!(finished.code, Some(125), "{:?}", finished.stderr);
    assert_eq!(
        finished.stderr,
        vec![cell_api::DAEMON_STOPPED.to_string()],
        "{:?}",
        finished.stdout
    );

    // The container ran on: the next celld shows it running, logs intact.
    sb.start_celld();
    assert_eq!(sb.inspect("web")["container"]["running"], true);
    assert_eq!(logs(&sb, &["web"]).0, "ready\n");
}

#[test]
fn celld_refuses_log_limits_it_cannot_keep() {
    require_root!();
    let sb = Sandbox::without_celld();
    for (config, needle) in [
        ("log_max_bytes = 10\n", "invalid log_max_bytes 10"),
        ("log_files = 0\n", "invalid log_files 0"),
    ] {
        let path = sb.dir.path().join("bad.toml");
        std::fs::write(&path, config).unwrap();
        let out = sb
            .in_ns(CELLD)
            .args(["--root", sb.root.to_str().unwrap()])
            .args(["--socket", sb.socket.to_str().unwrap()])
            .args(["--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config}: {}", describe(&out));
        assert!(stderr.contains(needle), "{config}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        // Refused before anything was made.
        assert!(!sb.root.exists() && !sb.socket.exists());
    }
}

#[test]
fn a_follower_whose_reader_goes_away_ends_with_zero() {
    require_root!();
    let sb = Sandbox::new();
    sb.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "while :; do echo tick; sleep 0.05; done",
    ]);
    let mut follower = std::process::Command::new(CELL)
        .arg("-H")
        .arg(format!("unix://{}", sb.socket.display()))
        .args(["logs", "-f", "ticker"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Positive control: while someone reads, lines keep coming and the
    // follower keeps running.
    let mut reader = std::io::BufReader::new(follower.stdout.take().unwrap());
    let mut line = String::new();
    for _ in 0..3 {
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        assert_eq!(line, "tick\n");
    }
    assert!(
        follower.try_wait().unwrap().is_none(),
        "the follower ended while read"
    );
    // The reader goes away (as `| head` does): the next write fails and
    // the follower ends, with 0, as tail -f does on a broken pipe.
    drop(reader);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = follower.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the follower never ended");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert_eq!(sb.inspect("ticker")["container"]["running"], true);
}
