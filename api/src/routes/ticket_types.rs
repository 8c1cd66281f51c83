//! Ticket types and quotas of an event (admin): create them, change a
//! type's capacity, close it. The worker decides every reservation of a
//! type under the event's lock; the statements here are single conditional
//! updates, so they wait for a deciding transaction and never take a count
//! below what is sold.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, SqlErr,
    Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use shared::{
    entities::{quota, ticket_type},
    sale_window::SaleWindow,
};
use utoipa::ToSchema;

use crate::{
    auth::Admin,
    catalog::{self, Children},
    extract::{JsonBody, PathId},
    known_events::TypeTerms,
    problem::{ApiError, Problem},
    state::AppState,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewQuota {
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// Tickets the quota's types may sell together, 1 to 10,000,000.
    #[schema(minimum = 1, maximum = 10_000_000)]
    #[serde(deserialize_with = "crate::integral::i64")]
    pub capacity: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicketType {
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// Tickets of this type, 1 to 10,000,000.
    #[schema(minimum = 1, maximum = 10_000_000)]
    #[serde(deserialize_with = "crate::integral::i64")]
    pub capacity: i64,
    /// Price in the smallest currency unit (default 0).
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "crate::integral::option_i64")]
    pub price_cents: Option<i64>,
    /// A quota of the same event this type shares with others.
    #[serde(default, deserialize_with = "crate::integral::option_i64")]
    pub quota_id: Option<i64>,
    /// The type is refused before this time (default: with its event).
    #[schema(pattern = "^[1-9][0-9]{3}-")]
    pub sale_opens_at: Option<DateTime<Utc>>,
    /// The type is refused from this time on (default: with its event);
    /// after `sale_opens_at`.
    #[schema(pattern = "^[1-9][0-9]{3}-")]
    pub sale_closes_at: Option<DateTime<Utc>>,
}

/// A change to a ticket type; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketTypeChange {
    /// New capacity: never below what is held or sold (409 otherwise).
    #[schema(minimum = 1, maximum = 10_000_000)]
    #[serde(default, deserialize_with = "crate::integral::option_i64")]
    pub capacity: Option<i64>,
    /// `true` stops selling the type (what it sold stays sold).
    pub closed: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Quota {
    pub id: i64,
    pub event_id: i64,
    pub name: String,
    pub capacity: i32,
    pub available: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketType {
    pub id: i64,
    pub event_id: i64,
    pub name: String,
    pub price_cents: i64,
    pub capacity: i32,
    pub available: i32,
    pub quota_id: Option<i64>,
    pub closed: bool,
    /// The type is refused (`sale-not-open`) before this time (null: its
    /// event's window only).
    pub sale_opens_at: Option<DateTime<Utc>>,
    /// The type is refused (`sale-closed`) from this time on.
    pub sale_closes_at: Option<DateTime<Utc>>,
}

impl From<ticket_type::Model> for TicketType {
    fn from(t: ticket_type::Model) -> Self {
        Self {
            id: t.id,
            event_id: t.event_id,
            name: t.name,
            price_cents: t.price_cents,
            capacity: t.capacity,
            available: t.available,
            quota_id: t.quota_id,
            closed: t.closed,
            sale_opens_at: t.sale_opens_at,
            sale_closes_at: t.sale_closes_at,
        }
    }
}

fn name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::Unprocessable(
            "name must be 1 to 100 characters".into(),
        ));
    }
    Ok(name.to_owned())
}

fn capacity(raw: i64) -> Result<i32, ApiError> {
    super::events::ticket_count(raw, "capacity")
}

fn created<T: Serialize>(location: String, body: T) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

/// A name an event already uses is refused, not a server error.
fn taken_name(error: sea_orm::DbErr) -> ApiError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            ApiError::Conflict("the event already has one by that name".into())
        }
        _ => error.into(),
    }
}

