//! `GET /execs/{id}/attach`: the framed output of an exec, streamed.
//!
//! Frames pass through unchanged (see `cell_core::frame`). While the
//! supervisor runs, its attach socket gives the history and then live
//! output; once it has gone, its log holds everything, ending with the exit
//! frame.

use crate::ApiError;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use cell_core::frame::{self, FrameKind};
use cell_engine::Engine;
use cell_engine::execs::OutputSource;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::io::ReaderStream;

pub async fn attach(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let lookup = Arc::clone(&engine);
    let source = tokio::task::spawn_blocking(move || lookup.output_source(&id))
        .await
        .map_err(|e| ApiError::internal(format!("attach failed: {e}")))??;
    let log = match source {
        OutputSource::Live(socket) => match tokio::net::UnixStream::connect(&socket).await {
            Ok(stream) => return Ok(framed(Body::from_stream(ReaderStream::new(stream)))),
            // The supervisor finished between the check and the connect.
            Err(_) => socket.with_file_name("output.log"),
        },
        OutputSource::Log(log) => log,
    };
    Ok(framed(Body::from(complete_log(&log).await)))
}

fn framed(body: Body) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/vnd.cell.frames")],
        body,
    )
        .into_response()
}

/// The log of a finished exec. The supervisor appends the exit frame just
/// after it closes its socket, so wait briefly for it; if it never comes
/// (the supervisor was killed), end the stream with an error frame.
async fn complete_log(path: &std::path::Path) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let data = tokio::fs::read(path).await.unwrap_or_default();
        if ends_with_exit(&data) {
            return data;
        }
        if Instant::now() >= deadline {
            let mut data = data;
            frame::encode(
                FrameKind::Error,
                b"the process's supervisor ended without an exit code",
                &mut data,
            );
            return data;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ends_with_exit(mut data: &[u8]) -> bool {
    let mut last = None;
    while let Ok(Some((kind, _))) = frame::read_frame(&mut data) {
        last = Some(kind);
    }
    data.is_empty() && last == Some(FrameKind::Exit)
}
