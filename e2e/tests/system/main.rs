//! System tests against real MariaDB, RabbitMQ, etcd and Redis, with the
//! api and workers running as separate processes. Run via `scripts/test`.

mod abuse;
mod faults;
mod lifecycle;
mod load;
mod seed;
mod settings;
mod validation;
