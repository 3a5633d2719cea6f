//! The shim proper: `celld shim STATE_DIR` ([`shim_main`]).
//!
//! It detaches from `celld`, records its own pid in `shim.pid`, starts the
//! container process (its kernel side is [`super::init`]), reports on the
//! ready pipe, then relays the process's output into `output.log` and to
//! attached clients ([`super::attach`]) until the process exits, and
//! records the exit code in `exit.json`. It ignores the signals `celld` may
//! be stopped with, so it outlives `celld`.
//!
//! With [`Stdio::stdin`], what attached clients send as stdin frames is
//! written to the process's stdin (a pipe, or the terminal) from a bounded
//! buffer, and a stdin-EOF frame closes the pipe. With [`Stdio::tty`], the
//! shim opens a pseudo-terminal: the process gets the slave, the shim keeps
//! the master, reads the output from it and applies resize frames to it
//! (the kernel then sends `SIGWINCH` to the foreground group). A client
//! that goes away takes nothing with it: stdin stays open for the next one.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use cell_core::frame::FrameKind;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigHandler, Signal, signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, chdir, fork, pipe2};

use super::attach::{self, Client, Input, attach_path};
use super::init::{ChildStdio, ContainerNamespaces, run_container_process};
use super::log::OutputLog;
use super::spawn::{READY_FD_ENV, ReadyReport};
use super::{EXIT_FILE, ExitRecord, OUTPUT_LOG, SHIM_LOG, SPEC_FILE, pid_path, write_atomically};
use crate::error::{RuntimeError, chain_message};
use crate::spec::{ProcessSpec, Stdio, Target, WindowSize};
use crate::syscall::{LinuxSyscalls, Syscalls};

/// How long the shim keeps trying to deliver the end of the stream to
/// attached clients after the process exited.
const FINAL_FLUSH: Duration = Duration::from_secs(5);
/// Largest read from an output pipe per step.
const CHUNK: usize = 64 * 1024;
/// At exit, how many chunks to take from the pipes: a background process
/// may keep writing forever, and the shim must still finish.
const MAX_DRAIN_CHUNKS: usize = 64;
/// Stdin bytes held for a process that does not read them yet; past this,
/// the shim stops reading from its clients, so a fast sender is slowed
/// down rather than held in memory.
const MAX_PENDING_STDIN: usize = 256 * 1024;

/// The entry point of `celld shim STATE_DIR`. Never returns.
///
/// Must be called before any thread is started: the shim forks.
pub fn shim_main(state_dir: &Path) -> ! {
    // A session of its own: no terminal signals from celld's session. This
    // process is not a group leader (celld spawned it), so setsid works.
    let _ = nix::unistd::setsid();
    let mut ready = take_ready_pipe();
    close_inherited_descriptors(ready.as_ref().map(|f| f.as_raw_fd()));
    let state_dir = fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    redirect_stderr_to_log(&state_dir.join(SHIM_LOG));

    // SAFETY: the shim is single-threaded (see above), so the child may run
    // arbitrary code after fork.
    match unsafe { fork() } {
        // The caller reaps this process; the shim proper is reparented away
        // from the caller, so it neither becomes its zombie nor dies with it.
        // SAFETY: _exit skips destructors that belong to the child now.
        Ok(ForkResult::Parent { .. }) => unsafe { libc::_exit(0) },
        Ok(ForkResult::Child) => {}
        Err(e) => fail_setup(&mut ready, &state_dir, format!("failed to fork the shim: {e:?}")),
    }
    // First, before the container process exists: if celld dies before it
    // records this shim, it still finds it by its state directory.
    if let Err(e) = write_pid_file(&state_dir) {
        fail_setup(&mut ready, &state_dir, chain_message(&e));
    }
    // The shim must outlive celld, which may be stopped with these signals;
    // SIGPIPE would kill it when an attached client goes away mid-write.
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGPIPE] {
        // SAFETY: SIG_IGN installs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    // Do not pin the directory celld was started from.
    let _ = chdir("/");

    let mut shim = match start_process(&LinuxSyscalls, &state_dir) {
        Ok(shim) => shim,
        Err(message) => fail_setup(&mut ready, &state_dir, message),
    };
    let report = ReadyReport::Started {
        pid: shim.child.as_raw(),
        shim_pid: std::process::id() as i32,
    };
    send_report(&mut ready, &report);
    drop(ready);
    eprintln!("shim: started pid {}", shim.child);
    let code = shim.supervise();
    eprintln!("shim: pid {} exited with {code}", shim.child);
    std::process::exit(0)
}

