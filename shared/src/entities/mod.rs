//! sea-orm entities for the tables. The schema itself is owned by the
//! `migrations` crate; these mirror it.

pub mod client;
pub mod event;
pub mod quota;
pub mod reservation;
pub mod reservation_request;
mod status;
pub mod ticket_type;
pub mod user;
pub mod waiting_entry;
pub mod webhook_delivery;
pub mod webhook_endpoint;
pub mod webhook_message;
