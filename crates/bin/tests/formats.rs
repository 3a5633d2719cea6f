//! Machine-readable output and the shell's helpers: `--format json` and
//! `-q` on the lists, `version` and `info`, completion scripts loaded by a
//! real bash (names completed from a running celld), and man pages.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn field_names(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn ids_of(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_string())
        .collect()
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_string).collect()
}

/// A sandbox with an image, a network, a stopped container `idle` and a
/// running one `web`.
fn populated() -> Sandbox {
    let sb = Sandbox::new();
    sb.ok(&["image", "create", "busybox"]);
    sb.ok(&["network", "create", "--subnet", "10.77.0.0/24", "testnet"]);
    sb.ok(&["create", "--name", "idle", "busybox", "true"]);
    sb.ok(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]);
    sb.wait_for("web", "web to run", |c| c["container"]["running"] == true);
    sb
}

#[test]
fn lists_print_json_with_the_documented_fields_and_ids_with_q() {
    require_root!();
    let sb = populated();

    let running = json(&sb.ok(&["lsc", "--format", "json"]));
    let all = json(&sb.ok(&["lsc", "-a", "--format", "json"]));
    assert_eq!(running.as_array().unwrap().len(), 1, "{running}");
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    let web = &running[0];
    assert_eq!(
        field_names(web),
        BTreeSet::from([
            "id",
            "name",
            "image_id",
            "image",
            "command",
            "created",
            "status",
            "running",
            "pid",
            "exit_code",
            "driver",
            "ports",
        ])
    );
    assert_eq!(web["name"], "web");
    assert_eq!(web["image"], "busybox");
    assert_eq!(web["command"], serde_json::json!(["sleep", "1000"]));
    assert_eq!(
        (&web["status"], &web["running"]),
        (&"running".into(), &true.into())
    );
    assert!(web["pid"].as_i64().unwrap() > 0, "{web}");
    assert_eq!(web["driver"], "host");
    let idle = all
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "idle")
        .unwrap();
    assert_eq!((&idle["status"], &idle["pid"]), (&"stopped".into(), &Value::Null));
    // The same for `container ls`.
    assert_eq!(json(&sb.ok(&["container", "ls", "-a", "--format", "json"])), all);

    // -q: the ids, one per line, and nothing else.
    assert_eq!(lines(&sb.ok(&["lsc", "-a", "-q"])), ids_of(&all));
    assert_eq!(lines(&sb.ok(&["ps", "--quiet"])), ids_of(&running));

    let images = json(&sb.ok(&["image", "ls", "--format", "json"]));
    assert_eq!(
        field_names(&images[0]),
        BTreeSet::from(["id", "name", "source", "command", "created"])
    );
    assert_eq!(images[0]["name"], "busybox");
    assert_eq!(lines(&sb.ok(&["image", "ls", "-q"])), ids_of(&images));
    assert_eq!(web["image_id"], images[0]["id"]);

    let networks = json(&sb.ok(&["network", "ls", "--format", "json"]));
    let testnet = networks
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "testnet")
        .unwrap_or_else(|| panic!("testnet missing from {networks}"));
    assert_eq!(
        field_names(testnet),
        BTreeSet::from([
            "id",
            "name",
            "type",
            "interface",
            "subnet",
            "subnet6",
            "gateway",
            "gateway6",
            "nat",
            "icc",
            "internal",
            "antispoof",
        ])
    );
    assert_eq!(
        (&testnet["type"], &testnet["subnet"]),
        (&"loopback".into(), &"10.77.0.0/24".into())
    );
    assert_eq!(lines(&sb.ok(&["network", "ls", "-q"])), ids_of(&networks));

    // The table stays the default, and `--format table` is it.
    for table in [sb.ok(&["lsc"]), sb.ok(&["lsc", "--format", "table"])] {
        assert!(table.trim_start().starts_with("CONTAINER ID"), "{table}");
        assert!(table.contains(web["id"].as_str().unwrap()), "{table}");
    }
}

