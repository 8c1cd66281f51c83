//! The outbox: one reservation state change owed to a client's endpoints,
//! written by the worker in the transaction that made the change.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_messages")]
pub struct Model {
    /// [`crate::webhook::message_id`] of the reservation and its new state.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub client_id: i64,
    pub reservation_id: Uuid,
    /// `reservation.confirmed`, `reservation.held`, …
    pub event_type: String,
    /// The body sent, exactly (the signature covers these bytes).
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
