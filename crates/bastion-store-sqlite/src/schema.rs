//! The SQLite schema and its migrations.
//!
//! The schema version lives in `PRAGMA user_version`; `PRAGMA application_id` marks the file
//! as a Bastion store. [`MIGRATIONS`]`[i]` takes a database from version `i` to `i + 1`; all
//! pending steps run in one `IMMEDIATE` transaction at open, so a database is never left
//! half-migrated. A version newer than [`SCHEMA_VERSION`] is refused with
//! [`StoreError::SchemaTooNew`] before anything is written.
//!
//! Append new steps at the end; never edit a released step.

use rusqlite::{Connection, TransactionBehavior};

use crate::map_err;
use bastion_store::StoreError;

/// `PRAGMA application_id` of a Bastion store ("BSTN").
pub(crate) const APPLICATION_ID: i64 = 0x4253_544E;

/// Ordered migration steps; step `i` migrates from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the resource table.
    //
    //
    // Every write touches three B-trees: the table itself (clustered on ri, WITHOUT ROWID,
    // so no separate ri index), (pi, rn) and (pi, seq). Start-up reads (the instance index,
    // max(seq)) scan instead of keeping a (ty, seq) index current on every write.
    // * (pi, rn) UNIQUE: rn is unique among siblings; also serves child_by_name.
    // * (pi, seq): children in creation order, DeleteChildren.
    // * partial (seq) WHERE ty <> 4: load_tree in seq order without walking the instances.
    "CREATE TABLE resources (
        ri   TEXT    NOT NULL PRIMARY KEY,
        pi   TEXT    NOT NULL,
        rn   TEXT    NOT NULL,
        ty   INTEGER NOT NULL,
        seq  INTEGER NOT NULL,
        size INTEGER NOT NULL DEFAULT 0,
        et   TEXT,
        body TEXT    NOT NULL
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX resources_pi_rn ON resources (pi, rn);
    CREATE INDEX resources_pi_seq ON resources (pi, seq);
    CREATE INDEX resources_tree_seq ON resources (seq) WHERE ty <> 4;",
    // 1 -> 2: instance-ness is data, not `ty = 4`. The core says per row whether it is part
    // of the tree (0) or an instance kept on disk (1), so `<timeSeriesInstance>` and
    // `<flexContainerInstance>` rows are instances without a change here. Every row of
    // version 1 with ty 4 was a `<contentInstance>` and becomes an instance; the partial
    // index follows the new column.
    "ALTER TABLE resources
        ADD COLUMN instance INTEGER NOT NULL DEFAULT 0 CHECK (instance IN (0, 1));
    UPDATE resources SET instance = 1 WHERE ty = 4;
    DROP INDEX resources_tree_seq;
    CREATE INDEX resources_tree_seq ON resources (seq) WHERE instance = 0;",
];

/// The schema version this code writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(map_err)
}

fn application_id(conn: &Connection) -> Result<i64, StoreError> {
    conn.pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(map_err)
}

/// Refuses a database this code cannot use, without writing to it.
pub(crate) fn check_readable(conn: &Connection) -> Result<(), StoreError> {
    let found = user_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found > 0 {
        let app = application_id(conn)?;
        if app != APPLICATION_ID {
            return Err(StoreError::Corrupt(format!(
                "not a Bastion store (application_id {app:#x})"
            )));
        }
    }
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction. Returns the version found.
pub(crate) fn migrate(conn: &mut Connection) -> Result<i64, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    // Re-read under the write lock: another process may have migrated meanwhile.
    check_readable(&tx)?;
    let found = user_version(&tx)?;
    let start = usize::try_from(found)
        .map_err(|_| StoreError::Corrupt(format!("negative schema version {found}")))?;
    if start < MIGRATIONS.len() {
        for (step, sql) in MIGRATIONS.iter().enumerate().skip(start) {
            tracing::info!(from = step, to = step + 1, "migrating store schema");
            tx.execute_batch(sql).map_err(map_err)?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(map_err)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(map_err)?;
    }
    tx.commit().map_err(map_err)?;
    Ok(found)
}