#[test]
fn an_unknown_format_is_one_line_naming_it() {
    require_root!();
    let sb = Sandbox::new();
    // The positive control: the same command with a known format works.
    json(&sb.ok(&["network", "ls", "--format", "json"]));
    for args in [
        &["lsc", "--format", "yaml"][..],
        &["image", "ls", "--format", "yaml"],
        &["network", "ls", "--format", "yaml"],
        &["info", "--format", "yaml"],
        &["version", "--format", "yaml"],
    ] {
        let out = sb.cell(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {}", describe(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", describe(&out));
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {}", describe(&out));
        assert!(stderr.contains("'yaml'"), "{args:?}: {}", describe(&out));
    }
    sb.fails(
        &["lsc", "-q", "--format", "json"],
        "'--quiet' cannot be used with",
    );
}

#[test]
fn version_shows_client_and_daemon_and_says_when_the_daemon_is_away() {
    require_root!();
    let mut sb = Sandbox::new();
    let text = sb.ok(&["version"]);
    assert!(text.starts_with("Client:\n Version:     0.1.0\n"), "{text}");
    assert!(
        text.contains("Daemon:\n Version:     0.1.0\n API version: 0.1.0\n"),
        "{text}"
    );
    let both = json(&sb.ok(&["version", "--format", "json"]));
    assert_eq!(both["client"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(both["daemon"]["version"], both["client"]["version"]);
    assert_eq!(both["daemon"]["os"], "linux");

    sb.kill_celld(libc::SIGTERM);
    let out = sb.cell(&["version"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(stdout.starts_with("Client:\n Version:"), "{}", describe(&out));
    assert!(!stdout.contains("Daemon"), "{}", describe(&out));
    assert_eq!(stderr.lines().count(), 1, "{}", describe(&out));
    assert!(stderr.contains("cannot connect to celld"), "{}", describe(&out));
    let out = sb.cell(&["version", "--format", "json"]);
    let alone = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        (&alone["client"], &alone["daemon"]),
        (&both["client"], &Value::Null)
    );
}

#[test]
fn info_counts_objects_and_finds_kernel_features() {
    require_root!();
    let sb = populated();
    let info = json(&sb.ok(&["info", "--format", "json"]));
    assert_eq!(info["root"], sb.root.to_str().unwrap());
    assert_eq!(info["socket"], sb.socket.to_str().unwrap());
    // The default pool, and a ULA /48 drawn at the first start.
    assert_eq!(info["pool"], "10.192.0.0/10");
    assert!(info["pool6"].as_str().unwrap().starts_with("fd"), "{info}");
    assert_eq!(
        (
            &info["containers"],
            &info["running"],
            &info["images"],
            &info["networks"]
        ),
        // testnet and celld's own public network.
        (&2.into(), &1.into(), &1.into(), &2.into()),
        "{info}"
    );
    // These machines have bridges and macvlan (DESIGN.md), and celld made
    // its table at start.
    let kernel = &info["kernel"];
    assert_eq!(
        (&kernel["nftables"], &kernel["bridge"], &kernel["macvlan"]),
        (&true.into(), &true.into(), &true.into()),
        "{info}"
    );
    assert!(kernel["br_netfilter"].is_boolean(), "{info}");

    let text = sb.ok(&["info"]);
    for line in [
        format!("Root:           {}", sb.root.display()),
        format!("Socket:         {}", sb.socket.display()),
        "Pool:           10.192.0.0/10".to_string(),
        "Containers:     2 (1 running)".to_string(),
        "Images:         1".to_string(),
        "Networks:       2".to_string(),
        " nftables:      found (table inet cell)".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing from\n{text}");
    }

    // Without cell's table, nftables is reported missing (the found case
    // above is the control).
    sb.sh_ok("nft delete table inet cell");
    let info = json(&sb.ok(&["info", "--format", "json"]));
    assert_eq!(info["kernel"]["nftables"], false, "{info}");
    assert!(sb.ok(&["info"]).contains(" nftables:      not found"));
}

/// `PATH` with the directory of the `cell` under test first, as the
/// completion scripts call `cell` by name.
fn path_with_cell() -> String {
    let dir = Path::new(CELL).parent().unwrap();
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default())
}

/// Runs `script` in a non-interactive bash with the completion of cell
/// loaded; returns stdout, asserting bash succeeded.
fn bash_with_completion(script: &str) -> String {
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c"])
        .arg(format!("source <(cell completion bash) || exit 1\n{script}"))
        .env("PATH", path_with_cell())
        .env_remove("CELL_HOST")
        .output()
        .expect("bash");
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What bash offers for the last of `words` (a command line cut at the
/// cursor), through the function the script registered for `cell`.
fn complete(words: &[&str]) -> BTreeSet<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "COMP_WORDS=({words})\n\
         COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n\
         COMP_LINE=\"${{COMP_WORDS[*]}}\"\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         COMP_TYPE=9\n\
         f=$(complete -p cell | sed -n 's/.* -F \\([^ ]*\\) .*/\\1/p')\n\
         \"$f\" cell \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\" 2>/dev/null\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words = quoted.join(" ")
    );
    bash_with_completion(&script)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_end().to_string())
        .collect()
}

#[test]
fn completions_load_in_bash_and_complete_names_from_celld() {
    require_root!();
    let registered = bash_with_completion("complete -p cell");
    assert!(registered.contains(" cell"), "{registered}");
    assert!(registered.contains("-F "), "{registered}");
    for shell in ["zsh", "fish"] {
        let out = Command::new(CELL).args(["completion", shell]).output().unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("COMPLETE"), "{script}");
        assert!(script.contains("cell"), "{script}");
    }
    let out = Command::new(CELL).args(["completion", "tcsh"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("'tcsh'"));

    // Subcommands and flags come from the clap definitions.
    let subcommands = complete(&["cell", "net"]);
    assert_eq!(subcommands, BTreeSet::from(["network".to_string()]));
    assert!(complete(&["cell", "lsc", "--for"]).contains("--format"));

    // Names come from the daemon named with -H on the line.
    let sb = populated();
    let host = format!("unix://{}", sb.socket.display());
    assert_eq!(
        complete(&["cell", "-H", &host, "stop", "w"]),
        BTreeSet::from(["web".to_string()])
    );
    let containers = complete(&["cell", "-H", &host, "start", ""]);
    assert!(
        containers.contains("web") && containers.contains("idle"),
        "{containers:?}"
    );
    assert!(!containers.contains("testnet"), "{containers:?}");
    assert!(complete(&["cell", "-H", &host, "network", "inspect", "t"]).contains("testnet"));
    assert!(complete(&["cell", "-H", &host, "image", "rm", ""]).contains("busybox"));
    // With no daemon to ask, no names, and no error in the shell.
    let none = complete(&["cell", "-H", "unix:///nonexistent/celld.sock", "stop", "w"]);
    assert!(!none.contains("web"), "{none:?}");
}

/// The subcommands `cell ... --help` lists (without `help`).
fn subcommands_of(path: &[&str]) -> Vec<String> {
    let out = Command::new(CELL).args(path).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let Some((_, commands)) = help.split_once("Commands:\n") else {
        return Vec::new();
    };
    commands
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn man_pages_are_written_for_cell_and_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let man1 = dir.path().join("share/man/man1");
    let out = Command::new(CELL).arg("man").arg(&man1).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let mut expected = vec!["cell.1".to_string()];
    let mut pending: Vec<Vec<String>> = subcommands_of(&[]).into_iter().map(|c| vec![c]).collect();
    assert!(pending.len() > 10, "{pending:?}");
    while let Some(path) = pending.pop() {
        expected.push(format!("cell-{}.1", path.join("-")));
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        for sub in subcommands_of(&args) {
            let mut deeper = path.clone();
            deeper.push(sub);
            pending.push(deeper);
        }
    }
    for page in &expected {
        let text =
            std::fs::read_to_string(man1.join(page)).unwrap_or_else(|e| panic!("{page} not written: {e}"));
        assert!(text.contains(".TH"), "{page}: {text}");
    }
    assert!(expected.contains(&"cell-network-create.1".to_string()));
    // man reads them: the page of `network create` names its flags.
    let out = Command::new("man")
        .arg("-l")
        .arg(man1.join("cell-network-create.1"))
        .env("MANPAGER", "cat")
        .env("LC_ALL", "C")
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains("--subnet"), "{}", describe(&out));
}
