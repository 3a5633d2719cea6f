//! The child side of the shim: builds the container process's world, then
//! execs its command.
//!
//! For an init, [`set_up_process`] joins the container's network namespace
//! (if it has one), creates mount, uts and ipc namespaces, mounts the
//! overlay rootfs with `/proc`, `/sys` and `/dev`, sets the hostname,
//! pivots into the rootfs, writes the files cell puts there (`/etc/hosts`,
//! ...), changes to the working directory and narrows the capabilities. An
//! exec joins the namespaces of a running init instead. Every kernel call
//! goes through the [`Syscalls`] the caller passes in, so the order of the
//! steps and each failure path are unit-tested on
//! [`crate::syscall::RecordingSyscalls`] without root.
//!
//! The pid namespace is the exception: only children enter a new one, so the
//! [`super::supervisor`] unshares or joins it before it forks this process.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, ErrorKind, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};

use crate::error::{Result, RuntimeError};
use crate::spec::{ProcessSpec, RootfsSpec, Target};
use crate::syscall::Syscalls;

/// Docker's default capabilities; `NET_RAW` is removed unless raw sockets
/// are allowed, `NET_ADMIN` added for vnet containers.
const DEFAULT_CAPS: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// Device nodes bind-mounted from the host into the container's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Handles on the namespaces of a running container, opened together.
pub(crate) struct ContainerNamespaces {
    pid_of_init: i32,
    ipc: File,
    uts: File,
    net: File,
    pid: File,
    mnt: File,
}

impl ContainerNamespaces {
    /// Opens every handle first: once joining starts, the container could
    /// exit, and a half-joined process is worse than a clear error.
    pub(crate) fn open(pid: i32) -> Result<Self> {
        let open = |ns: &str| {
            let path = PathBuf::from(format!("/proc/{pid}/ns/{ns}"));
            File::open(&path).map_err(|source| RuntimeError::OpenNamespace { pid, path, source })
        };
        Ok(Self {
            pid_of_init: pid,
            ipc: open("ipc")?,
            uts: open("uts")?,
            net: open("net")?,
            pid: open("pid")?,
            mnt: open("mnt")?,
        })
    }

    /// Joins the pid namespace; only children forked afterwards are in it.
    pub(crate) fn join_pid(&self, sys: &dyn Syscalls) -> Result<()> {
        self.join(sys, "pid", &self.pid, CloneFlags::CLONE_NEWPID)
    }

    /// Joins all but the pid namespace (the shim joined that one for us).
    /// The mount namespace comes last: joining it moves root and cwd to the
    /// container's pivoted root, after which the other handles could no
    /// longer be reopened by path.
    fn join_all_but_pid(&self, sys: &dyn Syscalls) -> Result<()> {
        self.join(sys, "ipc", &self.ipc, CloneFlags::CLONE_NEWIPC)?;
        self.join(sys, "uts", &self.uts, CloneFlags::CLONE_NEWUTS)?;
        self.join(sys, "net", &self.net, CloneFlags::CLONE_NEWNET)?;
        self.join(sys, "mnt", &self.mnt, CloneFlags::CLONE_NEWNS)
    }

    fn join(&self, sys: &dyn Syscalls, ns: &'static str, file: &File, flag: CloneFlags) -> Result<()> {
        sys.setns(file.as_fd(), flag)
            .map_err(|source| RuntimeError::JoinNamespace {
                ns,
                pid: self.pid_of_init,
                source,
            })
    }
}

/// The standard streams the container process gets: three descriptors,
/// which are the same terminal slave when `is_terminal`.
pub(crate) struct ChildStdio {
    pub(crate) stdin: OwnedFd,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
    /// Make stdin the controlling terminal of a new session.
    pub(crate) is_terminal: bool,
}

