//! `logs`: a container's output as it was kept on disk, then live.
//!
//! A container's output is that of its init, over every run since it was
//! created (as Docker shows it): each `start` runs a new init exec with a
//! state directory of its own, and [`Engine::logs`] reads their logs
//! ([`cell_runtime::shim::log::LogReader`]) oldest run first. It works the
//! same whether the supervisor still runs, has exited, or `celld` restarted
//! in between, since it reads only files.
//!
//! Output is turned into lines (per stream: a line of stdout may be written
//! in several pieces while stderr is written in between) so that `tail`
//! counts lines and `timestamps` prefixes each line with the time its first
//! byte was written, in RFC 3339 with nanoseconds, as Docker does:
//! `2026-11-30T05:18:24.123456789Z hello`. The result is a stream of frames
//! ([`cell_core::frame`]) that [`ContainerLogs::next_chunk`] hands out piece
//! by piece; following is polling, and the caller decides how long to wait
//! between two [`LogChunk::Idle`] answers.

use crate::Engine;
use crate::error::{Context, Result};
use cell_core::CoreError;
use cell_core::error::quoted;
use cell_core::frame::{self, FrameKind};
use cell_runtime::shim::log::{LogFrame, LogReader};
use chrono::{DateTime, SecondsFormat, Utc};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// What `logs` shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Go on with new output until the container's current run exits.
    pub follow: bool,
    /// Only the last this many lines of what was kept (all when `None`).
    pub tail: Option<usize>,
    /// Prefix each line with the time it was written.
    pub timestamps: bool,
}

/// The files that hold the log whose current file is `output_log`
/// (`STATE_DIR/output.log`): the rotated ones, oldest first, then it.
pub fn retained_log_files(output_log: &Path) -> Vec<PathBuf> {
    output_log
        .parent()
        .map(cell_runtime::shim::log::segment_paths)
        .unwrap_or_default()
}

/// Reads a `tail` value: a number of lines (0 or more), or `all`.
pub fn parse_tail(text: &str) -> std::result::Result<Option<usize>, CoreError> {
    if text == "all" {
        return Ok(None);
    }
    match text.parse::<usize>() {
        Ok(n) if !text.starts_with('+') => Ok(Some(n)),
        _ => Err(CoreError::invalid(format!(
            "invalid tail {}: expected a number of lines (0 or more) or 'all'",
            quoted(text)
        ))),
    }
}

/// The next piece of a logs stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogChunk {
    /// Frames to send.
    Frames(Vec<u8>),
    /// Nothing new yet; ask again later.
    Idle,
    /// The end of the logs.
    End,
}

/// One line (or the unfinished end of one) of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    kind: FrameKind,
    time: Option<SystemTime>,
    text: Vec<u8>,
}

/// The run still being followed.
struct LiveRun {
    exec_id: String,
    dir: PathBuf,
    reader: LogReader,
    /// Per stream (stdout, stderr): whether the next byte starts a line.
    at_line_start: [bool; 2],
}

/// A container's logs, handed out by [`ContainerLogs::next_chunk`].
pub struct ContainerLogs {
    engine: Arc<Engine>,
    timestamps: bool,
    history: Option<Vec<u8>>,
    live: Option<LiveRun>,
}

impl Engine {
    /// The logs of container `reference` (a name, id or id prefix).
    /// Reads what is kept now; with `follow`, the returned value goes on
    /// with the output of the current run.
    pub fn logs(self: &Arc<Self>, reference: &str, options: LogOptions) -> Result<ContainerLogs> {
        let container = self.find_container(reference)?;
        let runs = self.init_runs(&container.id)?;
        let mut lines = Vec::new();
        let mut live = None;
        let count = runs.len();
        for (i, (exec_id, finished)) in runs.into_iter().enumerate() {
            let dir = self.exec_dir(&exec_id);
            let mut reader = LogReader::open(&dir);
            let frames = reader
                .read_available()
                .context(|| format!("failed to read the logs of container {}", container.name))?;
            let mut splitter = LineSplitter::default();
            let mut saw_exit = false;
            for frame in frames {
                saw_exit |= frame.kind == FrameKind::Exit;
                splitter.feed(&frame, &mut lines);
            }
            let at_line_start = splitter.finish(&mut lines);
            let is_last = i + 1 == count;
            if is_last && options.follow && !saw_exit && !finished {
                live = Some(LiveRun {
                    exec_id,
                    dir,
                    reader,
                    at_line_start,
                });
            }
        }
        let kept = match options.tail {
            Some(n) => &lines[lines.len().saturating_sub(n)..],
            None => &lines[..],
        };
        let mut history = Vec::new();
        for line in kept {
            let mut payload = Vec::with_capacity(line.text.len() + 32);
            if options.timestamps {
                payload.extend(timestamp(line.time));
            }
            payload.extend_from_slice(&line.text);
            frame::encode(line.kind, &payload, &mut history);
        }
        Ok(ContainerLogs {
            engine: Arc::clone(self),
            timestamps: options.timestamps,
            history: Some(history),
            live,
        })
    }

