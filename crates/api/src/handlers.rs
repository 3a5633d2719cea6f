//! One handler per route: parse, call the engine off the executor, answer.

use crate::ApiError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use cell_engine::containers::{CreateContainer, DEFAULT_STOP_TIMEOUT};
use cell_engine::networks::{ConnectRequest, CreateNetwork, DisconnectRequest};
use cell_engine::{Engine, EngineError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

type Shared = State<Arc<Engine>>;
type ApiResult = Result<Json<Value>, ApiError>;

/// Runs a blocking engine call on the blocking pool. The task runs to its
/// end even if the client goes away, so kernel work is never cut off.
async fn blocking<T: serde::Serialize + Send + 'static>(
    engine: Arc<Engine>,
    f: impl FnOnce(&Arc<Engine>) -> Result<T, EngineError> + Send + 'static,
) -> ApiResult {
    let value = tokio::task::spawn_blocking(move || f(&engine))
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))??;
    Ok(Json(serde_json::to_value(value).expect("API types serialize")))
}

/// Parses a JSON body; a malformed one is the client's error, said in the
/// API's error shape rather than axum's plain text.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::OPENAPI,
    )
}

pub async fn list_images(State(engine): Shared) -> ApiResult {
    blocking(engine, |e| e.images()).await
}

/// `POST /images`: import the rootfs at `path`, or build from busybox
/// when no path is given.
#[derive(Deserialize)]
pub struct ImageRequest {
    name: Option<String>,
    path: Option<std::path::PathBuf>,
}

pub async fn create_image(State(engine): Shared, body: Bytes) -> ApiResult {
    let req: ImageRequest = parse(&body)?;
    match (req.name, req.path) {
        (Some(name), Some(path)) => blocking(engine, move |e| e.import_image(&name, &path)).await,
        (None, Some(_)) => Err(ApiError::bad_request("an imported image needs a name")),
        (name, None) => {
            let name = name.unwrap_or_else(|| cell_engine::images::BUSYBOX.into());
            blocking(engine, move |e| e.create_busybox_image(&name)).await
        }
    }
}

pub async fn inspect_image(State(engine): Shared, Path(reference): Path<String>) -> ApiResult {
    blocking(engine, move |e| e.find_image(&reference)).await
}

pub async fn remove_image(State(engine): Shared, Path(reference): Path<String>) -> ApiResult {
    blocking(engine, move |e| e.remove_image(&reference)).await
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
}

pub async fn list_containers(State(engine): Shared, Query(q): Query<ListQuery>) -> ApiResult {
    blocking(engine, move |e| e.containers(q.all)).await
}

pub async fn create_container(State(engine): Shared, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let req: CreateContainer = parse(&body)?;
    let created = blocking(engine, move |e| e.create_container(&req)).await?;
    Ok((StatusCode::CREATED, created))
}

pub async fn inspect_container(State(engine): Shared, Path(reference): Path<String>) -> ApiResult {
    blocking(engine, move |e| e.inspect_container(&reference)).await
}

#[derive(Deserialize)]
pub struct RemoveQuery {
    #[serde(default)]
    force: bool,
}

pub async fn remove_container(
    State(engine): Shared,
    Path(reference): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult {
    blocking(engine, move |e| e.remove_container(&reference, q.force)).await
}

pub async fn prune_containers(State(engine): Shared) -> ApiResult {
    blocking(engine, |e| {
        e.prune_containers().map(|removed| json!({ "removed": removed }))
    })
    .await
}

pub async fn start_container(State(engine): Shared, Path(reference): Path<String>) -> ApiResult {
    blocking(engine, move |e| e.start_container(&reference)).await
}

#[derive(Deserialize)]
pub struct StopQuery {
    /// Seconds between SIGTERM and SIGKILL.
    timeout: Option<u64>,
}

impl StopQuery {
    fn timeout(&self) -> Duration {
        self.timeout
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_STOP_TIMEOUT)
    }
}

pub async fn stop_container(
    State(engine): Shared,
    Path(reference): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult {
    blocking(engine, move |e| e.stop_container(&reference, q.timeout())).await
}

pub async fn restart_container(
    State(engine): Shared,
    Path(reference): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult {
    blocking(engine, move |e| e.restart_container(&reference, q.timeout())).await
}

#[derive(Deserialize)]
pub struct ExecRequest {
    cmd: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
}

pub async fn exec(State(engine): Shared, Path(reference): Path<String>, body: Bytes) -> ApiResult {
    let req: ExecRequest = parse(&body)?;
    blocking(engine, move |e| e.exec(&reference, &req.cmd, &req.env)).await
}

pub async fn inspect_exec(State(engine): Shared, Path(id): Path<String>) -> ApiResult {
    blocking(engine, move |e| e.find_exec(&id)).await
}

pub async fn list_networks(State(engine): Shared) -> ApiResult {
    blocking(engine, |e| e.networks()).await
}

pub async fn create_network(State(engine): Shared, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let req: CreateNetwork = parse(&body)?;
    let created = blocking(engine, move |e| e.create_network(&req)).await?;
    Ok((StatusCode::CREATED, created))
}

pub async fn prune_networks(State(engine): Shared) -> ApiResult {
    blocking(engine, |e| {
        e.prune_networks().map(|removed| json!({ "removed": removed }))
    })
    .await
}

/// `GET /networks/{reference}`; the engine answers `host` itself.
pub async fn inspect_network(State(engine): Shared, Path(reference): Path<String>) -> ApiResult {
    blocking(engine, move |e| e.inspect_network(&reference)).await
}

pub async fn remove_network(State(engine): Shared, Path(reference): Path<String>) -> ApiResult {
    blocking(engine, move |e| e.remove_network(&reference)).await
}

pub async fn connect_network(State(engine): Shared, Path(reference): Path<String>, body: Bytes) -> ApiResult {
    let req: ConnectRequest = parse(&body)?;
    blocking(engine, move |e| e.connect(&reference, &req)).await
}

pub async fn disconnect_network(
    State(engine): Shared,
    Path(reference): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: DisconnectRequest = parse(&body)?;
    blocking(engine, move |e| e.disconnect(&reference, &req)).await
}
