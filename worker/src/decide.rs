//! Deciding one event's commands in one MySQL transaction.
//!
//! The event row is locked (`SELECT … FOR UPDATE`), so the new availability
//! is computed from a value no one else can change before commit. The
//! reservation id is the primary key and is written in the same transaction,
//! which makes it the dedupe record: a redelivered command finds its earlier
//! decision and returns it. The final `UPDATE` only applies if the row's
//! fencing token is not newer than ours, so a worker whose lock expired
//! while it was paused writes nothing.

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    IsolationLevel, QueryFilter, QuerySelect, TransactionTrait,
    sea_query::{Expr, ExprTrait, MysqlQueryBuilder, OnConflict, Query},
};
use shared::{
    entities::{event, reservation},
    messages::{Command, Outcome, ReservationStatus},
};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("fencing token {presented} is older than the event's {stored}; refusing to write")]
    StaleFence { presented: i64, stored: i64 },
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// The committed result of one group.
#[derive(Debug)]
pub struct Decided {
    /// One outcome per command, in command order.
    pub outcomes: Vec<Outcome>,
    /// The event's availability and row version after the commit, for the
    /// cache; `None` when the event does not exist.
    pub availability: Option<(i32, i64)>,
}

/// Decides `commands` (all for `event_id`, in arrival order) with the
/// fencing token `fence`.
pub async fn decide(
    db: &DatabaseConnection,
    event_id: i64,
    fence: i64,
    commands: &[Command],
) -> Result<Decided, DecideError> {
    // READ COMMITTED: the event row lock already serialises deciders of one
    // event; REPEATABLE READ would add gap locks on the reservations index
    // (new ids are time-ordered, so every batch locks the same last gap),
    // making concurrent groups of different events deadlock.
    let txn = db
        .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
        .await?;
    let Some(event) = event::Entity::find_by_id(event_id)
        .lock_exclusive()
        .one(&txn)
        .await?
    else {
        let outcomes = commands
            .iter()
            .map(|c| refusal(c, "Unknown event"))
            .collect();
        return Ok(Decided {
            outcomes,
            availability: None,
        });
    };
    if event.fence_token > fence {
        return Err(DecideError::StaleFence {
            presented: fence,
            stored: event.fence_token,
        });
    }

    let ids: Vec<Uuid> = commands.iter().map(Command::reservation_id).collect();
    let mut rows: HashMap<Uuid, reservation::Model> = reservation::Entity::find()
        .filter(reservation::Column::Id.is_in(padded(&ids)))
        .lock_exclusive()
        .all(&txn)
        .await?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();

    let now = Utc::now();
    let mut available = event.available;
    // Sorted, so concurrent writers (after a lease expiry) lock rows in the
    // same order and cannot deadlock on them.
    let mut changed: BTreeSet<Uuid> = BTreeSet::new();
    let mut outcomes = Vec::with_capacity(commands.len());
    for command in commands {
        let outcome = match *command {
            Command::Reserve {
                reservation_id,
                event_id,
                quantity,
                user_id,
            } => {
                let row = rows
                    .entry(reservation_id)
                    .or_insert_with(|| reservation::Model {
                        id: reservation_id,
                        event_id,
                        user_id,
                        quantity,
                        status: ReservationStatus::Pending,
                        fence_token: None,
                        created_at: now,
                        updated_at: now,
                        decided_at: None,
                    });
                // A row naming another event belongs to a different request
                // that reused the id; leave it alone and report what it is.
                let message = if row.status.is_decided() || row.event_id != event_id {
                    row.status.message()
                } else {
                    let fits = row.quantity > 0 && row.quantity <= available;
                    if fits {
                        available -= row.quantity;
                    }
                    row.status = if fits {
                        ReservationStatus::Confirmed
                    } else {
                        ReservationStatus::Rejected
                    };
                    row.fence_token = Some(fence);
                    row.decided_at = Some(now);
                    row.updated_at = now;
                    changed.insert(reservation_id);
                    row.status.message()
                };
                outcome(row, available, message)
            }
            Command::Cancel { reservation_id, .. } => match rows.get_mut(&reservation_id) {
                Some(row)
                    if row.event_id == event_id && row.status == ReservationStatus::Confirmed =>
                {
                    available += row.quantity;
                    row.status = ReservationStatus::Cancelled;
                    row.fence_token = Some(fence);
                    row.updated_at = now;
                    changed.insert(reservation_id);
                    outcome(row, available, row.status.message())
                }
                Some(row) => outcome(row, available, row.status.message()),
                None => refusal(command, "Unknown reservation"),
            },
        };
        outcomes.push(outcome);
    }

    if changed.is_empty() {
        txn.commit().await?;
        return Ok(Decided {
            outcomes,
            availability: Some((event.available, event.version)),
        });
    }
    txn.execute_unprepared(&upsert(changed.iter().filter_map(|id| rows.get(id)))?)
        .await?;
    let updated = event::Entity::update_many()
        .col_expr(event::Column::Available, Expr::value(available))
        .col_expr(event::Column::FenceToken, Expr::value(fence))
        .col_expr(
            event::Column::Version,
            Expr::col(event::Column::Version).add(1),
        )
        .col_expr(event::Column::UpdatedAt, Expr::value(now))
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
    Ok(Decided {
        outcomes,
        availability: Some((available, event.version + 1)),
    })
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
    let shape = ids.len().next_power_of_two();
    ids.iter()
        .chain(std::iter::repeat_n(
            ids.last().unwrap_or(&Uuid::nil()),
            shape - ids.len(),
        ))
        .map(|id| id.as_bytes().to_vec())
        .collect()
}

