//! `GET /execs/{id}/attach`: the framed output of an exec, streamed, and
//! with an HTTP upgrade, its input too.
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
//!
//! # Interactive attach: the `cell-attach` upgrade
//!
//! A client that sends input (`cell run -i`, `cell exec -it`) asks for the
//! same route with `Connection: Upgrade` and `Upgrade: cell-attach` (as
//! Docker's attach hijacks its connection). celld answers
//! `101 Switching Protocols` with the same two headers; from then on the
//! connection carries frames both ways, in the format of
//! `cell_core::frame`:
//!
//! - daemon → client: exactly the output stream above (stdout, stderr,
//!   then one exit or error frame), after which celld closes;
//! - client → daemon: `5` stdin bytes, `6` end of input (empty; closes the
//!   process's stdin pipe, ignored for a terminal, where Ctrl-D is a byte),
//!   `7` resize (rows and columns, two big-endian `u16`).
//!
//! celld copies the client's bytes to the supervisor's attach socket as
//! they come; the supervisor parses them and drops a client that sends an
//! unknown kind. When the client goes away, the process keeps running and
//! its stdin stays open for the next client. An upgrade on a finished exec
//! gets its complete log and ignores input.

use crate::ApiError;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cell_core::frame::{self, FrameKind, whole_frames_len};
use cell_engine::Engine;
use cell_engine::execs::OutputSource;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

/// The message of the error frame that ends every open attach stream when
/// celld stops. The process goes on under its supervisor.
pub const DAEMON_STOPPED: &str = "celld stopped; the container is still running";

/// The protocol named in the `Upgrade` header of an interactive attach.
pub const UPGRADE_PROTOCOL: &str = "cell-attach";

/// How much is read from a supervisor's socket at a time.
const READ_CHUNK: usize = 16 * 1024;

pub async fn attach(
    State(engine): State<Arc<Engine>>,
    State(shutdown): State<CancellationToken>,
    State(sessions): State<tokio_util::task::TaskTracker>,
    Path(id): Path<String>,
    mut request: Request,
) -> Result<Response, ApiError> {
    let is_upgrade = wants_upgrade(request.headers())?;
    let lookup = Arc::clone(&engine);
    let exec_id = id.clone();
    let source = tokio::task::spawn_blocking(move || lookup.output_source(&exec_id))
        .await
        .map_err(|e| ApiError::internal(format!("attach failed: {e}")))??;
    if is_upgrade {
        let on_upgrade = hyper::upgrade::on(&mut request);
        let supervisor = match &source {
            OutputSource::Live(socket) => UnixStream::connect(socket).await.ok(),
            OutputSource::Log(_) => None,
        };
        let log = match source {
            OutputSource::Live(socket) => socket.with_file_name("output.log"),
            OutputSource::Log(log) => log,
        };
        let recorded = exit_recorded(engine, id);
        sessions.spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let client = hyper_util::rt::TokioIo::new(upgraded);
                    serve_upgraded(client, supervisor, &log, shutdown, recorded).await;
                }
                Err(e) => tracing::warn!("an attach upgrade failed: {e}"),
            }
        });
        return Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, UPGRADE_PROTOCOL)
            .body(Body::empty())
            .expect("a static response is valid"));
    }
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

/// Whether the request asks for the `cell-attach` upgrade; another
/// protocol is refused rather than answered with a plain stream the client
/// would not expect.
fn wants_upgrade(headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(protocol) = headers.get(header::UPGRADE) else {
        return Ok(false);
    };
    let is_connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if !protocol
        .as_bytes()
        .eq_ignore_ascii_case(UPGRADE_PROTOCOL.as_bytes())
        || !is_connection_upgrade
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "unsupported upgrade {}: expected 'Connection: Upgrade' and 'Upgrade: {UPGRADE_PROTOCOL}'",
                cell_core::error::quoted(&String::from_utf8_lossy(protocol.as_bytes()))
            ),
        ));
    }
    Ok(true)
}

