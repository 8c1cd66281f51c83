//! A client of the api (a storefront, a box office), known by its API key.
//! Only the key's SHA-256 is stored: the key itself is shown once, when the
//! client is created.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clients")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    #[sea_orm(unique)]
    pub key_hash: Vec<u8>,
    pub created_at: ChronoDateTimeUtc,
    /// Set when an admin revoked the key; a revoked key is refused.
    pub revoked_at: Option<ChronoDateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