    /// The container's init execs, oldest first, each with whether its
    /// exit is recorded.
    fn init_runs(&self, container_id: &str) -> Result<Vec<(String, bool)>> {
        let store = self.read()?;
        let ids = store
            .exec_ids_of_container(container_id)
            .context(|| format!("failed to list the runs of container {container_id}"))?;
        let mut runs = Vec::new();
        for id in ids {
            let record = store
                .exec(&id)
                .context(|| format!("failed to look up exec {id}"))?;
            if let Some(record) = record.filter(|r| r.exec.is_init) {
                runs.push(record.exec);
            }
        }
        // Stable: two runs created in the same microsecond keep the
        // store's order, which is the order they were recorded in.
        runs.sort_by_key(|exec| exec.created);
        Ok(runs
            .into_iter()
            .map(|exec| (exec.id, exec.exit_code.is_some()))
            .collect())
    }
}

impl ContainerLogs {
    /// The next frames: first what was kept (all of it, or the tail), then,
    /// when following, what the current run writes, until it exits.
    pub fn next_chunk(&mut self) -> Result<LogChunk> {
        if let Some(history) = self.history.take()
            && !history.is_empty()
        {
            return Ok(LogChunk::Frames(history));
        }
        let Some(live) = &mut self.live else {
            return Ok(LogChunk::End);
        };
        // Asked before reading: output written before the exit was seen is
        // then surely in the files read next.
        // An exec no longer known was removed with its container.
        let is_finished = cell_runtime::read_exit(&live.dir).is_some()
            || self
                .engine
                .find_exec(&live.exec_id)
                .map_or(true, |exec| exec.exit_code.is_some());
        let frames = live
            .reader
            .read_available()
            .context(|| format!("failed to read the logs of exec {}", live.exec_id))?;
        let mut out = Vec::new();
        let mut saw_exit = false;
        for frame in frames {
            match frame.kind {
                FrameKind::Stdout | FrameKind::Stderr => {
                    let start = &mut live.at_line_start[stream_index(frame.kind)];
                    let payload = stamp_lines(&frame, start, self.timestamps);
                    frame::encode(frame.kind, &payload, &mut out);
                }
                FrameKind::Exit => saw_exit = true,
                // Errors, and input a client sent the other way, are not
                // the process's output.
                FrameKind::Error | FrameKind::Stdin | FrameKind::StdinEof | FrameKind::Resize => {}
            }
        }
        if saw_exit || is_finished {
            self.live = None;
        }
        Ok(if !out.is_empty() {
            LogChunk::Frames(out)
        } else if self.live.is_none() {
            LogChunk::End
        } else {
            LogChunk::Idle
        })
    }
}

fn stream_index(kind: FrameKind) -> usize {
    usize::from(kind == FrameKind::Stderr)
}

/// `time` as `logs --timestamps` prints it, with the space that follows.
fn timestamp(time: Option<SystemTime>) -> Vec<u8> {
    match time {
        Some(time) => {
            let time: DateTime<Utc> = time.into();
            format!("{} ", time.to_rfc3339_opts(SecondsFormat::Nanos, true)).into_bytes()
        }
        // Written by a supervisor that kept no times.
        None => Vec::new(),
    }
}

