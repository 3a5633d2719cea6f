//! cell-api: the HTTP API that `celld` serves on its unix socket.
//!
//! [`router`] maps each route to one engine use case; handlers hold no
//! business rules. Engine calls are blocking, so they run on the blocking
//! pool, where they also finish if the client hangs up half-way (a dropped
//! request never leaves a half-done setup). Errors become
//! `{"message": "..."}` with a status chosen in one place ([`error`]). The
//! OpenAPI document is served at `GET /openapi.json`.

mod attach;
mod error;
mod handlers;

pub use error::ApiError;

use axum::Router;
use axum::routing::{get, post};
use cell_engine::Engine;
use std::sync::Arc;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The API's routes over an engine.
pub fn router(engine: Arc<Engine>) -> Router {
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
        .route("/networks/{reference}", get(inspect_network))
        .fallback(|| async { ApiError::not_found_route() })
        .with_state(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_parses_and_lists_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for path in [
            "/images",
            "/images/{reference}",
            "/containers",
            "/containers/{reference}",
            "/containers/{reference}/start",
            "/containers/{reference}/stop",
            "/containers/{reference}/restart",
            "/containers/{reference}/exec",
            "/execs/{id}",
            "/execs/{id}/attach",
            "/networks/{reference}",
        ] {
            assert!(paths.contains_key(path), "{path} missing from openapi.json");
        }
    }
}
