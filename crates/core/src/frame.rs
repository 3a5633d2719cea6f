//! The framing of a process's output on its way to the client.
//!
//! The per-container supervisor writes frames to its log and its attach
//! socket; `celld` passes them through unchanged as the body of an attach
//! response; `cell` decodes them. A frame is one byte of [`FrameKind`], a
//! big-endian `u32` length, and the payload. The last frame of a stream is
//! [`FrameKind::Exit`], whose payload is the exit code as a big-endian `i32`,
//! or [`FrameKind::Error`] with a message if the stream broke.

use std::io::{self, Read};

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Bytes the process wrote to stdout.
    Stdout = 1,
    /// Bytes the process wrote to stderr.
    Stderr = 2,
    /// The process exited; the payload is its exit code.
    Exit = 3,
    /// The stream failed; the payload is a message.
    Error = 4,
}

impl FrameKind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Stdout,
            2 => Self::Stderr,
            3 => Self::Exit,
            4 => Self::Error,
            _ => return None,
        })
    }
}

/// Length of a frame header.
pub const HEADER_LEN: usize = 5;

/// Appends one frame to `out`.
pub fn encode(kind: FrameKind, payload: &[u8], out: &mut Vec<u8>) {
    out.push(kind as u8);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// The frame that ends a stream with an exit code.
pub fn exit_frame(code: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 4);
    encode(FrameKind::Exit, &code.to_be_bytes(), &mut out);
    out
}

/// Reads the next frame; `Ok(None)` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(FrameKind, Vec<u8>)>> {
    let mut header = [0u8; HEADER_LEN];
    match r.read_exact(&mut header[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut header[1..])?;
    let kind = FrameKind::from_byte(header[0]).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown frame kind {}", header[0]),
        )
    })?;
    let len = u32::from_be_bytes(header[1..].try_into().unwrap()) as usize;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((kind, payload)))
}

/// The exit code carried by an [`FrameKind::Exit`] payload.
pub fn exit_code(payload: &[u8]) -> io::Result<i32> {
    payload
        .try_into()
        .map(i32::from_be_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "exit frame is not 4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode(FrameKind::Stdout, b"hello", &mut buf);
        encode(FrameKind::Stderr, b"", &mut buf);
        buf.extend(exit_frame(-3));
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((FrameKind::Stdout, b"hello".to_vec()))
        );
        assert_eq!(read_frame(&mut r).unwrap(), Some((FrameKind::Stderr, vec![])));
        let (kind, payload) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((kind, exit_code(&payload).unwrap()), (FrameKind::Exit, -3));
        assert_eq!(read_frame(&mut r).unwrap(), None);
    }

    #[test]
    fn truncated_and_unknown_frames_are_errors() {
        let mut buf = Vec::new();
        encode(FrameKind::Stdout, b"hello", &mut buf);
        assert!(read_frame(&mut &buf[..7]).is_err());
        assert!(read_frame(&mut &[9u8, 0, 0, 0, 0][..]).is_err());
    }
}