/// Writes `shim.pid` whole (a temporary file renamed into place) but without
/// the fsync that `exit.json` gets: a pid means nothing after the machine
/// restarts, and every container start would pay for the flush.
fn write_pid_file(state_dir: &Path) -> crate::error::Result<()> {
    let path = pid_path(state_dir);
    let tmp = state_dir.join(format!(".shim.pid.tmp-{}", std::process::id()));
    fs::write(&tmp, format!("{}\n", std::process::id())).map_err(|source| RuntimeError::Write {
        path: tmp.clone(),
        source,
    })?;
    fs::rename(&tmp, &path).map_err(|source| RuntimeError::Rename {
        from: tmp,
        to: path,
        source,
    })
}

/// The ready pipe inherited from [`super::spawn_shim`], if any. It arrives
/// as stdout; it is moved above stdio and stdout becomes `/dev/null` again,
/// so that nothing the shim or its container prints can reach the caller.
fn take_ready_pipe() -> Option<File> {
    let inherited: RawFd = std::env::var(READY_FD_ENV).ok()?.parse().ok()?;
    // SAFETY: F_GETFD only inspects the descriptor table.
    if unsafe { libc::fcntl(inherited, libc::F_GETFD) } == -1 {
        return None;
    }
    let fd = if inherited < 3 {
        // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor of the same pipe.
        let moved = unsafe { libc::fcntl(inherited, libc::F_DUPFD_CLOEXEC, 3) };
        if moved == -1 {
            return None;
        }
        if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
            // SAFETY: dup2 onto a stdio descriptor this process owns.
            unsafe { libc::dup2(null.as_raw_fd(), inherited) };
        }
        moved
    } else {
        inherited
    };
    // SAFETY: spawn_shim passed this descriptor to this process alone, and
    // nothing else in the shim refers to it.
    let file = unsafe { File::from_raw_fd(fd) };
    // The container process must not hold the pipe open, or the caller would
    // wait for its end of file as long as the container runs.
    // SAFETY: setting a descriptor flag on a descriptor this process owns.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Some(file)
}

/// Closes every descriptor above stdio but the ready pipe: whatever celld
/// (or its parent) leaked would otherwise live as long as the container and
/// end up inside it.
fn close_inherited_descriptors(keep: Option<RawFd>) {
    let ranges = match keep {
        Some(fd) => [(3, fd as u32 - 1), (fd as u32 + 1, u32::MAX)],
        None => [(3, u32::MAX), (1, 0)],
    };
    for (first, last) in ranges {
        if first <= last {
            // SAFETY: the shim owns no descriptors yet besides stdio and `keep`,
            // so nothing refers to those being closed.
            unsafe { libc::close_range(first, last, 0) };
        }
    }
}

fn redirect_stderr_to_log(path: &Path) {
    if let Ok(log) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = nix::unistd::dup2_stderr(log.as_fd());
    }
}

fn send_report(ready: &mut Option<File>, report: &ReadyReport) {
    if let Some(pipe) = ready.as_mut() {
        let mut line = serde_json::to_vec(report).expect("a report always serialises");
        line.push(b'\n');
        if let Err(e) = pipe.write_all(&line) {
            eprintln!("shim: failed to report to the caller: {e}");
        }
    }
}

fn fail_setup(ready: &mut Option<File>, state_dir: &Path, message: String) -> ! {
    eprintln!("shim: {message}");
    let _ = fs::remove_file(attach_path(state_dir));
    send_report(ready, &ReadyReport::Failed { error: message });
    std::process::exit(1)
}

/// The running shim: the container process and where its output goes.
struct Shim {
    state_dir: PathBuf,
    child: Pid,
    pidfd: OwnedFd,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    listener: UnixListener,
    log: OutputLog,
    clients: Vec<Client>,
    /// Where stdin frames go: the stdin pipe's write end, or the terminal
    /// master; `None` without [`Stdio::stdin`] or once closed.
    stdin: Option<OwnedFd>,
    /// Stdin bytes not yet taken by the process.
    pending_stdin: Vec<u8>,
    /// A client ended the input: close the pipe once `pending_stdin` is out.
    is_stdin_ending: bool,
    /// The terminal master, for resizes; `None` without [`Stdio::tty`].
    terminal: Option<OwnedFd>,
}

