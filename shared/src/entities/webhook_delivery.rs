//! One message owed to one endpoint, and how its attempts went. Created
//! with the message; then written only by the dispatcher that claimed it
//! (and reset to `pending` by an admin's replay).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub message_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub endpoint_id: i64,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// When it is due: the next attempt, or the end of a dispatcher's claim.
    pub next_attempt_at: ChronoDateTimeUtc,
    pub last_attempt_at: Option<ChronoDateTimeUtc>,
    /// The HTTP status of the last answer, if there was one.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<ChronoDateTimeUtc>,
}

/// `pending` until an endpoint answers 2xx (`delivered`) or every attempt
/// failed (`failed`, until an admin replays it).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "delivered")]
    Delivered,
    #[sea_orm(string_value = "failed")]
    Failed,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
