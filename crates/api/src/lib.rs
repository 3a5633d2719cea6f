//! cell-api: the HTTP API that `celld` serves on its unix socket.
//!
//! [`router`] maps each route to one engine use case; handlers hold no
//! business rules. Engine calls are blocking, so they run on the blocking
//! pool, where they also finish if the client hangs up half-way (a dropped
//! request never leaves a half-done setup). Errors become
//! `{"message": "..."}` with a status chosen in one place ([`error`]), axum's
//! own included (413 over the 1 MiB body limit, 405, 404 and rejections of
//! queries and paths): see [`with_json_errors`]. The OpenAPI document is
//! served at `GET /openapi.json`.
//!
//! Attach streams, and logs streams that follow (`GET
//! /containers/{reference}/logs?follow=true`), last as long as the process
//! they follow, so a daemon that
//! waited for them could never stop. [`router_with_shutdown`] takes a
//! cancellation token: once it fires, every attach stream ends with one
//! error frame ([`DAEMON_STOPPED`]) and the server's graceful shutdown no
//! longer waits on them.

mod attach;
mod error;
mod handlers;
mod info;
mod logs;

pub use error::ApiError;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware;
use axum::routing::{get, post};
use cell_core::limits::BODY_MAX;
use cell_engine::Engine;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
pub use tokio_util::task::TaskTracker;

pub use attach::{DAEMON_STOPPED, UPGRADE_PROTOCOL as ATTACH_UPGRADE};

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What the handlers share: the engine, and the token that tells long-lived
/// responses the daemon is stopping.
#[derive(Clone)]
struct ApiState {
    engine: Arc<Engine>,
    shutdown: CancellationToken,
    sessions: TaskTracker,
}

impl FromRef<ApiState> for TaskTracker {
    fn from_ref(state: &ApiState) -> Self {
        state.sessions.clone()
    }
}

// Handlers that only need the engine extract `State<Arc<Engine>>` as before.
impl FromRef<ApiState> for Arc<Engine> {
    fn from_ref(state: &ApiState) -> Self {
        Arc::clone(&state.engine)
    }
}

impl FromRef<ApiState> for CancellationToken {
    fn from_ref(state: &ApiState) -> Self {
        state.shutdown.clone()
    }
}

/// The API's routes over an engine, for a server that never needs to end
/// its attach streams early (tests, tools). `celld` uses
/// [`router_with_shutdown`].
pub fn router(engine: Arc<Engine>) -> Router {
    router_with_shutdown(engine, CancellationToken::new())
}

/// The API's routes over an engine. When `shutdown` is cancelled, open
/// attach streams end at once with an error frame carrying
/// [`DAEMON_STOPPED`]; the processes they follow keep running under their
/// supervisors and can be attached again from the next daemon.
pub fn router_with_shutdown(engine: Arc<Engine>, shutdown: CancellationToken) -> Router {
    router_with_sessions(engine, shutdown, TaskTracker::new())
}

/// [`router_with_shutdown`], with the interactive sessions (upgraded
/// attach connections, which the HTTP server no longer tracks) spawned on
/// `sessions`: a server that waits for them after cancelling `shutdown`
/// lets each send its last frame.
pub fn router_with_sessions(
    engine: Arc<Engine>,
    shutdown: CancellationToken,
    sessions: TaskTracker,
) -> Router {
    use handlers::*;
    let routes = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/version", get(info::version))
        .route("/info", get(info::info))
        .route("/images", get(list_images).post(create_image))
        .route("/images/{reference}", get(inspect_image).delete(remove_image))
        .route(
            "/containers",
            get(list_containers)
                .post(create_container)
                .delete(prune_containers),
        )
        .route(
            "/containers/{reference}",
            get(inspect_container).delete(remove_container),
        )
        .route("/containers/{reference}/start", post(start_container))
        .route("/containers/{reference}/stop", post(stop_container))
        .route("/containers/{reference}/restart", post(restart_container))
        .route("/containers/{reference}/exec", post(exec))
        .route("/containers/{reference}/logs", get(logs::logs))
        .route("/execs/{id}", get(inspect_exec))
        .route("/execs/{id}/attach", get(attach::attach))
        .route(
            "/networks",
            get(list_networks).post(create_network).delete(prune_networks),
        )
        .route(
            "/networks/{reference}",
            get(inspect_network).delete(remove_network),
        )
        .route("/networks/{reference}/connect", post(connect_network))
        .route("/networks/{reference}/disconnect", post(disconnect_network))
        .route(
            "/containers/{reference}/ports",
            get(container_ports).post(publish_ports),
        )
        .route("/containers/{reference}/ports/remove", post(unpublish_ports));
    with_json_errors(routes).with_state(ApiState {
        engine,
        shutdown,
        sessions,
    })
}

