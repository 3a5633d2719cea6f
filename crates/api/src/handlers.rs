//! One handler per route: parse, call the engine off the executor, answer.
//!
//! Input is checked here before the engine sees it, into the API's error
//! shape: bodies through [`JsonBody`] (size limit, JSON, no unknown
//! fields), query strings through [`Params`] (typed values, no unknown
//! parameters). The engine checks what the values mean.

use crate::ApiError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use cell_core::error::quoted;
use cell_core::limits::{BODY_MAX, parse_stop_timeout};
use cell_engine::containers::{CreateContainer, DEFAULT_STOP_TIMEOUT};
use cell_engine::execs::{Stdio, WindowSize};
use cell_engine::networks::{ConnectRequest, CreateNetwork, DisconnectRequest};
use cell_engine::ports::PortsRequest;
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
pub(crate) async fn blocking<T: serde::Serialize + Send + 'static>(
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
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// A JSON request body of type `T`. Bodies over [`BODY_MAX`] are refused
/// with 413 before they are parsed (the router sets the limit), malformed
/// JSON, invalid UTF-8 and unknown fields with 400.
pub struct JsonBody<T>(pub T);

/// A JSON body that may be left out (an empty body is `None`).
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        parse(&bytes).map(|v| OptionalJsonBody(Some(v)))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        parse(&bytes).map(JsonBody)
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {BODY_MAX} bytes"),
        )
    } else {
        ApiError::new(
            rejection.status(),
            format!("cannot read the request body: {}", rejection.body_text()),
        )
    }
}

/// The parameters of a query string, which a handler takes one by one;
/// [`Params::finish`] refuses what is left, as unknown body fields are, so
/// that a misspelt `?forse=true` does not silently mean the default.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Params::from_query(parts.uri.query().unwrap_or_default())
    }
}

impl Params {
    /// The parameters of the query string `query` (without the `?`).
    pub fn from_query(query: &str) -> Result<Self, ApiError> {
        let uri: axum::http::Uri = format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid query string {}", quoted(query))))?;
        Query::<Vec<(String, String)>>::try_from_uri(&uri)
            .map(|Query(pairs)| Params(pairs))
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "invalid query string {}: {}",
                    quoted(query),
                    e.body_text()
                ))
            })
    }

    /// The value of `key` (the last one if given several times), taken out.
    pub(crate) fn take(&mut self, key: &str) -> Option<String> {
        let mut found = None;
        self.0.retain(|(k, v)| {
            let is_key = k == key;
            if is_key {
                found = Some(v.clone());
            }
            !is_key
        });
        found
    }

    /// A boolean parameter: `true`/`1` or `false`/`0`, false when absent.
    pub fn take_bool(&mut self, key: &str) -> Result<bool, ApiError> {
        match self.take(key).as_deref() {
            None | Some("false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value {} of query parameter '{key}' (expected true or false)",
                quoted(other)
            ))),
        }
    }

    /// The stop timeout `timeout`, in whole seconds up to the limit;
    /// [`DEFAULT_STOP_TIMEOUT`] when absent.
    pub fn take_stop_timeout(&mut self) -> Result<Duration, ApiError> {
        match self.take("timeout") {
            None => Ok(DEFAULT_STOP_TIMEOUT),
            Some(text) => parse_stop_timeout(&text).map_err(ApiError::from),
        }
    }

    /// Refuses any parameter no one took.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.0.first() {
            None => Ok(()),
            Some((key, _)) => Err(ApiError::bad_request(format!(
                "unknown query parameter {}",
                quoted(key)
            ))),
        }
    }
}

/// The query string of a route that takes none: any parameter is refused,
/// as for routes that take some.
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Params::from_request_parts(parts, state).await?.finish()?;
        Ok(NoQuery)
    }
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::OPENAPI,
    )
}

pub async fn list_images(State(engine): Shared, _: NoQuery) -> ApiResult {
    blocking(engine, |e| e.images()).await
}

/// `POST /images`: import the rootfs at `path`, or build from busybox
/// when no path is given.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRequest {
    name: Option<String>,
    path: Option<std::path::PathBuf>,
}