/// Runs in the forked child: builds its world, then execs. Returns only
/// setup errors; a failed exec ends the process itself.
pub(crate) fn run_container_process(
    sys: &dyn Syscalls,
    spec: &ProcessSpec,
    joined: Option<ContainerNamespaces>,
    stdio: ChildStdio,
) -> Result<Infallible> {
    set_up_process(sys, spec, joined.as_ref())?;
    drop(joined);

    if stdio.is_terminal {
        // A shell does job control only on its controlling terminal, and
        // Ctrl-C reaches the foreground group only through one: a new
        // session (the shim's child leads no group, so setsid works) whose
        // terminal is the slave.
        nix::unistd::setsid().map_err(|e| RuntimeError::sys("start a session for the terminal", e))?;
        // SAFETY: TIOCSCTTY takes an int argument and only changes this
        // process's session.
        if unsafe { libc::ioctl(stdio.stdin.as_raw_fd(), libc::TIOCSCTTY, 0) } == -1 {
            return Err(RuntimeError::sys("make the terminal controlling", Errno::last()));
        }
    }
    nix::unistd::dup2_stdin(&stdio.stdin).map_err(|e| RuntimeError::sys("redirect stdin", e))?;
    nix::unistd::dup2_stdout(&stdio.stdout).map_err(|e| RuntimeError::sys("redirect stdout", e))?;
    nix::unistd::dup2_stderr(&stdio.stderr).map_err(|e| RuntimeError::sys("redirect stderr", e))?;
    drop(stdio);

    // Ignored dispositions and the mask survive exec; the shim's are not the
    // container's.
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGPIPE] {
        // SAFETY: SIG_DFL installs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // Second line of defence after the shim closed what it inherited:
    // nothing but stdio survives the exec, while the error pipe stays usable
    // until then.
    // SAFETY: only sets a descriptor flag, on descriptors of this process.
    unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    exec_command(&spec.args, &spec.env)
}

/// Everything before the exec that changes kernel state: the namespaces and
/// rootfs of an init (or joining those of a running one for an exec), the
/// working directory and the capabilities. Stops at the first failure,
/// which names the operation; nothing after it runs.
pub(crate) fn set_up_process(
    sys: &dyn Syscalls,
    spec: &ProcessSpec,
    joined: Option<&ContainerNamespaces>,
) -> Result<()> {
    match (&spec.target, joined) {
        (
            Target::Init {
                rootfs,
                hostname,
                netns,
                files,
            },
            _,
        ) => set_up_init(sys, rootfs, hostname, netns.as_deref(), files)?,
        (Target::Exec { .. }, Some(ns)) => ns.join_all_but_pid(sys)?,
        (Target::Exec { init_pid }, None) => {
            return Err(RuntimeError::sys(
                format!("join container process {init_pid}"),
                Errno::EINVAL,
            ));
        }
    }
    sys.chdir(Path::new(&spec.cwd))
        .map_err(|e| RuntimeError::sys(format!("change directory to {}", spec.cwd), e))?;
    // While CAP_SYS_ADMIN is still held: installing a filter without it
    // needs no_new_privs, which would also strip setuid programs of the
    // container of their effect.
    if let Some(family) = spec.refused_socket_family {
        let program = crate::seccomp::refuse_socket_family(family)?;
        sys.install_seccomp_filter(&program).map_err(|e| {
            RuntimeError::sys(
                format!("install the seccomp filter refusing {family:?} sockets"),
                e,
            )
        })?;
    }
    set_capabilities(sys, spec.keep_net_admin, spec.keep_net_raw)
}

fn set_up_init(
    sys: &dyn Syscalls,
    rootfs: &RootfsSpec,
    hostname: &str,
    netns: Option<&Path>,
    files: &[(String, String)],
) -> Result<()> {
    if let Some(netns) = netns {
        let file = File::open(netns).map_err(|source| RuntimeError::Read {
            path: netns.to_path_buf(),
            source,
        })?;
        sys.setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| RuntimeError::sys(format!("join network namespace {}", netns.display()), e))?;
    }
    sys.unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC)
        .map_err(|e| RuntimeError::sys("create mount, uts and ipc namespaces", e))?;
    // Nothing mounted for the container may leak back to the host.
    sys.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .map_err(|source| RuntimeError::Mount {
        what: "private propagation".into(),
        target: "/".into(),
        source,
    })?;
    mount_rootfs(sys, rootfs)?;
    sys.sethostname(hostname)
        .map_err(|e| RuntimeError::sys(format!("set hostname {hostname}"), e))?;
    enter_rootfs(sys, &rootfs.merged)?;
    // After pivot_root, so that every path resolves inside the container's
    // root; and each file replaces what is there rather than writing
    // through a symlink (see `Syscalls::replace_file`).
    write_files(sys, files)
}

