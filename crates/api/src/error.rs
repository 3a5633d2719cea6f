//! How failures reach the client: a status and `{"message": "..."}`.
//!
//! Every error answer has this shape, whatever produced it: the engine
//! ([`From<EngineError>`](ApiError#impl-From<EngineError>-for-ApiError)), a
//! handler's own checks, or axum itself (a body over the limit, a wrong
//! method, a query or path it cannot parse), which [`json_error_bodies`]
//! rewrites. The message is always one line: control characters in it are
//! escaped, so a value holding a newline cannot split it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cell_core::error::one_line;
use cell_core::{CoreError, ErrorKind};
use cell_engine::EngineError;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// The status for each kind of failure; the one place this is decided.
    fn status_of(kind: ErrorKind) -> StatusCode {
        match kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A request for a route that does not exist.
    pub fn not_found_route() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: "no such endpoint".into(),
        }
    }

    /// A failure of the daemon itself.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// A malformed request body or query.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = Self::status_of(e.kind());
        if status.is_server_error() {
            tracing::error!("{e}");
        }
        Self {
            status,
            message: e.to_string(),
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        Self::new(Self::status_of(e.kind), e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = one_line(&self.message);
        (self.status, Json(serde_json::json!({ "message": message }))).into_response()
    }
}

/// The largest error body of axum's own that [`json_error_bodies`] reads to
/// turn into a message; its rejections are one short sentence.
const PLAIN_ERROR_MAX: usize = 4096;

/// Rewrites an error answer that is not JSON (axum's rejections are plain
/// text, its 405 and 413 have no body at all) into `{"message": ...}`,
/// keeping the status and the `Allow` header. Success answers and JSON
/// errors pass unchanged, so the attach stream is never touched.
pub async fn json_error_bodies(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let allow: Option<HeaderValue> = response.headers().get(header::ALLOW).cloned();
    let body = axum::body::to_bytes(response.into_body(), PLAIN_ERROR_MAX)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase()
    } else {
        text
    };
    let mut rewritten = ApiError::new(status, message).into_response();
    if let Some(allow) = allow {
        rewritten.headers_mut().insert(header::ALLOW, allow);
    }
    rewritten
}
