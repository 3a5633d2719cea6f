//! Interactive sessions (issue 11, item 1): `run -it` and `exec -it` on a
//! terminal the test holds, `-i` with pipes, `-t` without a terminal, and
//! a session whose daemon dies.

mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const PROMPT: &str = "ready> ";
const LONG: Duration = Duration::from_secs(30);

/// Types `command` at the shell and returns what the terminal showed until
/// it finished. The end is a marker only the shell's arithmetic can print
/// (the echo of the typed line holds the expression, not its value), since
/// prompts are no landmark: the line editor redraws them on a resize.
fn run_command(session: &mut PtyCell, command: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1000);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    session.type_keys(&format!("{command}; echo end$(({n}+1))\r"));
    session.wait_output(&format!("end{}", n + 1))
}

/// Runs `stty size` until the shell reports `rows cols`: a resize reaches
/// the process through cell's SIGWINCH handler, which runs beside the keys
/// already on their way, so the first answers may still be the old size.
fn wait_for_size(session: &mut PtyCell, rows: u16, cols: u16) {
    let want = format!("\n{rows} {cols}\r");
    for _ in 0..100 {
        if run_command(session, "stty size").contains(&want) {
            return;
        }
    }
    panic!("the process never saw {want:?}: {}", session.shown());
}

fn prompt_env() -> String {
    format!("PS1={PROMPT}")
}

/// `cell ARGS` with `input` on its stdin through a pipe.
fn cell_with_stdin(sb: &Sandbox, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = Command::new(CELL)
        .arg("-H")
        .arg(format!("unix://{}", sb.socket.display()))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cell");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    // The end of input is what lets `cat` or `wc` finish.
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn run_it_gives_a_terminal_that_follows_resizes_passes_ctrl_c_and_returns_the_exit_code() {
    require_root!();
    let sb = Sandbox::new();
    let env = prompt_env();
    let mut session = sb.spawn_cell_in_pty(&["run", "-it", "-e", &env, "busybox", "sh"], 24, 80);
    session.wait_output(PROMPT);
    assert!(
        session.is_raw(),
        "the terminal is not in raw mode during the session"
    );

    let answer = run_command(&mut session, "echo $((6*7))");
    assert!(answer.contains("\r\n42\r\n"), "{answer:?}");

    // The size given at start, then a resize.
    wait_for_size(&mut session, 24, 80);
    session.resize(40, 132);
    wait_for_size(&mut session, 40, 132);

    // With a controlling terminal, Ctrl-C interrupts the foreground job,
    // not the shell nor cell.
    // The job announces itself from inside, so a Ctrl-C that comes at
    // once still finds it (and kills it by default, as it would the sleep).
    session.type_keys("sh -c 'echo started$((1+1)); exec sleep 1000'\r");
    session.wait_output("started2");
    session.type_keys("\x03");
    let status = run_command(&mut session, "echo status=$?");
    assert!(status.contains("status=130"), "{status:?}");
    // The terminal is the shell's controlling terminal.
    let tty = run_command(&mut session, "[ -t 0 ] && [ -t 1 ] && echo stdin-is-a-tty");
    assert!(tty.contains("stdin-is-a-tty"), "{tty:?}");

    session.type_keys("exit 3\r");
    session.wait_output("exited with exit-code 3");
    let (code, shown) = session.finish(LONG);
    assert_eq!(code, Some(3), "{shown}");
    assert!(!session.is_raw(), "cell left the terminal in raw mode");
}

#[test]
fn exec_it_gives_a_terminal_and_ctrl_d_ends_it() {
    require_root!();
    let sb = Sandbox::new();
    sb.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    let env = prompt_env();
    let mut session = sb.spawn_cell_in_pty(&["exec", "-it", "-e", &env, "box", "sh"], 30, 100);
    session.wait_output(PROMPT);
    let answer = run_command(&mut session, "echo $((6*7)) $(hostname)");
    assert!(answer.contains("\r\n42 box\r\n"), "{answer:?}");
    wait_for_size(&mut session, 30, 100);
    session.resize(50, 90);
    wait_for_size(&mut session, 50, 90);
    let status = run_command(&mut session, "(exit 7); echo status=$?");
    assert!(status.contains("status=7"), "{status:?}");

    // Ctrl-D is a byte for the container's terminal: the shell's end of
    // input. A ^D typed after the prompt is drawn but before the shell's
    // line editor has switched the terminal out of canonical mode is eaten
    // by the line discipline (as for a user typing that fast), so it is
    // typed again until the shell ends, a few times at most.
    let mut ended = false;
    for _ in 0..10 {
        session.type_keys("\x04");
        if session
            .try_wait_output("has exited with exit-code 0", Duration::from_secs(2))
            .is_ok()
        {
            ended = true;
            break;
        }
    }
    assert!(ended, "Ctrl-D never ended the shell");
    let (code, shown) = session.finish(LONG);
    assert_eq!(code, Some(0), "{shown}");
    assert!(!session.is_raw(), "cell left the terminal in raw mode");
    // The container itself goes on.
    assert_eq!(sb.inspect("box")["container"]["running"], true);
}

#[test]
fn i_without_t_streams_stdin_through_pipes_and_its_end_closes_the_process_stdin() {
    require_root!();
    let sb = Sandbox::new();
    sb.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);

    let out = cell_with_stdin(&sb, &["exec", "-i", "box", "cat"], b"hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n", "{}", describe(&out));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    // A larger input, split over many frames, arrives whole and in order.
    let big: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let out = cell_with_stdin(&sb, &["exec", "-i", "box", "md5sum"], big.as_bytes());
    let local = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(big.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&local.stdout),
        "{}",
        describe(&out)
    );

    // run -i: the init's stdin, and the exit code comes back.
    let out = cell_with_stdin(
        &sb,
        &["run", "-i", "busybox", "sh", "-c", "wc -l; exit 4"],
        b"a\nb\nc\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "3",
        "{}",
        describe(&out)
    );
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));

    // Without -i the process's stdin stays /dev/null, as before: the piped
    // input does not reach it (the positive control is the cat above).
    let out = cell_with_stdin(&sb, &["exec", "box", "cat"], b"hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{}", describe(&out));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[test]
