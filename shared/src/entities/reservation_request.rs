//! A reservation request the api accepted before it was decided: what the
//! client asked, under which idempotency key, so that the id it was given
//! can be polled at once and a reused key compared with what it first
//! asked. Written by the api only; the decision lives in `reservations`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reservation_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The client that asked; 0 is anonymous.
    pub client_id: i64,
    pub idempotency_key: Option<String>,
    pub event_id: i64,
    /// The ticket type it takes from, if the event sells types.
    pub ticket_type_id: Option<i64>,
    pub quantity: i32,
    /// For a hold: how long it was asked to last.
    pub hold_seconds: Option<i32>,
    pub user_id: Option<i64>,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
