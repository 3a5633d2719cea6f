//! cell-api: the HTTP API that `celld` serves on its unix socket.
//!
//! [`router`] maps each route to one engine use case; handlers hold no
//! business rules. Engine calls are blocking, so they run on the blocking
//! pool, where they also finish if the client hangs up half-way (a dropped
//! request never leaves a half-done setup). Errors become
//! `{"message": "..."}` with a status chosen in one place ([`error`]). The
//! OpenAPI document is served at `GET /openapi.json`.
//!
//! Attach streams last as long as the process they follow, so a daemon that
//! waited for them could never stop. [`router_with_shutdown`] takes a
//! cancellation token: once it fires, every attach stream ends with one
//! error frame ([`DAEMON_STOPPED`]) and the server's graceful shutdown no
//! longer waits on them.

mod attach;
mod error;
mod handlers;

pub use error::ApiError;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use cell_engine::Engine;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use attach::DAEMON_STOPPED;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What the handlers share: the engine, and the token that tells long-lived
/// responses the daemon is stopping.
#[derive(Clone)]
struct ApiState {
    engine: Arc<Engine>,
    shutdown: CancellationToken,
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
    use handlers::*;
    Router::new()
        .route("/openapi.json", get(openapi))
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
        .fallback(|| async { ApiError::not_found_route() })
        .with_state(ApiState { engine, shutdown })
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
            ("/execs/{id}", &["get"]),
            ("/execs/{id}/attach", &["get"]),
            ("/networks", &["get", "post", "delete"]),
            ("/networks/{reference}", &["get", "delete"]),
            ("/networks/{reference}/connect", &["post"]),
            ("/networks/{reference}/disconnect", &["post"]),
        ] {
            assert!(paths.contains_key(path), "{path} missing from openapi.json");
            for method in methods {
                assert!(
                    paths[path].get(method).is_some(),
                    "{method} {path} missing from openapi.json"
                );
            }
        }
        for schema in ["CreateNetwork", "ConnectRequest", "DisconnectRequest"] {
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
        ] {
            assert_eq!(
                fields(doc["components"]["schemas"][schema]["properties"].clone()),
                fields(value.unwrap()),
                "schema {schema}"
            );
        }
    }
}
