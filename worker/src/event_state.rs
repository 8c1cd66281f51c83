//! What a decision reads and writes of its event besides the bookings, in
//! the deciding transaction (`store`), right after the event row is locked:
//! the counts it gives out (the event's, its ticket types' and quotas'),
//! the sale window on the database's clock, the per-user sums and the
//! waiting list. Each is read only when the event row says the event has
//! one, so a plain event's batch pays for none of them.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use shared::{
    entities::{event, quota, reservation, ticket_type, waiting_entry},
    messages::{Command, ReservationStatus},
    sale_window::{OffSale, SaleWindow},
};
use uuid::Uuid;

use crate::{
    rules::{PerUser, Queue, Waiting},
    stock::{Stock, TypeStock},
    store::pad,
};

/// The event's waiting list, in order, when its row says it has one (the
/// entries are locked: an entry offered here cannot be offered twice).
pub async fn queue(
    txn: &DatabaseTransaction,
    event: &event::Model,
    hold_seconds: i32,
) -> Result<Queue, DbErr> {
    use waiting_entry::Column as C;
    if event.waiting <= 0 {
        return Ok(Queue::default());
    }
    let entries = waiting_entry::Entity::find()
        .filter(C::EventId.eq(event.id))
        .filter(C::OfferedAt.is_null())
        .order_by_asc(C::Seq)
        .limit(256)
        .lock_exclusive()
        .all(txn)
        .await?;
    Ok(Queue {
        entries: entries
            .into_iter()
            .map(|e| Waiting {
                id: e.id,
                ticket_type_id: e.ticket_type_id,
                client_id: e.client_id,
                user_id: e.user_id,
                quantity: e.quantity,
            })
            .collect(),
        hold_seconds,
    })
}

/// Marks the entries offered in this transaction.
pub async fn mark_offered(
    txn: &DatabaseTransaction,
    offered: &[Uuid],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if offered.is_empty() {
        return Ok(());
    }
    let marked = waiting_entry::Entity::update_many()
        .col_expr(waiting_entry::Column::OfferedAt, Expr::value(now))
        .filter(waiting_entry::Column::Id.is_in(offered.iter().copied()))
        .filter(waiting_entry::Column::OfferedAt.is_null())
        .exec(txn)
        .await?;
    if marked.rows_affected != offered.len() as u64 {
        return Err(DbErr::Custom(
            "a waiting-list entry was offered meanwhile".into(),
        ));
    }
    Ok(())
}

/// What the event has left at `now`: its own count and, when it sells
/// ticket types, each type's and quota's, locked like the event row (the
/// api changes their capacity with conditional statements that wait for
/// this transaction); and whether its sale window refuses new sales.
pub async fn stock(
    txn: &DatabaseTransaction,
    event: &event::Model,
    now: DateTime<Utc>,
) -> Result<Stock, DbErr> {
    let off_sale = outside_window(event.sale_opens_at, event.sale_closes_at, now);
    if event.ticket_types == 0 {
        return Ok(Stock {
            off_sale,
            ..Stock::from(event.available)
        });
    }
    let types = ticket_type::Entity::find()
        .filter(ticket_type::Column::EventId.eq(event.id))
        .lock_exclusive()
        .all(txn)
        .await?;
    let quotas = quota::Entity::find()
        .filter(quota::Column::EventId.eq(event.id))
        .lock_exclusive()
        .all(txn)
        .await?;
    Ok(Stock {
        event: event.available,
        typed: true,
        off_sale,
        types: types
            .into_iter()
            .map(|t| {
                let kind = TypeStock {
                    available: t.available,
                    quota: t.quota_id,
                    closed: t.closed,
                    off_sale: outside_window(t.sale_opens_at, t.sale_closes_at, now),
                };
                (t.id, kind)
            })
            .collect(),
        quotas: quotas.into_iter().map(|q| (q.id, q.available)).collect(),
    })
}

/// Why a sale window (an event's or a ticket type's) refuses new
/// reservations at `now`, if it does: the rule the api applies, in the
/// words an outcome carries.
fn outside_window(
    opens_at: Option<DateTime<Utc>>,
    closes_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<&'static str> {
    match (SaleWindow {
        opens_at,
        closes_at,
    })
    .check(now)
    {
        Ok(()) => None,
        Err(OffSale::NotYet(_)) => Some("Sale not open yet"),
        Err(OffSale::Closed(_)) => Some("Sale closed"),
    }
}

/// Stores the types' and quotas' counts that the decision changed (the
/// event's own goes with its fenced update).
pub async fn write_stock(
    txn: &DatabaseTransaction,
    before: &Stock,
    after: &Stock,
) -> Result<(), DbErr> {
    for (id, kind) in &after.types {
        if before.types.get(id).map(|k| k.available) != Some(kind.available) {
            ticket_type::Entity::update_many()
                .col_expr(ticket_type::Column::Available, Expr::value(kind.available))
                .filter(ticket_type::Column::Id.eq(*id))
                .exec(txn)
                .await?;
        }
    }
    for (id, available) in &after.quotas {
        if before.quotas.get(id) != Some(available) {
            quota::Entity::update_many()
                .col_expr(quota::Column::Available, Expr::value(*available))
                .filter(quota::Column::Id.eq(*id))
                .exec(txn)
                .await?;
        }
    }
    Ok(())
}

/// The event's per-user limit with what the batch's users (and the waiting
/// list's) already hold and have confirmed, read under the event's row lock (every writer of the
/// event's reservations holds it, so the sums cannot change before commit).
/// `None` when the event has no limit or names no user.
pub async fn per_user(
    txn: &DatabaseTransaction,
    event: &event::Model,
    commands: &[Command],
    queue: &Queue,
) -> Result<Option<PerUser>, DbErr> {
    use reservation::Column as C;
    let Some(max) = event.max_per_user else {
        return Ok(None);
    };
    let mut users: Vec<i64> = commands
        .iter()
        .filter_map(|command| match command {
            Command::Reserve { user_id, .. } => *user_id,
            _ => None,
        })
        .chain(queue.entries.iter().filter_map(|entry| entry.user_id))
        .collect();
    users.sort_unstable();
    users.dedup();
    if users.is_empty() {
        return Ok(None);
    }
    let taken: Vec<(i64, i64)> = reservation::Entity::find()
        .select_only()
        .column(C::UserId)
        .column_as(Expr::cust("CAST(SUM(quantity) AS SIGNED)"), "taken")
        .filter(C::EventId.eq(event.id))
        .filter(C::UserId.is_in(pad(&users)))
        .filter(C::Status.is_in([ReservationStatus::Held, ReservationStatus::Confirmed]))
        .group_by(C::UserId)
        .into_tuple()
        .all(txn)
        .await?;
    Ok(Some(PerUser {
        max,
        taken: taken
            .into_iter()
            .map(|(user, sum)| (user, i32::try_from(sum).unwrap_or(i32::MAX)))
            .collect(),
    }))
}
