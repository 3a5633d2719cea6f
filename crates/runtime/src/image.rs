//! Building image root filesystems: plain filesystem work, no daemon logic.
//!
//! [`build_busybox_rootfs`] makes a minimal rootfs from a static busybox;
//! [`import_rootfs`] copies a directory or unpacks a tarball. Both build in a
//! temporary sibling of the destination (`DEST.tmp-…`) and rename it into
//! place at the end, so a failure or a crash never leaves a half-built image
//! under the final name; the engine can treat "the directory exists" as "the
//! image is complete".
//!
//! An imported tree must stay inside its directory, whoever made the
//! tarball (see [`import_rootfs`]): entries that are absolute or climb out
//! with `..`, entries (and hard-link targets) reached through a symlink of
//! the archive, and device nodes are refused with an error naming the entry,
//! never skipped in silence. Symlinks themselves are kept as they are, with
//! any target: they are resolved inside the container, never while
//! unpacking.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use cell_core::error::quoted;

use crate::error::{Result, RuntimeError};

/// Where busybox lives inside the rootfs; every applet links to it.
const BUSYBOX_IN_ROOTFS: &str = "/bin/busybox";

/// A temporary build directory that is removed unless [`TempTree::finish`]
/// renamed it into place.
struct TempTree {
    path: PathBuf,
    dest: PathBuf,
    is_finished: bool,
}

impl TempTree {
    /// Creates `DEST.tmp-PID-NANOS` next to `dest`, refusing if `dest` exists.
    fn create(dest: &Path) -> Result<Self> {
        if dest.symlink_metadata().is_ok() {
            return Err(RuntimeError::DestinationExists {
                path: dest.to_path_buf(),
            });
        }
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let path = dest.with_file_name(format!("{name}.tmp-{}-{nanos}", std::process::id()));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| write_err(parent, source))?;
        }
        fs::create_dir(&path).map_err(|source| write_err(&path, source))?;
        Ok(Self {
            path,
            dest: dest.to_path_buf(),
            is_finished: false,
        })
    }

    fn finish(mut self) -> Result<()> {
        fs::rename(&self.path, &self.dest).map_err(|source| RuntimeError::Rename {
            from: self.path.clone(),
            to: self.dest.clone(),
            source,
        })?;
        self.is_finished = true;
        Ok(())
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        if !self.is_finished {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn write_err(path: &Path, source: std::io::Error) -> RuntimeError {
    RuntimeError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn read_err(path: &Path, source: std::io::Error) -> RuntimeError {
    RuntimeError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Builds a minimal rootfs in `dest` around the static `busybox`: the binary
/// at `/bin/busybox`, a symlink for every applet it lists, the usual empty
/// directories and a few files in `/etc`. Returns the number of applets
/// linked. `dest` must not exist; nothing is left behind on failure.
pub fn build_busybox_rootfs(busybox: &Path, dest: &Path) -> Result<usize> {
    check_static_executable(busybox)?;
    let applets = list_applets(busybox)?;
    let tree = TempTree::create(dest)?;
    let root = tree.path.clone();

    for dir in [
        "bin", "dev", "proc", "sys", "tmp", "etc", "root", "var", "run", "usr/bin", "sbin", "usr/sbin",
    ] {
        let path = root.join(dir);
        fs::create_dir_all(&path).map_err(|source| write_err(&path, source))?;
    }
    // Sticky and world-writable like every /tmp; set explicitly because the
    // umask would strip the bits from create_dir.
    let tmp = root.join("tmp");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))
        .map_err(|source| write_err(&tmp, source))?;

    let target = root.join(BUSYBOX_IN_ROOTFS.trim_start_matches('/'));
    fs::copy(busybox, &target).map_err(|source| write_err(&target, source))?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
        .map_err(|source| write_err(&target, source))?;

    let mut linked = 0;
    for applet in &applets {
        let link = root.join(applet);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).map_err(|source| write_err(parent, source))?;
        }
        symlink(BUSYBOX_IN_ROOTFS, &link).map_err(|source| write_err(&link, source))?;
        linked += 1;
    }

    let files: [(&str, &str); 6] = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("etc/hostname", ""),
        (
            "etc/hosts",
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        ),
        ("etc/resolv.conf", ""),
        ("etc/shells", "/bin/sh\n"),
    ];
    for (rel, contents) in files {
        let path = root.join(rel);
        fs::write(&path, contents).map_err(|source| write_err(&path, source))?;
    }
    tree.finish()?;
    Ok(linked)
}

