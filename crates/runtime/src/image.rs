//! Building image root filesystems: plain filesystem work, no daemon logic.
//!
//! [`build_busybox_rootfs`] makes a minimal rootfs from a static busybox;
//! [`import_rootfs`] copies a directory or unpacks a tarball. Both build in a
//! temporary sibling of the destination (`DEST.tmp-…`) and rename it into
//! place at the end, so a failure or a crash never leaves a half-built image
//! under the final name; the engine can treat "the directory exists" as "the
//! image is complete".

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

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
        let mut archive = tar::Archive::new(reader);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_preserve_mtime(true);
        archive.set_overwrite(true);
        archive
            .unpack(&tree.path)
            .map_err(|source| RuntimeError::Unpack {
                path: src.to_path_buf(),
                source,
            })?;
    }
    if !has_shell(&tree.path) {
        return Err(RuntimeError::NotRootfs {
            path: src.to_path_buf(),
        });
    }
    tree.finish()
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
}
