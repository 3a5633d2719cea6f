//! The attach socket protocol: `STATE_DIR/attach.sock` streams the framed
//! output log ([`cell_core::frame`]) from its start, then live, and closes
//! after the exit frame. Clients send nothing; the shim reads only to notice
//! that one went away.
//!
//! Each client is served from the log ([`super::log::OutputLog`]), read
//! back from the files at its own position, so a slow client costs no
//! memory and never holds up the container. A new client starts at the
//! oldest retained frame (`output.log.N`, then on to `output.log`); one
//! that falls so far behind that the files it was reading are rotated away
//! skips to the oldest retained frame, at a frame boundary. The [`super::supervisor`] owns the listener and the clients
//! and calls these helpers from its poll loop.

use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::log::OutputLog;
use crate::error::{Result, RuntimeError};

const ATTACH_SOCK: &str = "attach.sock";
/// Largest read from the log per step.
const CHUNK: usize = 64 * 1024;

/// The attach socket of the process whose state is in `state_dir`.
pub fn attach_path(state_dir: &Path) -> PathBuf {
    state_dir.join(ATTACH_SOCK)
}

/// Binds the attach socket, non-blocking, for the poll loop.
pub(super) fn bind(state_dir: &Path) -> Result<UnixListener> {
    let path = attach_path(state_dir);
    UnixListener::bind(&path)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| RuntimeError::Write { path, source })
}

/// A connected attach client.
pub(super) struct Client {
    socket: UnixStream,
    /// Position in the log ([`OutputLog::end`]) delivered up to.
    sent: u64,
    /// The client shut down its sending side; only hang-up matters now.
    pub(super) is_half_closed: bool,
}

impl Client {
    pub(super) fn socket(&self) -> &UnixStream {
        &self.socket
    }

    /// Whether part of a log that ends at `log_end` is still to be sent.
    pub(super) fn is_behind(&self, log_end: u64) -> bool {
        self.sent < log_end
    }

    /// Reads and discards what the client sent. Returns whether the client
    /// stays.
    pub(super) fn read(&mut self) -> bool {
        let mut scratch = [0u8; 512];
        match self.socket.read(&mut scratch) {
            Ok(0) => {
                self.is_half_closed = true;
                true
            }
            Ok(_) => true,
            Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
        }
    }

    /// Writes the part of the log the client has not had yet, until its
    /// socket would block. An error means the client is gone.
    pub(super) fn pump(&mut self, log: &OutputLog) -> io::Result<()> {
        let mut buf = vec![0u8; CHUNK];
        self.sent = self.sent.max(log.start());
        while self.sent < log.end() {
            let n = log.read_at(&mut buf, self.sent)?;
            if n == 0 {
                return Err(io::Error::from(ErrorKind::UnexpectedEof));
            }
            match self.socket.write(&buf[..n]) {
                Ok(written) => self.sent += written as u64,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Accepts every pending connection on `listener` into `clients`.
pub(super) fn accept_clients(listener: &UnixListener, clients: &mut Vec<Client>) {
    loop {
        match listener.accept() {
            Ok((socket, _)) => {
                if socket.set_nonblocking(true).is_ok() {
                    clients.push(Client {
                        socket,
                        sent: 0,
                        is_half_closed: false,
                    });
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_the_retained_log_oldest_first_then_what_is_appended() {
        use crate::spec::LogLimits;
        use cell_core::frame::{self, FrameKind};
        use std::time::SystemTime;

        let tmp = tempfile::tempdir().unwrap();
        let listener = bind(tmp.path()).unwrap();
        let mut reader = UnixStream::connect(attach_path(tmp.path())).unwrap();
        let mut clients = Vec::new();
        accept_clients(&listener, &mut clients);
        assert_eq!(clients.len(), 1);

        let limits = LogLimits {
            max_bytes: 60,
            files: 2,
        };
        let mut log = OutputLog::create(tmp.path(), limits).unwrap();
        // Two frames and their times fill a file: 1 and 2 are rotated away.
        for line in ["lost 1\n", "lost 2\n", "kept 3\n", "kept 4\n", "kept 5\n"] {
            log.append(FrameKind::Stdout, line.as_bytes(), SystemTime::now())
                .unwrap();
        }
        clients[0].pump(&log).unwrap();
        assert!(!clients[0].is_behind(log.end()));
        log.append(FrameKind::Stdout, b"kept 6\n", SystemTime::now())
            .unwrap();
        assert!(clients[0].is_behind(log.end()));
        clients[0].pump(&log).unwrap();
        drop(clients);

        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        let mut rest = &got[..];
        let mut lines = String::new();
        while let Some((_, payload)) = frame::read_frame(&mut rest).unwrap() {
            lines.push_str(&String::from_utf8(payload).unwrap());
        }
        assert_eq!(lines, "kept 3\nkept 4\nkept 5\nkept 6\n");
    }
}