/// Creates a quota that several of the event's ticket types can share.
#[utoipa::path(post, path = "/events/{id}/quotas", tag = "ticket_types",
    params(("id" = i64, Path, description = "Event id")),
    request_body = NewQuota,
    security(("admin_token" = [])),
    responses(
        (status = 201, body = Quota),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The event has a quota by that name", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_quota(
    State(state): State<AppState>,
    _admin: Admin,
    PathId(event_id): PathId<i64>,
    JsonBody(new): JsonBody<NewQuota>,
) -> Result<Response, ApiError> {
    let (name, capacity) = (name(&new.name)?, capacity(new.capacity)?);
    catalog::find(&state, event_id).await?;
    let inserted = quota::Entity::insert(quota::ActiveModel {
        event_id: Set(event_id),
        name: Set(name.clone()),
        capacity: Set(capacity),
        available: Set(capacity),
        created_at: Set(Utc::now()),
        ..Default::default()
    })
    .exec(&state.db)
    .await
    .map_err(taken_name)?;
    let id = inserted.last_insert_id;
    Ok(created(
        format!("/events/{event_id}/quotas/{id}"),
        Quota {
            id,
            event_id,
            name,
            capacity,
            available: capacity,
        },
    ))
}

/// Creates a ticket type. From then on every reservation of the event
/// must name one (`ticket_type`); other api replicas learn it within
/// `TERMS_MAX_AGE` (5 s), and the worker refuses an untyped one meanwhile.
#[utoipa::path(post, path = "/events/{id}/ticket-types", tag = "ticket_types",
    params(("id" = i64, Path, description = "Event id")),
    request_body = NewTicketType,
    security(("admin_token" = [])),
    responses(
        (status = 201, body = TicketType),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The event has a type by that name", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    PathId(event_id): PathId<i64>,
    JsonBody(new): JsonBody<NewTicketType>,
) -> Result<Response, ApiError> {
    let (name, capacity) = (name(&new.name)?, capacity(new.capacity)?);
    let window = super::events::sale_window(new.sale_opens_at, new.sale_closes_at)?;
    let price_cents = new.price_cents.unwrap_or(0);
    if price_cents < 0 {
        return Err(ApiError::Unprocessable(
            "price_cents must not be negative".into(),
        ));
    }
    catalog::find(&state, event_id).await?;
    if let Some(quota_id) = new.quota_id {
        let of_event = quota::Entity::find_by_id(quota_id)
            .one(&state.db)
            .await?
            .is_some_and(|q| q.event_id == event_id);
        if !of_event {
            return Err(ApiError::Unprocessable(format!(
                "quota {quota_id} is not one of event {event_id}'s"
            )));
        }
    }
    // The type and the event's count of types change together: a worker
    // that sees the count reads the types.
    let txn = state.db.begin().await?;
    catalog::count_child(&txn, event_id, Children::TicketTypes).await?;
    let inserted = ticket_type::Entity::insert(ticket_type::ActiveModel {
        event_id: Set(event_id),
        name: Set(name),
        price_cents: Set(price_cents),
        capacity: Set(capacity),
        available: Set(capacity),
        quota_id: Set(new.quota_id),
        closed: Set(false),
        sale_opens_at: Set(window.opens_at),
        sale_closes_at: Set(window.closes_at),
        created_at: Set(Utc::now()),
        ..Default::default()
    })
    .exec(&txn)
    .await
    .map_err(taken_name)?;
    txn.commit().await?;
    let id = inserted.last_insert_id;
    let kind = ticket_type::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("ticket type {id} vanished")))?;
    // This replica knows at once that the event now sells types.
    catalog::find(&state, event_id).await?;
    Ok(created(
        format!("/ticket-types/{id}"),
        TicketType::from(kind),
    ))
}

