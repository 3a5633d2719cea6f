//! The attach socket protocol: `STATE_DIR/attach.sock` streams the framed
//! output log ([`cell_core::frame`]) from its start, then live, and closes
//! after the exit frame.
//!
//! Clients may send frames the other way, in the same format: stdin bytes
//! ([`FrameKind::Stdin`]), the end of their input ([`FrameKind::StdinEof`])
//! and terminal resizes ([`FrameKind::Resize`]); the supervisor applies them
//! in the order they arrive, whichever client sent them. Output kinds sent
//! by a client are ignored; an unknown kind or a frame over
//! [`MAX_INPUT_FRAME`] bytes disconnects that client. A client that sends
//! nothing is a plain reader.
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
use cell_core::frame::{self, FrameKind};

use crate::error::{Result, RuntimeError};
use crate::spec::WindowSize;

const ATTACH_SOCK: &str = "attach.sock";
/// Largest read from the log per step.
const CHUNK: usize = 64 * 1024;
/// The largest payload of a frame a client may send.
pub const MAX_INPUT_FRAME: usize = 1024 * 1024;

/// What a client asked the supervisor to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Input {
    /// Bytes for the process's stdin.
    Stdin(Vec<u8>),
    /// The client's input ended.
    StdinEof,
    /// The client's terminal has this size now.
    Resize(WindowSize),
}

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
    /// Received bytes that do not make a whole frame yet.
    inbox: Vec<u8>,
}

impl Client {
    pub(super) fn socket(&self) -> &UnixStream {
        &self.socket
    }

    /// Whether part of a log that ends at `log_end` is still to be sent.
    pub(super) fn is_behind(&self, log_end: u64) -> bool {
        self.sent < log_end
    }

    /// Reads what the client sent, until its socket would block, and adds
    /// the whole frames to `inputs`. Returns whether the client stays.
    pub(super) fn read(&mut self, inputs: &mut Vec<Input>) -> bool {
        let mut scratch = vec![0u8; CHUNK];
        loop {
            match self.socket.read(&mut scratch) {
                Ok(0) => {
                    self.is_half_closed = true;
                    return self.take_frames(inputs);
                }
                Ok(n) => {
                    self.inbox.extend_from_slice(&scratch[..n]);
                    if !self.take_frames(inputs) {
                        return false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }

    /// Moves the whole frames of the inbox to `inputs`; false when the
    /// client broke the protocol.
    fn take_frames(&mut self, inputs: &mut Vec<Input>) -> bool {
        let whole = frame::whole_frames_len(&self.inbox);
        let mut frames = &self.inbox[..whole];
        while !frames.is_empty() {
            let Ok(Some((kind, payload))) = frame::read_frame(&mut frames) else {
                return false;
            };
            match kind {
                FrameKind::Stdin => inputs.push(Input::Stdin(payload)),
                FrameKind::StdinEof => inputs.push(Input::StdinEof),
                FrameKind::Resize => match frame::window_size(&payload) {
                    Ok((rows, cols)) => inputs.push(Input::Resize(WindowSize { rows, cols })),
                    Err(_) => return false,
                },
                FrameKind::Stdout | FrameKind::Stderr | FrameKind::Exit | FrameKind::Error => {}
            }
        }
        self.inbox.drain(..whole);
        self.inbox.len() < frame::HEADER_LEN + MAX_INPUT_FRAME
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
                        inbox: Vec::new(),
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

    #[test]
    fn a_client_sends_stdin_eof_and_resizes_in_order_even_cut_anywhere() {
        let tmp = tempfile::tempdir().unwrap();
        let listener = bind(tmp.path()).unwrap();
        let mut writer = UnixStream::connect(attach_path(tmp.path())).unwrap();
        let mut clients = Vec::new();
        accept_clients(&listener, &mut clients);

        let mut sent = Vec::new();
        frame::encode(FrameKind::Stdin, b"echo hi\n", &mut sent);
        // Output kinds from a client mean nothing and are skipped.
        frame::encode(FrameKind::Stdout, b"ignored", &mut sent);
        sent.extend(frame::resize_frame(50, 120));
        frame::encode(FrameKind::StdinEof, b"", &mut sent);
        let mut inputs = Vec::new();
        for byte in &sent {
            writer.write_all(std::slice::from_ref(byte)).unwrap();
            assert!(clients[0].read(&mut inputs));
        }
        assert_eq!(
            inputs,
            vec![
                Input::Stdin(b"echo hi\n".to_vec()),
                Input::Resize(WindowSize { rows: 50, cols: 120 }),
                Input::StdinEof,
            ]
        );
        drop(writer);
        assert!(clients[0].read(&mut inputs));
        assert!(clients[0].is_half_closed);
    }

    #[test]
    fn a_client_breaking_the_protocol_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let listener = bind(tmp.path()).unwrap();
        let mut clients = Vec::new();
        let mut unknown = UnixStream::connect(attach_path(tmp.path())).unwrap();
        let mut oversized = UnixStream::connect(attach_path(tmp.path())).unwrap();
        let mut good = UnixStream::connect(attach_path(tmp.path())).unwrap();
        accept_clients(&listener, &mut clients);
        assert_eq!(clients.len(), 3);
        unknown.write_all(&[99, 0, 0, 0, 0]).unwrap();
        // A header announcing more than any client may send, then enough of
        // its payload to pass the limit (the socket buffer holds it).
        oversized
            .write_all(&[FrameKind::Stdin as u8, 0xff, 0xff, 0xff, 0xff])
            .unwrap();
        oversized.set_nonblocking(true).unwrap();
        let mut is_oversized_dropped = false;
        let mut filler_sent = 0;
        while filler_sent <= 2 * MAX_INPUT_FRAME {
            match oversized.write(&vec![0u8; CHUNK]) {
                Ok(n) => filler_sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            if !clients[1].read(&mut Vec::new()) {
                is_oversized_dropped = true;
                break;
            }
        }
        assert!(is_oversized_dropped);
        good.write_all(&frame::resize_frame(1, 2)).unwrap();
        let mut inputs = Vec::new();
        assert!(!clients[0].read(&mut inputs));
        // The positive control: a well-formed frame on the same listener.
        assert!(clients[2].read(&mut inputs));
        assert_eq!(inputs, vec![Input::Resize(WindowSize { rows: 1, cols: 2 })]);
    }
}
