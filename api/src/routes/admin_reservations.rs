//! `GET /admin/reservations`: every client's reservations, for operators
//! (an export, a refund run, a look at one user), filtered and paged.
//!
//! Pages are keyset pages on the reservation id, a UUIDv7 stored as 16
//! bytes that sort in time order: a page is "the next `limit` ids after
//! the cursor", one primary-key range read however deep the walk goes,
//! and a walk sees every row that existed when it began exactly once,
//! whatever is added or decided meanwhile (an offset would skip or repeat
//! rows as new ones arrive). The next page is in the `Link` header
//! (RFC 8288, `rel="next"`) and in `next_after`.

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use shared::entities::reservation;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    auth::Admin,
    extract::QueryParams,
    problem::{ApiError, Problem},
    state::AppState,
    views::{Reservation, Status},
};

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Only this event's reservations.
    pub event_id: Option<i64>,
    /// Only reservations made for this user.
    pub user_id: Option<i64>,
    /// Only reservations in this state.
    pub status: Option<Status>,
    /// Only this client's reservations (0: anonymous ones).
    pub client: Option<i64>,
    /// The cursor: only reservations whose id comes after this one (the
    /// previous page's `next_after`).
    pub after: Option<Uuid>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

impl Filter {
    /// The query string of the page after `cursor`, with the same filters.
    fn next_query(&self, limit: u64, cursor: Uuid) -> String {
        let mut pairs = Vec::new();
        if let Some(id) = self.event_id {
            pairs.push(format!("event_id={id}"));
        }
        if let Some(id) = self.user_id {
            pairs.push(format!("user_id={id}"));
        }
        if let Some(status) = self.status {
            pairs.push(format!("status={}", status.domain().as_str()));
        }
        if let Some(id) = self.client {
            pairs.push(format!("client={id}"));
        }
        pairs.push(format!("limit={limit}"));
        pairs.push(format!("after={cursor}"));
        pairs.join("&")
    }
}

/// A reservation as the admin sees it: with its owner.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedReservation {
    /// The client that made it (0: anonymous).
    pub client_id: i64,
    #[serde(flatten)]
    pub reservation: Reservation,
}

/// One page of `GET /admin/reservations`, in id (time) order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationPage {
    pub reservations: Vec<ListedReservation>,
    /// Pass as `after` for the next page (the `Link` header's `rel="next"`
    /// has it too); absent on the last page.
    pub next_after: Option<Uuid>,
}

/// Lists reservations of every client (admin), filtered, one page at a
/// time. Reservations a worker has not decided yet are not listed (their
/// `GET /reservations/{id}` answers `pending`).
#[utoipa::path(get, path = "/admin/reservations", tag = "admin",
    params(Filter),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = ReservationPage,
            headers(("Link" = String, description = "`</admin/reservations?…&after=…>; rel=\"next\"` (RFC 8288) unless this is the last page")),
            example = json!({"reservations": [{"client_id": 3, "reservation_id": "019af2b4-7c1e-7d3a-9b2e-3f1c8a6d5e40",
                "event_id": 42, "quantity": 2, "status": "confirmed", "user_id": 7,
                "created_at": "2026-12-07T10:00:00.120Z", "updated_at": "2026-12-07T10:00:00.131Z",
                "decided_at": "2026-12-07T10:00:00.131Z"}],
                "next_after": "019af2b4-7c1e-7d3a-9b2e-3f1c8a6d5e40"})),
        (status = 400, description = "A malformed filter or cursor, or a limit out of range", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints disabled (no ADMIN_TOKEN)", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_reservations(
    State(state): State<AppState>,
    _admin: Admin,
    QueryParams(filter): QueryParams<Filter>,
) -> Result<Response, ApiError> {
    let limit = super::paging::limit(filter.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let mut query = reservation::Entity::find();
    if let Some(id) = filter.event_id {
        query = query.filter(reservation::Column::EventId.eq(id));
    }
    if let Some(id) = filter.user_id {
        query = query.filter(reservation::Column::UserId.eq(id));
    }
    if let Some(status) = filter.status {
        query = query.filter(reservation::Column::Status.eq(status.domain()));
    }
    if let Some(id) = filter.client {
        query = query.filter(reservation::Column::ClientId.eq(id));
    }
    if let Some(after) = filter.after {
        query = query.filter(reservation::Column::Id.gt(after));
    }
    // One more than a page tells whether another page follows.
    let mut rows = query
        .order_by_asc(reservation::Column::Id)
        .limit(limit + 1)
        .all(&state.db)
        .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next_after = more.then(|| rows.last().map(|r| r.id)).flatten();
    let page = ReservationPage {
        reservations: rows
            .into_iter()
            .map(|row| ListedReservation {
                client_id: row.client_id,
                reservation: row.into(),
            })
            .collect(),
        next_after,
    };
    let mut response = Json(page).into_response();
    if let Some(cursor) = next_after {
        let query = filter.next_query(limit, cursor);
        super::paging::link_next(&mut response, "/admin/reservations", &query);
    }
    Ok(response)
}