fn t_without_a_terminal_is_refused_and_creates_nothing() {
    require_root!();
    let sb = Sandbox::new();
    sb.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    assert_eq!(sb.container_count(), 1);
    let execs_before = sb.inspect("box");

    for args in [
        &["run", "-t", "busybox", "sh"][..],
        &["run", "-it", "--name", "never", "busybox", "sh"],
        &["exec", "-it", "box", "sh"],
        &["exec", "-t", "box", "true"],
    ] {
        let stderr = sb.fails(args, "the input device is not a TTY");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        let out = sb.cell(args);
        assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    }
    assert_eq!(sb.container_count(), 1, "a refused run created a container");
    assert_eq!(sb.inspect("box"), execs_before);

    // The positive control: the same without -t runs.
    sb.ok(&["run", "--name", "plain", "busybox", "true"]);
    assert_eq!(sb.container_count(), 2);
}

#[test]
fn a_session_whose_daemon_dies_says_so_in_one_line_and_the_process_keeps_running() {
    require_root!();
    let mut sb = Sandbox::new();
    let env = prompt_env();
    let mut session = sb.spawn_cell_in_pty(
        &["run", "-it", "--name", "kept", "-e", &env, "busybox", "sh"],
        24,
        80,
    );
    session.wait_output(PROMPT);
    sb.kill_celld(libc::SIGKILL);
    session.wait_output("lost the connection to celld; the container is still running");
    let (code, shown) = session.finish(LONG);
    assert_eq!(code, Some(125), "{shown}");
    assert!(!session.is_raw(), "cell left the terminal in raw mode");

    sb.start_celld();
    assert_eq!(sb.inspect("kept")["container"]["running"], true, "{shown}");

    // A celld that stops in order says so, and the exec goes on too.
    let mut session = sb.spawn_cell_in_pty(&["exec", "-it", "-e", &env, "kept", "sh"], 24, 80);
    session.wait_output(PROMPT);
    sb.kill_celld(libc::SIGTERM);
    session.wait_output("celld stopped; the container is still running");
    let (code, shown) = session.finish(LONG);
    assert_eq!(code, Some(125), "{shown}");
    assert!(!session.is_raw(), "cell left the terminal in raw mode");
    sb.start_celld();
    assert_eq!(sb.inspect("kept")["container"]["running"], true, "{shown}");
    let processes = sb.ok(&["exec", "kept", "ps", "-o", "comm"]);
    let shells = processes.lines().filter(|l| l.trim() == "sh").count();
    assert_eq!(shells, 2, "the init's and the exec's shells run on: {processes}");
}

