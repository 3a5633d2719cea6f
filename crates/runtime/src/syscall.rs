//! The kernel operations a container's supervisor and init make, behind one
//! trait, as youki's `Syscall` (see `STYLE.md`).
//!
//! - [`Syscalls`] lists them: namespaces (`setns`, `unshare`), mounts,
//!   `pivot_root`, `chdir`, the hostname, the files and links made while the
//!   rootfs is set up, capability changes and the seccomp filter.
//! - [`LinuxSyscalls`] makes them for real.
//! - [`RecordingSyscalls`] records each call with its arguments and can be
//!   told to fail the *n*th call, overall or of one [`CallKind`], so the
//!   init's setup order and its error paths are tested without root.
//!
//! The implementation is always passed in by the caller
//! ([`crate::shim::shim_main`] builds a [`LinuxSyscalls`]); nothing here is
//! chosen with `cfg(test)`.

use std::fs;
use std::io::{self, Write};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use caps::errors::CapsError;
use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// The kernel operations of the supervisor and the container's init.
///
/// Methods take `&self` so one implementation can be shared by reference
/// (`&dyn Syscalls`) through the whole setup. Kernel calls fail with the
/// [`Errno`] the kernel returned, filesystem helpers with an [`io::Error`];
/// neither adds context: the caller names the operation.
pub trait Syscalls {
    /// Joins the namespace `ns` refers to (setns(2)); `nstype` says which
    /// kind it must be.
    fn setns(&self, ns: BorrowedFd<'_>, nstype: CloneFlags) -> Result<(), Errno>;
    /// Moves the calling process into new namespaces of the kinds in
    /// `flags` (unshare(2)).
    fn unshare(&self, flags: CloneFlags) -> Result<(), Errno>;
    /// mount(2), with the same meaning of every argument.
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno>;
    /// umount2(2).
    fn umount(&self, target: &Path, flags: MntFlags) -> Result<(), Errno>;
    /// pivot_root(2).
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<(), Errno>;
    /// chdir(2).
    fn chdir(&self, path: &Path) -> Result<(), Errno>;
    /// sethostname(2), in the current uts namespace.
    fn sethostname(&self, name: &str) -> Result<(), Errno>;
    /// Creates `path` and its missing parents; succeeds if it exists.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates an empty regular file (a bind mount's target); truncates one
    /// that exists.
    fn create_file(&self, path: &Path) -> io::Result<()>;
    /// Creates the symbolic link `link` pointing at `target`.
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// Puts a regular file holding `contents` at `path`, replacing whatever
    /// entry is there (a symlink included) without following it; readers
    /// see the old entry or the new file, never part of one. The parent
    /// directory must exist.
    fn replace_file(&self, path: &Path, contents: &[u8]) -> io::Result<()>;
    /// The capabilities the running kernel knows. A query: never recorded,
    /// never failed on purpose.
    fn supported_capabilities(&self) -> CapsHashSet;
    /// Removes `cap` from the bounding set (needs `CAP_SETPCAP` in the
    /// effective set).
    fn drop_bounding_capability(&self, cap: Capability) -> Result<(), CapsError>;
    /// Empties the ambient set; succeeds on kernels without one.
    fn clear_ambient_capabilities(&self) -> Result<(), CapsError>;
    /// Sets the capability set `set` of the calling thread to `caps`.
    fn set_capabilities(&self, set: CapSet, caps: &CapsHashSet) -> Result<(), CapsError>;
    /// Installs a seccomp filter on the calling thread (seccomp(2),
    /// `SECCOMP_SET_MODE_FILTER`), without setting `no_new_privs`: the
    /// caller must still hold `CAP_SYS_ADMIN`. The filter is inherited by
    /// children and kept across exec.
    fn install_seccomp_filter(&self, program: &[seccompiler::sock_filter]) -> Result<(), Errno>;
}

/// The real kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinuxSyscalls;

impl Syscalls for LinuxSyscalls {
    fn setns(&self, ns: BorrowedFd<'_>, nstype: CloneFlags) -> Result<(), Errno> {
        nix::sched::setns(ns, nstype)
    }

