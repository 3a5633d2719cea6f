//! Root tests of the shim against the real kernel: overlay, namespaces,
//! capabilities, output framing, attach and exec.
//!
//! The outer test re-executes this test binary under
//! `unshare --mount --net --pid --fork --mount-proc`, running the ignored
//! tests of [`inner`] there, so every mount, network change and process
//! they make lives and dies with that namespace and never touches the host.
//! The shim executable is the crate's `cell-shim-test` stand-in for
//! `celld shim`.

use std::process::Command;

/// Set in the environment of the re-executed test binary.
const INNER_ENV: &str = "CELL_RUNTIME_INNER";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn shim_in_private_namespaces() {
    if !is_root() {
        eprintln!("skipped: the shim tests need root (they create namespaces and mounts)");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--net", "--pid", "--fork", "--mount-proc"])
        .arg(exe)
        .args(["inner::", "--ignored", "--nocapture", "--test-threads=4"])
        .env(INNER_ENV, "1")
        .output()
        .expect("unshare runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "inner tests failed: {}", out.status);
    assert!(
        stdout.contains(" 0 failed") && !stdout.contains(" 0 passed"),
        "no inner test ran"
    );
}

mod inner {
    use std::fs;
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::{Duration, Instant};

    use cell_core::frame::{self, FrameKind};
    use cell_runtime::{ProcessSpec, RootfsSpec, RuntimeError, Started, Target};

    const SHIM: &str = env!("CARGO_BIN_EXE_cell-shim-test");

    /// A busybox image and a scratch directory for containers.
    struct Fixture {
        tmp: tempfile::TempDir,
        image: PathBuf,
    }

    /// Output and exit code of a finished process.
    #[derive(Debug, Default)]
    struct Outcome {
        stdout: String,
        stderr: String,
        code: Option<i32>,
    }

    /// `None` unless running inside the namespaces the outer test made.
    fn fixture() -> Option<Fixture> {
        if std::env::var_os(super::INNER_ENV).is_none() {
            eprintln!("skipped: run through shim_in_private_namespaces, which isolates it");
            return None;
        }
        // This is the test's own network namespace; containers without a
        // netns of their own share it.
        let status = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(status.success());
        let tmp = tempfile::tempdir().unwrap();
        let image = tmp.path().join("image");
        cell_runtime::build_busybox_rootfs(Path::new("/bin/busybox"), &image).unwrap();
        Some(Fixture { tmp, image })
    }

    impl Fixture {
        fn state_dir(&self, name: &str) -> PathBuf {
            self.tmp.path().join(name).join("state")
        }

        fn init(&self, name: &str, args: &[&str]) -> ProcessSpec {
            let dir = self.tmp.path().join(name);
            ProcessSpec {
                exec_id: format!("{name}-init"),
                container_id: name.into(),
                args: args.iter().map(|s| s.to_string()).collect(),
                env: cell_core::env::process_env(&[], &[]),
                cwd: "/".into(),
                keep_net_admin: false,
                keep_net_raw: false,
                target: Target::Init {
                    rootfs: RootfsSpec {
                        lower: self.image.clone(),
                        upper: dir.join("upper"),
                        work: dir.join("work"),
                        merged: dir.join("merged"),
                    },
                    hostname: name.into(),
                    netns: None,
                    files: vec![],
                },
                log: Default::default(),
                stdio: Default::default(),
                refused_socket_family: None,
            }
        }

        fn spawn(&self, name: &str, spec: &ProcessSpec) -> Started {
            cell_runtime::spawn_shim(Path::new(SHIM), &self.state_dir(name), spec).unwrap()
        }

        fn run(&self, name: &str, spec: &ProcessSpec) -> Outcome {
            self.spawn(name, spec);
            wait_for_exit(&self.state_dir(name))
        }
    }

    fn exec_spec(name: &str, init_pid: i32, args: &[&str]) -> ProcessSpec {
        ProcessSpec {
            exec_id: name.into(),
            container_id: "any".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: cell_core::env::process_env(&[], &["GREETING=hi".into()]),
            cwd: "/tmp".into(),
            keep_net_admin: false,
            keep_net_raw: false,
            target: Target::Exec { init_pid },
            log: Default::default(),
            stdio: Default::default(),
            refused_socket_family: None,
        }
    }

    fn wait_for_exit(state_dir: &Path) -> Outcome {
        let deadline = Instant::now() + Duration::from_secs(20);
        while cell_runtime::read_exit(state_dir).is_none() {
            assert!(
                Instant::now() < deadline,
                "no exit.json in {}",
                state_dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let outcome = decode(&cell_runtime::stream_history(state_dir).unwrap());
        assert_eq!(
            outcome.code,
            cell_runtime::read_exit(state_dir),
            "log and exit.json disagree"
        );
        assert!(
            !cell_runtime::attach_path(state_dir).exists(),
            "attach.sock left behind"
        );
        outcome
    }

    /// Decodes a stream that must end with exactly one exit frame.
    fn decode(mut bytes: &[u8]) -> Outcome {
        let mut outcome = Outcome::default();
        while let Some((kind, payload)) = frame::read_frame(&mut bytes).unwrap() {
            assert_eq!(outcome.code, None, "frame after the exit frame");
            let text = String::from_utf8_lossy(&payload);
            match kind {
                FrameKind::Stdout => outcome.stdout.push_str(&text),
                FrameKind::Stderr => outcome.stderr.push_str(&text),
                FrameKind::Exit => outcome.code = Some(frame::exit_code(&payload).unwrap()),
                FrameKind::Error => panic!("error frame: {text}"),
                FrameKind::Stdin | FrameKind::StdinEof | FrameKind::Resize => {
                    panic!("input frame {kind:?} in an output stream")
                }
            }
        }
        outcome
    }

    #[test]
    #[ignore = "run by shim_in_private_namespaces"]
    fn output_is_framed_and_exit_code_recorded() {
        let Some(fx) = fixture() else { return };
        let spec = fx.init("frames", &["sh", "-c", "echo out; echo err >&2; exit 3"]);
        let started = fx.spawn("frames", &spec);
        assert!(started.pid > 0 && started.shim_pid > 0 && started.pid != started.shim_pid);
        // Detached from the caller's session, so celld's terminal and
        // process group signals do not reach it.
        let shim_session = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(started.shim_pid)));
        assert_ne!(shim_session.ok(), nix::unistd::getsid(None).ok());
        let outcome = wait_for_exit(&fx.state_dir("frames"));
        assert_eq!(
            (outcome.stdout.as_str(), outcome.stderr.as_str(), outcome.code),
            ("out\n", "err\n", Some(3))
        );
    }

    #[test]
    #[ignore = "run by shim_in_private_namespaces"]
    fn hostname_files_and_pid_namespace_are_set_up() {
        let Some(fx) = fixture() else { return };
        let mut spec = fx.init(
            "named",
            &[
                "sh",
                "-c",
                "hostname; cat /etc/hosts /etc/resolv.conf; echo $$; ls /dev",
            ],
        );
        if let Target::Init { files, .. } = &mut spec.target {
            files.push(("/etc/hosts".into(), "10.0.0.2\tnamed\n".into()));
            files.push(("/etc/resolv.conf".into(), "nameserver 10.0.0.1\n".into()));
        }
        let outcome = fx.run("named", &spec);
        assert_eq!(outcome.code, Some(0), "{outcome:?}");
        let lines: Vec<&str> = outcome.stdout.lines().collect();
        assert_eq!(
            lines[..4],
            ["named", "10.0.0.2\tnamed", "nameserver 10.0.0.1", "1"],
            "{outcome:?}"
        );
        for dev in ["null", "urandom", "pts", "shm", "ptmx", "fd"] {
            assert!(lines.contains(&dev), "/dev/{dev} missing: {outcome:?}");
        }
        // The image stays untouched: writes went to the container's upper dir.
        assert_eq!(
            fs::read_to_string(fx.image.join("etc/hosts"))
                .unwrap()
                .lines()
                .next(),
            Some("127.0.0.1\tlocalhost")
        );
    }

    /// Issue 7: an image whose `/etc/hosts` (and friends) is an absolute
    /// symlink failed at start. The files cell writes replace such links in
    /// the container's upper layer; nothing is written through them.
    #[test]
    #[ignore = "run by shim_in_private_namespaces"]
    fn files_replace_absolute_symlinks_in_the_image() {
        let Some(fx) = fixture() else { return };
        // A host file an image's link names by its host path: it must stay
        // as it is.
        let host_file = fx.tmp.path().join("host-hostname");
        fs::write(&host_file, "host\n").unwrap();
        let etc = fx.image.join("etc");
        for (name, target) in [
            ("hosts", Path::new("/run/hosts")),
            ("resolv.conf", Path::new("/run/systemd/resolve/stub-resolv.conf")),
            ("hostname", host_file.as_path()),
        ] {
            let _ = fs::remove_file(etc.join(name));
            std::os::unix::fs::symlink(target, etc.join(name)).unwrap();
        }
        let mut spec = fx.init(
            "links",
            &[
                "sh",
                "-c",
                "cat /etc/hosts /etc/resolv.conf /etc/hostname; ls /run",
            ],
        );
        if let Target::Init { files, .. } = &mut spec.target {
            files.push(("/etc/hosts".into(), "10.0.0.2\tlinks\n".into()));
            files.push(("/etc/resolv.conf".into(), "nameserver 10.0.0.1\n".into()));
            files.push(("/etc/hostname".into(), "links\n".into()));
        }
        let outcome = fx.run("links", &spec);
        assert_eq!(outcome.code, Some(0), "{outcome:?}");
        // Nothing was written where the links pointed (/run stays empty).
        assert_eq!(
            outcome.stdout, "10.0.0.2\tlinks\nnameserver 10.0.0.1\nlinks\n",
            "{outcome:?}"
        );
        assert_eq!(fs::read_to_string(&host_file).unwrap(), "host\n");
        // The image keeps its links; the container's upper layer holds files.
        let upper = fx.tmp.path().join("links/upper/etc");
        for name in ["hosts", "resolv.conf", "hostname"] {
            assert!(
                fs::symlink_metadata(etc.join(name))
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
            assert!(
                fs::symlink_metadata(upper.join(name))
                    .unwrap()
                    .file_type()
                    .is_file()
            );
        }
    }

    /// The supervisor records its pid before it starts the container
    /// process, and `find_shim` finds it with or without that record.
    #[test]
    #[ignore = "run by shim_in_private_namespaces"]
    fn the_supervisor_is_found_by_its_state_directory() {
        use cell_runtime::process;

        let Some(fx) = fixture() else { return };
        let state = fx.state_dir("found");
        let started = fx.spawn("found", &fx.init("found", &["sleep", "60"]));
        let recorded = fs::read_to_string(cell_runtime::shim::pid_path(&state)).unwrap();
        assert_eq!(recorded.trim(), started.shim_pid.to_string());
        assert!(process::is_our_shim(started.shim_pid, &state));
        assert!(!process::is_our_shim(started.pid, &state));
        assert_eq!(process::find_shim(&state), Some(started.shim_pid));
        fs::remove_file(cell_runtime::shim::pid_path(&state)).unwrap();
        assert_eq!(process::find_shim(&state), Some(started.shim_pid));

        // Signalling the container process ends the supervisor too.
        assert!(process::is_alive(started.pid));
        assert!(!process::wait_for_exit(
            started.shim_pid,
            Some(Duration::from_millis(50))
        ));
        process::signal(started.pid, libc::SIGKILL).unwrap();
        assert!(process::wait_for_exit(
            started.shim_pid,
            Some(Duration::from_secs(20))
        ));
        assert_eq!(wait_for_exit(&state).code, Some(137));
        assert_eq!(process::find_shim(&state), None);
    }

    #[test]
    #[ignore = "run by shim_in_private_namespaces"]
    fn no_shim_descriptor_leaks_into_the_container() {
        let Some(fx) = fixture() else { return };
        let outcome = fx.run("fds", &fx.init("fds", &["ls", "/proc/self/fd"]));
        // stdio, and the directory ls is reading.
        assert_eq!(outcome.stdout, "0\n1\n2\n3\n", "{outcome:?}");
    }

    #[test]
    #[ignore = "run by shim_in_private_namespaces"]
    fn net_admin_is_dropped_unless_kept() {
        let Some(fx) = fixture() else { return };
        let spec = fx.init("noadmin", &["ip", "link", "set", "lo", "down"]);
        let outcome = fx.run("noadmin", &spec);
        assert_ne!(outcome.code, Some(0));
        assert!(outcome.stderr.contains("Operation not permitted"), "{outcome:?}");

        let mut spec = fx.init("admin", &["ip", "addr", "add", "127.0.0.3/8", "dev", "lo"]);
        spec.keep_net_admin = true;
        let outcome = fx.run("admin", &spec);
        assert_eq!(outcome.code, Some(0), "{outcome:?}");
    }

    #[test]
    #[ignore = "run by shim_in_private_namespaces"]
    fn raw_sockets_follow_keep_net_raw() {
        let Some(fx) = fixture() else { return };
        let spec = fx.init("noraw", &["ping", "-c1", "-W1", "127.0.0.1"]);
        let outcome = fx.run("noraw", &spec);
        assert_ne!(outcome.code, Some(0));
        assert!(
            outcome.stderr.to_lowercase().contains("permission denied"),
            "{outcome:?}"
        );

        let mut spec = fx.init("raw", &["ping", "-c1", "-W1", "127.0.0.1"]);
        spec.keep_net_raw = true;
        let outcome = fx.run("raw", &spec);
        assert_eq!(outcome.code, Some(0), "{outcome:?}");
    }

    #[test]
    #[ignore = "run by shim_in_private_namespaces"]
    fn joins_the_given_network_namespace() {
        let Some(fx) = fixture() else { return };
        // A persistent netns bound to a file, as the net layer makes them;
        // its lo is down, while the test's own lo is up.
        let netns = fx.tmp.path().join("netns");
        fs::write(&netns, "").unwrap();
        let status = Command::new("unshare")
            .arg(format!("--net={}", netns.display()))
            .arg("true")
            .status()
            .unwrap();
        assert!(status.success());

        let mut spec = fx.init("ownnet", &["cat", "/sys/class/net/lo/operstate"]);
        if let Target::Init { netns: slot, .. } = &mut spec.target {
            *slot = Some(netns.clone());
        }
        assert_eq!(fx.run("ownnet", &spec).stdout, "down\n");
        let spec = fx.init("hostnet", &["cat", "/sys/class/net/lo/operstate"]);
        assert_eq!(fx.run("hostnet", &spec).stdout, "unknown\n");
        // A mount point cannot be unlinked; without this the temporary
        // directory would stay behind.
        nix::mount::umount2(&netns, nix::mount::MntFlags::MNT_DETACH).unwrap();
    }

    #[test]
    #[ignore = "run by shim_in_private_namespaces"]
    fn exec_joins_a_running_container() {
        let Some(fx) = fixture() else { return };
        let init = fx.spawn("box1", &fx.init("box1", &["sleep", "30"]));

        let spec = exec_spec(
            "e1",
            init.pid,
            &["sh", "-c", "hostname; pwd; echo $GREETING; cat /proc/1/cmdline"],
        );
        let outcome = fx.run("e1", &spec);
        assert_eq!(outcome.code, Some(0), "{outcome:?}");
        assert_eq!(outcome.stdout, "box1\n/tmp\nhi\nsleep\u{0}30\u{0}", "{outcome:?}");

        // A background process holding the output pipes must not hold up the
        // exec's exit.
        let started = Instant::now();
        let spec = exec_spec("e2", init.pid, &["sh", "-c", "sleep 20 & echo started"]);
        let outcome = fx.run("e2", &spec);
        assert_eq!((outcome.stdout.as_str(), outcome.code), ("started\n", Some(0)));
        assert!(started.elapsed() < Duration::from_secs(10));

        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(init.pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        assert_eq!(wait_for_exit(&fx.state_dir("box1")).code, Some(137));

        // Wait for the zombie to be reaped so /proc/PID is gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Path::new(&format!("/proc/{}/ns/mnt", init.pid)).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let spec = exec_spec("e3", init.pid, &["true"]);
        let err = cell_runtime::spawn_shim(Path::new(SHIM), &fx.state_dir("e3"), &spec).unwrap_err();
        assert!(matches!(err, RuntimeError::ShimSetup { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("of container process {}", init.pid)),
            "{err}"
        );
    }

    #[test]
    #[ignore = "run by shim_in_private_namespaces"]
    fn failed_exec_is_an_ordinary_exit() {
        let Some(fx) = fixture() else { return };
        let outcome = fx.run("missing", &fx.init("missing", &["no-such-command", "x"]));
        assert_eq!(outcome.code, Some(127));
        assert_eq!(outcome.stderr, "cell: no-such-command: not found\n");

        let outcome = fx.run("noexec", &fx.init("noexec", &["/etc/passwd"]));
        assert_eq!(outcome.code, Some(126));
        assert_eq!(outcome.stderr, "cell: /etc/passwd: permission denied\n");
    }

    #[test]
    #[ignore = "run by shim_in_private_namespaces"]
    fn setup_failure_is_reported_to_the_caller() {
        let Some(fx) = fixture() else { return };
        let mut spec = fx.init("broken", &["true"]);
        if let Target::Init { rootfs, .. } = &mut spec.target {
            rootfs.lower = fx.tmp.path().join("no-such-image");
        }
        let err = cell_runtime::spawn_shim(Path::new(SHIM), &fx.state_dir("broken"), &spec).unwrap_err();
        let merged = fx.tmp.path().join("broken/merged");
        assert!(
            err.to_string().contains(&format!(
                "failed to mount overlay on {}: ENOENT",
                merged.display()
            )),
            "{err}"
        );
        let state = fx.state_dir("broken");
        assert!(!cell_runtime::attach_path(&state).exists());
        assert_eq!(cell_runtime::read_exit(&state), None);
    }

    #[test]
    #[ignore = "run by shim_in_private_namespaces"]
    fn attach_streams_history_then_live_output() {
        let Some(fx) = fixture() else { return };
        let spec = fx.init("attach", &["sh", "-c", "echo a; sleep 1; echo b >&2; exit 4"]);
        fx.spawn("attach", &spec);
        let sock = cell_runtime::attach_path(&fx.state_dir("attach"));
        let mut early = UnixStream::connect(&sock).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        // Connects after "a" was written: gets it from the history.
        let mut late = UnixStream::connect(&sock).unwrap();
        for client in [&mut early, &mut late] {
            client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut bytes = Vec::new();
            client.read_to_end(&mut bytes).unwrap();
            let outcome = decode(&bytes);
            assert_eq!(
                (outcome.stdout.as_str(), outcome.stderr.as_str(), outcome.code),
                ("a\n", "b\n", Some(4))
            );
        }
        wait_for_exit(&fx.state_dir("attach"));
        let err = UnixStream::connect(&sock).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