#[test]
fn t_without_i_gives_a_terminal_for_output_and_leaves_the_local_one_cooked() {
    require_root!();
    let sb = Sandbox::new();
    let mut session = sb.spawn_cell_in_pty(
        &[
            "run",
            "-t",
            "busybox",
            "sh",
            "-c",
            "[ -t 1 ] && echo on-a-tty; stty size; exit 5",
        ],
        33,
        77,
    );
    let shown = session.wait_output("exited with exit-code 5");
    // The local terminal stays cooked, so its own output processing adds
    // a carriage return to the container terminal's "\r\n" (as Docker's
    // `-t` without `-i` on Linux).
    assert!(shown.contains("on-a-tty\r\r\n33 77\r\r\n"), "{shown:?}");
    let (code, shown) = session.finish(LONG);
    assert_eq!(code, Some(5), "{shown}");
    assert!(!session.is_raw());
}

#[test]
fn bad_stdio_requests_and_other_upgrades_are_refused_with_400() {
    require_root!();
    use std::io::{Read, Write as _};
    let sb = Sandbox::new();
    sb.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    let before = sb.inspect("box");

    let (status, body) = sb.http(
        "POST",
        "/containers/box/exec",
        br#"{"cmd":["sh"],"window":{"rows":24,"cols":80}}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("a window size was given without a terminal"),
        "{body}"
    );
    let (status, body) = sb.http("POST", "/containers/box/start", br#"{"tty":true,"rows":24}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown field `rows`"), "{body}");
    assert_eq!(
        sb.inspect("box"),
        before,
        "a refused request changed the container"
    );

    // An attach asking for another protocol is refused; the positive
    // control is the same request with cell-attach, which switches.
    let out = sb.cell(&["exec", "-d", "box", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = stderr
        .split_whitespace()
        .last()
        .unwrap_or_else(|| panic!("no exec id: {}", describe(&out)))
        .to_string();
    for (protocol, want) in [("websocket", " 400 "), ("cell-attach", " 101 ")] {
        let mut s = std::os::unix::net::UnixStream::connect(&sb.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "GET /execs/{id}/attach HTTP/1.1\r\nHost: celld\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\n"
        )
        .unwrap();
        let mut head = [0u8; 64];
        let n = s.read(&mut head).unwrap();
        let head = String::from_utf8_lossy(&head[..n]);
        assert!(head.contains(want), "{protocol}: {head:?}");
    }
}

#[test]
fn a_client_stopped_by_sigterm_or_sighup_restores_the_terminal_and_the_process_runs_on() {
    require_root!();
    let sb = Sandbox::new();
    sb.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    let env = prompt_env();
    for (n, signal) in [(1, libc::SIGTERM), (2, libc::SIGHUP)] {
        let mut session = sb.spawn_cell_in_pty(&["exec", "-it", "-e", &env, "box", "sh"], 24, 80);
        session.wait_output(PROMPT);
        // Positive control: raw while attached.
        assert!(session.is_raw());
        session.signal(signal);
        session.wait_output("cell was stopped by a signal; the container is still running");
        let (code, shown) = session.finish(LONG);
        assert_eq!(code, Some(125), "{shown}");
        assert!(!session.is_raw(), "signal {signal}: the terminal was left raw");
        let processes = sb.ok(&["exec", "box", "ps", "-o", "comm"]);
        let shells = processes.lines().filter(|l| l.trim() == "sh").count();
        assert_eq!(shells, n, "the exec's shells run on: {processes}");
    }
}
