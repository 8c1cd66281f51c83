//! Loading and storing one event's decision in one MySQL transaction; the
//! decision itself is `rules::decide`.
//!
//! The event row is locked (`SELECT … FOR UPDATE`), so the new availability
//! is computed from a value no one else can change before commit. The
//! reservation id is the primary key and is written in the same transaction,
//! which makes it the dedupe record: a redelivered command finds its earlier
//! decision and returns it. The final `UPDATE` only applies if the row's
//! fencing token is not newer than ours, so a worker whose lock expired
//! while it was paused writes nothing.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QuerySelect, Statement, TransactionTrait,
    sea_query::{Expr, ExprTrait, MysqlQueryBuilder, Query},
};
use shared::{
    entities::{event, reservation},
    messages::{Command, Outcome, ReservationStatus},
};
use uuid::Uuid;

use crate::{
    event_state::{mark_offered, per_user, queue, stock, write_stock},
    outbox,
    rules::{self, Booking, Decision, Write},
};

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("fencing token {presented} is older than the event's {stored}; refusing to write")]
    StaleFence { presented: i64, stored: i64 },
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// The committed result of one group.
#[derive(Debug, Default)]
pub struct Decided {
    /// One outcome per command, in command order.
    pub outcomes: Vec<Outcome>,
    /// The event's availability and row version after the commit, for the
    /// cache; `None` when the event does not exist.
    pub availability: Option<(i32, i64)>,
    /// The holds offered to waiting-list entries, as outcomes (no client
    /// waits for them; the expiry schedule does).
    pub offers: Vec<Outcome>,
    /// Webhook deliveries the group wrote to the outbox.
    pub webhooks: usize,
}

/// Decides `commands` (all for `event_id`, in arrival order) with the
/// fencing token `fence`; a hold offered to the waiting list lasts
/// `offer_hold_seconds`.
pub async fn decide(
    db: &DatabaseConnection,
    event_id: i64,
    fence: i64,
    commands: &[Command],
    offer_hold_seconds: i32,
) -> Result<Decided, DecideError> {
    // READ COMMITTED, the level of the worker's sessions
    // (`shared::db::connect_read_committed`): the event row lock already
    // serialises deciders of one event; REPEATABLE READ would add gap locks
    // on the reservations index (new ids are time-ordered, so every batch
    // locks the same last gap), making concurrent groups of different
    // events deadlock (and be retried).
    let txn = db.begin().await?;
    let Some(event) = event::Entity::find_by_id(event_id)
        .lock_exclusive()
        .one(&txn)
        .await?
    else {
        return Ok(Decided {
            outcomes: rules::unknown_event(commands),
            availability: None,
            offers: Vec::new(),
            webhooks: 0,
        });
    };
    if event.fence_token > fence {
        return Err(DecideError::StaleFence {
            presented: fence,
            stored: event.fence_token,
        });
    }

    let queue = queue(&txn, &event, offer_hold_seconds).await?;
    // A typed event's types may have windows of their own: known only once
    // they are read, so such a batch always takes the database's clock.
    let windowed =
        event.sale_opens_at.is_some() || event.sale_closes_at.is_some() || event.ticket_types > 0;
    let now = if needs_clock(commands) || !queue.entries.is_empty() || windowed {
        database_now(&txn).await?
    } else {
        Utc::now()
    };
    let ids: Vec<Uuid> = commands.iter().map(Command::reservation_id).collect();
    let bookings: HashMap<Uuid, Booking> = reservation::Entity::find()
        .filter(reservation::Column::Id.is_in(padded(&ids)))
        .lock_exclusive()
        .all(&txn)
        .await?
        .iter()
        .map(|row| (row.id, booking(row)))
        .collect();
    let stock = stock(&txn, &event, now).await?;
    let Decision {
        outcomes,
        stock: left,
        bookings,
        writes,
        offered,
        transitions,
    } = rules::decide(
        event_id,
        now,
        stock.clone(),
        per_user(&txn, &event, commands, &queue).await?,
        queue,
        bookings,
        commands,
    );
    let available = left.event;

    if writes.is_empty() {
        txn.commit().await?;
        return Ok(Decided {
            outcomes,
            availability: Some((event.available, event.version)),
            offers: Vec::new(),
            webhooks: 0,
        });
    }
    let mut inserts = Vec::new();
    for (id, write) in &writes {
        let Some(booking) = bookings.get(id) else {
            continue;
        };
        match *write {
            Write::Insert => inserts.push(row(booking, fence, now)),
            Write::Update { from } => update(&txn, booking, from, fence, now).await?,
        }
    }
    if !inserts.is_empty() {
        txn.execute_unprepared(&insert(&inserts)?).await?;
    }
    write_stock(&txn, &stock, &left).await?;
    mark_offered(&txn, &offered, now).await?;
    let webhooks = outbox::write(&txn, &bookings, &transitions, now).await?;
    let updated = event::Entity::update_many()
        .col_expr(event::Column::Available, Expr::value(available))
        .col_expr(event::Column::FenceToken, Expr::value(fence))
        .col_expr(
            event::Column::Version,
            Expr::col(event::Column::Version).add(1),
        )
        .col_expr(event::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            event::Column::Waiting,
            Expr::col(event::Column::Waiting).sub(offered.len() as i32),
        )
        .filter(event::Column::Id.eq(event_id))
        .filter(event::Column::FenceToken.lte(fence))
        .exec(&txn)
        .await?;
    if updated.rows_affected != 1 {
        return Err(DecideError::StaleFence {
            presented: fence,
            stored: event.fence_token,
        });
    }
    txn.commit().await?;
    let offers = offered
        .iter()
        .filter_map(|id| bookings.get(id))
        .map(|booking| rules::outcome(booking, available))
        .collect();
    Ok(Decided {
        outcomes,
        availability: Some((available, event.version + 1)),
        offers,
        webhooks,
    })
}

