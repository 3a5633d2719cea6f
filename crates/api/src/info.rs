//! `GET /version` and `GET /info`: what `cell version` and `cell info`
//! show of the daemon. The engine computes the summary
//! ([`cell_engine::info`]); these handlers only serve it.

use crate::handlers::{NoQuery, blocking};
use crate::{ApiError, OPENAPI};
use axum::Json;
use axum::extract::State;
use cell_engine::Engine;
use serde_json::{Value, json};
use std::sync::Arc;

/// `GET /version`: celld's version, the API document's, and the platform.
pub async fn version(_: NoQuery) -> Json<Value> {
    Json(json!({
        "version": cell_engine::info::VERSION,
        "api_version": api_version(),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    }))
}

/// The `info.version` of the OpenAPI document, so that the two never differ.
fn api_version() -> String {
    let doc: Value = serde_json::from_str(OPENAPI).expect("the OpenAPI document is JSON");
    doc["info"]["version"].as_str().unwrap_or_default().to_string()
}

/// `GET /info`: the engine's summary; counting reads the store, so it runs
/// off the executor.
pub async fn info(State(engine): State<Arc<Engine>>, _: NoQuery) -> Result<Json<Value>, ApiError> {
    blocking(engine, |e| e.info()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use cell_engine::info::{Info, KernelFeatures};

    fn keys(v: &Value) -> Vec<String> {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    /// The response schemas name exactly the fields the engine and the
    /// handler send, so the documented names are the real ones.
    #[tokio::test]
    async fn the_response_schemas_match_what_is_sent() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let schemas = &doc["components"]["schemas"];
        let info = serde_json::to_value(Info {
            version: String::new(),
            root: "/".into(),
            pool: None,
            pool6: None,
            containers: 0,
            running: 0,
            images: 0,
            networks: 0,
            kernel: KernelFeatures::default(),
        })
        .unwrap();
        assert_eq!(keys(&schemas["Info"]["properties"]), keys(&info));
        assert_eq!(
            keys(&schemas["KernelFeatures"]["properties"]),
            keys(&info["kernel"])
        );
        let Json(version) = version(NoQuery).await;
        assert_eq!(keys(&schemas["Version"]["properties"]), keys(&version));
        assert_eq!(version["version"], cell_engine::info::VERSION);
        assert_eq!(version["api_version"], "0.1.0");
    }
}