fn mount_rootfs(sys: &dyn Syscalls, rootfs: &RootfsSpec) -> Result<()> {
    for dir in [&rootfs.upper, &rootfs.work, &rootfs.merged] {
        create_dir(sys, dir)?;
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        rootfs.lower.display(),
        rootfs.upper.display(),
        rootfs.work.display()
    );
    let merged = &rootfs.merged;
    sys.mount(
        Some(Path::new("overlay")),
        merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|source| RuntimeError::Mount {
        what: "overlay".into(),
        target: merged.clone(),
        source,
    })?;

    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs(sys, "proc", &merged.join("proc"), hardened, None)?;
    let sys_dir = merged.join("sys");
    match mount_fs(sys, "sysfs", &sys_dir, hardened | MsFlags::MS_RDONLY, None) {
        // sysfs can refuse a new instance when the net namespace is shared
        // with the host; the host's view is the right one then anyway.
        Err(RuntimeError::Mount {
            source: Errno::EPERM | Errno::EBUSY,
            ..
        }) => {
            bind_mount(sys, Path::new("/sys"), &sys_dir, MsFlags::MS_REC)?;
            sys.mount(
                None,
                &sys_dir,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None,
            )
            .map_err(|source| RuntimeError::Mount {
                what: "read-only /sys".into(),
                target: sys_dir.clone(),
                source,
            })?;
        }
        other => other?,
    }

    let dev = merged.join("dev");
    mount_fs(
        sys,
        "tmpfs",
        &dev,
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755"),
    )?;
    for name in DEVICES {
        let target = dev.join(name);
        sys.create_file(&target).map_err(|source| RuntimeError::Write {
            path: target.clone(),
            source,
        })?;
        bind_mount(sys, &Path::new("/dev").join(name), &target, MsFlags::empty())?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let path = dev.join(link);
        sys.symlink(Path::new(target), &path)
            .map_err(|source| RuntimeError::Write { path, source })?;
    }
    mount_fs(
        sys,
        "devpts",
        &dev.join("pts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    mount_fs(sys, "tmpfs", &dev.join("shm"), hardened, Some("mode=1777"))
}

fn create_dir(sys: &dyn Syscalls, path: &Path) -> Result<()> {
    sys.create_dir_all(path).map_err(|source| RuntimeError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Mounts a fresh instance of `fstype` on `target`, creating the mount point.
fn mount_fs(
    sys: &dyn Syscalls,
    fstype: &str,
    target: &Path,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    create_dir(sys, target)?;
    sys.mount(Some(Path::new(fstype)), target, Some(fstype), flags, data)
        .map_err(|source| RuntimeError::Mount {
            what: fstype.into(),
            target: target.to_path_buf(),
            source,
        })
}

fn bind_mount(sys: &dyn Syscalls, source_path: &Path, target: &Path, extra: MsFlags) -> Result<()> {
    sys.mount(Some(source_path), target, None, MsFlags::MS_BIND | extra, None)
        .map_err(|source| RuntimeError::Mount {
            what: source_path.display().to_string(),
            target: target.to_path_buf(),
            source,
        })
}

/// Makes `merged` the root. pivot_root(".", ".") stacks the old root on top
/// of the new one, so unmounting "." removes the old root and leaves no
/// directory behind in the image (see pivot_root(2), "NOTES").
fn enter_rootfs(sys: &dyn Syscalls, merged: &Path) -> Result<()> {
    let fail = |source| RuntimeError::PivotRoot {
        path: merged.to_path_buf(),
        source,
    };
    let here = Path::new(".");
    sys.chdir(merged).map_err(fail)?;
    sys.pivot_root(here, here).map_err(fail)?;
    sys.umount(here, MntFlags::MNT_DETACH).map_err(fail)?;
    sys.chdir(Path::new("/")).map_err(fail)
}

/// Writes the files cell puts into the container. Runs after pivot_root: an
/// absolute symlink in the image (`/etc/hosts -> /run/hosts`) then points
/// inside the container, and [`Syscalls::replace_file`] replaces such a link
/// with a regular file in the container's upper layer rather than following
/// it, so a link to a missing directory or to `/proc` does not fail the
/// start and the image itself is never written.
fn write_files(sys: &dyn Syscalls, files: &[(String, String)]) -> Result<()> {
    for (path, contents) in files {
        let path = Path::new(path);
        let is_plain_absolute = path.is_absolute() && !path.components().any(|c| c == Component::ParentDir);
        let Some(parent) = path
            .parent()
            .filter(|_| is_plain_absolute && path.file_name().is_some())
        else {
            return Err(RuntimeError::Write {
                path: path.into(),
                source: io::Error::from(ErrorKind::InvalidInput),
            });
        };
        create_dir(sys, parent)?;
        sys.replace_file(path, contents.as_bytes())
            .map_err(|source| RuntimeError::Write {
                path: path.into(),
                source,
            })?;
    }
    Ok(())
}

/// Narrows every capability set to Docker's default set (adjusted by the
/// two flags). The bounding set goes first, while CAP_SETPCAP is still in
/// the effective set; the process stays uid 0, so after exec it gets exactly
/// the bounding set.
fn set_capabilities(sys: &dyn Syscalls, keep_net_admin: bool, keep_net_raw: bool) -> Result<()> {
    let fail = |op: String| move |source| RuntimeError::Capabilities { op, source };
    let mut keep: CapsHashSet = DEFAULT_CAPS.into_iter().collect();
    if keep_net_admin {
        keep.insert(Capability::CAP_NET_ADMIN);
    }
    if !keep_net_raw {
        keep.remove(&Capability::CAP_NET_RAW);
    }
    // Only capabilities this kernel knows: dropping others fails with EINVAL.
    let supported = sys.supported_capabilities();
    // In a fixed order, so a failure is reproducible.
    let mut dropped: Vec<Capability> = supported.difference(&keep).copied().collect();
    dropped.sort_by_key(|c| c.index());
    for cap in dropped {
        sys.drop_bounding_capability(cap)
            .map_err(fail(format!("drop {cap} from the bounding set")))?;
    }
    let keep: CapsHashSet = keep.intersection(&supported).copied().collect();
    sys.clear_ambient_capabilities()
        .map_err(fail("clear the ambient capabilities".into()))?;
    for (set, name) in [
        (CapSet::Inheritable, "inheritable"),
        (CapSet::Effective, "effective"),
        (CapSet::Permitted, "permitted"),
    ] {
        sys.set_capabilities(set, &keep)
            .map_err(fail(format!("set the {name} capabilities")))?;
    }
    Ok(())
}

/// Executes `args` with `env`, searching `PATH` from `env` in the container
/// (glibc's execvpe would search the shim's own `PATH`). On failure prints
/// `cell: CMD: REASON` to stderr and exits 127 (not found) or 126 (found but
/// not executable), as a shell does.
fn exec_command(args: &[String], env: &[String]) -> ! {
    let command = &args[0];
    let to_c = |s: &String| CString::new(s.as_bytes()).unwrap_or_default();
    let c_args: Vec<CString> = args.iter().map(to_c).collect();
    let c_env: Vec<CString> = env.iter().map(to_c).collect();
    let candidates: Vec<String> = if command.contains('/') {
        vec![command.clone()]
    } else {
        let path = env
            .iter()
            .find_map(|p| p.strip_prefix("PATH="))
            .unwrap_or(cell_core::env::DEFAULT_PATH);
        path.split(':')
            .map(|dir| {
                if dir.is_empty() {
                    command.clone()
                } else {
                    format!("{dir}/{command}")
                }
            })
            .collect()
    };

    let mut seen_denied = false;
    let mut last = Errno::ENOENT;
    for candidate in candidates {
        let Ok(path) = CString::new(candidate) else {
            continue;
        };
        let Err(errno) = nix::unistd::execve(&path, &c_args, &c_env);
        match errno {
            Errno::ENOENT | Errno::ENOTDIR => {}
            Errno::EACCES => seen_denied = true,
            other => {
                last = other;
                break;
            }
        }
    }
    if seen_denied && last == Errno::ENOENT {
        last = Errno::EACCES;
    }
    let (code, reason) = match last {
        Errno::ENOENT => (127, "not found".to_owned()),
        other => (126, other.desc().to_lowercase()),
    };
    let _ = io::stderr().write_all(format!("cell: {command}: {reason}\n").as_bytes());
    // SAFETY: leave without running destructors that belong to the shim.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::chain_message;
    use crate::syscall::{Call, CallKind, RecordingSyscalls};

    /// An init spec whose directories are under `/c`: the recording double
    /// touches nothing, so they need not exist.
    fn init_spec(netns: Option<PathBuf>) -> ProcessSpec {
        ProcessSpec {
            exec_id: "e1".into(),
            container_id: "c1".into(),
            args: vec!["sh".into()],
            env: vec![],
            cwd: "/srv".into(),
            keep_net_admin: false,
            keep_net_raw: false,
            target: Target::Init {
                rootfs: RootfsSpec {
                    lower: "/img".into(),
                    upper: "/c/upper".into(),
                    work: "/c/work".into(),
                    merged: "/c/merged".into(),
                },
                hostname: "web".into(),
                netns,
                files: vec![
                    ("/etc/hosts".into(), "10.0.0.2\tweb\n".into()),
                    ("/etc/resolv.conf".into(), "nameserver 10.0.0.1\n".into()),
                ],
            },
            log: Default::default(),
            stdio: Default::default(),
            refused_socket_family: None,
        }
    }

    fn run(sys: &RecordingSyscalls, spec: &ProcessSpec) -> Result<()> {
        set_up_process(sys, spec, None)
    }

    fn mount(
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Call {
        Call::Mount {
            source: source.map(PathBuf::from),
            target: target.into(),
            fstype: fstype.map(str::to_owned),
            flags,
            data: data.map(str::to_owned),
        }
    }

    fn dir(path: &str) -> Call {
        Call::CreateDirAll { path: path.into() }
    }

    /// The calls that build an init's world, from the mount namespace to
    /// the files written after pivot_root.
    fn expected_world() -> Vec<Call> {
        let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        let mut calls = vec![
            Call::Unshare {
                flags: CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC,
            },
            mount(None, "/", None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None),
            dir("/c/upper"),
            dir("/c/work"),
            dir("/c/merged"),
            mount(
                Some("overlay"),
                "/c/merged",
                Some("overlay"),
                MsFlags::empty(),
                Some("lowerdir=/img,upperdir=/c/upper,workdir=/c/work"),
            ),
            dir("/c/merged/proc"),
            mount(Some("proc"), "/c/merged/proc", Some("proc"), hardened, None),
            dir("/c/merged/sys"),
            mount(
                Some("sysfs"),
                "/c/merged/sys",
                Some("sysfs"),
                hardened | MsFlags::MS_RDONLY,
                None,
            ),
            dir("/c/merged/dev"),
            mount(
                Some("tmpfs"),
                "/c/merged/dev",
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
                Some("mode=755"),
            ),
        ];
        for name in DEVICES {
            let target = format!("/c/merged/dev/{name}");
            calls.push(Call::CreateFile {
                path: target.clone().into(),
            });
            let source = format!("/dev/{name}");
            calls.push(mount(Some(&source), &target, None, MsFlags::MS_BIND, None));
        }
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ] {
            calls.push(Call::Symlink {
                target: target.into(),
                link: format!("/c/merged/dev/{link}").into(),
            });
        }
        calls.extend([
            dir("/c/merged/dev/pts"),
            mount(
                Some("devpts"),
                "/c/merged/dev/pts",
                Some("devpts"),
                MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                Some("newinstance,ptmxmode=0666,mode=0620"),
            ),
            dir("/c/merged/dev/shm"),
            mount(
                Some("tmpfs"),
                "/c/merged/dev/shm",
                Some("tmpfs"),
                hardened,
                Some("mode=1777"),
            ),
            Call::Sethostname { name: "web".into() },
            Call::Chdir {
                path: "/c/merged".into(),
            },
            Call::PivotRoot {
                new_root: ".".into(),
                put_old: ".".into(),
            },
            Call::Umount {
                target: ".".into(),
                flags: MntFlags::MNT_DETACH,
            },
            Call::Chdir { path: "/".into() },
            dir("/etc"),
            Call::ReplaceFile {
                path: "/etc/hosts".into(),
                contents: b"10.0.0.2\tweb\n".to_vec(),
            },
            dir("/etc"),
            Call::ReplaceFile {
                path: "/etc/resolv.conf".into(),
                contents: b"nameserver 10.0.0.1\n".to_vec(),
            },
            Call::Chdir { path: "/srv".into() },
        ]);
        calls
    }

    /// The capability calls for a kernel that knows exactly
    /// `DEFAULT_CAPS`, `CAP_NET_ADMIN` and `CAP_SYS_ADMIN`.
    fn expected_capabilities(keep_net_admin: bool, keep_net_raw: bool) -> Vec<Call> {
        let mut dropped = vec![Capability::CAP_NET_ADMIN, Capability::CAP_SYS_ADMIN];
        let mut kept: Vec<Capability> = DEFAULT_CAPS.to_vec();
        if keep_net_admin {
            dropped.retain(|c| *c != Capability::CAP_NET_ADMIN);
            kept.push(Capability::CAP_NET_ADMIN);
        }
        if !keep_net_raw {
            kept.retain(|c| *c != Capability::CAP_NET_RAW);
            dropped.push(Capability::CAP_NET_RAW);
        }
        dropped.sort_by_key(|c| c.index());
        kept.sort_by_key(|c| c.index());
        let mut calls: Vec<Call> = dropped
            .into_iter()
            .map(|cap| Call::DropBoundingCapability { cap })
            .collect();
        calls.push(Call::ClearAmbientCapabilities);
        for set in ["inheritable", "effective", "permitted"] {
            calls.push(Call::SetCapabilities {
                set,
                caps: kept.clone(),
            });
        }
        calls
    }

    fn recording() -> RecordingSyscalls {
        let supported = DEFAULT_CAPS
            .into_iter()
            .chain([Capability::CAP_NET_ADMIN, Capability::CAP_SYS_ADMIN])
            .collect();
        RecordingSyscalls::new().with_supported_capabilities(supported)
    }

    #[test]
    fn init_without_its_own_netns_builds_its_world_in_order() {
        let sys = recording();
        run(&sys, &init_spec(None)).unwrap();
        let mut expected = expected_world();
        expected.extend(expected_capabilities(false, false));
        assert_eq!(sys.calls(), expected);
    }

    #[test]
    fn init_with_its_own_netns_joins_it_first() {
        let netns = tempfile::NamedTempFile::new().unwrap();
        let sys = recording();
        run(&sys, &init_spec(Some(netns.path().into()))).unwrap();
        let mut expected = vec![Call::Setns {
            nstype: CloneFlags::CLONE_NEWNET,
        }];
        expected.extend(expected_world());
        expected.extend(expected_capabilities(false, false));
        assert_eq!(sys.calls(), expected);
    }

    #[test]
    fn net_admin_and_net_raw_are_kept_only_when_asked() {
        for (keep_net_admin, keep_net_raw) in [(false, false), (true, false), (false, true), (true, true)] {
            let sys = recording();
            let spec = ProcessSpec {
                keep_net_admin,
                keep_net_raw,
                ..init_spec(None)
            };
            run(&sys, &spec).unwrap();
            let calls = sys.calls();
            let capability_calls = &calls[expected_world().len()..];
            assert_eq!(
                capability_calls,
                expected_capabilities(keep_net_admin, keep_net_raw),
                "keep_net_admin {keep_net_admin}, keep_net_raw {keep_net_raw}"
            );
            let is_dropped = |cap| calls.contains(&Call::DropBoundingCapability { cap });
            assert_eq!(is_dropped(Capability::CAP_NET_ADMIN), !keep_net_admin);
            assert_eq!(is_dropped(Capability::CAP_NET_RAW), !keep_net_raw);
            assert!(is_dropped(Capability::CAP_SYS_ADMIN));
        }
    }

    /// The words each failed operation's error must contain.
    fn operation_named(call: &Call) -> String {
        match call {
            Call::Setns { .. } => "failed to join network namespace".into(),
            Call::Unshare { .. } => "failed to create mount, uts and ipc namespaces".into(),
            Call::Mount { target, .. } => format!("failed to mount {{}} on {}", target.display()),
            Call::CreateDirAll { path } | Call::CreateFile { path } | Call::ReplaceFile { path, .. } => {
                format!("failed to write {}", path.display())
            }
            Call::Symlink { link, .. } => format!("failed to write {}", link.display()),
            Call::Sethostname { name } => format!("failed to set hostname {name}"),
            Call::Chdir { path } if path.as_os_str() == "/srv" => "failed to change directory to /srv".into(),
            Call::Chdir { .. } | Call::PivotRoot { .. } | Call::Umount { .. } => {
                "failed to pivot root to /c/merged".into()
            }
            Call::DropBoundingCapability { cap } => format!("failed to drop {cap} from the bounding set"),
            Call::ClearAmbientCapabilities => "failed to clear the ambient capabilities".into(),
            Call::SetCapabilities { set, .. } => format!("failed to set the {set} capabilities"),
            Call::InstallSeccompFilter { .. } => "failed to install the seccomp filter refusing".into(),
        }
    }

    /// A host container of a single-family stack: the filter goes in after
    /// the world is built and before the capabilities are narrowed (while
    /// CAP_SYS_ADMIN is held); a failure to install it stops the start
    /// before any capability changes.
    #[test]
    fn a_refused_socket_family_installs_one_filter_before_the_capabilities() {
        use crate::seccomp::SocketFamily;
        let spec = ProcessSpec {
            refused_socket_family: Some(SocketFamily::Inet6),
            ..init_spec(None)
        };
        let sys = recording();
        run(&sys, &spec).unwrap();
        let calls = sys.calls();
        let world = expected_world();
        assert_eq!(calls[..world.len()], world[..]);
        let filter = &calls[world.len()];
        assert!(matches!(filter, Call::InstallSeccompFilter { instructions } if *instructions > 0));
        assert_eq!(calls[world.len() + 1..], expected_capabilities(false, false)[..]);
        assert!(
            !run_calls(&init_spec(None))
                .iter()
                .any(|c| c.kind() == CallKind::InstallSeccompFilter)
        );

        let failing = recording().fail_nth_of(CallKind::InstallSeccompFilter, 1, Errno::EACCES);
        let err = run(&failing, &spec).unwrap_err();
        let message = chain_message(&err);
        assert!(
            message.contains("failed to install the seccomp filter refusing Inet6 sockets"),
            "{message}"
        );
        assert_eq!(
            failing.calls().last().map(Call::kind),
            Some(CallKind::InstallSeccompFilter)
        );
    }

    fn run_calls(spec: &ProcessSpec) -> Vec<Call> {
        let sys = recording();
        run(&sys, spec).unwrap();
        sys.calls()
    }

    #[test]
    fn a_failure_at_any_step_is_named_and_nothing_after_it_runs() {
        let netns = tempfile::NamedTempFile::new().unwrap();
        let spec = init_spec(Some(netns.path().into()));
        let all = recording();
        run(&all, &spec).unwrap();
        let all = all.calls();

        for n in 1..=all.len() {
            let sys = recording().fail_nth(n, Errno::EIO);
            let err = run(&sys, &spec).expect_err(&format!("call {n} fails"));
            let message = chain_message(&err);
            let calls = sys.calls();
            // Everything up to the failed call ran as in a full run; nothing
            // after it did.
            assert_eq!(calls, all[..n], "failing call {n}: {message}");
            let failed = &calls[n - 1];
            let wanted = operation_named(failed);
            match wanted.split_once("{}") {
                // A mount names what it mounts; the target is enough here.
                Some((before, after)) => assert!(
                    message.starts_with(before) && message.contains(after),
                    "call {n} {failed:?}: {message}"
                ),
                None => assert!(message.starts_with(&wanted), "call {n} {failed:?}: {message}"),
            }
            assert!(
                message.contains("EIO") || message.contains("os error 5"),
                "call {n}: {message}"
            );
        }
    }

    #[test]
    fn sysfs_refused_falls_back_to_a_read_only_bind_of_the_hosts() {
        let sys = recording().fail_nth_of(CallKind::Mount, 4, Errno::EPERM);
        run(&sys, &init_spec(None)).unwrap();
        let calls = sys.calls();
        let at = calls
            .iter()
            .position(|c| matches!(c, Call::Mount { fstype: Some(t), .. } if t == "sysfs"))
            .unwrap();
        assert_eq!(
            calls[at + 1..at + 3],
            [
                mount(
                    Some("/sys"),
                    "/c/merged/sys",
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None
                ),
                mount(
                    None,
                    "/c/merged/sys",
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None
                ),
            ]
        );
        // Positive control: any other errno from sysfs is a failure.
        let sys = recording().fail_nth_of(CallKind::Mount, 4, Errno::ENODEV);
        let err = run(&sys, &init_spec(None)).unwrap_err();
        assert_eq!(
            chain_message(&err),
            "failed to mount sysfs on /c/merged/sys: ENODEV"
        );
    }

    #[test]
    fn a_file_outside_the_root_is_refused_before_it_is_written() {
        for bad in ["etc/hosts", "/etc/../../hosts", "/"] {
            let mut spec = init_spec(None);
            if let Target::Init { files, .. } = &mut spec.target {
                files.insert(1, (bad.into(), "x".into()));
            }
            let sys = recording();
            let err = run(&sys, &spec).unwrap_err();
            assert_eq!(err.to_string(), format!("failed to write {bad}"));
            // The first file was written, the bad one stopped the rest.
            let replaced: Vec<_> = sys
                .calls()
                .into_iter()
                .filter(|c| c.kind() == CallKind::ReplaceFile)
                .collect();
            assert_eq!(replaced.len(), 1, "{bad}");
            assert_eq!(sys.calls().last().map(Call::kind), Some(CallKind::ReplaceFile));
        }
    }

    #[test]
    fn exec_joins_every_namespace_but_pid_mount_last() {
        let me = std::process::id() as i32;
        let joined = ContainerNamespaces::open(me).unwrap();
        let spec = ProcessSpec {
            target: Target::Exec { init_pid: me },
            ..init_spec(None)
        };
        let sys = recording();
        set_up_process(&sys, &spec, Some(&joined)).unwrap();
        let setns: Vec<CloneFlags> = sys
            .calls()
            .iter()
            .filter_map(|c| match c {
                Call::Setns { nstype } => Some(*nstype),
                _ => None,
            })
            .collect();
        assert_eq!(
            setns,
            [
                CloneFlags::CLONE_NEWIPC,
                CloneFlags::CLONE_NEWUTS,
                CloneFlags::CLONE_NEWNET,
                CloneFlags::CLONE_NEWNS
            ]
        );
        assert_eq!(
            sys.calls()[4..],
            {
                let mut rest = vec![Call::Chdir { path: "/srv".into() }];
                rest.extend(expected_capabilities(false, false));
                rest
            }[..]
        );

        // The pid namespace is the supervisor's to join, before it forks.
        let sys = recording();
        joined.join_pid(&sys).unwrap();
        assert_eq!(
            sys.calls(),
            [Call::Setns {
                nstype: CloneFlags::CLONE_NEWPID
            }]
        );

        let sys = recording().fail_nth(2, Errno::EPERM);
        let err = set_up_process(&sys, &spec, Some(&joined)).unwrap_err();
        assert_eq!(
            chain_message(&err),
            format!("failed to join uts namespace of container process {me}: EPERM")
        );
        assert_eq!(sys.calls().len(), 2);

        // Without handles there is nothing to join: refused before any call.
        let sys = recording();
        let err = set_up_process(&sys, &spec, None).unwrap_err();
        assert_eq!(err.to_string(), format!("failed to join container process {me}"));
        assert!(sys.calls().is_empty());
    }
}
