//! The output log of a process: framed output on disk, bounded, with a
//! time for every frame.
//!
//! [`OutputLog`] is the supervisor's writer. Frames ([`cell_core::frame`])
//! go to `output.log` until the next one would take it and its time index
//! together past [`LogLimits::max_bytes`]; then the log rotates: `output.log.1` becomes
//! `output.log.2` and so on, the oldest beyond [`LogLimits::files`] is
//! deleted, and `output.log` becomes `output.log.1`. Rotation happens only
//! between frames, so every file is a sequence of whole frames and the
//! retained files, oldest first, are a valid stream. A frame larger than
//! the cap is split into several, so no file grows past it, and a process
//! never has more than `max_bytes * files` bytes on disk, indexes included
//! (the index of a process writing a byte at a time would otherwise be
//! larger than its log).
//!
//! Times live beside each file, in `output.log.times` (rotated with it):
//! one 16-byte record per frame, the frame's offset in its file and the
//! time it was read from the pipe (nanoseconds since the epoch), both
//! big-endian. A separate index rather than a new frame kind, because the
//! attach socket streams the log files byte for byte to clients that know
//! only the four kinds of [`cell_core::frame::FrameKind`]; only `cell logs
//! --timestamps` needs times, and it reads the index. The record is written
//! before its frame, so a reader that sees a frame finds its time.
//!
//! [`LogReader`] reads the retained files oldest first and then follows
//! the log as it grows and rotates, as `tail -F` does. It is what `celld`
//! uses for `cell logs`, also once the supervisor is gone.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cell_core::frame::{self, FrameKind};

use super::OUTPUT_LOG;
use crate::spec::LogLimits;

/// Suffix of the time index of a log file.
const TIMES_SUFFIX: &str = ".times";
/// Size of one record of the time index.
const TIME_RECORD: usize = 16;

/// The path of log file `index`: 0 is `output.log`, being written; `k` is
/// `output.log.k`, rotated `k` times.
pub fn segment_path(state_dir: &Path, index: u32) -> PathBuf {
    match index {
        0 => state_dir.join(OUTPUT_LOG),
        k => state_dir.join(format!("{OUTPUT_LOG}.{k}")),
    }
}

fn times_path(segment: &Path) -> PathBuf {
    let mut name = segment.as_os_str().to_owned();
    name.push(TIMES_SUFFIX);
    PathBuf::from(name)
}

/// The log files of `state_dir` that exist, oldest first.
pub fn segment_paths(state_dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut index = 0;
    loop {
        let path = segment_path(state_dir, index);
        if !path.exists() {
            break;
        }
        paths.push(path);
        index += 1;
    }
    paths.reverse();
    paths
}

/// One retained file, as the writer sees it.
struct Segment {
    /// Position of its first byte in the whole stream since the start.
    base: u64,
    len: u64,
    file: File,
}

/// The supervisor's writer of `output.log` and its rotated files.
///
/// Positions count bytes since the supervisor started, across rotations, so
/// that an attach client keeps its place when the files are renamed under
/// it ([`OutputLog::read_at`]).
pub(super) struct OutputLog {
    state_dir: PathBuf,
    limits: LogLimits,
    /// Retained files, oldest first; the last one is `output.log`.
    segments: VecDeque<Segment>,
    times: Option<File>,
    /// Bytes in the time index of `output.log`.
    times_len: u64,
}

impl OutputLog {
    /// Starts an empty log in `state_dir`, removing any left from an
    /// earlier attempt.
    pub(super) fn create(state_dir: &Path, limits: LogLimits) -> io::Result<Self> {
        for path in segment_paths(state_dir) {
            let _ = fs::remove_file(times_path(&path));
            fs::remove_file(&path)?;
        }
        let mut log = Self {
            state_dir: state_dir.to_path_buf(),
            limits,
            segments: VecDeque::new(),
            times: None,
            times_len: 0,
        };
        log.open_current(0)?;
        Ok(log)
    }

    fn open_current(&mut self, base: u64) -> io::Result<()> {
        let path = segment_path(&self.state_dir, 0);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .read(true)
            .open(&path)?;
        // Without its index the log still works; only times are missing.
        self.times = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(times_path(&path))
            .map_err(|e| eprintln!("shim: failed to open the time index: {e}"))
            .ok();
        self.times_len = 0;
        self.segments.push_back(Segment { base, len: 0, file });
        Ok(())
    }

    /// Position of the first byte still retained.
    pub(super) fn start(&self) -> u64 {
        self.segments.front().map_or(0, |s| s.base)
    }