pub async fn create_image(
    State(engine): Shared,
    _: NoQuery,
    JsonBody(req): JsonBody<ImageRequest>,
) -> ApiResult {
    match (req.name, req.path) {
        (Some(name), Some(path)) => blocking(engine, move |e| e.import_image(&name, &path)).await,
        (None, Some(_)) => Err(ApiError::bad_request("an imported image needs a name")),
        (name, None) => {
            let name = name.unwrap_or_else(|| cell_engine::images::BUSYBOX.into());
            blocking(engine, move |e| e.create_busybox_image(&name)).await
        }
    }
}

pub async fn inspect_image(State(engine): Shared, _: NoQuery, Path(reference): Path<String>) -> ApiResult {
    blocking(engine, move |e| e.find_image(&reference)).await
}

pub async fn remove_image(State(engine): Shared, _: NoQuery, Path(reference): Path<String>) -> ApiResult {
    blocking(engine, move |e| e.remove_image(&reference)).await
}

pub async fn list_containers(State(engine): Shared, mut params: Params) -> ApiResult {
    let all = params.take_bool("all")?;
    params.finish()?;
    blocking(engine, move |e| e.containers(all)).await
}

pub async fn create_container(
    State(engine): Shared,
    _: NoQuery,
    JsonBody(req): JsonBody<CreateContainer>,
) -> Result<impl IntoResponse, ApiError> {
    let created = blocking(engine, move |e| e.create_container(&req)).await?;
    Ok((StatusCode::CREATED, created))
}

pub async fn inspect_container(
    State(engine): Shared,
    _: NoQuery,
    Path(reference): Path<String>,
) -> ApiResult {
    blocking(engine, move |e| e.inspect_container(&reference)).await
}

pub async fn remove_container(
    State(engine): Shared,
    Path(reference): Path<String>,
    mut params: Params,
) -> ApiResult {
    let force = params.take_bool("force")?;
    params.finish()?;
    blocking(engine, move |e| e.remove_container(&reference, force)).await
}

pub async fn prune_containers(State(engine): Shared, _: NoQuery) -> ApiResult {
    blocking(engine, |e| {
        e.prune_containers().map(|removed| json!({ "removed": removed }))
    })
    .await
}

/// The body is optional: `{"stdin", "tty", "window": {"rows", "cols"}}`
/// for an interactive init (`cell run -it`); none means stdin `/dev/null`
/// and no terminal.
pub async fn start_container(
    State(engine): Shared,
    _: NoQuery,
    Path(reference): Path<String>,
    body: OptionalJsonBody<Stdio>,
) -> ApiResult {
    let stdio = body.0.unwrap_or_default();
    blocking(engine, move |e| e.start_container_with_stdio(&reference, stdio)).await
}

/// `?timeout=SECS`: the seconds between SIGTERM and SIGKILL, at most a day.
pub async fn stop_container(
    State(engine): Shared,
    Path(reference): Path<String>,
    mut params: Params,
) -> ApiResult {
    let timeout = params.take_stop_timeout()?;
    params.finish()?;
    blocking(engine, move |e| e.stop_container(&reference, timeout)).await
}

