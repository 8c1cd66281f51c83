//! An event with a fixed capacity. `available` is only ever changed by a
//! worker holding the event's lock, and `fence_token` records the highest
//! lock revision that wrote the row (DESIGN.md §3).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub venue: Option<String>,
    pub starts_at: Option<ChronoDateTimeUtc>,
    /// Reservations are refused before this time (none: on sale at once).
    pub sale_opens_at: Option<ChronoDateTimeUtc>,
    /// Reservations are refused from this time on (none: never closes).
    pub sale_closes_at: Option<ChronoDateTimeUtc>,
    pub capacity: i32,
    /// Most tickets one user may hold and have confirmed (none: no limit).
    pub max_per_user: Option<i32>,
    /// How many ticket types it has (0: it sells untyped tickets only).
    pub ticket_types: i32,
    /// Waiting-list entries not offered tickets yet.
    pub waiting: i32,
    pub available: i32,
    pub fence_token: i64,
    /// Bumped by every committed decision; orders cache writes.
    pub version: i64,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
