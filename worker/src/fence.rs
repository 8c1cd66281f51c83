//! Fencing tokens that survive etcd going back in time.
//!
//! A token is the lock key's revision, and the event row refuses a write
//! with a token lower than the last one that wrote it. If etcd is restored
//! from an older snapshot, its revisions start again below what the rows
//! stored, and every write would be refused forever. So a token carries an
//! epoch above the revision: `epoch << 40 | revision`. The epoch lives in
//! MySQL (`fencing_epoch`). A worker whose write is refused compares the
//! stored token with etcd's current revision: a token etcd has never issued
//! can only come from before a restore, so the worker moves the epoch on
//! (compare-and-set, so concurrent workers move it once) and every token of
//! the new epoch is above every token of the old. A worker still holding a
//! lock from before the restore presents the old epoch and is refused.

use std::sync::atomic::{AtomicI64, Ordering};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};

/// Bits of a token that hold the etcd revision (a trillion revisions).
const REVISION_BITS: u32 = 40;
const REVISION_MASK: i64 = (1 << REVISION_BITS) - 1;

pub fn token(epoch: i64, revision: i64) -> i64 {
    (epoch << REVISION_BITS) | (revision & REVISION_MASK)
}

fn epoch_of(token: i64) -> i64 {
    token >> REVISION_BITS
}

fn revision_of(token: i64) -> i64 {
    token & REVISION_MASK
}

#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
}

/// This worker's view of the fencing epoch.
#[derive(Debug, Default)]
pub struct Epoch(AtomicI64);

impl Epoch {
    pub async fn load(db: &DatabaseConnection) -> Result<Self, DbErr> {
        Ok(Self(AtomicI64::new(read(db).await?)))
    }

    pub fn current(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }

    /// After a write was refused because the event stored `stored`: adopt
    /// the epoch another worker started, or start the next one if `stored`
    /// is a revision etcd has never issued. Otherwise a newer holder wrote,
    /// and the refusal stands.
    pub async fn reconcile(
        &self,
        db: &DatabaseConnection,
        etcd: &mut etcd_client::Client,
        stored: i64,
    ) -> Result<(), FenceError> {
        let epoch = read(db).await?;
        if epoch > self.current() {
            self.0.store(epoch, Ordering::Release);
            tracing::info!(epoch, "adopted a newer fencing epoch");
            return Ok(());
        }
        if epoch_of(stored) != epoch {
            return Ok(());
        }
        // Any read returns etcd's current revision in its header
        // (linearizable: never from a lagging member).
        let current = etcd
            .get("\0", None)
            .await?
            .header()
            .map_or(0, |header| header.revision());
        if revision_of(stored) <= current {
            return Ok(());
        }
        let moved = db
            .execute_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "UPDATE fencing_epoch SET epoch = epoch + 1 WHERE id = 1 AND epoch = ?",
                [epoch.into()],
            ))
            .await?
            .rows_affected()
            == 1;
        let next = read(db).await?;
        self.0.store(next, Ordering::Release);
        if moved {
            tracing::warn!(
                stored_revision = revision_of(stored),
                etcd_revision = current,
                epoch = next,
                "etcd's revision went backwards (restored from a snapshot?); fencing epoch moved on"
            );
        } else {
            tracing::info!(
                epoch = next,
                "adopted the fencing epoch another worker started"
            );
        }
        Ok(())
    }
}

async fn read(db: &DatabaseConnection) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT epoch FROM fencing_epoch WHERE id = 1",
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("fencing_epoch row 1".into()))?;
    row.try_get("", "epoch")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_epoch_outranks_every_revision_of_an_earlier_one() {
        let before_restore = token(0, 900_000);
        let after_restore = token(1, 12);
        assert!(after_restore > before_restore);
        assert!(token(1, 13) > after_restore);
        assert_eq!(epoch_of(after_restore), 1);
        assert_eq!(revision_of(after_restore), 12);
        assert_eq!(token(0, 77), 77, "epoch 0 tokens are plain revisions");
    }
}
