//! sea-orm entities for the three tables. The schema itself is owned by the
//! `migrations` crate; these mirror it.

pub mod event;
pub mod reservation;
pub mod user;
