//! A client queued for tickets that were sold out. Created by the api;
//! offered (a hold with the entry's own id) by the worker that decides the
//! event, in `seq` order.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "waiting_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Its place in every queue: lower first.
    pub seq: i64,
    pub event_id: i64,
    pub ticket_type_id: Option<i64>,
    /// The client that joined; 0 is anonymous.
    pub client_id: i64,
    pub user_id: Option<i64>,
    pub quantity: i32,
    pub created_at: ChronoDateTimeUtc,
    /// When the worker offered it a hold (the reservation with its id).
    pub offered_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