/// A live frame's payload, with a timestamp before each line that starts
/// in it.
fn stamp_lines(frame: &LogFrame, at_line_start: &mut bool, timestamps: bool) -> Vec<u8> {
    if !timestamps {
        if let Some(&last) = frame.payload.last() {
            *at_line_start = last == b'\n';
        }
        return frame.payload.clone();
    }
    let mut out = Vec::with_capacity(frame.payload.len() + 32);
    for piece in frame.payload.split_inclusive(|&b| b == b'\n') {
        if *at_line_start {
            out.extend(timestamp(frame.time));
        }
        out.extend_from_slice(piece);
        *at_line_start = piece.ends_with(b"\n");
    }
    out
}

/// Joins the pieces of one run's frames into lines, per stream.
#[derive(Default)]
struct LineSplitter {
    partial: [Option<Line>; 2],
}

impl LineSplitter {
    fn feed(&mut self, frame: &LogFrame, lines: &mut Vec<Line>) {
        if !matches!(frame.kind, FrameKind::Stdout | FrameKind::Stderr) {
            return;
        }
        let partial = &mut self.partial[stream_index(frame.kind)];
        for piece in frame.payload.split_inclusive(|&b| b == b'\n') {
            let line = partial.get_or_insert_with(|| Line {
                kind: frame.kind,
                time: frame.time,
                text: Vec::new(),
            });
            line.text.extend_from_slice(piece);
            if piece.ends_with(b"\n") {
                lines.extend(partial.take());
            }
        }
    }

