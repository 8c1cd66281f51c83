//! The router and the OpenAPI document generated from the handlers.

pub mod clients;
pub mod events;
pub mod health;
pub mod problems;
pub mod reservations;
pub mod reserve;
pub mod users;

use axum::{
    Json, Router,
    http::{Method, Uri},
    middleware,
    routing::{get, post},
};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{middleware::limit_reserve, problem::ApiError, state::AppState};

#[derive(OpenApi)]
#[openapi(
    info(title = "Ticket reservation system", description = "Reserve tickets without overselling."),
    paths(
        events::tickets, events::create, events::list, events::get,
        reserve::reserve,
        reservations::get, reservations::cancel,
        users::create,
        clients::create, clients::list, clients::revoke,
        health::healthz, health::readyz,
    ),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

/// Two bearer schemes: the admin token, and a client's API key (optional
/// unless `REQUIRE_API_KEY` is on; each route lists what it accepts).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "admin_token",
            bearer("The api's ADMIN_TOKEN: event and client administration."),
        );
        components.add_security_scheme(
            "api_key",
            bearer("A client's API key (POST /admin/clients): its reservations are its own."),
        );
    }
}

pub fn router(state: AppState) -> Router {
    let reserve = post(reserve::reserve)
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_reserve));
    Router::new()
        .route("/events", post(events::create).get(events::list))
        .route("/events/{id}", get(events::get))
        .route("/events/{id}/tickets", get(events::tickets))
        .route("/events/{id}/reserve", reserve)
        .route(
            "/reservations/{id}",
            get(reservations::get).delete(reservations::cancel),
        )
        .route("/users", post(users::create))
        .route("/admin/clients", post(clients::create).get(clients::list))
        .route(
            "/admin/clients/{id}",
            axum::routing::delete(clients::revoke),
        )
        .route("/problems", get(problems::index))
        .route("/problems/{slug}", get(problems::describe))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Refusals are answered (and internal errors logged) by `ApiError`;
        // logging every 503 again at ERROR would drown real failures.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
