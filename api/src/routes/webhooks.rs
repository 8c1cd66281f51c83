//! Admin management of webhook endpoints: the URLs a client's reservation
//! changes are delivered to (the worker's dispatcher sends them, from the
//! outbox the deciding transaction writes).
//!
//! Only an admin registers endpoints: the workers call whatever URL is
//! registered, from inside the deployment's network, so letting API-key
//! holders choose it would hand them a way to reach internal services.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use shared::{
    entities::{client, webhook_endpoint},
    webhook,
};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::Admin,
    extract::{JsonBody, PathId, QueryParams},
    problem::{ApiError, Problem},
    state::AppState,
};

const MAX_URL: usize = 2048;
const MAX_DESCRIPTION: usize = 200;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where to POST the client's reservation changes: an absolute `http`
    /// or `https` URL without credentials.
    #[schema(
        min_length = 1,
        max_length = 2048,
        example = "https://shop.example/hooks/tickets"
    )]
    pub url: String,
    #[schema(max_length = 200)]
    pub description: Option<String>,
}

/// An endpoint as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct Endpoint {
    pub id: i64,
    pub client_id: i64,
    pub url: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Set once removed: it gets no new message and no more attempts.
    pub disabled_at: Option<DateTime<Utc>>,
}

impl From<webhook_endpoint::Model> for Endpoint {
    fn from(e: webhook_endpoint::Model) -> Self {
        Self {
            id: e.id,
            client_id: e.client_id,
            url: e.url,
            description: e.description,
            created_at: e.created_at,
            disabled_at: e.disabled_at,
        }
    }
}

/// An endpoint just registered, with its signing secret: the only time the
/// secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// Verifies the `webhook-signature` header (Standard Webhooks):
    /// `whsec_` and the base64 of the HMAC-SHA256 key.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

/// Registers a webhook endpoint for a client: from now on, every change of
/// the client's reservations (held, confirmed, rejected, released, expired,
/// cancelled) is delivered there, signed.
#[utoipa::path(post, path = "/admin/clients/{id}/webhooks", tag = "admin",
    params(("id" = i64, Path, description = "Client id")),
    request_body = NewEndpoint,
    security(("admin_token" = [])),
    responses(
        (status = 201, body = CreatedEndpoint,
            headers(("Location" = String, description = "`/admin/webhooks/{endpoint id}`"))),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The client is revoked", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A URL that is not absolute http(s)", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    _admin: Admin,
    PathId(client_id): PathId<i64>,
    JsonBody(new): JsonBody<NewEndpoint>,
) -> Result<Response, ApiError> {
    let url = endpoint_url(&new.url)?;
    let description = new
        .description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
    {
        return Err(ApiError::Unprocessable(format!(
            "description must be at most {MAX_DESCRIPTION} characters"
        )));
    }
    let owner = client::Entity::find_by_id(client_id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("client {client_id} does not exist")))?;
    if owner.revoked_at.is_some() {
        return Err(ApiError::Conflict(format!(
            "client {client_id} is revoked: its reservations change no more"
        )));
    }
    let secret = webhook::new_secret();
    let now = Utc::now();
    let inserted = webhook_endpoint::Entity::insert(webhook_endpoint::ActiveModel {
        client_id: Set(client_id),
        url: Set(url.clone()),
        description: Set(description.clone()),
        secret: Set(secret.clone()),
        created_at: Set(now),
        disabled_at: Set(None),
        ..Default::default()
    })
    .exec(&state.db)
    .await?;
    let id = inserted.last_insert_id;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/admin/webhooks/{id}"))],
        Json(CreatedEndpoint {
            endpoint: Endpoint {
                id,
                client_id,
                url,
                description,
                created_at: now,
                disabled_at: None,
            },
            secret,
        }),
    )
        .into_response())
}

/// The URL as stored, if it is one a worker can call: absolute `http` or
/// `https`, with a host, no credentials (they would be shown in listings)
/// and no fragment (never sent).
fn endpoint_url(raw: &str) -> Result<String, ApiError> {
    let raw = raw.trim();
    let bad = |why: &str| ApiError::Unprocessable(format!("url {why}"));
    if raw.is_empty() || raw.len() > MAX_URL {
        return Err(bad(&format!("must be 1 to {MAX_URL} characters")));
    }
    let url = url::Url::parse(raw).map_err(|e| bad(&format!("is not an absolute URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    Ok(url.to_string())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EndpointFilter {
    /// Only this client's endpoints.
    pub client_id: Option<i64>,
}

/// Lists webhook endpoints, removed ones included; never their secrets.
#[utoipa::path(get, path = "/admin/webhooks", tag = "admin",
    params(EndpointFilter),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Vec<Endpoint>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    _admin: Admin,
    QueryParams(filter): QueryParams<EndpointFilter>,
) -> Result<Json<Vec<Endpoint>>, ApiError> {
    let mut query = webhook_endpoint::Entity::find();
    if let Some(id) = filter.client_id {
        query = query.filter(webhook_endpoint::Column::ClientId.eq(id));
    }
    let endpoints = query
        .order_by_asc(webhook_endpoint::Column::Id)
        .all(&state.db)
        .await?;
    Ok(Json(endpoints.into_iter().map(Endpoint::from).collect()))
}

/// Removes a webhook endpoint: no new message is written for it, and its
/// deliveries still pending fail ("the endpoint was removed"). What was
/// delivered stays listed. Removing twice is harmless.
#[utoipa::path(delete, path = "/admin/webhooks/{id}", tag = "admin",
    params(("id" = i64, Path, description = "Endpoint id")),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_endpoint(
    State(state): State<AppState>,
    _admin: Admin,
    PathId(id): PathId<i64>,
) -> Result<StatusCode, ApiError> {
    webhook_endpoint::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("webhook endpoint {id} does not exist")))?;
    webhook_endpoint::Entity::update_many()
        .col_expr(
            webhook_endpoint::Column::DisabledAt,
            Expr::value(Utc::now()),
        )
        .filter(webhook_endpoint::Column::Id.eq(id))
        .filter(webhook_endpoint::Column::DisabledAt.is_null())
        .exec(&state.db)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::endpoint_url;

    #[test]
    fn only_plain_absolute_http_urls_are_endpoints() {
        assert!(endpoint_url("https://shop.example/hooks").is_ok());
        assert!(endpoint_url(" http://127.0.0.1:9000/x?y=1 ").is_ok());
        for bad in [
            "",
            "/hooks",
            "ftp://shop.example/",
            "https://user:pw@shop.example/",
            "https://shop.example/#top",
            "mailto:a@b.c",
        ] {
            assert!(endpoint_url(bad).is_err(), "{bad}");
        }
        assert!(endpoint_url(&format!("https://a.example/{}", "x".repeat(2100))).is_err());
    }
}
