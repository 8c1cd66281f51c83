//! A kind of ticket an event sells, with its own capacity and price.
//! `available` is written by the worker that decides the event's
//! reservations (under the event's lock); the api creates types and changes
//! their capacity or closes them with conditional statements that never
//! take `available` below zero.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ticket_types")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub event_id: i64,
    pub name: String,
    pub price_cents: i64,
    pub capacity: i32,
    pub available: i32,
    /// The quota it shares with other types, if any.
    pub quota_id: Option<i64>,
    /// A closed type sells nothing more; what it sold stays sold.
    pub closed: bool,
    /// The type's own sale window, inside the event's (both optional).
    pub sale_opens_at: Option<ChronoDateTimeUtc>,
    pub sale_closes_at: Option<ChronoDateTimeUtc>,
    pub created_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
