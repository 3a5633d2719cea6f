//! The framing of a process's output on its way to the client.
//!
//! The per-container supervisor writes frames to its log and its attach
//! socket; `celld` passes them through unchanged as the body of an attach
//! response; `cell` decodes them. A frame is one byte of [`FrameKind`], a
//! big-endian `u32` length, and the payload. The last frame of a stream is
//! [`FrameKind::Exit`], whose payload is the exit code as a big-endian `i32`,
//! or [`FrameKind::Error`] with a message if the stream broke.
//!
//! An interactive client (`cell run -i`, `cell exec -it`) also sends frames
//! the other way, in the same format, to `celld` and on to the supervisor:
//! [`FrameKind::Stdin`] with bytes for the process's standard input,
//! [`FrameKind::StdinEof`] (empty) when the client's input ended, and
//! [`FrameKind::Resize`] with the terminal's rows and columns as two
//! big-endian `u16` ([`resize_frame`], [`window_size`]). Output readers
//! never see those kinds, and the supervisor ignores output kinds sent to it.

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
    /// Client to process: bytes for its standard input.
    Stdin = 5,
    /// Client to process: the client's input ended (empty payload).
    StdinEof = 6,
    /// Client to process: the client's terminal is now `rows x cols`.
    Resize = 7,
}

impl FrameKind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Stdout,
            2 => Self::Stderr,
            3 => Self::Exit,
            4 => Self::Error,
            5 => Self::Stdin,
            6 => Self::StdinEof,
            7 => Self::Resize,
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

/// The frame that tells the process its terminal is `rows x cols`.
pub fn resize_frame(rows: u16, cols: u16) -> Vec<u8> {
    let mut payload = [0u8; 4];
    payload[..2].copy_from_slice(&rows.to_be_bytes());
    payload[2..].copy_from_slice(&cols.to_be_bytes());
    let mut out = Vec::with_capacity(HEADER_LEN + 4);
    encode(FrameKind::Resize, &payload, &mut out);
    out
}

/// The `(rows, cols)` carried by a [`FrameKind::Resize`] payload.
pub fn window_size(payload: &[u8]) -> io::Result<(u16, u16)> {
    match payload {
        [r0, r1, c0, c1] => Ok((u16::from_be_bytes([*r0, *r1]), u16::from_be_bytes([*c0, *c1]))),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "resize frame is not 4 bytes",
        )),
    }
}

/// The length of the longest prefix of `data` made of whole frames (kinds
/// are not checked), for relays that must pass frames on whole.
pub fn whole_frames_len(data: &[u8]) -> usize {
    let mut at = 0;
    while let Some(header) = data.get(at..at + HEADER_LEN) {
        let payload_len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let end = at + HEADER_LEN + payload_len;
        if end > data.len() {
            break;
        }
        at = end;
    }
    at
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
    fn input_frames_round_trip() {
        let mut buf = Vec::new();
        encode(FrameKind::Stdin, b"ls\n", &mut buf);
        encode(FrameKind::StdinEof, b"", &mut buf);
        buf.extend(resize_frame(40, 132));
        assert_eq!(whole_frames_len(&buf), buf.len());
        assert_eq!(whole_frames_len(&buf[..buf.len() - 1]), buf.len() - 9);
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((FrameKind::Stdin, b"ls\n".to_vec()))
        );
        assert_eq!(read_frame(&mut r).unwrap(), Some((FrameKind::StdinEof, vec![])));
        let (kind, payload) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!(
            (kind, window_size(&payload).unwrap()),
            (FrameKind::Resize, (40, 132))
        );
        assert!(window_size(b"abc").is_err());
    }

    #[test]
    fn truncated_and_unknown_frames_are_errors() {
        let mut buf = Vec::new();
        encode(FrameKind::Stdout, b"hello", &mut buf);
        assert!(read_frame(&mut &buf[..7]).is_err());
        assert!(read_frame(&mut &[9u8, 0, 0, 0, 0][..]).is_err());
    }
}
