//! `GET /execs/{id}/attach`: the framed output of an exec, streamed.
//!
//! Frames pass through unchanged (see `cell_core::frame`). While the
//! supervisor runs, its attach socket gives the history and then live
//! output ([`live_frames`]); once it has gone, its log files (the rotated
//! ones first) hold what was kept, ending with the exit frame
//! ([`complete_log`]).
//!
//! A live stream lasts as long as the process, which may be forever (an
//! attached `nc -l`). So both paths also watch the daemon's shutdown token:
//! when it fires, the stream ends with one error frame saying
//! [`DAEMON_STOPPED`], and the server is free to stop. Live bytes are
//! forwarded whole frames at a time so that this last frame always starts
//! at a frame boundary; a frame cut short here is sent again in full by the
//! supervisor to whoever attaches next, since it replays its log from the
//! start.

use crate::ApiError;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use cell_core::frame::{self, FrameKind};
use cell_engine::Engine;
use cell_engine::execs::OutputSource;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

/// The message of the error frame that ends every open attach stream when
/// celld stops. The process goes on under its supervisor.
pub const DAEMON_STOPPED: &str = "celld stopped; the container is still running";

/// How much is read from a supervisor's socket at a time.
const READ_CHUNK: usize = 16 * 1024;

pub async fn attach(
    State(engine): State<Arc<Engine>>,
    State(shutdown): State<CancellationToken>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let lookup = Arc::clone(&engine);
    let exec_id = id.clone();
    let source = tokio::task::spawn_blocking(move || lookup.output_source(&exec_id))
        .await
        .map_err(|e| ApiError::internal(format!("attach failed: {e}")))??;
    let log = match source {
        OutputSource::Live(socket) => match UnixStream::connect(&socket).await {
            Ok(stream) => {
                let recorded = exit_recorded(engine, id);
                return Ok(framed(Body::from_stream(live_frames(stream, shutdown, recorded))));
            }
            // The supervisor finished between the check and the connect.
            Err(_) => socket.with_file_name("output.log"),
        },
        OutputSource::Log(log) => log,
    };
    let data = complete_log(&log, &shutdown).await;
    if ends_with_exit(&data) {
        exit_recorded(engine, id)().await;
    }
    Ok(framed(Body::from(data)))
}

/// Waits (a few seconds at most) until the engine has recorded the exit of
/// exec `id`: the exit frame is held back until then, so a client that
/// returns on it finds the container stopped and torn down.
fn exit_recorded(
    engine: Arc<Engine>,
    id: String,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync + Clone {
    move || {
        let engine = Arc::clone(&engine);
        let id = id.clone();
        Box::pin(async move {
            let waited =
                tokio::task::spawn_blocking(move || engine.wait_exit_recorded(&id, Duration::from_secs(5)))
                    .await;
            if !matches!(waited, Ok(Ok(true))) {
                tracing::warn!("an exit was not recorded in time: {waited:?}");
            }
        })
    }
}

fn framed(body: Body) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/vnd.cell.frames")],
        body,
    )
        .into_response()
}

fn error_frame(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame::HEADER_LEN + message.len());
    frame::encode(FrameKind::Error, message.as_bytes(), &mut out);
    out
}

/// The frames a supervisor's attach socket sends, each chunk made of whole
/// frames, until the supervisor closes the socket (after the exit frame) or
/// `shutdown` fires (then one [`DAEMON_STOPPED`] error frame ends it).
fn live_frames<W, F>(
    socket: UnixStream,
    shutdown: CancellationToken,
    exit_recorded: W,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send
where
    W: Fn() -> F + Send + Sync + Clone + 'static,
    F: std::future::Future<Output = ()> + Send,
{
    // The state is `None` once the last chunk has been given.
    futures_util::stream::unfold(Some((socket, Vec::new())), move |state| {
        let shutdown = shutdown.clone();
        let exit_recorded = exit_recorded.clone();
        async move {
            let (mut socket, mut pending) = state?;
            loop {
                let whole = whole_frames_len(&pending);
                if whole > 0 {
                    let rest = pending.split_off(whole);
                    if ends_with_exit(&pending) {
                        tokio::select! {
                            () = shutdown.cancelled() => {}
                            () = exit_recorded() => {}
                        }
                    }
                    return Some((Ok(pending), Some((socket, rest))));
                }
                pending.reserve(READ_CHUNK);
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return Some((Ok(error_frame(DAEMON_STOPPED)), None)),
                    read = socket.read_buf(&mut pending) => match read {
                        // The supervisor closes after the exit frame, so
                        // nothing should be left; if something is, pass it
                        // on and let the client call the stream truncated.
                        Ok(0) => return (!pending.is_empty()).then_some((Ok(pending), None)),
                        Ok(_) => {}
                        Err(e) => {
                            let message = format!("the output stream of the process broke: {e}");
                            return Some((Ok(error_frame(&message)), None));
                        }
                    },
                }
            }
        }
    })
}

