//! The webhook outbox, written inside the deciding transaction: a message
//! for every state a reservation of a client with webhook endpoints
//! reached, and a delivery of it to each of those endpoints. Committed
//! with the change or not at all, so a change is never without its
//! message, nor a message without its change; the dispatcher
//! (`webhooks`) sends them afterwards.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    QuerySelect,
    sea_query::{MysqlQueryBuilder, Query},
};
use shared::{
    domain::ReservationStatus,
    entities::{webhook_delivery, webhook_endpoint, webhook_message},
    webhook::{self, Payload},
};
use uuid::Uuid;

use crate::rules::Booking;

/// Writes the messages and deliveries owed for `transitions` (each a
/// booking of `bookings` reaching a state, in order) committed at `now`;
/// returns how many deliveries it wrote. A batch of anonymous bookings
/// (the seed's, the benchmark's) costs nothing; others, one indexed read
/// of their clients' endpoints.
pub async fn write(
    txn: &DatabaseTransaction,
    bookings: &HashMap<Uuid, Booking>,
    transitions: &[(Uuid, ReservationStatus)],
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let changes: Vec<(&Booking, ReservationStatus, &'static str)> = transitions
        .iter()
        .filter_map(|(id, status)| {
            let booking = bookings.get(id).filter(|b| b.client_id != 0)?;
            Some((booking, *status, webhook::event_type(*status)?))
        })
        .collect();
    if changes.is_empty() {
        return Ok(0);
    }
    let clients: BTreeSet<i64> = changes.iter().map(|(b, ..)| b.client_id).collect();
    let endpoints: Vec<(i64, i64)> = webhook_endpoint::Entity::find()
        .select_only()
        .column(webhook_endpoint::Column::Id)
        .column(webhook_endpoint::Column::ClientId)
        .filter(webhook_endpoint::Column::ClientId.is_in(clients))
        .filter(webhook_endpoint::Column::DisabledAt.is_null())
        .into_tuple()
        .all(txn)
        .await?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let mut messages = Query::insert();
    messages.into_table(webhook_message::Entity).columns([
        webhook_message::Column::Id,
        webhook_message::Column::ClientId,
        webhook_message::Column::ReservationId,
        webhook_message::Column::EventType,
        webhook_message::Column::Payload,
        webhook_message::Column::CreatedAt,
    ]);
    let mut deliveries = Query::insert();
    deliveries.into_table(webhook_delivery::Entity).columns([
        webhook_delivery::Column::MessageId,
        webhook_delivery::Column::EndpointId,
        webhook_delivery::Column::Status,
        webhook_delivery::Column::Attempts,
        webhook_delivery::Column::NextAttemptAt,
    ]);
    let mut count = 0;
    for (booking, status, event_type) in changes {
        let owed: Vec<i64> = endpoints
            .iter()
            .filter(|(_, client)| *client == booking.client_id)
            .map(|(id, _)| *id)
            .collect();
        if owed.is_empty() {
            continue;
        }
        let id = webhook::message_id(booking.id, status);
        let payload = serde_json::to_string(&payload(booking, status, event_type, now))
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        messages
            .values([
                id.as_bytes().to_vec().into(),
                booking.client_id.into(),
                booking.id.as_bytes().to_vec().into(),
                event_type.into(),
                payload.into(),
                now.naive_utc().into(),
            ])
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        for endpoint in owed {
            deliveries
                .values([
                    id.as_bytes().to_vec().into(),
                    endpoint.into(),
                    webhook_delivery::DeliveryStatus::Pending.into(),
                    0.into(),
                    now.naive_utc().into(),
                ])
                .map_err(|e| DbErr::Custom(e.to_string()))?;
            count += 1;
        }
    }
    if count > 0 {
        // Plain text, like the reservations' insert: the shape follows the
        // batch, which would churn the prepared-statement cache.
        txn.execute_unprepared(&messages.to_string(MysqlQueryBuilder))
            .await?;
        txn.execute_unprepared(&deliveries.to_string(MysqlQueryBuilder))
            .await?;
    }
    Ok(count)
}

/// What the message says: `booking` as it stood when it reached `status`.
fn payload(
    booking: &Booking,
    status: ReservationStatus,
    event_type: &str,
    now: DateTime<Utc>,
) -> Payload {
    Payload {
        event_type: event_type.to_owned(),
        timestamp: now,
        data: webhook::Reservation {
            reservation_id: booking.id,
            event_id: booking.event_id,
            ticket_type_id: booking.ticket_type_id,
            user_id: booking.user_id,
            quantity: booking.quantity,
            status,
            hold_seconds: booking.hold_seconds,
            expires_at: booking.expires_at,
        },
    }
}