/// The applets of `busybox`, as paths relative to the root (`bin/sh`).
fn list_applets(busybox: &Path) -> Result<Vec<String>> {
    let program = format!("{} --list-full", busybox.display());
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| RuntimeError::RunHelper {
            program: program.clone(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(RuntimeError::RunHelper {
            program,
            detail: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .map(|l| l.trim().trim_start_matches('/'))
        // An applet named like a path escape would write outside the rootfs.
        .filter(|l| !l.is_empty() && !l.split('/').any(|c| c == ".." || c.is_empty()))
        .map(str::to_owned)
        .collect())
}

/// Refuses anything but an ELF executable without an interpreter: a
/// dynamically linked busybox would fail inside a rootfs with no libc.
fn check_static_executable(path: &Path) -> Result<()> {
    const PT_INTERP: u32 = 3;
    let not_static = || RuntimeError::NotStaticExecutable {
        path: path.to_path_buf(),
    };
    if path.symlink_metadata().is_err() {
        return Err(RuntimeError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut bytes))
        .map_err(|source| read_err(path, source))?;
    // Only 64-bit little-endian ELF, which is what this engine runs on.
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return Err(not_static());
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap_or_default()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let Some(kind) = bytes.get(at..at + 4) else {
            return Err(not_static());
        };
        if u32::from_le_bytes(kind.try_into().unwrap_or_default()) == PT_INTERP {
            return Err(not_static());
        }
    }
    Ok(())
}

/// Imports a rootfs into `dest` from a directory (copied with `cp -a`, which
/// keeps symlinks, modes, ownership and hard links) or from a `.tar`,
/// `.tar.gz` or `.tgz` file. The result must contain `/bin/sh`. `dest` must
/// not exist; nothing is left behind on failure.
///
/// Nothing is ever written outside `dest`: a tarball entry with an absolute
/// path or a `..` component, one whose parent is a symlink the archive made
/// (`a -> /etc`, then `a/passwd`), a directory entry over such a symlink and
/// a hard link whose target is outside or behind a symlink are refused with
/// [`RuntimeError::UnsafeEntry`]. So are device nodes, in tarballs and
/// directories alike: a container gets its own minimal `/dev`, and a node in
/// its image would be a door to the host's devices.
pub fn import_rootfs(src: &Path, dest: &Path) -> Result<()> {
    let meta = fs::metadata(src).map_err(|_| RuntimeError::NotFound {
        path: src.to_path_buf(),
    })?;
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let is_gzip = name.ends_with(".tar.gz") || name.ends_with(".tgz");
    let is_tar = name.ends_with(".tar");
    if !meta.is_dir() && !(meta.is_file() && (is_gzip || is_tar)) {
        return Err(RuntimeError::UnsupportedSource {
            path: src.to_path_buf(),
        });
    }
    if meta.is_dir() {
        refuse_device_nodes(src)?;
    }
    let tree = TempTree::create(dest)?;
    if meta.is_dir() {
        copy_tree(src, &tree.path)?;
    } else {
        let file = fs::File::open(src).map_err(|source| read_err(src, source))?;
        let reader: Box<dyn Read> = if is_gzip {
            Box::new(flate2::read::GzDecoder::new(file))
        } else {
            Box::new(file)
        };
        unpack_tarball(src, reader, &tree.path)?;
    }
    if !has_shell(&tree.path) {
        return Err(RuntimeError::NotRootfs {
            path: src.to_path_buf(),
        });
    }
    tree.finish()
}

fn refused(entry: &str, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::UnsafeEntry {
        entry: quoted(entry),
        reason: reason.into(),
    }
}

const NO_DEVICES: &str = "device nodes are not imported (containers get their own /dev)";

/// Unpacks the tarball read from `reader` (the file `src`) into `root`,
/// entry by entry, after [`check_entry`] passed each one.
fn unpack_tarball(src: &Path, reader: impl Read, root: &Path) -> Result<()> {
    let unpack_err = |source| RuntimeError::Unpack {
        path: src.to_path_buf(),
        source,
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    let mut directories = Vec::new();
    for entry in archive.entries().map_err(unpack_err)? {
        let mut entry = entry.map_err(unpack_err)?;
        if !check_entry(&entry, root)? {
            continue;
        }
        if entry.header().entry_type().is_dir() {
            directories.push(entry);
            continue;
        }
        entry.unpack_in(root).map_err(unpack_err)?;
    }
    // Directories last and deepest first, as tar(1) does, so that a
    // read-only directory's mode is set after the files inside it are
    // written. Checked again: a later entry may have put a symlink there.
    directories.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut dir in directories {
        check_entry(&dir, root)?;
        dir.unpack_in(root).map_err(unpack_err)?;
    }
    Ok(())
}

/// Checks one tarball entry against the tree unpacked so far in `root`;
/// false for entries with nothing to unpack (the root itself, pax and GNU
/// extension headers).
fn check_entry<R: Read>(entry: &tar::Entry<'_, R>, root: &Path) -> Result<bool> {
    let kind = entry.header().entry_type();
    if kind.is_pax_global_extensions()
        || kind.is_pax_local_extensions()
        || kind.is_gnu_longname()
        || kind.is_gnu_longlink()
    {
        return Ok(false);
    }
    let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let path = entry
        .path()
        .map_err(|e| refused(&shown, format!("its path is unreadable: {e}")))?;
    let Some(rel) = inside_path(&path).map_err(|why| refused(&shown, why))? else {
        return Ok(false);
    };
    if kind.is_character_special() || kind.is_block_special() {
        return Err(refused(&shown, NO_DEVICES));
    }
    if let Some(link) = through_symlink(root, &rel) {
        return Err(refused(
            &shown,
            format!(
                "its parent {} is a symlink, and nothing is written through one",
                quoted(&link.to_string_lossy())
            ),
        ));
    }
    if kind.is_dir() && fs::symlink_metadata(root.join(&rel)).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(refused(&shown, "a directory over a symlink of the archive"));
    }
    if kind.is_hard_link() {
        let target = entry
            .link_name()
            .map_err(|e| refused(&shown, format!("its link target is unreadable: {e}")))?
            .ok_or_else(|| refused(&shown, "a hard link without a target"))?;
        let why = |reason: String| {
            refused(
                &shown,
                format!("hard link target {}: {reason}", quoted(&target.to_string_lossy())),
            )
        };
        let target = inside_path(&target)
            .map_err(why)?
            .ok_or_else(|| why("it is the root".into()))?;
        if let Some(link) = through_symlink(root, &target).or_else(|| {
            fs::symlink_metadata(root.join(&target))
                .is_ok_and(|m| m.file_type().is_char_device() || m.file_type().is_block_device())
                .then(|| target.clone())
        }) {
            return Err(why(format!(
                "{} is a symlink or a device",
                quoted(&link.to_string_lossy())
            )));
        }
    }
    Ok(true)
}

/// `path` as a relative path of plain components, or why it is refused (it
/// is absolute or has a `..`); `None` for the root itself (`./`).
fn inside_path(path: &Path) -> std::result::Result<Option<PathBuf>, String> {
    let mut rel = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err("it is an absolute path".into());
            }
            Component::ParentDir => return Err("it has a '..' component".into()),
        }
    }
    Ok((!rel.as_os_str().is_empty()).then_some(rel))
}

