//! Code both binaries need to agree on: the wire format of commands and
//! outcomes, the database entities, the broker topology, live settings from
//! etcd, the optional Redis availability cache and connection helpers.

pub mod cache;
pub mod config;
pub mod db;
pub mod domain;
pub mod entities;
pub mod etcd;
pub mod messages;
pub mod prometheus;
pub mod reconnect;
pub mod sale_window;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod topology;
pub mod trace_context;
pub mod webhook;