/// The length of the longest prefix of `data` made of whole frames.
fn whole_frames_len(data: &[u8]) -> usize {
    let mut at = 0;
    while let Some(header) = data.get(at..at + frame::HEADER_LEN) {
        let payload_len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let end = at + frame::HEADER_LEN + payload_len;
        if end > data.len() {
            break;
        }
        at = end;
    }
    at
}

/// The log of a finished exec. The supervisor appends the exit frame just
/// after it closes its socket, so wait briefly for it; if it never comes
/// (the supervisor was killed), end the stream with an error frame. A
/// daemon that stops meanwhile does not wait.
async fn complete_log(path: &std::path::Path, shutdown: &CancellationToken) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        // The supervisor has ended, so the files no longer rotate.
        let mut data = Vec::new();
        for file in cell_engine::logs::retained_log_files(path) {
            data.extend(tokio::fs::read(&file).await.unwrap_or_default());
        }
        if ends_with_exit(&data) {
            return data;
        }
        if Instant::now() >= deadline {
            data.extend(error_frame("the process's supervisor ended without an exit code"));
            return data;
        }
        tokio::select! {
            () = shutdown.cancelled() => {
                data.truncate(whole_frames_len(&data));
                data.extend(error_frame(DAEMON_STOPPED));
                return data;
            }
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

fn ends_with_exit(mut data: &[u8]) -> bool {
    let mut last = None;
    while let Ok(Some((kind, _))) = frame::read_frame(&mut data) {
        last = Some(kind);
    }
    data.is_empty() && last == Some(FrameKind::Exit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;

    fn frames(list: &[(FrameKind, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (kind, payload) in list {
            frame::encode(*kind, payload, &mut out);
        }
        out
    }

    fn decode(mut data: &[u8]) -> Vec<(FrameKind, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(f) = frame::read_frame(&mut data).expect("whole frames") {
            out.push(f);
        }
        out
    }

    #[test]
    fn whole_frames_len_stops_before_a_cut_frame() {
        let two = frames(&[(FrameKind::Stdout, b"hello"), (FrameKind::Stderr, b"")]);
        assert_eq!(whole_frames_len(&two), two.len());
        assert_eq!(whole_frames_len(&[]), 0);
        for cut in 1..frame::HEADER_LEN + 5 {
            assert_eq!(whole_frames_len(&two[..cut]), 0, "cut at {cut}");
        }
        let mut three = two.clone();
        three.extend(frame::exit_frame(0));
        assert_eq!(whole_frames_len(&three[..three.len() - 1]), two.len());
    }

    #[tokio::test]
    async fn a_live_stream_ends_with_one_error_frame_at_a_frame_boundary_on_shutdown() {
        let (mut supervisor, daemon_end) = UnixStream::pair().unwrap();
        let shutdown = CancellationToken::new();
        let mut stream = Box::pin(live_frames(daemon_end, shutdown.clone(), || async {}));

        let first = frames(&[(FrameKind::Stdout, b"one\n")]);
        let second = frames(&[(FrameKind::Stdout, b"two\n")]);
        supervisor.write_all(&first).await.unwrap();
        // Half of the second frame: it must not be forwarded.
        supervisor.write_all(&second[..6]).await.unwrap();
        let chunk = stream.next().await.unwrap().unwrap();
        assert_eq!(chunk, first);

        shutdown.cancel();
        let last = stream.next().await.unwrap().unwrap();
        assert_eq!(
            decode(&last),
            vec![(FrameKind::Error, DAEMON_STOPPED.as_bytes().to_vec())]
        );
        assert!(
            stream.next().await.is_none(),
            "the stream goes on after the error frame"
        );
    }

    #[tokio::test]
    async fn a_live_stream_passes_everything_through_until_the_supervisor_closes() {
        let (mut supervisor, daemon_end) = UnixStream::pair().unwrap();
        let shutdown = CancellationToken::new();
        let stream = live_frames(daemon_end, shutdown.clone(), || async {});

        let all = frames(&[
            (FrameKind::Stdout, b"out"),
            (FrameKind::Stderr, b"err"),
            (FrameKind::Exit, &7i32.to_be_bytes()),
        ]);
        // Byte by byte, so frames arrive cut at every possible place.
        for byte in &all {
            supervisor.write_all(std::slice::from_ref(byte)).await.unwrap();
        }
        drop(supervisor);
        let chunks: Vec<Vec<u8>> = stream.map(|c| c.unwrap()).collect().await;
        assert!(
            chunks.iter().all(|c| whole_frames_len(c) == c.len()),
            "{chunks:?}"
        );
        assert_eq!(chunks.concat(), all);
        // Not cancelled: the positive control for the shutdown test above.
        assert!(!shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn a_log_still_waiting_for_its_exit_frame_ends_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("output.log");
        let mut data = frames(&[(FrameKind::Stdout, b"partial")]);
        data.extend_from_slice(&[1, 0, 0]);
        std::fs::write(&log, &data).unwrap();
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let started = Instant::now();
        let body = complete_log(&log, &shutdown).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "waited for the exit frame"
        );
        assert_eq!(
            decode(&body),
            vec![
                (FrameKind::Stdout, b"partial".to_vec()),
                (FrameKind::Error, DAEMON_STOPPED.as_bytes().to_vec()),
            ]
        );
    }
}
