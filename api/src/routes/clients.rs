//! Admin management of clients and their API keys. A key is shown once,
//! when its client is created; only its SHA-256 is stored.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use rand::RngCore;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use shared::entities::client;
use utoipa::ToSchema;

use crate::{
    auth::{Admin, digest},
    extract::{JsonBody, PathId},
    problem::{ApiError, Problem},
    state::AppState,
};

/// Prefix of every API key, so a leaked key is recognisable (secret
/// scanners, logs).
const KEY_PREFIX: &str = "tk_";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// Who the key is for (a storefront, a box office).
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

/// A client as listed; never its key.
#[derive(Debug, Serialize, ToSchema)]
pub struct Client {
    pub id: i64,
    pub name: String,
    pub created_at: chrono::DateTime<Utc>,
    pub revoked_at: Option<chrono::DateTime<Utc>>,
}

impl From<client::Model> for Client {
    fn from(c: client::Model) -> Self {
        Self {
            id: c.id,
            name: c.name,
            created_at: c.created_at,
            revoked_at: c.revoked_at,
        }
    }
}

/// A client just created, with its key: the only time the key is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient {
    pub id: i64,
    pub name: String,
    /// Send as `Authorization: Bearer <api_key>`. Not retrievable later.
    pub api_key: String,
    pub created_at: chrono::DateTime<Utc>,
}

/// Creates a client and its API key.
#[utoipa::path(post, path = "/admin/clients", tag = "admin",
    request_body = NewClient,
    security(("admin_token" = [])),
    responses(
        (status = 201, body = CreatedClient),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(new): JsonBody<NewClient>,
) -> Result<Response, ApiError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::Unprocessable(
            "name must be 1 to 200 characters".into(),
        ));
    }
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let api_key = format!(
        "{KEY_PREFIX}{}",
        secret
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let now = Utc::now();
    let inserted = client::Entity::insert(client::ActiveModel {
        name: Set(name.to_owned()),
        key_hash: Set(digest(&api_key).to_vec()),
        created_at: Set(now),
        revoked_at: Set(None),
        ..Default::default()
    })
    .exec(&state.db)
    .await?;
    let id = inserted.last_insert_id;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/admin/clients/{id}"))],
        Json(CreatedClient {
            id,
            name: name.to_owned(),
            api_key,
            created_at: now,
        }),
    )
        .into_response())
}

/// Lists every client, revoked ones included.
#[utoipa::path(get, path = "/admin/clients", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Vec<Client>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Vec<Client>>, ApiError> {
    let clients = client::Entity::find()
        .order_by_asc(client::Column::Id)
        .all(&state.db)
        .await?;
    Ok(Json(clients.into_iter().map(Client::from).collect()))
}

/// Revokes a client's key: from now on it is refused (by every api replica
/// within two seconds). The client's reservations stay as they are.
/// Revoking twice is harmless.
#[utoipa::path(delete, path = "/admin/clients/{id}", tag = "admin",
    params(("id" = i64, Path, description = "Client id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Client),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    _admin: Admin,
    PathId(id): PathId<i64>,
) -> Result<Json<Client>, ApiError> {
    let not_found = || ApiError::NotFound(format!("client {id} does not exist"));
    let found = client::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(not_found)?;
    if found.revoked_at.is_none() {
        client::Entity::update_many()
            .col_expr(client::Column::RevokedAt, Expr::value(Utc::now()))
            .filter(client::Column::Id.eq(id))
            .filter(client::Column::RevokedAt.is_null())
            .exec(&state.db)
            .await?;
    }
    state.keys.forget(id);
    let revoked = client::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(Client::from(revoked)))
}
