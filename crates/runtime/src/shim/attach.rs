//! The attach socket protocol: `STATE_DIR/attach.sock` streams the framed
//! output log ([`cell_core::frame`]) from its start, then live, and closes
//! after the exit frame. Clients send nothing; the shim reads only to notice
//! that one went away.
//!
//! Each client is served from `output.log`, read back from the file at its
//! own offset, so a slow client costs no memory and never holds up the
//! container. The [`super::supervisor`] owns the listener and the clients
//! and calls these helpers from its poll loop.

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

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
    /// Bytes of `output.log` delivered so far.
    sent: u64,
    /// The client shut down its sending side; only hang-up matters now.
    pub(super) is_half_closed: bool,
}

impl Client {
    pub(super) fn socket(&self) -> &UnixStream {
        &self.socket
    }

    /// Whether part of a log of `log_len` bytes is still to be sent.
    pub(super) fn is_behind(&self, log_len: u64) -> bool {
        self.sent < log_len
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
    pub(super) fn pump(&mut self, log: &File, log_len: u64) -> io::Result<()> {
        let mut buf = vec![0u8; CHUNK];
        while self.sent < log_len {
            let want = ((log_len - self.sent) as usize).min(CHUNK);
            let n = log.read_at(&mut buf[..want], self.sent)?;
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
    fn a_client_gets_the_log_from_its_start_then_what_is_appended() {
        let tmp = tempfile::tempdir().unwrap();
        let listener = bind(tmp.path()).unwrap();
        let mut reader = UnixStream::connect(attach_path(tmp.path())).unwrap();
        let mut clients = Vec::new();
        accept_clients(&listener, &mut clients);
        assert_eq!(clients.len(), 1);

        let log_path = tmp.path().join("output.log");
        std::fs::write(&log_path, b"first ").unwrap();
        let log = File::open(&log_path).unwrap();
        clients[0].pump(&log, 6).unwrap();
        assert!(!clients[0].is_behind(6));
        std::fs::write(&log_path, b"first second").unwrap();
        assert!(clients[0].is_behind(12));
        clients[0].pump(&log, 12).unwrap();
        drop(clients);

        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "first second");
    }
}
