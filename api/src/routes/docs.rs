//! `GET /docs/`: Swagger UI over `/openapi.json`, and `GET /`, which points
//! to it. The UI's files are compiled into the binary (`utoipa-swagger-ui`
//! with `vendored`), so the page needs no network, neither when the api is
//! built nor when a browser opens it.

use std::sync::{Arc, LazyLock};

use axum::{
    Json, Router,
    extract::Path,
    http::header,
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use serde::Serialize;
use utoipa_swagger_ui::Config;

use crate::{problem::ApiError, state::AppState};

/// Where the document the UI renders is served (routes/mod.rs).
const OPENAPI: &str = "/openapi.json";

/// The UI's settings, written into its `swagger-initializer.js`.
static CONFIG: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| Arc::new(Config::from(OPENAPI)));

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        // The page loads its files relative to itself, so it must be read
        // as a directory: `/docs` redirects to `/docs/`. A relative target
        // keeps working behind a proxy that mounts the api under a prefix.
        .route("/docs", get(|| async { Redirect::permanent("docs/") }))
        .route("/docs/", get(|| file(String::new())))
        .route("/docs/{*file}", get(|Path(name): Path<String>| file(name)))
}

/// `GET /`: what this server is and where its descriptions are.
#[derive(Debug, Serialize)]
pub struct Index {
    pub name: &'static str,
    /// Swagger UI: the API, readable and callable from a browser.
    pub docs: &'static str,
    /// The OpenAPI document the UI renders.
    pub openapi: &'static str,
    /// The problem types every refusal names (RFC 9457).
    pub problems: &'static str,
}

async fn index() -> Json<Index> {
    Json(Index {
        name: "Ticket reservation system",
        docs: "/docs/",
        openapi: OPENAPI,
        problems: "/problems",
    })
}

/// One of the UI's files (`index.html` for the directory itself).
async fn file(name: String) -> Result<Response, ApiError> {
    match utoipa_swagger_ui::serve(&name, CONFIG.clone()) {
        Ok(Some(file)) => Ok((
            [(header::CONTENT_TYPE, file.content_type)],
            file.bytes.into_owned(),
        )
            .into_response()),
        Ok(None) => Err(ApiError::NotFound(format!("no file /docs/{name}"))),
        // Only filling the configuration into the initializer can fail.
        Err(error) => Err(ApiError::Internal(format!("Swagger UI: {error}"))),
    }
}