/// The first proper ancestor of `rel` that is a symlink in `root`, if any:
/// writing below it would write wherever it points.
fn through_symlink(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut ancestor = PathBuf::new();
    let parents: Vec<_> = rel.parent().map(|p| p.components().collect()).unwrap_or_default();
    for part in parents {
        ancestor.push(part);
        match fs::symlink_metadata(root.join(&ancestor)) {
            Ok(m) if m.file_type().is_symlink() => return Some(ancestor),
            Ok(_) => {}
            // What does not exist yet has no symlink below it.
            Err(_) => return None,
        }
    }
    None
}

/// Refuses a directory source that holds a device node anywhere below it.
/// `cp -a` never follows symlinks, so nothing else can lead outside.
fn refuse_device_nodes(src: &Path) -> Result<()> {
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).map_err(|source| read_err(&dir, source))? {
            let entry = entry.map_err(|source| read_err(&dir, source))?;
            let kind = entry
                .file_type()
                .map_err(|source| read_err(&entry.path(), source))?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_char_device() || kind.is_block_device() {
                let path = entry.path();
                let rel = path.strip_prefix(src).unwrap_or(&path);
                return Err(refused(&rel.to_string_lossy(), NO_DEVICES));
            }
        }
    }
    Ok(())
}

fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    // "SRC/." copies the contents into the existing temporary directory.
    let out = Command::new("cp")
        .arg("-a")
        .arg("--")
        .arg(src.join("."))
        .arg(dest)
        .output()
        .map_err(|e| RuntimeError::RunHelper {
            program: "cp -a".into(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(RuntimeError::RunHelper {
            program: format!("cp -a {}", src.display()),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Whether `root` holds `bin/sh` as a file or symlink. `bin` itself may be a
/// symlink (merged /usr); an absolute one is resolved inside `root`, not on
/// the host.
fn has_shell(root: &Path) -> bool {
    let mut bin = root.join("bin");
    for _ in 0..8 {
        match fs::read_link(&bin) {
            Ok(target) if target.is_absolute() => {
                bin = root.join(target.strip_prefix("/").unwrap_or(&target))
            }
            Ok(target) => bin = bin.parent().unwrap_or(root).join(target),
            Err(_) => break,
        }
    }
    bin.join("sh").symlink_metadata().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUSYBOX: &str = "/bin/busybox";

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn builds_busybox_rootfs() {
        if !Path::new(BUSYBOX).exists() {
            eprintln!("skipped: {BUSYBOX} is not installed");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("rootfs");
        let linked = build_busybox_rootfs(Path::new(BUSYBOX), &dest).unwrap();
        assert!(linked > 50, "only {linked} applets");
        assert_eq!(
            fs::read_link(dest.join("bin/sh")).unwrap(),
            Path::new("/bin/busybox")
        );
        assert!(dest.join("usr/bin/nc").symlink_metadata().is_ok());
        assert_eq!(
            fs::metadata(dest.join("tmp")).unwrap().permissions().mode() & 0o7777,
            0o1777
        );
        assert!(
            fs::read_to_string(dest.join("etc/passwd"))
                .unwrap()
                .starts_with("root:x:0:0:root:/root:/bin/sh\n")
        );
        assert_eq!(fs::read_to_string(dest.join("etc/hostname")).unwrap(), "");
        assert!(has_shell(&dest));
        assert_eq!(leftovers(tmp.path()), vec!["rootfs"]);

        let err = build_busybox_rootfs(Path::new(BUSYBOX), &dest).unwrap_err();
        assert!(matches!(err, RuntimeError::DestinationExists { .. }), "{err}");
    }

    #[test]
    fn refuses_missing_or_dynamic_busybox() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("rootfs");
        let err = build_busybox_rootfs(Path::new("/nonexistent/busybox"), &dest).unwrap_err();
        assert_eq!(err.to_string(), "'/nonexistent/busybox' does not exist");
        let err = build_busybox_rootfs(Path::new("/bin/ls"), &dest).unwrap_err();
        assert!(
            err.to_string().contains("'/bin/ls' is not a statically linked"),
            "{err}"
        );
        assert!(leftovers(tmp.path()).is_empty());
    }

    fn sample_tarball(path: &Path, gzip: bool, with_shell: bool) {
        let file = fs::File::create(path).unwrap();
        let writer: Box<dyn std::io::Write> = if gzip {
            Box::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()))
        } else {
            Box::new(file)
        };
        let mut builder = tar::Builder::new(writer);
        let owned_by_root = |h: &mut tar::Header| {
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
        };
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        owned_by_root(&mut dir);
        builder.append_data(&mut dir, "bin", std::io::empty()).unwrap();
        let body = b"#!/bin/busybox\n";
        let mut file = tar::Header::new_gnu();
        file.set_mode(0o750);
        file.set_size(body.len() as u64);
        owned_by_root(&mut file);
        builder.append_data(&mut file, "bin/busybox", &body[..]).unwrap();
        if with_shell {
            let mut link = tar::Header::new_gnu();
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_size(0);
            owned_by_root(&mut link);
            builder.append_link(&mut link, "bin/sh", "busybox").unwrap();
        }
        builder.into_inner().unwrap().flush().unwrap();
    }

    #[test]
    fn imports_tarballs_with_modes_and_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        for (name, gzip) in [("img.tar", false), ("img.tar.gz", true), ("img.tgz", true)] {
            let tarball = tmp.path().join(name);
            sample_tarball(&tarball, gzip, true);
            let dest = tmp.path().join(format!("{name}.rootfs"));
            import_rootfs(&tarball, &dest).unwrap();
            assert_eq!(fs::read_link(dest.join("bin/sh")).unwrap(), Path::new("busybox"));
            let mode = fs::metadata(dest.join("bin/busybox"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o750, "{name}");
        }
    }

    #[test]
    fn refuses_tarball_without_shell_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let tarball = tmp.path().join("noshell.tar");
        sample_tarball(&tarball, false, false);
        let dest = tmp.path().join("rootfs");
        let err = import_rootfs(&tarball, &dest).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("'{}' is not a root filesystem: no /bin/sh", tarball.display())
        );
        assert_eq!(leftovers(tmp.path()), vec!["noshell.tar"]);
    }

    #[test]
    fn imports_directory_and_refuses_one_without_shell() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("usr/bin")).unwrap();
        fs::write(src.join("usr/bin/sh"), "x").unwrap();
        fs::set_permissions(src.join("usr/bin/sh"), fs::Permissions::from_mode(0o700)).unwrap();

        let dest = tmp.path().join("noshell");
        let err = import_rootfs(&src, &dest).unwrap_err();
        assert!(matches!(err, RuntimeError::NotRootfs { .. }), "{err}");
        assert!(!dest.exists());

        // A merged-/usr layout with an absolute link must resolve inside the tree.
        symlink("/usr/bin", src.join("bin")).unwrap();
        let dest = tmp.path().join("rootfs");
        import_rootfs(&src, &dest).unwrap();
        assert_eq!(fs::read_link(dest.join("bin")).unwrap(), Path::new("/usr/bin"));
        assert_eq!(
            fs::metadata(dest.join("usr/bin/sh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let mut names = leftovers(tmp.path());
        names.sort();
        assert_eq!(names, vec!["rootfs", "src"]);
    }

    #[test]
    fn refuses_missing_and_unsupported_sources() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("rootfs");
        let err = import_rootfs(Path::new("/nonexistent/img.tar"), &dest).unwrap_err();
        assert_eq!(err.to_string(), "'/nonexistent/img.tar' does not exist");
        let zip = tmp.path().join("img.zip");
        fs::write(&zip, "x").unwrap();
        let err = import_rootfs(&zip, &dest).unwrap_err();
        assert!(err.to_string().contains("is neither a directory nor"), "{err}");
        assert!(!dest.exists());
    }

    /// One member of a crafted tarball. Paths go into the header as raw
    /// bytes, so that `..` and absolute paths, which tar's builder refuses
    /// to write, can be tested.
    enum Member<'a> {
        Dir(&'a str),
        File(&'a str, &'a [u8]),
        Symlink(&'a str, &'a str),
        HardLink(&'a str, &'a str),
        CharDevice(&'a str),
    }

    fn crafted_tarball(path: &Path, members: &[Member]) {
        let mut builder = tar::Builder::new(fs::File::create(path).unwrap());
        for member in members {
            let mut header = tar::Header::new_ustar();
            let (name, kind, link, data): (&str, _, Option<&str>, &[u8]) = match member {
                Member::Dir(name) => (name, tar::EntryType::Directory, None, b""),
                Member::File(name, data) => (name, tar::EntryType::Regular, None, data),
                Member::Symlink(name, target) => (name, tar::EntryType::Symlink, Some(target), b""),
                Member::HardLink(name, target) => (name, tar::EntryType::Link, Some(target), b""),
                Member::CharDevice(name) => (name, tar::EntryType::Char, None, b""),
            };
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(link) = link {
                old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            header.set_entry_type(kind);
            header.set_mode(if kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            header.set_size(data.len() as u64);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            if kind == tar::EntryType::Char {
                header.set_device_major(1).unwrap();
                header.set_device_minor(3).unwrap();
            }
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap();
    }

    /// The members every image needs, so that only the bad one is at fault.
    fn with_shell<'a>(mut members: Vec<Member<'a>>) -> Vec<Member<'a>> {
        members.insert(0, Member::Dir("bin"));
        members.insert(1, Member::File("bin/busybox", b"#!"));
        members.insert(2, Member::Symlink("bin/sh", "busybox"));
        members
    }

    /// Imports a crafted tarball that must be refused with `message`;
    /// checks that nothing was left in the work directory or written to
    /// `outside`, a directory beside it that the tarball aims at.
    fn refused(tmp: &Path, members: Vec<Member>, message: &str) {
        let tarball = tmp.join("crafted.tar");
        crafted_tarball(&tarball, &with_shell(members));
        let dest = tmp.join("work").join("rootfs");
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let err = import_rootfs(&tarball, &dest).unwrap_err();
        assert!(matches!(err, RuntimeError::UnsafeEntry { .. }), "{err:?}");
        assert_eq!(err.to_string(), message);
        assert!(
            leftovers(&tmp.join("work")).is_empty(),
            "{:?}",
            leftovers(&tmp.join("work"))
        );
        let mut outside = leftovers(&tmp.join("outside"));
        outside.sort();
        assert_eq!(outside, ["secret"], "something was written outside");
        assert_eq!(
            fs::read_to_string(tmp.join("outside/secret")).unwrap(),
            "untouched"
        );
        assert_eq!(
            std::os::unix::fs::MetadataExt::nlink(&fs::metadata(tmp.join("outside/secret")).unwrap()),
            1,
            "a hard link to the outside was made"
        );
    }

    fn scratch() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("outside")).unwrap();
        fs::write(tmp.path().join("outside/secret"), "untouched").unwrap();
        tmp
    }

    #[test]
    fn entries_that_climb_out_or_are_absolute_are_refused() {
        let tmp = scratch();
        let t = tmp.path();
        refused(
            t,
            vec![Member::File("../outside/evil", b"x")],
            "refused entry '../outside/evil': it has a '..' component",
        );
        refused(
            t,
            vec![Member::File("bin/../../outside/evil", b"x")],
            "refused entry 'bin/../../outside/evil': it has a '..' component",
        );
        let absolute = format!("{}/outside/evil", t.display());
        refused(
            t,
            vec![Member::File(&absolute, b"x")],
            &format!("refused entry '{absolute}': it is an absolute path"),
        );
        refused(
            t,
            vec![Member::File("a\nb/../../x", b"x")],
            r#"refused entry "a\nb/../../x": it has a '..' component"#,
        );
    }

    #[test]
    fn nothing_is_written_through_a_symlink() {
        let tmp = scratch();
        let t = tmp.path();
        let outside = format!("{}/outside", t.display());
        refused(
            t,
            vec![
                Member::Symlink("etc", &outside),
                Member::File("etc/passwd", b"root::0:0"),
            ],
            "refused entry 'etc/passwd': its parent 'etc' is a symlink, and nothing is written through one",
        );
        refused(
            t,
            vec![
                Member::Symlink("up", "../../outside"),
                Member::File("up/deeper/evil", b"x"),
            ],
            "refused entry 'up/deeper/evil': its parent 'up' is a symlink, and nothing is written through one",
        );
        refused(
            t,
            vec![Member::Symlink("etc", &outside), Member::Dir("etc")],
            "refused entry 'etc': a directory over a symlink of the archive",
        );
    }

    #[test]
    fn hard_links_out_of_the_tree_are_refused() {
        let tmp = scratch();
        let t = tmp.path();
        refused(
            t,
            vec![Member::HardLink("bin/secret", "../outside/secret")],
            "refused entry 'bin/secret': hard link target '../outside/secret': it has a '..' component",
        );
        let outside = format!("{}/outside", t.display());
        refused(
            t,
            vec![
                Member::Symlink("o", &outside),
                Member::HardLink("bin/secret", "o/secret"),
            ],
            "refused entry 'bin/secret': hard link target 'o/secret': 'o' is a symlink or a device",
        );
        let absolute = format!("{}/outside/secret", t.display());
        refused(
            t,
            vec![Member::HardLink("bin/secret", &absolute)],
            &format!("refused entry 'bin/secret': hard link target '{absolute}': it is an absolute path"),
        );
    }

    #[test]
    fn device_nodes_are_refused() {
        let tmp = scratch();
        refused(
            tmp.path(),
            vec![Member::Dir("dev"), Member::CharDevice("dev/mem")],
            "refused entry 'dev/mem': device nodes are not imported (containers get their own /dev)",
        );
        // A directory source too, when this test may make a node (root).
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("bin/sh"), "x").unwrap();
        fs::create_dir_all(src.join("dev")).unwrap();
        let made = nix::sys::stat::mknod(
            &src.join("dev/null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        );
        if made.is_err() {
            eprintln!("skipped the directory case: mknod needs root");
            return;
        }
        let dest = tmp.path().join("work2").join("rootfs");
        let err = import_rootfs(&src, &dest).unwrap_err();
        assert_eq!(
            err.to_string(),
            "refused entry 'dev/null': device nodes are not imported (containers get their own /dev)"
        );
        assert!(!dest.exists() && !dest.parent().unwrap().exists());
    }

    #[test]
    fn symlinks_and_inner_hard_links_are_kept() {
        let tmp = scratch();
        let tarball = tmp.path().join("good.tar");
        crafted_tarball(
            &tarball,
            &with_shell(vec![
                Member::Dir("etc"),
                // Absolute and climbing targets are fine: they resolve in
                // the container, never while unpacking.
                Member::Symlink("etc/hosts", "/run/hosts"),
                Member::Symlink("etc/up", "../../outside"),
                Member::HardLink("bin/ash", "bin/busybox"),
                Member::File("./etc/motd", b"hi"),
            ]),
        );
        let dest = tmp.path().join("rootfs");
        import_rootfs(&tarball, &dest).unwrap();
        assert_eq!(
            fs::read_link(dest.join("etc/hosts")).unwrap(),
            Path::new("/run/hosts")
        );
        assert_eq!(
            fs::read_link(dest.join("etc/up")).unwrap(),
            Path::new("../../outside")
        );
        assert_eq!(fs::read(dest.join("bin/ash")).unwrap(), b"#!");
        assert_eq!(fs::read(dest.join("etc/motd")).unwrap(), b"hi");
        assert_eq!(leftovers(&tmp.path().join("outside")), ["secret"]);
    }
}