/// Serves an upgraded connection: the output stream to the client, the
/// client's bytes to the supervisor, until the output ends. Without a
/// supervisor (the exec finished) the client gets the complete log.
async fn serve_upgraded<C, W, F>(
    client: C,
    supervisor: Option<UnixStream>,
    log: &std::path::Path,
    shutdown: CancellationToken,
    exit_recorded: W,
) where
    C: AsyncRead + AsyncWrite + Send + Unpin,
    W: Fn() -> F + Send + Sync + Clone + 'static,
    F: std::future::Future<Output = ()> + Send,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let Some(supervisor) = supervisor else {
        let data = complete_log(log, &shutdown).await;
        if ends_with_exit(&data) {
            exit_recorded().await;
        }
        let _ = client_write.write_all(&data).await;
        let _ = client_write.shutdown().await;
        return;
    };
    let (supervisor_read, mut supervisor_write) = supervisor.into_split();
    let output = async {
        let frames = live_frames(supervisor_read, shutdown, exit_recorded);
        futures_util::pin_mut!(frames);
        while let Some(Ok(chunk)) = futures_util::StreamExt::next(&mut frames).await {
            if client_write.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = client_write.shutdown().await;
    };
    let input = async {
        // The client's end of input is said with a frame; a client that
        // closes its side just stops sending, and the output goes on.
        let _ = tokio::io::copy(&mut client_read, &mut supervisor_write).await;
        std::future::pending::<()>().await
    };
    tokio::select! {
        () = output => {}
        () = input => {}
    }
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
fn live_frames<R, W, F>(
    socket: R,
    shutdown: CancellationToken,
    exit_recorded: W,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send
where
    R: AsyncRead + Send + Unpin,
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

    #[test]
    fn only_the_cell_attach_upgrade_is_taken() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, value.parse().unwrap());
            }
            map
        };
        assert!(!wants_upgrade(&headers(&[])).unwrap());
        assert!(
            wants_upgrade(&headers(&[
                ("connection", "keep-alive, Upgrade"),
                ("upgrade", "Cell-Attach")
            ]))
            .unwrap()
        );
        let err =
            wants_upgrade(&headers(&[("connection", "upgrade"), ("upgrade", "websocket")])).unwrap_err();
        let described = format!("{err:?}");
        assert!(described.contains("'websocket'"), "{described}");
        assert_eq!(err.into_response().status(), StatusCode::BAD_REQUEST);
        assert!(wants_upgrade(&headers(&[("upgrade", "cell-attach")])).is_err());
    }

    #[tokio::test]
    async fn an_upgraded_connection_carries_input_to_the_supervisor_and_output_back() {
        let (client, daemon_end) = tokio::io::duplex(4096);
        let (mut supervisor, daemon_to_supervisor) = UnixStream::pair().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("output.log");
        let served = tokio::spawn(async move {
            serve_upgraded(
                daemon_end,
                Some(daemon_to_supervisor),
                &log,
                CancellationToken::new(),
                || async {},
            )
            .await
        });
        let (mut client_read, mut client_write) = tokio::io::split(client);

        let input = {
            let mut out = frames(&[(FrameKind::Stdin, b"echo hi\n")]);
            out.extend(frame::resize_frame(24, 80));
            out
        };
        client_write.write_all(&input).await.unwrap();
        let mut got = vec![0u8; input.len()];
        supervisor.read_exact(&mut got).await.unwrap();
        assert_eq!(got, input);

        // The client closing its side does not end the output.
        client_write.shutdown().await.unwrap();
        let output = frames(&[
            (FrameKind::Stdout, b"hi\r\n"),
            (FrameKind::Exit, &0i32.to_be_bytes()),
        ]);
        supervisor.write_all(&output).await.unwrap();
        drop(supervisor);
        let mut received = Vec::new();
        client_read.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, output);
        served.await.unwrap();
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
