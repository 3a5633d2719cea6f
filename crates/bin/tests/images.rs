//! Images: built from busybox-static, imported from a directory or tarball.

mod common;
use common::*;

#[test]
fn busybox_image_is_built_with_a_progress_line() {
    require_root!();
    let sb = Sandbox::new();
    let out = sb.cell(&["image", "create", "busybox"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("building image busybox"));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 12);
    let ls = sb.ok(&["image", "ls"]);
    assert!(ls.contains(&id) && ls.contains("busybox"), "{ls}");
    let inspect: serde_json::Value = serde_json::from_str(&sb.ok(&["image", "inspect", "busybox"])).unwrap();
    assert_eq!(inspect["id"], id.as_str());
    assert!(
        sb.root
            .join("images")
            .join(&id)
            .join("rootfs/bin/busybox")
            .is_file()
    );
    // A second image of the same name is refused.
    sb.fails(
        &["image", "create", "busybox"],
        "image name 'busybox' is already in use",
    );
    // A custom name works.
    sb.ok(&["image", "create", "busybox", "bb2"]);
}

#[test]
fn run_builds_busybox_when_missing() {
    require_root!();
    let sb = Sandbox::new();
    assert!(!sb.ok(&["image", "ls"]).contains("busybox"));
    let out = sb.ok(&["run", "busybox", "echo", "built"]);
    assert_eq!(out, "built\n");
    assert!(sb.ok(&["image", "ls"]).contains("busybox"));
}

#[test]
fn import_from_directory_and_tarball() {
    require_root!();
    let sb = Sandbox::new();
    sb.ok(&["image", "create", "busybox"]);
    let rootfs = sb.root.join("images");
    let id = sb.ok(&["image", "inspect", "busybox"]);
    let id: serde_json::Value = serde_json::from_str(&id).unwrap();
    let src = rootfs.join(id["id"].as_str().unwrap()).join("rootfs");

    let dir_copy = sb.dir.path().join("tree");
    assert!(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(&dir_copy)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(dir_copy.join("marker"), "from-dir").unwrap();
    sb.ok(&["image", "import", "fromdir", dir_copy.to_str().unwrap()]);
    assert_eq!(sb.ok(&["run", "fromdir", "cat", "/marker"]), "from-dir");

    let tarball = sb.dir.path().join("tree.tar.gz");
    let tar = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dir_copy)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    sb.ok(&["image", "import", "fromtar", tarball.to_str().unwrap()]);
    assert_eq!(sb.ok(&["run", "fromtar", "cat", "/marker"]), "from-dir");
}

#[test]
fn bad_imports_change_nothing() {
    require_root!();
    let sb = Sandbox::new();
    let missing = sb.dir.path().join("missing");
    sb.fails(
        &["image", "import", "x", missing.to_str().unwrap()],
        &format!("'{}' does not exist", missing.display()),
    );
    let empty = sb.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("file"), "x").unwrap();
    sb.fails(
        &["image", "import", "x", empty.to_str().unwrap()],
        "is not a root filesystem",
    );
    let not_tar = sb.dir.path().join("junk.tar");
    std::fs::write(&not_tar, "this is not a tarball").unwrap();
    sb.fails(&["image", "import", "x", not_tar.to_str().unwrap()], "junk.tar");
    sb.fails(
        &["image", "import", "bad/name", empty.to_str().unwrap()],
        "invalid image name 'bad/name'",
    );
    let ls = sb.ok(&["image", "ls"]);
    assert_eq!(ls.lines().filter(|l| l.contains(" x ")).count(), 0, "{ls}");
    let leftovers = std::fs::read_dir(sb.root.join("images")).unwrap().count();
    assert_eq!(leftovers, 0, "image directories left behind");
    sb.fails(&["image", "rm", "nosuch"], "no such image: nosuch");
}

#[test]
fn an_image_in_use_cannot_be_removed() {
    require_root!();
    let sb = Sandbox::new();
    sb.ok(&["create", "--name", "user1", "busybox", "true"]);
    sb.fails(
        &["image", "rm", "busybox"],
        "image 'busybox' is used by containers: user1",
    );
    sb.ok(&["rm", "user1"]);
    sb.ok(&["image", "rm", "busybox"]);
    assert!(!sb.ok(&["image", "ls"]).contains("busybox"));
}