    /// Position after the last byte written.
    pub(super) fn end(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.base + s.len)
    }

    /// Appends `payload` as frames of `kind`, each stamped with `now`,
    /// rotating first whenever a frame would take `output.log` past the cap.
    pub(super) fn append(&mut self, kind: FrameKind, payload: &[u8], now: SystemTime) -> io::Result<()> {
        let room = (self.limits.max_bytes as usize)
            .saturating_sub(frame::HEADER_LEN + TIME_RECORD)
            .max(1);
        // An empty payload is still one frame (an exit code is never empty,
        // but the log must not lose a frame it is given).
        let pieces: Vec<&[u8]> = if payload.is_empty() {
            vec![payload]
        } else {
            payload.chunks(room).collect()
        };
        for piece in pieces {
            let mut framed = Vec::with_capacity(frame::HEADER_LEN + piece.len());
            frame::encode(kind, piece, &mut framed);
            self.append_frame(&framed, now)?;
        }
        Ok(())
    }

    fn append_frame(&mut self, framed: &[u8], now: SystemTime) -> io::Result<()> {
        let current_len = self.segments.back().map_or(0, |s| s.len);
        let needed = current_len + self.times_len + (framed.len() + TIME_RECORD) as u64;
        if current_len > 0 && needed > self.limits.max_bytes {
            self.rotate()?;
        }
        let segment = self
            .segments
            .back_mut()
            .expect("the log always has a current file");
        if let Some(times) = &mut self.times {
            let nanos = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
            let mut record = [0u8; TIME_RECORD];
            record[..8].copy_from_slice(&segment.len.to_be_bytes());
            record[8..].copy_from_slice(&nanos.to_be_bytes());
            match times.write_all(&record) {
                Ok(()) => self.times_len += TIME_RECORD as u64,
                Err(e) => eprintln!("shim: failed to append to the time index: {e}"),
            }
        }
        match segment.file.write_all(framed) {
            Ok(()) => {
                segment.len += framed.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Cut a partial frame off again: readers must only ever see
                // whole frames.
                let _ = segment.file.set_len(segment.len);
                Err(e)
            }
        }
    }

    /// `output.log.k` becomes `output.log.k+1`, the oldest is deleted, and
    /// a new `output.log` starts.
    fn rotate(&mut self) -> io::Result<()> {
        let files = self.limits.files.max(1);
        let oldest = segment_path(&self.state_dir, files - 1);
        let _ = fs::remove_file(times_path(&oldest));
        match fs::remove_file(&oldest) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for index in (0..files - 1).rev() {
            let from = segment_path(&self.state_dir, index);
            let to = segment_path(&self.state_dir, index + 1);
            let _ = fs::rename(times_path(&from), times_path(&to));
            match fs::rename(&from, &to) {
                Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        while self.segments.len() >= files as usize {
            self.segments.pop_front();
        }
        let base = self.end();
        self.open_current(base)
    }

    /// Reads retained bytes at stream position `pos` (at or after
    /// [`OutputLog::start`]) into `buf`, from one file at most.
    pub(super) fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let Some(segment) = self
            .segments
            .iter()
            .find(|s| s.base <= pos && pos < s.base + s.len)
        else {
            return Ok(0);
        };
        let want = ((segment.base + segment.len - pos) as usize).min(buf.len());
        segment.file.read_at(&mut buf[..want], pos - segment.base)
    }
}

/// A frame read back from a log, with the time it was written if the index
/// has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFrame {
    /// What the frame carries.
    pub kind: FrameKind,
    /// Its bytes.
    pub payload: Vec<u8>,
    /// When the supervisor read it from the process.
    pub time: Option<SystemTime>,
}

/// One log file open for reading.
struct OpenSegment {
    file: File,
    times: Option<File>,
    /// Offset in `file` of the first byte of `pending`.
    pending_at: u64,
    pending: Vec<u8>,
    /// Index records read but not yet matched to a frame.
    time_records: VecDeque<(u64, i64)>,
    time_bytes: Vec<u8>,
}