/// One multi-row `INSERT … ON DUPLICATE KEY UPDATE` for the decided rows:
/// new rows are inserted whole, rows the api created as `pending` get their
/// decision.
///
/// Its shape follows the batch size too (see [`padded`]), and padding rows
/// is not possible, so it is sent as plain text with its values inlined (all
/// typed values, escaped by sea-query) rather than as a prepared statement.
fn upsert<'a>(rows: impl Iterator<Item = &'a reservation::Model>) -> Result<String, DbErr> {
    use reservation::Column as C;
    let mut insert = Query::insert();
    insert.into_table(reservation::Entity).columns([
        C::Id,
        C::EventId,
        C::UserId,
        C::Quantity,
        C::Status,
        C::FenceToken,
        C::CreatedAt,
        C::UpdatedAt,
        C::DecidedAt,
    ]);
    for row in rows {
        insert
            .values([
                row.id.as_bytes().to_vec().into(),
                row.event_id.into(),
                row.user_id.into(),
                row.quantity.into(),
                row.status.to_value().into(),
                row.fence_token.into(),
                row.created_at.naive_utc().into(),
                row.updated_at.naive_utc().into(),
                row.decided_at.map(|at| at.naive_utc()).into(),
            ])
            .map_err(|e| DbErr::Custom(e.to_string()))?;
    }
    insert.on_conflict(
        OnConflict::column(C::Id)
            .update_columns([C::Status, C::FenceToken, C::UpdatedAt, C::DecidedAt])
            .to_owned(),
    );
    Ok(insert.to_string(MysqlQueryBuilder))
}

fn outcome(row: &reservation::Model, remaining: i32, message: &str) -> Outcome {
    Outcome {
        reservation_id: row.id,
        event_id: row.event_id,
        quantity: row.quantity,
        user_id: row.user_id,
        status: row.status,
        remaining_tickets: remaining,
        message: message.to_owned(),
    }
}

/// An outcome for a command that names nothing that exists.
fn refusal(command: &Command, message: &str) -> Outcome {
    let (quantity, user_id) = match *command {
        Command::Reserve {
            quantity, user_id, ..
        } => (quantity, user_id),
        Command::Cancel { .. } => (0, None),
    };
    Outcome {
        reservation_id: command.reservation_id(),
        event_id: command.event_id(),
        quantity,
        user_id,
        status: ReservationStatus::Rejected,
        remaining_tickets: 0,
        message: message.to_owned(),
    }
}
