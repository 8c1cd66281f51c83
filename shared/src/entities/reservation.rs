//! A reservation. Its id is the dedupe record: the row is written in the
//! same transaction as the decrement, so a redelivered command finds it.
//! Written by the workers only.

use sea_orm::entity::prelude::*;

use crate::domain::ReservationStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reservations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub event_id: i64,
    /// The ticket type it takes from, if the event sells types.
    pub ticket_type_id: Option<i64>,
    /// The client that owns it; 0 is anonymous.
    pub client_id: i64,
    pub user_id: Option<i64>,
    pub quantity: i32,
    /// For a hold: how long it was asked to last.
    pub hold_seconds: Option<i32>,
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub status: ReservationStatus,
    /// Fencing token of the lock hold that last decided this row.
    pub fence_token: Option<i64>,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
    pub decided_at: Option<ChronoDateTimeUtc>,
    /// For a hold: when it ends, on the database's clock.
    pub expires_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