impl OpenSegment {
    fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: File::open(path)?,
            times: File::open(times_path(path)).ok(),
            pending_at: 0,
            pending: Vec::new(),
            time_records: VecDeque::new(),
            time_bytes: Vec::new(),
        })
    }

    /// Every whole frame written to this file since the last call.
    fn read_frames(&mut self, out: &mut Vec<LogFrame>) -> io::Result<()> {
        let mut grown = Vec::new();
        self.file.read_to_end(&mut grown)?;
        self.pending.extend(grown);
        if let Some(times) = &mut self.times {
            times.read_to_end(&mut self.time_bytes)?;
            let whole = self.time_bytes.len() / TIME_RECORD * TIME_RECORD;
            for record in self.time_bytes[..whole].chunks_exact(TIME_RECORD) {
                let offset = u64::from_be_bytes(record[..8].try_into().expect("8 bytes"));
                let nanos = i64::from_be_bytes(record[8..].try_into().expect("8 bytes"));
                self.time_records.push_back((offset, nanos));
            }
            self.time_bytes.drain(..whole);
        }
        let mut rest = &self.pending[..];
        loop {
            let before = rest;
            match frame::read_frame(&mut rest) {
                Ok(Some((kind, payload))) => {
                    let at = self.pending_at + (self.pending.len() - before.len()) as u64;
                    while self.time_records.front().is_some_and(|&(offset, _)| offset < at) {
                        self.time_records.pop_front();
                    }
                    let time = match self.time_records.front() {
                        Some(&(offset, nanos)) if offset == at => {
                            Some(UNIX_EPOCH + Duration::from_nanos(nanos.max(0) as u64))
                        }
                        _ => None,
                    };
                    out.push(LogFrame { kind, payload, time });
                }
                // A frame still being written, or the end.
                Ok(None) | Err(_) => {
                    rest = before;
                    break;
                }
            }
        }
        let consumed = self.pending.len() - rest.len();
        self.pending.drain(..consumed);
        self.pending_at += consumed as u64;
        Ok(())
    }

    fn inode(&self) -> Option<u64> {
        self.file.metadata().ok().map(|m| m.ino())
    }
}

/// Reads a process's log from its oldest retained frame, then what is
/// appended, following rotations.
///
/// Following is polling: [`LogReader::read_available`] returns what is new
/// since the last call. A file rotated away under the reader is read to
/// its end (the open descriptor keeps it), then the files after it; if the
/// log rotated so often between two calls that some of those are deleted
/// already, the reader goes on with the oldest file kept, and what was in
/// the deleted ones is skipped, as with `tail -F`.
pub struct LogReader {
    state_dir: PathBuf,
    /// Files opened at the start and not read yet, oldest first.
    queued: VecDeque<OpenSegment>,
    current: Option<OpenSegment>,
}

impl LogReader {
    /// Opens the retained files of the log in `state_dir` (none yet is
    /// fine: the reader waits for `output.log`).
    pub fn open(state_dir: &Path) -> Self {
        let mut queued: VecDeque<OpenSegment> = segment_paths(state_dir)
            .iter()
            .filter_map(|path| OpenSegment::open(path).ok())
            .collect();
        let current = queued.pop_front();
        Self {
            state_dir: state_dir.to_path_buf(),
            queued,
            current,
        }
    }

    /// The frames appended since the last call (all retained ones on the
    /// first), oldest first.
    pub fn read_available(&mut self) -> io::Result<Vec<LogFrame>> {
        let mut out = Vec::new();
        loop {
            let Some(current) = &mut self.current else {
                self.current = OpenSegment::open(&segment_path(&self.state_dir, 0)).ok();
                if self.current.is_none() {
                    return Ok(out);
                }
                continue;
            };
            current.read_frames(&mut out)?;
            if let Some(next) = self.queued.pop_front() {
                // A newer file existed when we opened this one: it is whole.
                self.current = Some(next);
                continue;
            }
            let live = fs::metadata(segment_path(&self.state_dir, 0))
                .ok()
                .map(|m| m.ino());
            if live.is_none() || live == current.inode() {
                return Ok(out);
            }
            // Rotated away since: what was written before the rename is
            // read now, then the files that came after it, oldest first.
            current.read_frames(&mut out)?;
            let ours = current.inode();
            let paths = segment_paths(&self.state_dir);
            let newer = paths
                .iter()
                .position(|p| fs::metadata(p).ok().map(|m| m.ino()) == ours)
                .map_or(0, |at| at + 1);
            self.queued = paths[newer..]
                .iter()
                .filter_map(|path| OpenSegment::open(path).ok())
                .collect();
            self.current = self.queued.pop_front();
            if self.current.is_none() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_bytes: u64, files: u32) -> LogLimits {
        LogLimits { max_bytes, files }
    }

    fn payloads(frames: &[LogFrame]) -> Vec<String> {
        frames
            .iter()
            .map(|f| String::from_utf8_lossy(&f.payload).into_owned())
            .collect()
    }

    fn read_stream(log: &OutputLog) -> Vec<u8> {
        let mut out = Vec::new();
        let mut pos = log.start();
        let mut buf = [0u8; 7];
        while pos < log.end() {
            let n = log.read_at(&mut buf, pos).unwrap();
            assert!(n > 0);
            out.extend_from_slice(&buf[..n]);
            pos += n as u64;
        }
        out
    }

    #[test]
    fn frames_come_back_with_their_times() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = OutputLog::create(tmp.path(), LogLimits::default()).unwrap();
        let t1 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let t2 = t1 + Duration::from_nanos(123_456_789);
        log.append(FrameKind::Stdout, b"one\n", t1).unwrap();
        log.append(FrameKind::Stderr, b"two\n", t2).unwrap();
        let frames = LogReader::open(tmp.path()).read_available().unwrap();
        assert_eq!(
            frames,
            vec![
                LogFrame {
                    kind: FrameKind::Stdout,
                    payload: b"one\n".to_vec(),
                    time: Some(t1)
                },
                LogFrame {
                    kind: FrameKind::Stderr,
                    payload: b"two\n".to_vec(),
                    time: Some(t2)
                },
            ]
        );
    }