/// `routes` with the fallbacks and layers that make every error answer
/// `{"message": ...}`: 404 for an unknown route, 405 naming the method, the
/// body limit of [`BODY_MAX`] (413), and a last layer that rewrites any
/// plain-text or empty error axum still produces.
pub fn with_json_errors<S: Clone + Send + Sync + 'static>(routes: Router<S>) -> Router<S> {
    routes
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(|| async { ApiError::not_found_route() })
        .layer(DefaultBodyLimit::max(BODY_MAX))
        .layer(middleware::map_response(error::json_error_bodies))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_parses_and_lists_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, methods) in [
            ("/images", &["get", "post"][..]),
            ("/images/{reference}", &["get", "delete"]),
            ("/containers", &["get", "post", "delete"]),
            ("/containers/{reference}", &["get", "delete"]),
            ("/containers/{reference}/start", &["post"]),
            ("/containers/{reference}/stop", &["post"]),
            ("/containers/{reference}/restart", &["post"]),
            ("/containers/{reference}/exec", &["post"]),
            ("/containers/{reference}/logs", &["get"]),
            ("/execs/{id}", &["get"]),
            ("/execs/{id}/attach", &["get"]),
            ("/networks", &["get", "post", "delete"]),
            ("/networks/{reference}", &["get", "delete"]),
            ("/networks/{reference}/connect", &["post"]),
            ("/networks/{reference}/disconnect", &["post"]),
            ("/version", &["get"]),
            ("/info", &["get"]),
            ("/containers/{reference}/ports", &["get", "post"]),
            ("/containers/{reference}/ports/remove", &["post"]),
        ] {
            assert!(paths.contains_key(path), "{path} missing from openapi.json");
            for method in methods {
                assert!(
                    paths[path].get(method).is_some(),
                    "{method} {path} missing from openapi.json"
                );
            }
        }
        for schema in [
            "CreateNetwork",
            "ConnectRequest",
            "DisconnectRequest",
            "Version",
            "Info",
            "Stdio",
            "WindowSize",
            "PortsRequest",
            "PortLine",
        ] {
            assert!(
                doc["components"]["schemas"].get(schema).is_some(),
                "schema {schema} missing from openapi.json"
            );
        }
    }

    /// The request schemas name exactly the fields the engine reads.
    #[test]
    fn openapi_request_schemas_match_the_engine_types() {
        use cell_engine::containers::CreateContainer;
        use cell_engine::networks::{ConnectRequest, CreateNetwork, DisconnectRequest};
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let fields = |v: serde_json::Value| {
            let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        for (schema, value) in [
            (
                "CreateContainer",
                serde_json::to_value(CreateContainer::default()),
            ),
            ("CreateNetwork", serde_json::to_value(CreateNetwork::default())),
            ("ConnectRequest", serde_json::to_value(ConnectRequest::default())),
            (
                "DisconnectRequest",
                serde_json::to_value(DisconnectRequest::default()),
            ),
            (
                "Stdio",
                serde_json::to_value(cell_engine::execs::Stdio::default()),
            ),
            (
                "PortsRequest",
                serde_json::to_value(cell_engine::ports::PortsRequest::default()),
            ),
        ] {
            assert_eq!(
                fields(doc["components"]["schemas"][schema]["properties"].clone()),
                fields(value.unwrap()),
                "schema {schema}"
            );
        }
    }

    /// A router with the real layers and extractors over handlers that
    /// need no engine.
    fn layered() -> Router {
        use axum::Json;
        use axum::extract::Path;
        use cell_engine::containers::CreateContainer;
        use handlers::{JsonBody, NoQuery, Params};
        let routes = Router::new()
            .route(
                "/things",
                post(|JsonBody(req): JsonBody<CreateContainer>| async move {
                    Json(serde_json::json!({ "image": req.image }))
                }),
            )
            .route(
                "/things/{id}",
                get(|Path(id): Path<String>, mut params: Params| async move {
                    let timeout = params.take_stop_timeout()?;
                    params.finish()?;
                    Ok::<_, ApiError>(Json(
                        serde_json::json!({ "id": id, "timeout": timeout.as_secs() }),
                    ))
                }),
            )
            .route(
                "/plain",
                get(|| async { (StatusCode::BAD_REQUEST, "plain words\nand more") }),
            )
            .route("/bare", get(|_: NoQuery| async { Json(serde_json::json!({})) }));
        with_json_errors(routes)
    }

    /// Sends one request; returns the status and the JSON body, which every
    /// answer must have.
    async fn send(method: &str, uri: &str, body: Vec<u8>) -> (StatusCode, serde_json::Value) {
        use tower::ServiceExt;
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(axum::body::Body::from(body))
            .unwrap();
        let response = layered().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response.headers().get("content-type").cloned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{method} {uri}: {status} not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(content_type.unwrap(), "application/json", "{method} {uri}");
        (status, value)
    }

    fn message(value: &serde_json::Value) -> &str {
        let message = value["message"].as_str().expect("a message");
        assert!(!message.contains('\n'), "two lines: {message:?}");
        message
    }

    #[tokio::test]
    async fn every_error_is_json_on_one_line() {
        // The positive controls: the same routes answer when the input is good.
        let (status, ok) = send("POST", "/things", br#"{"image":"busybox"}"#.to_vec()).await;
        assert_eq!((status, ok["image"].as_str()), (StatusCode::OK, Some("busybox")));
        let (status, ok) = send("GET", "/things/x?timeout=86400", vec![]).await;
        assert_eq!((status, ok["timeout"].as_u64()), (StatusCode::OK, Some(86_400)));
        assert_eq!(send("GET", "/bare", vec![]).await.0, StatusCode::OK);

        let mut big = br#"{"image":""#.to_vec();
        big.resize(BODY_MAX + 1, b'a');
        let (status, err) = send("POST", "/things", big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            message(&err),
            "request body is larger than the limit of 1048576 bytes"
        );

        for (method, uri, body, want, needle) in [
            (
                "POST",
                "/things",
                b"{".to_vec(),
                StatusCode::BAD_REQUEST,
                "invalid request body",
            ),
            (
                "POST",
                "/things",
                b"{\"image\":\"\xff\"}".to_vec(),
                StatusCode::BAD_REQUEST,
                "invalid request body",
            ),
            (
                "POST",
                "/things",
                br#"{"image":"b","bogus":1}"#.to_vec(),
                StatusCode::BAD_REQUEST,
                "unknown field `bogus`",
            ),
            (
                "DELETE",
                "/things",
                vec![],
                StatusCode::METHOD_NOT_ALLOWED,
                "method DELETE is not allowed on /things",
            ),
            (
                "PUT",
                "/things/x",
                vec![],
                StatusCode::METHOD_NOT_ALLOWED,
                "method PUT is not allowed on /things/x",
            ),
            (
                "GET",
                "/nowhere",
                vec![],
                StatusCode::NOT_FOUND,
                "no such endpoint",
            ),
            (
                "GET",
                "/things/x?timeout=18446744073709551615",
                vec![],
                StatusCode::BAD_REQUEST,
                "invalid timeout '18446744073709551615': at most 86400 seconds",
            ),
            (
                "GET",
                "/things/x?timeout=-1",
                vec![],
                StatusCode::BAD_REQUEST,
                "invalid timeout '-1'",
            ),
            (
                "GET",
                "/things/x?timeout=%0A",
                vec![],
                StatusCode::BAD_REQUEST,
                r#"invalid timeout "\n""#,
            ),
            (
                "GET",
                "/things/x?timeout=1&bogus=2",
                vec![],
                StatusCode::BAD_REQUEST,
                "unknown query parameter 'bogus'",
            ),
            (
                "GET",
                "/things/x?timeout=%FF",
                vec![],
                StatusCode::BAD_REQUEST,
                "invalid timeout '\u{fffd}'",
            ),
            ("GET", "/things/%FF", vec![], StatusCode::BAD_REQUEST, ""),
            (
                "GET",
                "/plain",
                vec![],
                StatusCode::BAD_REQUEST,
                r"plain words\nand more",
            ),
        ] {
            let (status, err) = send(method, uri, body).await;
            assert_eq!(status, want, "{method} {uri}: {err}");
            assert!(message(&err).contains(needle), "{method} {uri}: {err}");
        }
    }
}
