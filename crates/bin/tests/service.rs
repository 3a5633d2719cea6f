//! cell as a service: `scripts/install.sh` into a DESTDIR and back out, the
//! systemd unit checked by `systemd-analyze verify`, the default celld.toml
//! read by a real celld; and the progress cell reports where work is long
//! (image create and import, `rm` and `container prune` of many containers).

mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every file and symlink below `dir`, relative to it.
fn files_below(dir: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, base: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(&path, base, found);
            } else {
                found.insert(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(dir, dir, &mut found);
    found
}

/// A directory holding links to the built `cell` and `celld`, and, if
/// `with_cni`, a stand-in `cell-cni`: what `install.sh --from` takes.
fn binaries(scratch: &Path, with_cni: bool) -> PathBuf {
    let dir = scratch.join("from");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(CELL, dir.join("cell")).unwrap();
    std::os::unix::fs::symlink(CELLD, dir.join("celld")).unwrap();
    if with_cni {
        let cni = dir.join("cell-cni");
        std::fs::write(&cni, "#!/bin/sh\necho cell-cni\n").unwrap();
        let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&cni, executable).unwrap();
    }
    dir
}

/// `scripts/install.sh ARGS` with `DESTDIR=destdir` (and the defaults for
/// everything else); asserts it succeeded and returns its stderr.
fn install_sh(destdir: &Path, args: &[&str]) -> String {
    let out = install_sh_output(destdir, args);
    assert!(out.status.success(), "install.sh {args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn install_sh_output(destdir: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(repo().join("scripts/install.sh"))
        .args(args)
        .env("DESTDIR", destdir)
        .env_remove("PREFIX")
        .env_remove("SYSCONFDIR")
        .env_remove("UNITDIR")
        .env_remove("CNI_BIN_DIR")
        .env_remove("STATE_DIR")
        .output()
        .expect("bash scripts/install.sh")
}

/// Whether the built `cell` has `cell completion SHELL` (helper H's), so
/// the install must have put the completions there.
fn cell_has_completions() -> bool {
    Command::new(CELL)
        .args(["completion", "bash"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the built `cell` writes man pages with `cell man DIR`.
fn cell_has_man_pages(scratch: &Path) -> bool {
    let dir = scratch.join("man-probe");
    std::fs::create_dir_all(&dir).unwrap();
    Command::new(CELL)
        .arg("man")
        .arg(&dir)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn install_puts_every_file_in_destdir_and_uninstall_removes_them_all() {
    let scratch = tempfile::tempdir().unwrap();
    let destdir = scratch.path().join("stage");
    let from = binaries(scratch.path(), true);
    let notes = install_sh(&destdir, &["--from", from.to_str().unwrap()]);

    let installed = files_below(&destdir);
    let mut expected: BTreeSet<String> = [
        "usr/local/bin/cell",
        "usr/local/bin/celld",
        "opt/cni/bin/cell-cni",
        "etc/systemd/system/celld.service",
        "etc/cell/celld.toml",
        "usr/local/share/cell/install-manifest",
    ]
    .map(String::from)
    .into();
    if cell_has_completions() {
        expected.extend(
            [
                "usr/local/share/bash-completion/completions/cell",
                "usr/local/share/zsh/site-functions/_cell",
                "usr/local/share/fish/vendor_completions.d/cell.fish",
            ]
            .map(String::from),
        );
    } else {
        assert!(notes.contains("skipped the bash completion"), "{notes}");
    }
    let man_pages: Vec<&String> = installed
        .iter()
        .filter(|f| f.starts_with("usr/local/share/man/man"))
        .collect();
    if cell_has_man_pages(scratch.path()) {
        assert!(
            man_pages
                .iter()
                .any(|p| p.starts_with("usr/local/share/man/man1/cell")),
            "no cell man page among {installed:?}"
        );
        expected.extend(man_pages.into_iter().cloned());
    } else {
        assert!(notes.contains("skipped the man pages"), "{notes}");
    }
    assert_eq!(installed, expected, "install.sh said: {notes}");

    // The binaries are the built ones, executable, and the unit starts the
    // installed celld with the installed config.
    for (name, built) in [("cell", CELL), ("celld", CELLD)] {
        let path = destdir.join("usr/local/bin").join(name);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            std::fs::metadata(built).unwrap().len()
        );
        let version = Command::new(&path).arg("--version").output().unwrap();
        assert!(
            version.status.success(),
            "{name} --version: {}",
            describe(&version)
        );
    }
    let unit = std::fs::read_to_string(destdir.join("etc/systemd/system/celld.service")).unwrap();
    assert!(
        unit.lines()
            .any(|l| l == "ExecStart=/usr/local/bin/celld --config /etc/cell/celld.toml"),
        "{unit}"
    );
    assert!(unit.lines().any(|l| l == "KillMode=process"), "{unit}");
    assert_eq!(
        std::fs::read_to_string(destdir.join("etc/cell/celld.toml")).unwrap(),
        std::fs::read_to_string(repo().join("contrib/celld.toml")).unwrap()
    );

    let notes = install_sh(&destdir, &["--uninstall"]);
    assert_eq!(
        files_below(&destdir),
        BTreeSet::new(),
        "uninstall left files; it said: {notes}"
    );
    // Not even the directories the install made are left.
    assert_eq!(std::fs::read_dir(&destdir).unwrap().count(), 0);
}

/// install.sh takes the completions and man pages from `cell completion
/// SHELL` and `cell man DIR` when the binary has them (helper H's), and
/// skips them with a note when it does not (both cases are met by the
/// built `cell` before and after that merge; this stands in for the one
/// not built).
#[test]
fn install_takes_completions_and_man_pages_from_a_cell_that_makes_them() {
    let scratch = tempfile::tempdir().unwrap();
    let destdir = scratch.path().join("stage");
    let from = scratch.path().join("from");
    std::fs::create_dir_all(&from).unwrap();
    std::os::unix::fs::symlink(CELLD, from.join("celld")).unwrap();
    let cell = from.join("cell");
    std::fs::write(
        &cell,
        "#!/bin/sh\ncase \"$1\" in\n\
         completion) echo \"# cell's $2 completion\" ;;\n\
         man) mkdir -p \"$2\" && echo cell > \"$2/cell.1\" && echo run > \"$2/cell-run.1\" ;;\n\
         *) exit 125 ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&cell, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let notes = install_sh(&destdir, &["--from", from.to_str().unwrap()]);
    assert!(!notes.contains("skipped the"), "{notes}");
    let share = destdir.join("usr/local/share");
    for (path, content) in [
        ("bash-completion/completions/cell", "# cell's bash completion\n"),
        ("zsh/site-functions/_cell", "# cell's zsh completion\n"),
        (
            "fish/vendor_completions.d/cell.fish",
            "# cell's fish completion\n",
        ),
        ("man/man1/cell.1", "cell\n"),
        ("man/man1/cell-run.1", "run\n"),
    ] {
        assert_eq!(
            std::fs::read_to_string(share.join(path)).unwrap_or_default(),
            content,
            "{path}: {notes}"
        );
    }
    install_sh(&destdir, &["--uninstall"]);
    assert_eq!(std::fs::read_dir(&destdir).unwrap().count(), 0);
}

#[test]
fn uninstall_keeps_the_state_and_a_changed_config_unless_purged() {
    let scratch = tempfile::tempdir().unwrap();
    let destdir = scratch.path().join("stage");
    let from = binaries(scratch.path(), false);
    let notes = install_sh(&destdir, &["--from", from.to_str().unwrap()]);
    assert!(
        notes.contains("skipped /opt/cni/bin/cell-cni: ") && !destdir.join("opt").exists(),
        "{notes}"
    );
    let config = destdir.join("etc/cell/celld.toml");
    let state = destdir.join("var/lib/cell/celld.db");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    std::fs::write(&state, "the store").unwrap();

    // A reinstall keeps a config the admin changed.
    std::fs::write(&config, "root = \"/srv/cell\"\n").unwrap();
    let notes = install_sh(&destdir, &["--from", from.to_str().unwrap()]);
    assert!(
        notes.contains("kept the existing /etc/cell/celld.toml"),
        "{notes}"
    );
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "root = \"/srv/cell\"\n"
    );

    let notes = install_sh(&destdir, &["--uninstall"]);
    assert!(notes.contains("kept /etc/cell/celld.toml"), "{notes}");
    assert_eq!(
        files_below(&destdir),
        ["etc/cell/celld.toml", "var/lib/cell/celld.db"]
            .map(String::from)
            .into(),
        "{notes}"
    );

    install_sh(&destdir, &["--uninstall", "--purge"]);
    assert_eq!(files_below(&destdir), BTreeSet::new());

    // Installed afresh and purged at once: the config and the state go too.
    install_sh(&destdir, &["--from", from.to_str().unwrap()]);
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    std::fs::write(&state, "the store").unwrap();
    std::fs::write(&config, "# mine\n").unwrap();
    install_sh(&destdir, &["--uninstall", "--purge"]);
    assert_eq!(files_below(&destdir), BTreeSet::new());
}

#[test]
fn install_refuses_bad_arguments_and_changes_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let destdir = scratch.path().join("stage");
    for (args, needle) in [
        (&["--bogus"][..], "unknown argument '--bogus'"),
        (&["--from"], "--from needs a directory"),
        (
            &["--from", "/nonexistent/dir"],
            "--from '/nonexistent/dir' is not a directory",
        ),
        (&["--purge"], "--purge goes with --uninstall"),
        (&["--uninstall"], "nothing to uninstall"),
    ] {
        let out = install_sh_output(&destdir, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "install.sh {args:?} was accepted");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(
            !destdir.join("usr").exists() && !destdir.join("etc").exists(),
            "{args:?} installed something"
        );
    }
}

/// `systemd-analyze verify UNIT`: (success, what it said).
fn systemd_analyze_verify(unit: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
        .expect("systemd-analyze (Debian's systemd package; scripts/install-deps.sh installs it)");
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[test]
fn the_installed_unit_passes_systemd_analyze_verify() {
    let scratch = tempfile::tempdir().unwrap();
    let destdir = scratch.path().join("stage");
    let from = binaries(scratch.path(), false);
    install_sh(&destdir, &["--from", from.to_str().unwrap()]);
    let unit = std::fs::read_to_string(destdir.join("etc/systemd/system/celld.service")).unwrap();
    // systemd-analyze checks that ExecStart's program exists: point it at
    // the staged celld (the installed unit names /usr/local/bin/celld).
    let staged_celld = destdir.join("usr/local/bin/celld");
    let staged = unit.replace("/usr/local/bin/celld", staged_celld.to_str().unwrap());
    assert_ne!(staged, unit);
    let dir = scratch.path().join("verify");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("celld.service"), &staged).unwrap();
    let (ok, said) = systemd_analyze_verify(&dir.join("celld.service"));
    assert!(ok && said.trim().is_empty(), "the unit does not verify: {said}");

    // The positive control: verify exits 0 on a bad key too, but says so,
    // which is why silence is asserted above.
    std::fs::write(
        dir.join("celld.service"),
        staged.replace("KillMode=process", "KillMode=proces"),
    )
    .unwrap();
    let (_, said) = systemd_analyze_verify(&dir.join("celld.service"));
    assert!(said.contains("proces"), "a bad KillMode went unnoticed: {said:?}");
}

#[test]
fn the_default_config_is_read_by_celld() {
    require_root!();
    let config = repo().join("contrib/celld.toml");
    let mut sb = Sandbox::without_celld();
    // celld refuses a key it does not know, so a config it starts with has
    // only keys it reads.
    let bad = sb.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&config).unwrap() + "\nroots = \"/x\"\n",
    )
    .unwrap();
    let refused = sb
        .in_ns(CELLD)
        .args(["--config", bad.to_str().unwrap()])
        .args(["--root", sb.root.to_str().unwrap()])
        .args(["--socket", sb.socket.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("roots"),
        "{}",
        describe(&refused)
    );
    assert!(!sb.socket.exists());

    sb.start_celld_with(&["--config", config.to_str().unwrap()]);
    // The busybox the config names is the one images are built from.
    sb.ok(&["image", "create", "busybox"]);
    assert_eq!(sb.ok(&["run", "busybox", "echo", "configured"]), "configured\n");
}

/// Whether `text` holds a control character other than a newline: what a
/// terminal's spinner draws with.
fn has_control_characters(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\n')
}

#[test]
fn image_progress_is_plain_lines_off_a_terminal_and_a_spinner_on_one() {
    require_root!();
    let sb = Sandbox::new();
    let out = sb.cell(&["image", "create", "busybox"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr:?}");
    assert_eq!(
        lines[0],
        "building image busybox from the host's static busybox..."
    );
    assert!(
        lines[1].starts_with("image busybox created in ") && lines[1].ends_with('s'),
        "{stderr:?}"
    );
    assert!(!has_control_characters(&stderr), "{stderr:?}");

    let image: serde_json::Value = serde_json::from_str(&sb.ok(&["image", "inspect", "busybox"])).unwrap();
    let image = sb
        .root
        .join("images")
        .join(image["id"].as_str().unwrap())
        .join("rootfs");
    let tarball = sb.dir.path().join("busybox.tar");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&image)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .output()
        .unwrap();
    assert!(tar.status.success(), "{}", describe(&tar));
    let out = sb.cell(&["image", "import", "plain", tarball.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr:?}");
    let first = format!("importing image plain from {} (", tarball.display());
    assert!(
        lines[0].starts_with(&first) && lines[0].ends_with("iB)..."),
        "{stderr:?}"
    );
    assert!(lines[1].starts_with("image plain imported in "), "{stderr:?}");
    assert!(!has_control_characters(&stderr), "{stderr:?}");

    // The positive control: on a terminal (a PTY that `script` opens) the
    // same import draws a spinner, and clears it before the end line.
    let command = format!(
        "{CELL} -H unix://{} image import onatty {}",
        sb.socket.display(),
        tarball.display()
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(has_control_characters(&transcript), "{transcript:?}");
    assert!(
        transcript.contains("importing image onatty from"),
        "{transcript:?}"
    );
    assert!(transcript.contains("image onatty imported in "), "{transcript:?}");
    assert!(sb.ok(&["image", "ls"]).contains("onatty"));
}

#[test]
fn rm_and_prune_of_three_containers_print_a_line_for_each() {
    require_root!();
    let sb = Sandbox::new();
    sb.ok(&["image", "create", "busybox"]);
    for name in ["one", "two", "three"] {
        sb.ok(&["create", "--name", name, "busybox", "true"]);
    }
    assert_eq!(sb.container_count(), 3);
    let out = sb.ok(&["rm", "one", "two", "three"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["one", "two", "three"]);
    assert_eq!(sb.container_count(), 0);

    let mut stopped: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            sb.ok(&["create", "--name", name, "busybox", "true"])
                .trim()
                .to_string()
        })
        .collect();
    sb.ok(&["run", "-d", "--name", "running", "busybox", "sleep", "1000"]);
    assert_eq!(sb.container_count(), 4);
    let out = sb.ok(&["container", "prune"]);
    let mut pruned: Vec<String> = out.lines().map(String::from).collect();
    pruned.sort();
    stopped.sort();
    assert_eq!(pruned, stopped);
    // The running one is left, and is the only one.
    assert_eq!(sb.container_count(), 1);
    assert_eq!(sb.inspect("running")["container"]["running"], true);
}