    fn unshare(&self, flags: CloneFlags) -> Result<(), Errno> {
        nix::sched::unshare(flags)
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn umount(&self, target: &Path, flags: MntFlags) -> Result<(), Errno> {
        nix::mount::umount2(target, flags)
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<(), Errno> {
        nix::unistd::pivot_root(new_root, put_old)
    }

    fn chdir(&self, path: &Path) -> Result<(), Errno> {
        nix::unistd::chdir(path)
    }

    fn sethostname(&self, name: &str) -> Result<(), Errno> {
        nix::unistd::sethostname(name)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn create_file(&self, path: &Path) -> io::Result<()> {
        fs::File::create(path).map(drop)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    /// Writes a temporary file next to `path` and renames it over `path`.
    /// rename(2) replaces the directory entry itself, so a symlink at `path`
    /// (an image's `/etc/hosts -> /run/hosts`) is replaced, not followed: the
    /// write cannot land outside the directory, and does not fail because
    /// the link's target directory is missing or read-only (`/proc`, `/sys`).
    fn replace_file(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let tmp = path.with_file_name(format!(".{}.cell-tmp", name.to_string_lossy()));
        let written = (|| {
            // create_new: O_EXCL implies O_NOFOLLOW, so a symlink an image
            // planted under the temporary name is not written through.
            let _ = fs::remove_file(&tmp);
            let mut file = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            file.write_all(contents)?;
            fs::rename(&tmp, path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    fn supported_capabilities(&self) -> CapsHashSet {
        caps::runtime::thread_all_supported()
    }

    fn drop_bounding_capability(&self, cap: Capability) -> Result<(), CapsError> {
        caps::drop(None, CapSet::Bounding, cap)
    }

    fn clear_ambient_capabilities(&self) -> Result<(), CapsError> {
        if caps::runtime::ambient_set_supported().is_err() {
            return Ok(());
        }
        caps::clear(None, CapSet::Ambient)
    }

    fn set_capabilities(&self, set: CapSet, caps: &CapsHashSet) -> Result<(), CapsError> {
        caps::set(None, set, caps)
    }

    fn install_seccomp_filter(&self, program: &[seccompiler::sock_filter]) -> Result<(), Errno> {
        /// `struct sock_fprog` of linux/filter.h, over seccompiler's
        /// instruction type (the same layout as the kernel's).
        #[repr(C)]
        struct SockFprog {
            len: libc::c_ushort,
            filter: *const seccompiler::sock_filter,
        }
        let len = libc::c_ushort::try_from(program.len()).map_err(|_| Errno::E2BIG)?;
        let prog = SockFprog {
            len,
            filter: program.as_ptr(),
        };
        // SAFETY: the kernel copies `len` instructions from `filter`, which
        // points at `program`, alive for the call; nothing is kept.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const SockFprog,
            )
        };
        Errno::result(rc).map(drop)
    }
}

/// Which operation a [`Call`] is, without its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    Setns,
    Unshare,
    Mount,
    Umount,
    PivotRoot,
    Chdir,
    Sethostname,
    CreateDirAll,
    CreateFile,
    Symlink,
    ReplaceFile,
    DropBoundingCapability,
    ClearAmbientCapabilities,
    SetCapabilities,
    InstallSeccompFilter,
}

/// One call made through a [`RecordingSyscalls`], with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Setns {
        nstype: CloneFlags,
    },
    Unshare {
        flags: CloneFlags,
    },
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Umount {
        target: PathBuf,
        flags: MntFlags,
    },
    PivotRoot {
        new_root: PathBuf,
        put_old: PathBuf,
    },
    Chdir {
        path: PathBuf,
    },
    Sethostname {
        name: String,
    },
    CreateDirAll {
        path: PathBuf,
    },
    CreateFile {
        path: PathBuf,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    ReplaceFile {
        path: PathBuf,
        contents: Vec<u8>,
    },
    DropBoundingCapability {
        cap: Capability,
    },
    ClearAmbientCapabilities,
    SetCapabilities {
        /// The set's name: "effective", "permitted", "inheritable"...
        set: &'static str,
        /// Sorted, so calls compare equal whatever the hash order.
        caps: Vec<Capability>,
    },
    InstallSeccompFilter {
        /// The program's length in instructions.
        instructions: usize,
    },
}

impl Call {
    /// The operation, without its arguments.
    pub fn kind(&self) -> CallKind {
        match self {
            Call::Setns { .. } => CallKind::Setns,
            Call::Unshare { .. } => CallKind::Unshare,
            Call::Mount { .. } => CallKind::Mount,
            Call::Umount { .. } => CallKind::Umount,
            Call::PivotRoot { .. } => CallKind::PivotRoot,
            Call::Chdir { .. } => CallKind::Chdir,
            Call::Sethostname { .. } => CallKind::Sethostname,
            Call::CreateDirAll { .. } => CallKind::CreateDirAll,
            Call::CreateFile { .. } => CallKind::CreateFile,
            Call::Symlink { .. } => CallKind::Symlink,
            Call::ReplaceFile { .. } => CallKind::ReplaceFile,
            Call::DropBoundingCapability { .. } => CallKind::DropBoundingCapability,
            Call::ClearAmbientCapabilities => CallKind::ClearAmbientCapabilities,
            Call::SetCapabilities { .. } => CallKind::SetCapabilities,
            Call::InstallSeccompFilter { .. } => CallKind::InstallSeccompFilter,
        }
    }
}

/// When a [`RecordingSyscalls`] fails a call.
#[derive(Debug, Clone, Copy)]
struct FailurePlan {
    /// Count only calls of this kind, or every call when `None`.
    kind: Option<CallKind>,
    /// 1-based: the first matching call is 1.
    nth: usize,
    errno: Errno,
}

#[derive(Debug, Default)]
struct Recording {
    calls: Vec<Call>,
    failures: Vec<FailurePlan>,
}

/// A double that changes nothing: it records every call (the failed one
/// included) and succeeds, except for the calls it was told to fail.
///
/// ```
/// use cell_runtime::syscall::{Call, CallKind, RecordingSyscalls, Syscalls};
/// use nix::errno::Errno;
/// let sys = RecordingSyscalls::new().fail_nth_of(CallKind::Sethostname, 1, Errno::EPERM);
/// sys.chdir("/".as_ref()).unwrap();
/// assert_eq!(sys.sethostname("web"), Err(Errno::EPERM));
/// assert_eq!(sys.calls().len(), 2);
/// assert_eq!(sys.calls()[1], Call::Sethostname { name: "web".into() });
/// ```
#[derive(Debug, Default)]
pub struct RecordingSyscalls {
    state: Mutex<Recording>,
    supported: Option<CapsHashSet>,
}

impl RecordingSyscalls {
    /// A double that fails nothing and reports every capability the `caps`
    /// crate knows as supported.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails the `nth` call overall (1-based) with `errno`.
    pub fn fail_nth(self, nth: usize, errno: Errno) -> Self {
        self.plan(FailurePlan {
            kind: None,
            nth,
            errno,
        })
    }

    /// Fails the `nth` call of `kind` (1-based) with `errno`.
    pub fn fail_nth_of(self, kind: CallKind, nth: usize, errno: Errno) -> Self {
        self.plan(FailurePlan {
            kind: Some(kind),
            nth,
            errno,
        })
    }

    /// Reports `caps` as the kernel's supported capabilities.
    pub fn with_supported_capabilities(mut self, caps: CapsHashSet) -> Self {
        self.supported = Some(caps);
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The kinds of the calls so far, in order.
    pub fn kinds(&self) -> Vec<CallKind> {
        self.lock().calls.iter().map(Call::kind).collect()
    }

    fn plan(self, failure: FailurePlan) -> Self {
        self.lock().failures.push(failure);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recording> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `call`; returns the error it must fail with, if any.
    fn record(&self, call: Call) -> Result<(), Errno> {
        let mut state = self.lock();
        let kind = call.kind();
        state.calls.push(call);
        let overall = state.calls.len();
        let of_kind = state.calls.iter().filter(|c| c.kind() == kind).count();
        let failure = state.failures.iter().find(|f| match f.kind {
            None => f.nth == overall,
            Some(k) => k == kind && f.nth == of_kind,
        });
        match failure {
            Some(f) => Err(f.errno),
            None => Ok(()),
        }
    }

    fn record_io(&self, call: Call) -> io::Result<()> {
        self.record(call)
            .map_err(|errno| io::Error::from_raw_os_error(errno as i32))
    }

    fn record_caps(&self, call: Call) -> Result<(), CapsError> {
        self.record(call)
            .map_err(|errno| CapsError::from(format!("injected failure: {errno:?}")))
    }
}

impl Syscalls for RecordingSyscalls {
    fn setns(&self, _ns: BorrowedFd<'_>, nstype: CloneFlags) -> Result<(), Errno> {
        self.record(Call::Setns { nstype })
    }

    fn unshare(&self, flags: CloneFlags) -> Result<(), Errno> {
        self.record(Call::Unshare { flags })
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno> {
        self.record(Call::Mount {
            source: source.map(Path::to_path_buf),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_owned),
            flags,
            data: data.map(str::to_owned),
        })
    }

    fn umount(&self, target: &Path, flags: MntFlags) -> Result<(), Errno> {
        self.record(Call::Umount {
            target: target.to_path_buf(),
            flags,
        })
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<(), Errno> {
        self.record(Call::PivotRoot {
            new_root: new_root.to_path_buf(),
            put_old: put_old.to_path_buf(),
        })
    }

    fn chdir(&self, path: &Path) -> Result<(), Errno> {
        self.record(Call::Chdir {
            path: path.to_path_buf(),
        })
    }

    fn sethostname(&self, name: &str) -> Result<(), Errno> {
        self.record(Call::Sethostname { name: name.into() })
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.record_io(Call::CreateDirAll {
            path: path.to_path_buf(),
        })
    }

    fn create_file(&self, path: &Path) -> io::Result<()> {
        self.record_io(Call::CreateFile {
            path: path.to_path_buf(),
        })
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.record_io(Call::Symlink {
            target: target.to_path_buf(),
            link: link.to_path_buf(),
        })
    }

    fn replace_file(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        self.record_io(Call::ReplaceFile {
            path: path.to_path_buf(),
            contents: contents.to_vec(),
        })
    }

    fn supported_capabilities(&self) -> CapsHashSet {
        self.supported.clone().unwrap_or_else(caps::all)
    }

    fn drop_bounding_capability(&self, cap: Capability) -> Result<(), CapsError> {
        self.record_caps(Call::DropBoundingCapability { cap })
    }

    fn clear_ambient_capabilities(&self) -> Result<(), CapsError> {
        self.record_caps(Call::ClearAmbientCapabilities)
    }

    fn set_capabilities(&self, set: CapSet, caps: &CapsHashSet) -> Result<(), CapsError> {
        let mut caps: Vec<Capability> = caps.iter().copied().collect();
        caps.sort_by_key(|c| c.index());
        let set = match set {
            CapSet::Ambient => "ambient",
            CapSet::Bounding => "bounding",
            CapSet::Effective => "effective",
            CapSet::Inheritable => "inheritable",
            CapSet::Permitted => "permitted",
        };
        self.record_caps(Call::SetCapabilities { set, caps })
    }

    fn install_seccomp_filter(&self, program: &[seccompiler::sock_filter]) -> Result<(), Errno> {
        self.record(Call::InstallSeccompFilter {
            instructions: program.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_the_nth_call_overall_and_of_a_kind() {
        let sys = RecordingSyscalls::new().fail_nth(3, Errno::EIO);
        let root = Path::new("/");
        assert_eq!(sys.chdir(root), Ok(()));
        assert_eq!(sys.sethostname("a"), Ok(()));
        assert_eq!(sys.chdir(root), Err(Errno::EIO));
        assert_eq!(sys.chdir(root), Ok(()));

        let sys = RecordingSyscalls::new().fail_nth_of(CallKind::CreateFile, 2, Errno::ENOSPC);
        assert!(sys.create_file(root).is_ok());
        assert!(sys.create_dir_all(root).is_ok());
        let err = sys.create_file(root).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(
            sys.kinds(),
            [CallKind::CreateFile, CallKind::CreateDirAll, CallKind::CreateFile]
        );
        let err = RecordingSyscalls::new()
            .fail_nth_of(CallKind::SetCapabilities, 1, Errno::EPERM)
            .set_capabilities(CapSet::Effective, &CapsHashSet::new())
            .unwrap_err();
        assert!(err.to_string().contains("EPERM"), "{err}");
    }

    #[test]
    fn capability_sets_are_recorded_in_a_stable_order() {
        let sys = RecordingSyscalls::new();
        let set: CapsHashSet = [Capability::CAP_KILL, Capability::CAP_CHOWN]
            .into_iter()
            .collect();
        sys.set_capabilities(CapSet::Permitted, &set).unwrap();
        assert_eq!(
            sys.calls(),
            [Call::SetCapabilities {
                set: "permitted",
                caps: vec![Capability::CAP_CHOWN, Capability::CAP_KILL],
            }]
        );
    }

    #[test]
    fn replace_file_replaces_a_symlink_instead_of_following_it() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let etc = tmp.path().join("root/etc");
        fs::create_dir_all(&etc).unwrap();
        // Dangling into a missing directory, and pointing at a real file
        // outside: neither may be written through.
        std::os::unix::fs::symlink("/nonexistent/dir/hosts", etc.join("hosts")).unwrap();
        std::os::unix::fs::symlink(outside.join("resolv.conf"), etc.join("resolv.conf")).unwrap();
        fs::write(outside.join("resolv.conf"), "host's own\n").unwrap();

        LinuxSyscalls
            .replace_file(&etc.join("hosts"), b"10.0.0.2 web\n")
            .unwrap();
        LinuxSyscalls
            .replace_file(&etc.join("resolv.conf"), b"nameserver 10.0.0.1\n")
            .unwrap();

        for (name, contents) in [
            ("hosts", "10.0.0.2 web\n"),
            ("resolv.conf", "nameserver 10.0.0.1\n"),
        ] {
            let path = etc.join(name);
            assert!(fs::symlink_metadata(&path).unwrap().file_type().is_file());
            assert_eq!(fs::read_to_string(&path).unwrap(), contents);
        }
        assert_eq!(
            fs::read_to_string(outside.join("resolv.conf")).unwrap(),
            "host's own\n"
        );
        // No temporary file is left behind.
        let mut names: Vec<_> = fs::read_dir(&etc)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["hosts", "resolv.conf"]);
    }

    #[test]
    fn replace_file_reports_a_missing_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let err = LinuxSyscalls
            .replace_file(&tmp.path().join("no/such/file"), b"x")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