/// Whether deciding `commands` involves holds, whose times are the
/// database's: a batch of plain reserves (the hot path) does not pay for
/// reading the clock.
fn needs_clock(commands: &[Command]) -> bool {
    commands.iter().any(|command| {
        !matches!(
            command,
            Command::Reserve {
                hold_seconds: None,
                ..
            }
        )
    })
}

/// The database's clock, read inside the deciding transaction: every
/// expiry is judged on this one clock, whatever worker decides it, so a
/// confirm and an expiry of one hold can never both win.
async fn database_now(txn: &DatabaseTransaction) -> Result<DateTime<Utc>, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_string(
            txn.get_database_backend(),
            "SELECT UTC_TIMESTAMP(6) AS now",
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("UTC_TIMESTAMP(6)".into()))?;
    let now: NaiveDateTime = row.try_get("", "now")?;
    Ok(now.and_utc())
}

/// `values` repeated up to the next power of two (see [`padded`]).
pub(crate) fn pad<T: Clone>(values: &[T]) -> Vec<T> {
    let shape = values.len().next_power_of_two();
    values.iter().cycle().take(shape).cloned().collect()
}

/// The ids of the `IN (…)` select, repeated up to the next power of two.
///
/// Statements whose shape follows the batch size must not churn sqlx's
/// per-connection prepared-statement cache: each eviction sends a
/// `COM_STMT_CLOSE`, which gets no reply, so with sqlx 0.9 (no
/// `TCP_NODELAY`) the next packet waits ~40 ms for a delayed ACK. Padding
/// leaves the select at most ten shapes for batches up to 512, which stay
/// cached; repeating an id does not change what the select returns.
fn padded(ids: &[Uuid]) -> Vec<Vec<u8>> {
    pad(ids).iter().map(|id| id.as_bytes().to_vec()).collect()
}