/// The event's ticket types with what each has left.
#[utoipa::path(get, path = "/events/{id}/ticket-types", tag = "ticket_types",
    params(("id" = i64, Path, description = "Event id")),
    responses(
        (status = 200, body = Vec<TicketType>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    PathId(event_id): PathId<i64>,
) -> Result<Json<Vec<TicketType>>, ApiError> {
    catalog::terms(&state, event_id).await?;
    Ok(Json(of_event(&state, event_id).await?))
}

pub async fn of_event(state: &AppState, event_id: i64) -> Result<Vec<TicketType>, ApiError> {
    Ok(ticket_type::Entity::find()
        .filter(ticket_type::Column::EventId.eq(event_id))
        .order_by_asc(ticket_type::Column::Id)
        .all(&state.db)
        .await?
        .into_iter()
        .map(TicketType::from)
        .collect())
}

/// Changes a type's capacity (never below what it has held or sold) or
/// closes it.
#[utoipa::path(patch, path = "/ticket-types/{id}", tag = "ticket_types",
    params(("id" = i64, Path, description = "Ticket type id")),
    request_body = TicketTypeChange,
    security(("admin_token" = [])),
    responses(
        (status = 200, body = TicketType),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The new capacity is below what is held or sold", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    _admin: Admin,
    PathId(id): PathId<i64>,
    JsonBody(change): JsonBody<TicketTypeChange>,
) -> Result<Json<TicketType>, ApiError> {
    let capacity = change.capacity.map(capacity).transpose()?;
    let not_found = || ApiError::NotFound(format!("ticket type {id} does not exist"));
    ticket_type::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(not_found)?;
    if let Some(capacity) = capacity {
        // One statement: it waits for a deciding transaction holding the
        // row, and moves `available` by the capacity's change only if what
        // is held or sold still fits.
        let moved = state
            .db
            .execute_raw(Statement::from_sql_and_values(
                state.db.get_database_backend(),
                "UPDATE ticket_types \
                 SET available = available + (? - capacity), capacity = ? \
                 WHERE id = ? AND available + (? - capacity) >= 0",
                [capacity.into(), capacity.into(), id.into(), capacity.into()],
            ))
            .await?;
        if moved.rows_affected() == 0 {
            return Err(ApiError::Conflict(format!(
                "ticket type {id} has more than {capacity} tickets held or sold"
            )));
        }
    }
    if let Some(closed) = change.closed {
        ticket_type::Entity::update_many()
            .col_expr(
                ticket_type::Column::Closed,
                sea_orm::sea_query::Expr::value(closed),
            )
            .filter(ticket_type::Column::Id.eq(id))
            .exec(&state.db)
            .await?;
    }
    let kind = ticket_type::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(kind.into()))
}

/// Checks a request's `ticket_type` against the event: required when the
/// event sells types (and then one of its own), refused when it does not.
/// The chosen type's own sale window, if it has one.
pub async fn check_choice(
    state: &AppState,
    event_id: i64,
    typed: bool,
    ticket_type: Option<i64>,
) -> Result<SaleWindow, ApiError> {
    let refusal = match (typed, ticket_type) {
        (true, None) => format!("event {event_id} sells ticket types: choose one (ticket_type)"),
        (false, Some(_)) => format!("event {event_id} sells no ticket types"),
        (true, Some(kind)) => match terms(state, kind).await? {
            Some(terms) if terms.event_id == event_id => return Ok(terms.window),
            _ => format!("ticket type {kind} is not one of event {event_id}'s"),
        },
        (false, None) => return Ok(SaleWindow::default()),
    };
    Err(ApiError::Unprocessable(refusal))
}

/// Tickets of a type a reserve could take now: what the type, its quota
/// and its event all still have (a type with tickets of its own sells
/// none once its shared quota or its event is sold out).
pub async fn left(state: &AppState, event_id: i64, ticket_type_id: i64) -> Result<i32, ApiError> {
    let Some(kind) = ticket_type::Entity::find_by_id(ticket_type_id)
        .one(&state.db)
        .await?
    else {
        return Ok(0);
    };
    let quota = match kind.quota_id {
        Some(id) => quota::Entity::find_by_id(id)
            .one(&state.db)
            .await?
            .map_or(0, |q| q.available),
        None => i32::MAX,
    };
    let event = catalog::available(state, event_id).await?;
    Ok(kind.available.min(quota).min(event))
}

/// A ticket type's event and sale window, if the type exists (neither
/// changes, so each replica reads them once).
async fn terms(state: &AppState, ticket_type_id: i64) -> Result<Option<TypeTerms>, ApiError> {
    if let Some(terms) = state.known_events.ticket_type(ticket_type_id) {
        return Ok(Some(terms));
    }
    let Some(kind) = ticket_type::Entity::find_by_id(ticket_type_id)
        .one(&state.db)
        .await?
    else {
        return Ok(None);
    };
    let terms = TypeTerms {
        event_id: kind.event_id,
        window: SaleWindow {
            opens_at: kind.sale_opens_at,
            closes_at: kind.sale_closes_at,
        },
    };
    state.known_events.insert_type(kind.id, terms);
    Ok(Some(terms))
}
