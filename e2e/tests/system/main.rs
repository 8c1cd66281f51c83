//! System tests against real MariaDB, RabbitMQ, etcd and Redis, with the
//! api and workers running as separate processes. Run via `scripts/test`.

mod abuse;
mod admin;
mod browser;
mod clients;
mod defaults;
mod dependencies;
mod faults;
mod holds;
mod idempotency;
mod integration;
mod lifecycle;
mod limits;
mod live_page;
mod load;
mod metrics;
mod partitions;
mod poison;
mod reads;
mod sale_windows;
mod seed;
mod settings;
mod ticket_types;
mod ticketctl;
mod trace;
mod waiting_list;
mod webhook_admin;
mod webhooks;