/// One multi-row plain `INSERT` of the rows this group created: it never
/// overwrites anything (a row that appeared meanwhile fails the statement
/// and the group is retried, and then sees it).
///
/// Its shape follows the batch size too (see [`padded`]), and padding rows
/// is not possible, so it is sent as plain text with its values inlined (all
/// typed values, escaped by sea-query) rather than as a prepared statement.
fn insert(rows: &[reservation::Model]) -> Result<String, DbErr> {
    use reservation::Column as C;
    let mut insert = Query::insert();
    insert.into_table(reservation::Entity).columns([
        C::Id,
        C::EventId,
        C::TicketTypeId,
        C::ClientId,
        C::UserId,
        C::Quantity,
        C::HoldSeconds,
        C::Status,
        C::FenceToken,
        C::CreatedAt,
        C::UpdatedAt,
        C::DecidedAt,
        C::ExpiresAt,
    ]);
    for row in rows {
        insert
            .values([
                row.id.as_bytes().to_vec().into(),
                row.event_id.into(),
                row.ticket_type_id.into(),
                row.client_id.into(),
                row.user_id.into(),
                row.quantity.into(),
                row.hold_seconds.into(),
                row.status.into(),
                row.fence_token.into(),
                row.created_at.naive_utc().into(),
                row.updated_at.naive_utc().into(),
                row.decided_at.map(|at| at.naive_utc()).into(),
                row.expires_at.map(|at| at.naive_utc()).into(),
            ])
            .map_err(|e| DbErr::Custom(e.to_string()))?;
    }
    Ok(insert.to_string(MysqlQueryBuilder))
}

/// A booking as the rules see it.
fn booking(row: &reservation::Model) -> Booking {
    Booking {
        id: row.id,
        event_id: row.event_id,
        ticket_type_id: row.ticket_type_id,
        client_id: row.client_id,
        user_id: row.user_id,
        quantity: row.quantity,
        hold_seconds: row.hold_seconds,
        status: row.status,
        expires_at: row.expires_at,
    }
}

/// The row of a booking this batch created.
fn row(booking: &Booking, fence: i64, now: DateTime<Utc>) -> reservation::Model {
    reservation::Model {
        id: booking.id,
        event_id: booking.event_id,
        ticket_type_id: booking.ticket_type_id,
        client_id: booking.client_id,
        user_id: booking.user_id,
        quantity: booking.quantity,
        hold_seconds: booking.hold_seconds,
        status: booking.status,
        fence_token: Some(fence),
        created_at: now,
        updated_at: now,
        decided_at: Some(now),
        expires_at: booking.expires_at,
    }
}

/// Moves an existing row to the booking's state, guarded by the state it
/// was read in (`from`) and by what it holds (event, quantity, owner): a
/// statement that finds anything else changes nothing and fails the group,
/// which is then retried.
async fn update(
    txn: &DatabaseTransaction,
    booking: &Booking,
    from: ReservationStatus,
    fence: i64,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    use reservation::Column as C;
    let mut update = reservation::Entity::update_many()
        .col_expr(C::Status, Expr::value(booking.status))
        .col_expr(C::FenceToken, Expr::value(fence))
        .col_expr(C::UpdatedAt, Expr::value(now));
    if from == ReservationStatus::Pending {
        update = update
            .col_expr(C::DecidedAt, Expr::value(now))
            .col_expr(C::ExpiresAt, Expr::value(booking.expires_at));
    }
    let result = update
        .filter(C::Id.eq(booking.id))
        .filter(C::Status.eq(from))
        .filter(C::EventId.eq(booking.event_id))
        .filter(C::ClientId.eq(booking.client_id))
        .filter(C::Quantity.eq(booking.quantity))
        .exec(txn)
        .await?;
    if result.rows_affected == 1 {
        Ok(())
    } else {
        Err(DbErr::Custom(format!(
            "reservation {} changed while it was being decided",
            booking.id
        )))
    }
}