    /// Ends the run: unfinished lines count as lines. Returns, per stream,
    /// whether the next byte would start a line.
    fn finish(self, lines: &mut Vec<Line>) -> [bool; 2] {
        let at_line_start = [self.partial[0].is_none(), self.partial[1].is_none()];
        let mut rest: Vec<Line> = self.partial.into_iter().flatten().collect();
        rest.sort_by_key(|l| l.time);
        lines.extend(rest);
        at_line_start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn frame(kind: FrameKind, text: &str, secs: u64) -> LogFrame {
        LogFrame {
            kind,
            payload: text.as_bytes().to_vec(),
            time: Some(UNIX_EPOCH + Duration::from_secs(secs)),
        }
    }

    fn split(frames: &[LogFrame]) -> Vec<(FrameKind, String, u64)> {
        let mut lines = Vec::new();
        let mut splitter = LineSplitter::default();
        for f in frames {
            splitter.feed(f, &mut lines);
        }
        splitter.finish(&mut lines);
        lines
            .into_iter()
            .map(|l| {
                let secs = l.time.unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
                (l.kind, String::from_utf8(l.text).unwrap(), secs)
            })
            .collect()
    }

    #[test]
    fn lines_are_joined_per_stream_and_keep_the_time_of_their_start() {
        let lines = split(&[
            frame(FrameKind::Stdout, "one\ntw", 1),
            frame(FrameKind::Stderr, "err\n", 2),
            frame(FrameKind::Stdout, "o\nthree", 3),
        ]);
        assert_eq!(
            lines,
            vec![
                (FrameKind::Stdout, "one\n".into(), 1),
                (FrameKind::Stderr, "err\n".into(), 2),
                (FrameKind::Stdout, "two\n".into(), 1),
                (FrameKind::Stdout, "three".into(), 3),
            ]
        );
    }

    #[test]
    fn live_output_gets_a_timestamp_at_each_line_start_only() {
        let mut at_start = false;
        let stamped = stamp_lines(
            &frame(FrameKind::Stdout, "end\nnext\nhalf", 0),
            &mut at_start,
            true,
        );
        assert_eq!(
            String::from_utf8(stamped).unwrap(),
            "end\n1970-01-01T00:00:00.000000000Z next\n1970-01-01T00:00:00.000000000Z half"
        );
        assert!(!at_start);
        let plain = stamp_lines(&frame(FrameKind::Stdout, "x\n", 0), &mut at_start, false);
        assert_eq!(plain, b"x\n");
        assert!(at_start);
    }

    mod on_fakes {
        use super::*;
        use crate::containers::CreateContainer;
        use crate::{Backends, EngineConfig, FakeRuntime, SystemClock};
        use cell_runtime::spec::LogLimits;
        use std::time::Duration;

        fn frames(list: &[(FrameKind, &str)]) -> Vec<u8> {
            let mut out = Vec::new();
            for (kind, text) in list {
                frame::encode(*kind, text.as_bytes(), &mut out);
            }
            out
        }

        fn drain(logs: &mut ContainerLogs) -> Vec<(FrameKind, String)> {
            let mut out = Vec::new();
            loop {
                match logs.next_chunk().unwrap() {
                    LogChunk::Frames(data) => {
                        let mut rest = &data[..];
                        while let Some((kind, payload)) = frame::read_frame(&mut rest).unwrap() {
                            out.push((kind, String::from_utf8(payload).unwrap()));
                        }
                    }
                    LogChunk::Idle => panic!("idle without follow"),
                    LogChunk::End => return out,
                }
            }
        }

        #[test]
        fn every_run_is_shown_oldest_first_and_the_limits_reach_the_supervisor() {
            let dir = tempfile::tempdir().unwrap();
            let rootfs = dir.path().join("rootfs");
            std::fs::create_dir_all(rootfs.join("bin")).unwrap();
            std::fs::write(rootfs.join("bin/sh"), "#!/bin/true\n").unwrap();
            let runtime = Arc::new(FakeRuntime::new());
            let limits = LogLimits {
                max_bytes: 8192,
                files: 3,
            };
            let engine = Engine::open(
                EngineConfig {
                    root: dir.path().join("root"),
                    busybox: "/nonexistent/busybox".into(),
                    log_limits: limits,
                    port_range: None,
                },
                Backends {
                    net: Arc::new(cell_net::FakeNetKernel::new()),
                    runtime: runtime.clone(),
                    clock: Arc::new(SystemClock),
                    ports: Arc::new(crate::FakeHostPorts::new(cell_core::port::PortRange {
                        start: 40000,
                        end: 40099,
                    })),
                },
            )
            .unwrap();
            engine.import_image("img", &rootfs).unwrap();
            engine
                .create_container(&CreateContainer {
                    image: "img".into(),
                    name: Some("web".into()),
                    ..CreateContainer::default()
                })
                .unwrap();

            // Created, never started: no output, and no error.
            assert!(drain(&mut engine.logs("web", LogOptions::default()).unwrap()).is_empty());

            for (run, line) in ["first\n", "second\n"].into_iter().enumerate() {
                engine.start_container("web").unwrap();
                let process = runtime.running().pop().unwrap();
                assert_eq!(process.spec.log, limits, "celld's limits go to the supervisor");
                let log = frames(&[(FrameKind::Stdout, line), (FrameKind::Stderr, "err\n")]);
                std::fs::write(process.dir.join("output.log"), log).unwrap();
                runtime.exit(process.pid, run as i32);
                assert!(
                    engine
                        .wait_exit_recorded(&process.spec.exec_id, Duration::from_secs(10))
                        .unwrap()
                );
            }
            let all = drain(&mut engine.logs("web", LogOptions::default()).unwrap());
            assert_eq!(
                all,
                vec![
                    (FrameKind::Stdout, "first\n".into()),
                    (FrameKind::Stderr, "err\n".into()),
                    (FrameKind::Stdout, "second\n".into()),
                    (FrameKind::Stderr, "err\n".into()),
                ]
            );
            let options = LogOptions {
                tail: Some(1),
                follow: true,
                ..LogOptions::default()
            };
            // Following a stopped container ends after what was kept.
            let tail = drain(&mut engine.logs("web", options).unwrap());
            assert_eq!(tail, vec![(FrameKind::Stderr, "err\n".into())]);

            let err = engine.logs("nosuch", LogOptions::default()).err().unwrap();
            assert_eq!(err.kind(), cell_core::error::ErrorKind::NotFound, "{err}");
        }
    }

    #[test]
    fn tail_is_a_count_or_all() {
        assert_eq!(parse_tail("2").unwrap(), Some(2));
        assert_eq!(parse_tail("0").unwrap(), Some(0));
        assert_eq!(parse_tail("all").unwrap(), None);
        for bad in ["-1", "abc", "", "+3", "1.5"] {
            let message = parse_tail(bad).unwrap_err().to_string();
            assert!(message.starts_with(&format!("invalid tail '{bad}'")), "{message}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_with_nanoseconds() {
        let time = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        assert_eq!(
            String::from_utf8(timestamp(Some(time))).unwrap(),
            "2023-11-14T22:13:20.000000005Z "
        );
        assert!(timestamp(None).is_empty());
    }
}
