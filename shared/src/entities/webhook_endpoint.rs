//! A URL an admin registered for a client: the client's reservation state
//! changes are delivered there, signed with `secret`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub client_id: i64,
    pub url: String,
    pub description: Option<String>,
    /// `whsec_` and the base64 of the HMAC key (Standard Webhooks).
    pub secret: String,
    pub created_at: ChronoDateTimeUtc,
    /// Set when an admin removed it: no new messages, no more attempts.
    pub disabled_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