    #[test]
    fn rotation_keeps_the_newest_frames_within_the_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let (max_bytes, files) = (64, 3);
        let mut log = OutputLog::create(tmp.path(), limits(max_bytes, files)).unwrap();
        let now = SystemTime::now();
        for i in 0..100 {
            log.append(FrameKind::Stdout, format!("line {i:03}\n").as_bytes(), now)
                .unwrap();
        }
        let paths = segment_paths(tmp.path());
        assert_eq!(paths.len(), files as usize, "{paths:?}");
        let total: u64 = paths
            .iter()
            .flat_map(|p| [p.clone(), times_path(p)])
            .map(|p| fs::metadata(p).unwrap().len())
            .sum();
        assert!(total <= max_bytes * files as u64, "{total}");
        assert!(!segment_path(tmp.path(), files).exists());

        let read = payloads(&LogReader::open(tmp.path()).read_available().unwrap());
        assert_eq!(read.last().unwrap(), "line 099\n");
        // Oldest first, no gap: consecutive numbers.
        let numbers: Vec<u32> = read.iter().map(|l| l[5..8].parse().unwrap()).collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
        // The writer's positions give the same stream as the files.
        let mut stream = &read_stream(&log)[..];
        let mut from_stream = Vec::new();
        while let Some((_, payload)) = frame::read_frame(&mut stream).unwrap() {
            from_stream.push(String::from_utf8(payload).unwrap());
        }
        assert_eq!(from_stream, read);
    }

    #[test]
    fn a_frame_larger_than_the_cap_is_split() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = OutputLog::create(tmp.path(), limits(64, 8)).unwrap();
        log.append(FrameKind::Stdout, &[b'x'; 50], SystemTime::now())
            .unwrap();
        let paths = segment_paths(tmp.path());
        assert_eq!(paths.len(), 2, "{paths:?}");
        for path in paths {
            assert!(fs::metadata(&path).unwrap().len() <= 64, "{path:?}");
        }
        let frames = LogReader::open(tmp.path()).read_available().unwrap();
        let all: Vec<u8> = frames.into_iter().flat_map(|f| f.payload).collect();
        assert_eq!(all, vec![b'x'; 50]);
    }

    #[test]
    fn a_follower_keeps_up_across_rotations() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = OutputLog::create(tmp.path(), limits(40, 3)).unwrap();
        let mut reader = LogReader::open(tmp.path());
        let now = SystemTime::now();
        let mut seen = Vec::new();
        for i in 0..30 {
            log.append(FrameKind::Stdout, format!("n{i:02}\n").as_bytes(), now)
                .unwrap();
            if i % 2 == 1 {
                seen.extend(payloads(&reader.read_available().unwrap()));
            }
        }
        let expected: Vec<String> = (0..30).map(|i| format!("n{i:02}\n")).collect();
        assert_eq!(seen, expected);
        assert!(reader.read_available().unwrap().is_empty());
    }

    #[test]
    fn a_follower_left_behind_goes_on_from_the_oldest_file_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = OutputLog::create(tmp.path(), limits(40, 2)).unwrap();
        let mut reader = LogReader::open(tmp.path());
        let now = SystemTime::now();
        log.append(FrameKind::Stdout, b"n00\n", now).unwrap();
        assert_eq!(payloads(&reader.read_available().unwrap()), ["n00\n"]);
        // One frame per file, two files kept: n01 to n03 are gone.
        for i in 1..6 {
            log.append(FrameKind::Stdout, format!("n{i:02}\n").as_bytes(), now)
                .unwrap();
        }
        assert_eq!(payloads(&reader.read_available().unwrap()), ["n04\n", "n05\n"]);
        log.append(FrameKind::Stdout, b"n06\n", now).unwrap();
        assert_eq!(payloads(&reader.read_available().unwrap()), ["n06\n"]);
    }

    #[test]
    fn a_new_log_removes_an_old_one() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = OutputLog::create(tmp.path(), limits(16, 2)).unwrap();
        log.append(FrameKind::Stdout, b"old old old old", SystemTime::now())
            .unwrap();
        drop(log);
        let _log = OutputLog::create(tmp.path(), limits(16, 2)).unwrap();
        assert!(LogReader::open(tmp.path()).read_available().unwrap().is_empty());
        assert_eq!(segment_paths(tmp.path()).len(), 1);
    }
}
