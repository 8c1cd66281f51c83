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
    ActiveEnum, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, IsolationLevel, QueryFilter, QuerySelect, TransactionTrait,
    sea_query::{Expr, ExprTrait, MysqlQueryBuilder, Query},
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
    // New rows, inserted in one statement; existing rows that change, each
    // updated only if still in the state it was read in. Sorted, so
    // concurrent writers (after a lease expiry) lock rows in the same order
    // and cannot deadlock on them.
    let mut inserted: Vec<Uuid> = Vec::new();
    let mut updated: BTreeSet<Uuid> = BTreeSet::new();
    let mut outcomes = Vec::with_capacity(commands.len());
    for command in commands {
        let outcome = match *command {
            Command::Reserve {
                reservation_id,
                event_id,
                quantity,
                user_id,
                client_id,
            } => {
                let fresh = !rows.contains_key(&reservation_id);
                let row = rows
                    .entry(reservation_id)
                    .or_insert_with(|| reservation::Model {
                        id: reservation_id,
                        event_id,
                        client_id,
                        user_id,
                        quantity,
                        status: ReservationStatus::Pending,
                        fence_token: None,
                        created_at: now,
                        updated_at: now,
                        decided_at: None,
                    });
                // A decided row is returned as it is (a redelivery); a row
                // of another request that reused the id is never touched,
                // and its outcome, naming what it holds, tells the api so.
                let same_request = row.event_id == event_id
                    && row.quantity == quantity
                    && row.user_id == user_id
                    && row.client_id == client_id;
                if !row.status.is_decided() && same_request {
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
                    if fresh {
                        inserted.push(reservation_id);
                    } else {
                        updated.insert(reservation_id);
                    }
                }
                outcome(row, available, row.status.message())
            }
            Command::Cancel {
                reservation_id,
                client_id,
                ..
            } => match rows.get_mut(&reservation_id) {
                Some(row) if row.client_id != client_id || row.event_id != event_id => {
                    refusal(command, "Unknown reservation")
                }
                Some(row) if row.status == ReservationStatus::Confirmed => {
                    available += row.quantity;
                    row.status = ReservationStatus::Cancelled;
                    row.fence_token = Some(fence);
                    row.updated_at = now;
                    updated.insert(reservation_id);
                    outcome(row, available, row.status.message())
                }
                Some(row) => outcome(row, available, row.status.message()),
                None => refusal(command, "Unknown reservation"),
            },
        };
        outcomes.push(outcome);
    }

    if inserted.is_empty() && updated.is_empty() {
        txn.commit().await?;
        return Ok(Decided {
            outcomes,
            availability: Some((event.available, event.version)),
        });
    }
    if !inserted.is_empty() {
        txn.execute_unprepared(&insert(inserted.iter().filter_map(|id| rows.get(id)))?)
            .await?;
    }
    for row in updated.iter().filter_map(|id| rows.get(id)) {
        update(&txn, row).await?;
    }
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

/// One multi-row plain `INSERT` of the rows this group created: it never
/// overwrites anything (a row that appeared meanwhile fails the statement
/// and the group is retried, and then sees it).
///
/// Its shape follows the batch size too (see [`padded`]), and padding rows
/// is not possible, so it is sent as plain text with its values inlined (all
/// typed values, escaped by sea-query) rather than as a prepared statement.
fn insert<'a>(rows: impl Iterator<Item = &'a reservation::Model>) -> Result<String, DbErr> {
    use reservation::Column as C;
    let mut insert = Query::insert();
    insert.into_table(reservation::Entity).columns([
        C::Id,
        C::EventId,
        C::ClientId,
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
                row.client_id.into(),
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
    Ok(insert.to_string(MysqlQueryBuilder))
}

/// Moves an existing row to its new state, guarded by the state it was read
/// in (a pending row of the same request, or a confirmed row being
/// cancelled) and by its owner: a statement that finds anything else
/// changes nothing and fails the group, which is then retried.
async fn update(txn: &DatabaseTransaction, row: &reservation::Model) -> Result<(), DbErr> {
    use reservation::Column as C;
    let from = match row.status {
        ReservationStatus::Cancelled => ReservationStatus::Confirmed,
        _ => ReservationStatus::Pending,
    };
    let result = reservation::Entity::update_many()
        .col_expr(C::Status, Expr::value(row.status.to_value()))
        .col_expr(C::FenceToken, Expr::value(row.fence_token))
        .col_expr(C::UpdatedAt, Expr::value(row.updated_at))
        .col_expr(C::DecidedAt, Expr::value(row.decided_at))
        .filter(C::Id.eq(row.id))
        .filter(C::Status.eq(from))
        .filter(C::EventId.eq(row.event_id))
        .filter(C::ClientId.eq(row.client_id))
        .filter(C::Quantity.eq(row.quantity))
        .exec(txn)
        .await?;
    if result.rows_affected == 1 {
        Ok(())
    } else {
        Err(DbErr::Custom(format!(
            "reservation {} changed while it was being decided",
            row.id
        )))
    }
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
        refused: None,
    }
}

/// An outcome for a command that names nothing that exists.
fn refusal(command: &Command, message: &str) -> Outcome {
    Outcome {
        message: message.to_owned(),
        refused: None,
        ..crate::permanent::refused(command, message)
    }
}
