//! Errors of the store.

/// A failure of the store: the database, or data in it that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened.
    #[error("failed to open the database {path}")]
    Open {
        /// The database path.
        path: String,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// An endpoint was refused: its network is being removed (or is gone).
    #[error("network {id} is being removed")]
    NetworkRemoving {
        /// The network's id.
        id: String,
    },
    /// A row holds something the model cannot read.
    #[error("corrupt row in the database: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the failure is a UNIQUE or PRIMARY KEY constraint, or the
    /// published ports' clash trigger: two requests raced for the same
    /// name, address or host port. A row missing behind a
    /// foreign key is not one: that is a removal in between, not a clash.
    pub fn is_constraint_violation(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_TRIGGER
        )
    }
}
