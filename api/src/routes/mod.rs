//! The router and the OpenAPI document generated from the handlers.

pub mod admin_reservations;
pub mod clients;
pub mod docs;
pub mod events;
pub mod health;
mod links;
pub mod live;
mod paging;
pub mod problems;
pub mod queue;
pub mod reservations;
pub mod reserve;
pub mod settings;
pub mod ticket_types;
pub mod users;
pub mod waiting_list;
pub mod webhook_deliveries;
pub mod webhooks;

use axum::{
    Json, Router,
    body::Body,
    http::{HeaderName, Method, Request, Uri},
    middleware,
    routing::{get, post},
};
use shared::trace_context::{self, TRACEPARENT};
use tower::ServiceBuilder;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnFailure, TraceLayer},
};
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{extract::REQUEST_ID, middleware::limit_reserve, problem::ApiError, state::AppState};

#[derive(OpenApi)]
#[openapi(
    info(title = "Ticket reservation system", description = "Reserve tickets without overselling."),
    paths(
        events::tickets, events::create, events::list, events::get, events::update, events::close,
        ticket_types::create_quota, ticket_types::create, ticket_types::list, ticket_types::update,
        reserve::reserve,
        reservations::get, reservations::confirm, reservations::cancel,
        waiting_list::join, waiting_list::get, waiting_list::leave,
        live::page, live::stream,
        users::create,
        clients::create, clients::list, clients::revoke,
        admin_reservations::list_reservations, queue::queue,
        webhooks::create_endpoint, webhooks::list_endpoints, webhooks::remove_endpoint,
        webhook_deliveries::list_deliveries, webhook_deliveries::show_message,
        webhook_deliveries::replay_deliveries,
        settings::list_settings, settings::get_setting, settings::put_setting, settings::delete_setting,
        health::healthz, health::readyz,
    ),
    components(schemas(live::LiveUpdate)),
    modifiers(&SecuritySchemes, &OperationIds),
)]
pub struct ApiDoc;

/// The document `/openapi.json` serves: the generated one, with the links
/// between operations (`links`) and the events of the live stream
/// (`live`).
pub fn document() -> serde_json::Value {
    // Serializing plain structs and maps cannot fail; `Null` would only
    // leave the links out.
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    links::add(&mut document);
    live::describe_events(&mut document);
    document
}

/// utoipa names an operation after its handler, and handlers of different
/// modules share names (`get`, `create`). OpenAPI requires unique ids, and
/// tools resolve links and `Location` headers through them (Schemathesis
/// sent event ids to `/reservations/{id}`): the tag in front makes them
/// unique (`events_get`, `reservations_get`).
struct OperationIds;

impl Modify for OperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                let tag = operation.tags.as_ref().and_then(|tags| tags.first());
                if let (Some(tag), Some(id)) = (tag, &operation.operation_id) {
                    operation.operation_id = Some(format!("{tag}_{id}"));
                }
            }
        }
    }
}

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
        .route("/events/{id}", get(events::get).patch(events::update))
        .route("/events/{id}/tickets", get(events::tickets))
        .route("/events/{id}/close", post(events::close))
        .route("/events/{id}/live", get(live::stream))
        .route("/live/{id}", get(live::page))
        .route("/events/{id}/quotas", post(ticket_types::create_quota))
        .route(
            "/events/{id}/ticket-types",
            post(ticket_types::create).get(ticket_types::list),
        )
        .route(
            "/ticket-types/{id}",
            axum::routing::patch(ticket_types::update),
        )
        .route("/events/{id}/reserve", reserve)
        .route(
            "/reservations/{id}",
            get(reservations::get).delete(reservations::cancel),
        )
        .route("/reservations/{id}/confirm", post(reservations::confirm))
        .route("/events/{id}/waiting-list", post(waiting_list::join))
        .route(
            "/waiting-list/{id}",
            get(waiting_list::get).delete(waiting_list::leave),
        )
        .route("/users", post(users::create))
        .route("/admin/clients", post(clients::create).get(clients::list))
        .route(
            "/admin/clients/{id}",
            axum::routing::delete(clients::revoke),
        )
        .route("/admin/events/{id}/queue", get(queue::queue))
        .route(
            "/admin/clients/{id}/webhooks",
            post(webhooks::create_endpoint),
        )
        .route("/admin/webhooks", get(webhooks::list_endpoints))
        .route(
            "/admin/webhooks/{id}",
            axum::routing::delete(webhooks::remove_endpoint),
        )
        .route(
            "/admin/webhook-deliveries",
            get(webhook_deliveries::list_deliveries),
        )
        .route(
            "/admin/webhook-deliveries/replay",
            post(webhook_deliveries::replay_deliveries),
        )
        .route(
            "/admin/webhook-messages/{id}",
            get(webhook_deliveries::show_message),
        )
        .route(
            "/admin/reservations",
            get(admin_reservations::list_reservations),
        )
        .route("/admin/settings", get(settings::list_settings))
        // A wildcard: an event's pause is `events/<id>/sales_paused`.
        .route(
            "/admin/settings/{*name}",
            get(settings::get_setting)
                .put(settings::put_setting)
                .delete(settings::delete_setting),
        )
        .route("/problems", get(problems::index))
        .route("/problems/{slug}", get(problems::describe))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(|| async { Json(document()) }))
        .route("/metrics", get(crate::metrics::render))
        .merge(docs::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Inside the request-id and trace layers, on every route and the
        // fallbacks, where the matched route template is known.
        .layer(middleware::from_fn(crate::metrics::track))
        .layer(
            ServiceBuilder::new()
                // Every request gets an id (the client's `x-request-id`, or
                // a new UUID), on its log lines, its answer and the commands
                // it publishes.
                .layer(SetRequestIdLayer::new(
                    HeaderName::from_static(REQUEST_ID),
                    MakeRequestUuid,
                ))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        // Refusals are answered (and internal errors logged)
                        // by `ApiError`; logging every 503 again at ERROR
                        // would drown real failures.
                        .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
                )
                .layer(PropagateRequestIdLayer::new(HeaderName::from_static(
                    REQUEST_ID,
                ))),
        )
        .with_state(state)
}

/// The span of one request: every log line of the request carries its
/// method, path and id. It continues the client's W3C trace when the
/// request names one in `traceparent` (else it starts a trace), and the
/// commands the request publishes carry its context on to the worker.
fn request_span(request: &Request<Body>) -> Span {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %header(REQUEST_ID),
    );
    let traceparent = header(TRACEPARENT);
    if !traceparent.is_empty() {
        // A malformed value gives an empty context: a new trace, as the
        // W3C recommendation says.
        let _ = span.set_parent(trace_context::parse(traceparent));
    }
    span
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