pub async fn restart_container(
    State(engine): Shared,
    Path(reference): Path<String>,
    mut params: Params,
) -> ApiResult {
    let timeout = params.take_stop_timeout()?;
    params.finish()?;
    blocking(engine, move |e| e.restart_container(&reference, timeout)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    cmd: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    /// Feed the process's stdin from the attach stream.
    #[serde(default)]
    stdin: bool,
    /// Give the process a terminal.
    #[serde(default)]
    tty: bool,
    /// The terminal's size at start.
    #[serde(default)]
    window: Option<WindowSize>,
}

pub async fn exec(
    State(engine): Shared,
    _: NoQuery,
    Path(reference): Path<String>,
    JsonBody(req): JsonBody<ExecRequest>,
) -> ApiResult {
    let stdio = Stdio {
        stdin: req.stdin,
        tty: req.tty,
        window: req.window,
    };
    blocking(engine, move |e| {
        e.exec_with_stdio(&reference, &req.cmd, &req.env, stdio)
    })
    .await
}

pub async fn inspect_exec(State(engine): Shared, _: NoQuery, Path(id): Path<String>) -> ApiResult {
    blocking(engine, move |e| e.find_exec(&id)).await
}

pub async fn list_networks(State(engine): Shared, _: NoQuery) -> ApiResult {
    blocking(engine, |e| e.networks()).await
}

pub async fn create_network(
    State(engine): Shared,
    _: NoQuery,
    JsonBody(req): JsonBody<CreateNetwork>,
) -> Result<impl IntoResponse, ApiError> {
    let created = blocking(engine, move |e| e.create_network(&req)).await?;
    Ok((StatusCode::CREATED, created))
}

pub async fn prune_networks(State(engine): Shared, _: NoQuery) -> ApiResult {
    blocking(engine, |e| {
        e.prune_networks().map(|removed| json!({ "removed": removed }))
    })
    .await
}

/// `GET /networks/{reference}`; the engine answers `host` itself.
pub async fn inspect_network(State(engine): Shared, _: NoQuery, Path(reference): Path<String>) -> ApiResult {
    blocking(engine, move |e| e.inspect_network(&reference)).await
}

pub async fn remove_network(State(engine): Shared, _: NoQuery, Path(reference): Path<String>) -> ApiResult {
    blocking(engine, move |e| e.remove_network(&reference)).await
}

pub async fn connect_network(
    State(engine): Shared,
    _: NoQuery,
    Path(reference): Path<String>,
    JsonBody(req): JsonBody<ConnectRequest>,
) -> ApiResult {
    blocking(engine, move |e| e.connect(&reference, &req)).await
}

pub async fn disconnect_network(
    State(engine): Shared,
    _: NoQuery,
    Path(reference): Path<String>,
    JsonBody(req): JsonBody<DisconnectRequest>,
) -> ApiResult {
    blocking(engine, move |e| e.disconnect(&reference, &req)).await
}

pub async fn container_ports(State(engine): Shared, _: NoQuery, Path(reference): Path<String>) -> ApiResult {
    blocking(engine, move |e| e.container_ports(&reference)).await
}

pub async fn publish_ports(
    State(engine): Shared,
    _: NoQuery,
    Path(reference): Path<String>,
    JsonBody(req): JsonBody<PortsRequest>,
) -> ApiResult {
    blocking(engine, move |e| e.publish_ports(&reference, &req)).await
}

pub async fn unpublish_ports(
    State(engine): Shared,
    _: NoQuery,
    Path(reference): Path<String>,
    JsonBody(req): JsonBody<PortsRequest>,
) -> ApiResult {
    blocking(engine, move |e| e.unpublish_ports(&reference, &req)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strings() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(".{0,12}", 0..3)
    }

    fn any_create_container() -> impl Strategy<Value = CreateContainer> {
        (
            ".{0,12}",
            proptest::option::of(".{0,12}"),
            strings(),
            proptest::option::of(".{0,8}"),
            strings(),
            (proptest::option::of(".{0,8}"), proptest::option::of(".{0,8}")),
            (strings(), strings(), strings()),
        )
            .prop_map(
                |(image, name, cmd, driver, networks, (ip, ip6), (ports, env, params))| CreateContainer {
                    image,
                    name,
                    cmd,
                    driver,
                    networks,
                    ip,
                    ip6,
                    ports,
                    env,
                    params,
                },
            )
    }

    /// A body parses, or fails with a one-line message of the API's shape.
    fn parses_or_says_why<T: DeserializeOwned>(body: &[u8]) -> Result<(), TestCaseError> {
        if let Err(e) = parse::<T>(body) {
            prop_assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            let response = axum::response::IntoResponse::into_response(e);
            prop_assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_body_is_parsed_without_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            parses_or_says_why::<CreateContainer>(&body)?;
            parses_or_says_why::<CreateNetwork>(&body)?;
            parses_or_says_why::<ConnectRequest>(&body)?;
            parses_or_says_why::<DisconnectRequest>(&body)?;
            parses_or_says_why::<ImageRequest>(&body)?;
            parses_or_says_why::<ExecRequest>(&body)?;
        }

        #[test]
        fn json_like_bodies_are_parsed_without_panic(
            body in r#"\{("(image|name|cmd|env|container|ip|subnet|bogus)": ?("[^"]{0,6}"|\[\]|[0-9]{1,3}|null|true),? ?){0,4}\}"#
        ) {
            parses_or_says_why::<CreateContainer>(body.as_bytes())?;
            parses_or_says_why::<CreateNetwork>(body.as_bytes())?;
            parses_or_says_why::<ConnectRequest>(body.as_bytes())?;
        }

        #[test]
        fn create_container_bodies_round_trip(req in any_create_container()) {
            let json = serde_json::to_vec(&req).unwrap();
            let again: CreateContainer = parse(&json).unwrap();
            prop_assert_eq!(serde_json::to_value(&again).unwrap(), serde_json::to_value(&req).unwrap());
        }

        #[test]
        fn any_query_is_parsed_without_panic(query in ".{0,40}|([a-z%0-9]{1,6}=[a-z%0-9]{0,6}&?){0,3}") {
            if let Ok(mut params) = Params::from_query(&query) {
                match params.take_stop_timeout() {
                    Ok(t) => prop_assert!(t.as_secs() <= cell_core::limits::STOP_TIMEOUT_MAX_SECS),
                    Err(e) => prop_assert_eq!(e.status(), StatusCode::BAD_REQUEST),
                }
                let _ = params.take_bool("force");
                let _ = params.finish();
            }
        }
    }

    #[test]
    fn unknown_fields_are_refused_in_every_body() {
        fn refused<T: DeserializeOwned>(body: &str, field: &str) {
            let err = parse::<T>(body.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("{body} was accepted"));
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
            let text = format!("{err:?}");
            assert!(text.contains(&format!("unknown field `{field}`")), "{text}");
        }
        refused::<CreateContainer>(r#"{"image":"busybox","comand":["sh"]}"#, "comand");
        refused::<CreateNetwork>(r#"{"name":"n","subnet":"10.1.0.0/24","nat_if":"eth0"}"#, "nat_if");
        refused::<ConnectRequest>(r#"{"container":"c","ip4":"10.0.0.2"}"#, "ip4");
        refused::<DisconnectRequest>(r#"{"container":"c","force":true}"#, "force");
        refused::<ImageRequest>(r#"{"name":"i","pth":"/x.tar"}"#, "pth");
        refused::<ExecRequest>(r#"{"cmd":["true"],"terminal":true}"#, "terminal");
        refused::<Stdio>(r#"{"tty":true,"window":{"rows":1,"columns":2}}"#, "columns");
        refused::<Stdio>(r#"{"tty":true,"interactive":true}"#, "interactive");
        parse::<ExecRequest>(br#"{"cmd":["sh"],"stdin":true,"tty":true,"window":{"rows":1,"cols":2}}"#)
            .unwrap();
    }

    #[test]
    fn query_parameters_are_typed_and_known() {
        let mut p = Params::from_query("force=true&timeout=5").unwrap();
        assert!(p.take_bool("force").unwrap());
        assert_eq!(p.take_stop_timeout().unwrap(), Duration::from_secs(5));
        p.finish().unwrap();
        let mut p = Params::from_query("").unwrap();
        assert_eq!(p.take_stop_timeout().unwrap(), DEFAULT_STOP_TIMEOUT);
        assert!(!p.take_bool("all").unwrap());
        let err = Params::from_query("forse=true").unwrap().finish().unwrap_err();
        assert!(
            format!("{err:?}").contains("unknown query parameter 'forse'"),
            "{err:?}"
        );
        let err = Params::from_query("force=maybe")
            .unwrap()
            .take_bool("force")
            .unwrap_err();
        assert!(
            format!("{err:?}").contains("invalid value 'maybe' of query parameter 'force'"),
            "{err:?}"
        );
        let err = Params::from_query("timeout=18446744073709551615")
            .unwrap()
            .take_stop_timeout()
            .unwrap_err();
        assert!(format!("{err:?}").contains("'18446744073709551615'"), "{err:?}");
    }
}
