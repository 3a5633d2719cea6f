//! `GET /containers/{reference}/logs?follow=&tail=&timestamps=`: a
//! container's output, as frames (see `cell_core::frame`).
//!
//! The engine reads the logs from disk ([`cell_engine::logs`]); this module
//! streams them. The stream is all stdout and stderr frames, then one exit
//! frame with code 0 that marks the end of the logs (the container's own
//! exit code is in `inspect`), or an error frame if reading failed or the
//! daemon is stopping. With `follow`, a thread of its own polls the log
//! files every [`FOLLOW_POLL`] until the container's current run exits, the
//! client goes away, or the shutdown token fires (then the stream ends with
//! the error frame [`DAEMON_STOPPED`], as attach streams do).

use crate::ApiError;
use crate::attach::DAEMON_STOPPED;
use crate::handlers::Params;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use cell_core::frame::{self, FrameKind};
use cell_engine::Engine;
use cell_engine::logs::{ContainerLogs, LogChunk, LogOptions, parse_tail};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often a followed log is read for new output. Polling, not inotify:
/// the files rotate under the reader, and a fifth of a second is as soon
/// as a person reading `cell logs -f` needs.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

pub async fn logs(
    State(engine): State<Arc<Engine>>,
    State(shutdown): State<CancellationToken>,
    Path(reference): Path<String>,
    mut params: Params,
) -> Result<Response, ApiError> {
    let follow = params.take_bool("follow")?;
    let timestamps = params.take_bool("timestamps")?;
    let tail = match params.take("tail") {
        Some(text) => parse_tail(&text)?,
        None => None,
    };
    params.finish()?;
    let options = LogOptions {
        follow,
        tail,
        timestamps,
    };
    let logs = tokio::task::spawn_blocking(move || engine.logs(&reference, options))
        .await
        .map_err(|e| ApiError::internal(format!("logs failed: {e}")))??;

    // A followed log may last as long as the container: a thread, not the
    // blocking pool, which the runtime would wait for when celld stops.
    let (sender, receiver) = mpsc::channel::<Vec<u8>>(4);
    std::thread::Builder::new()
        .name("logs".into())
        .stack_size(256 * 1024)
        .spawn(move || pump(logs, &sender, &shutdown))
        .map_err(|e| ApiError::internal(format!("failed to start a logs reader: {e}")))?;
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok::<_, std::io::Error>(chunk), receiver))
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/vnd.cell.frames")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Moves the logs into `sender` until they end, the receiver is dropped
/// (the client went away), or `shutdown` fires.
fn pump(mut logs: ContainerLogs, sender: &mpsc::Sender<Vec<u8>>, shutdown: &CancellationToken) {
    loop {
        if shutdown.is_cancelled() {
            let _ = sender.blocking_send(error_frame(DAEMON_STOPPED));
            return;
        }
        let chunk = match logs.next_chunk() {
            Ok(LogChunk::Frames(frames)) => frames,
            Ok(LogChunk::Idle) => {
                if sender.is_closed() {
                    return;
                }
                std::thread::sleep(FOLLOW_POLL);
                continue;
            }
            Ok(LogChunk::End) => {
                let _ = sender.blocking_send(frame::exit_frame(0));
                return;
            }
            Err(e) => {
                let _ = sender.blocking_send(error_frame(&format!("{e}")));
                return;
            }
        };
        if sender.blocking_send(chunk).is_err() {
            return;
        }
    }
}

fn error_frame(message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(FrameKind::Error, message.as_bytes(), &mut out);
    out
}
