//! Users that reservations can name.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use sea_orm::{ActiveValue::Set, EntityTrait, SqlErr};
use serde::Deserialize;
use shared::entities::user;
use utoipa::ToSchema;

use crate::{
    extract::JsonBody,
    problem::{ApiError, Problem},
    state::AppState,
    views::User,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
}

/// Registers a user.
#[utoipa::path(post, path = "/users", tag = "users",
    request_body = NewUser,
    responses(
        (status = 201, body = User),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    JsonBody(new): JsonBody<NewUser>,
) -> Result<Response, ApiError> {
    let email = new.email.trim();
    let valid_email = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if !valid_email {
        return Err(ApiError::Unprocessable(format!(
            "{email:?} is not an email address"
        )));
    }
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::Unprocessable(
            "name must be 1 to 200 characters".into(),
        ));
    }
    let inserted = user::Entity::insert(user::ActiveModel {
        email: Set(email.to_owned()),
        name: Set(name.to_owned()),
        created_at: Set(Utc::now()),
        ..Default::default()
    })
    .exec(&state.db)
    .await
    .map_err(|error| match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            ApiError::Conflict(format!("a user with email {email:?} already exists"))
        }
        _ => error.into(),
    })?;
    let user = user::Entity::find_by_id(inserted.last_insert_id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::Internal("user vanished right after insert".into()))?;
    let location = format!("/users/{}", user.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(User::from(user)),
    )
        .into_response())
}