/// The shim's ends of the process's standard streams.
struct ShimStdio {
    /// Output read as stdout frames (the terminal master with a tty).
    stdout: OwnedFd,
    /// Output read as stderr frames; `None` with a tty, which merges both.
    stderr: Option<OwnedFd>,
    /// Where stdin frames are written.
    stdin: Option<OwnedFd>,
    terminal: Option<OwnedFd>,
}

/// Makes the descriptors for `stdio`: the child's, to be dropped by the
/// shim after the fork, and the shim's own.
fn open_stdio(stdio: &Stdio) -> crate::error::Result<(ChildStdio, ShimStdio)> {
    let pipe =
        |what: &str| pipe2(OFlag::O_CLOEXEC).map_err(|e| RuntimeError::sys(format!("create {what} pipe"), e));
    let clone = |fd: &OwnedFd| {
        fd.try_clone().map_err(|e| {
            RuntimeError::sys(
                "duplicate a terminal descriptor",
                Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            )
        })
    };
    if stdio.tty {
        let size = stdio.window.map(winsize);
        let pty =
            nix::pty::openpty(size.as_ref(), None).map_err(|e| RuntimeError::sys("open a terminal", e))?;
        for fd in [&pty.master, &pty.slave] {
            // SAFETY: sets a descriptor flag on a descriptor we own.
            unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        set_nonblocking(pty.master.as_raw_fd());
        let child = ChildStdio {
            stdin: clone(&pty.slave)?,
            stdout: clone(&pty.slave)?,
            stderr: pty.slave,
            is_terminal: true,
        };
        let shim = ShimStdio {
            stdout: clone(&pty.master)?,
            stderr: None,
            stdin: if stdio.stdin {
                Some(clone(&pty.master)?)
            } else {
                None
            },
            terminal: Some(pty.master),
        };
        return Ok((child, shim));
    }
    let (child_stdin, shim_stdin) = if stdio.stdin {
        let (read, write) = pipe("stdin")?;
        set_nonblocking(write.as_raw_fd());
        (read, Some(write))
    } else {
        let null = File::open("/dev/null").map_err(|source| RuntimeError::Read {
            path: "/dev/null".into(),
            source,
        })?;
        (OwnedFd::from(null), None)
    };
    let (stdout_read, stdout_write) = pipe("stdout")?;
    let (stderr_read, stderr_write) = pipe("stderr")?;
    for fd in [&stdout_read, &stderr_read] {
        set_nonblocking(fd.as_raw_fd());
    }
    let child = ChildStdio {
        stdin: child_stdin,
        stdout: stdout_write,
        stderr: stderr_write,
        is_terminal: false,
    };
    let shim = ShimStdio {
        stdout: stdout_read,
        stderr: Some(stderr_read),
        stdin: shim_stdin,
        terminal: None,
    };
    Ok((child, shim))
}

fn winsize(size: WindowSize) -> nix::pty::Winsize {
    nix::pty::Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Reads the spec and starts the container process. Errors are returned as
/// the text reported to the caller.
fn start_process(sys: &dyn Syscalls, state_dir: &Path) -> std::result::Result<Shim, String> {
    let text = |e: RuntimeError| chain_message(&e);
    let spec = ProcessSpec::read_from(&state_dir.join(SPEC_FILE)).map_err(text)?;
    spec.validate().map_err(text)?;

    let _ = fs::remove_file(state_dir.join(EXIT_FILE));
    let _ = fs::remove_file(attach_path(state_dir));
    let log = OutputLog::create(state_dir, spec.log).map_err(|source| {
        text(RuntimeError::Write {
            path: state_dir.join(OUTPUT_LOG),
            source,
        })
    })?;
    // Bound before the caller hears "ready", so it can attach at once.
    let listener = attach::bind(state_dir).map_err(text)?;
    let (child_stdio, shim_stdio) = open_stdio(&spec.stdio).map_err(text)?;
    let (error_read, error_write) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| text(RuntimeError::sys("create error pipe", e)))?;

    let joined = match &spec.target {
        // Only children of the shim enter the new pid namespace: the first
        // one becomes its init.
        Target::Init { .. } => {
            sys.unshare(CloneFlags::CLONE_NEWPID)
                .map_err(|e| text(RuntimeError::sys("create a pid namespace", e)))?;
            None
        }
        Target::Exec { init_pid } => {
            let ns = ContainerNamespaces::open(*init_pid).map_err(text)?;
            ns.join_pid(sys).map_err(text)?;
            Some(ns)
        }
    };

    // SAFETY: the shim is single-threaded, so the child may allocate and run
    // arbitrary code before exec.
    let child = match unsafe { fork() } {
        Err(e) => return Err(text(RuntimeError::sys("fork the container process", e))),
        Ok(ForkResult::Child) => {
            drop((shim_stdio, error_read, listener, log));
            let Err(err) = run_container_process(sys, &spec, joined, child_stdio);
            let mut error_pipe = File::from(error_write);
            let _ = error_pipe.write_all(chain_message(&err).as_bytes());
            // SAFETY: leave without running the shim's destructors or atexit
            // handlers, which belong to the parent.
            unsafe { libc::_exit(1) }
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop((child_stdio, error_write, joined));

    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, child.as_raw(), 0) };
    let pidfd = if raw < 0 {
        Err(text(RuntimeError::sys(
            format!("open a pidfd for pid {child}"),
            Errno::last(),
        )))
    } else {
        // SAFETY: the kernel just returned this descriptor to us.
        Ok(unsafe { OwnedFd::from_raw_fd(raw as RawFd) })
    };

    // End of file without a message means the exec happened (or failed in a
    // way the process reports itself).
    let mut message = String::new();
    let _ = File::from(error_read).read_to_string(&mut message);
    if !message.is_empty() || pidfd.is_err() {
        let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        return Err(if message.is_empty() {
            pidfd.err().unwrap_or_default()
        } else {
            message
        });
    }
    Ok(Shim {
        state_dir: state_dir.to_path_buf(),
        child,
        pidfd: pidfd?,
        stdout: Some(shim_stdio.stdout),
        stderr: shim_stdio.stderr,
        listener,
        log,
        clients: Vec::new(),
        stdin: shim_stdio.stdin,
        pending_stdin: Vec::new(),
        is_stdin_ending: false,
        terminal: shim_stdio.terminal,
    })
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: reading and setting status flags of a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

impl Shim {
    /// Relays output until the direct child exits, then finishes the
    /// stream. Returns the exit code.
    fn supervise(&mut self) -> i32 {
        loop {
            let mut slots = Vec::new();
            let mut fds = Vec::new();
            for (slot, fd) in [(Slot::Stdout, &self.stdout), (Slot::Stderr, &self.stderr)] {
                if let Some(fd) = fd {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    slots.push(slot);
                }
            }
            fds.push(PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN));
            slots.push(Slot::Child);
            fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
            slots.push(Slot::Listener);
            if let Some(stdin) = &self.stdin
                && !self.pending_stdin.is_empty()
            {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLOUT));
                slots.push(Slot::Stdin);
            }
            let is_stdin_full = self.pending_stdin.len() >= MAX_PENDING_STDIN;
            for (i, client) in self.clients.iter().enumerate() {
                let mut events = PollFlags::empty();
                if !client.is_half_closed && !is_stdin_full {
                    events |= PollFlags::POLLIN;
                }
                if client.is_behind(self.log.end()) {
                    events |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(client.socket().as_fd(), events));
                slots.push(Slot::Client(i));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("shim: poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            let ready: Vec<(Slot, PollFlags)> = slots
                .into_iter()
                .zip(fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())))
                .collect();
            drop(fds);

            let mut is_exited = false;
            let mut gone = Vec::new();
            let mut inputs = Vec::new();
            for (slot, revents) in ready {
                if revents.is_empty() {
                    continue;
                }
                match slot {
                    Slot::Stdout => {
                        self.relay(FrameKind::Stdout);
                    }
                    Slot::Stderr => {
                        self.relay(FrameKind::Stderr);
                    }
                    Slot::Child => is_exited = true,
                    Slot::Stdin => self.write_stdin(),
                    Slot::Listener => attach::accept_clients(&self.listener, &mut self.clients),
                    Slot::Client(i) => {
                        let is_hung_up =
                            revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL);
                        // Read before dropping a client that hung up: it may have sent
                        // input just before.
                        let is_broken =
                            revents.contains(PollFlags::POLLIN) && !self.clients[i].read(&mut inputs);
                        if is_broken || is_hung_up {
                            gone.push(i);
                        }
                    }
                }
            }
            // Highest index first, so the lower ones stay valid.
            gone.sort_unstable();
            for i in gone.into_iter().rev() {
                self.clients.remove(i);
            }
            for input in inputs {
                self.take_input(input);
            }
            self.pump_clients();
            if is_exited {
                return self.finish();
            }
        }
    }

    /// Applies what a client sent: stdin bytes are queued (and dropped when
    /// the process takes no stdin), a resize goes to the terminal.
    fn take_input(&mut self, input: Input) {
        match input {
            Input::Stdin(bytes) => {
                if self.stdin.is_some() && !self.is_stdin_ending {
                    self.pending_stdin.extend_from_slice(&bytes);
                }
            }
            // A terminal has no end of input: Ctrl-D is a byte like any
            // other, for the line discipline to interpret.
            Input::StdinEof => {
                if self.terminal.is_none() {
                    self.is_stdin_ending = true;
                }
            }
            Input::Resize(size) => {
                if let Some(master) = &self.terminal {
                    let size = winsize(size);
                    // SAFETY: TIOCSWINSZ reads one winsize from the pointer,
                    // which outlives the call.
                    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) } == -1 {
                        eprintln!("shim: resize failed: {}", Errno::last());
                    }
                }
            }
        }
        self.write_stdin();
    }

    /// Writes queued stdin bytes until the process stops taking them, and
    /// closes the pipe when a client ended the input and all is out.
    fn write_stdin(&mut self) {
        let Some(stdin) = &self.stdin else {
            self.pending_stdin.clear();
            return;
        };
        while !self.pending_stdin.is_empty() {
            match nix::unistd::write(stdin, &self.pending_stdin) {
                Ok(n) => {
                    self.pending_stdin.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                // The process closed its stdin or is gone: nothing more
                // can reach it.
                Err(e) => {
                    eprintln!("shim: writing stdin failed: {e}");
                    self.stdin = None;
                    self.pending_stdin.clear();
                    return;
                }
            }
        }
        if self.is_stdin_ending {
            self.stdin = None;
        }
    }

    /// Reads one chunk from a pipe into the log. Returns whether it read data.
    fn relay(&mut self, kind: FrameKind) -> bool {
        let pipe = match kind {
            FrameKind::Stdout => &mut self.stdout,
            _ => &mut self.stderr,
        };
        let Some(fd) = pipe else { return false };
        let mut buf = vec![0u8; CHUNK];
        match nix::unistd::read(&*fd, &mut buf) {
            Ok(0) => {
                *pipe = None;
                false
            }
            Ok(n) => {
                self.append_to_log(kind, &buf[..n]);
                true
            }
            Err(Errno::EAGAIN | Errno::EINTR) => false,
            // A terminal master reads EIO once no process holds the slave:
            // its end of file.
            Err(Errno::EIO) if self.terminal.is_some() => {
                *pipe = None;
                false
            }
            Err(e) => {
                eprintln!("shim: reading {kind:?} failed: {e}");
                *pipe = None;
                false
            }
        }
    }

    fn append_to_log(&mut self, kind: FrameKind, payload: &[u8]) {
        // A full disk must not stop the container; the output is lost.
        if let Err(e) = self.log.append(kind, payload, SystemTime::now()) {
            eprintln!("shim: failed to append to {OUTPUT_LOG}: {e}");
        }
    }

    /// Sends each client as much of the log as its socket takes now.
    fn pump_clients(&mut self) {
        let log = &self.log;
        self.clients.retain_mut(|client| client.pump(log).is_ok());
    }

    /// The direct child exited; complete the record and the streams.
    fn finish(&mut self) -> i32 {
        let code = match waitpid(self.child, None) {
            Ok(WaitStatus::Exited(_, code)) => code,
            Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
            other => {
                eprintln!("shim: unexpected wait result {other:?}");
                -1
            }
        };
        for kind in [FrameKind::Stdout, FrameKind::Stderr] {
            for _ in 0..MAX_DRAIN_CHUNKS {
                if !self.relay(kind) {
                    break;
                }
            }
        }
        // New readers now get ENOENT and go to the log; readers already in
        // the backlog are accepted and served below.
        let _ = fs::remove_file(attach_path(&self.state_dir));
        attach::accept_clients(&self.listener, &mut self.clients);
        self.append_to_log(FrameKind::Exit, &code.to_be_bytes());
        let record =
            serde_json::to_vec(&ExitRecord { exit_code: code }).expect("an exit record always serialises");
        if let Err(e) = write_atomically(&self.state_dir.join(EXIT_FILE), &record) {
            eprintln!("shim: {}", chain_message(&e));
        }

        let deadline = Instant::now() + FINAL_FLUSH;
        for client in &mut self.clients {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero()
                || client.socket().set_nonblocking(false).is_err()
                || client.socket().set_write_timeout(Some(left)).is_err()
            {
                continue;
            }
            let _ = client.pump(&self.log);
        }
        code
    }
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Stdout,
    Stderr,
    Child,
    Stdin,
    Listener,
    Client(usize),
}
