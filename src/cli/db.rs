//! `postdesk db backup FILE [--force]`: an online, consistent copy of the
//! database, safe while the daemon runs and writes (see `store::backup`).
//! FILE must not exist unless `--force`; it is never half-written either way.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::load_desk;
use crate::Failure;
use crate::store::backup::{Existing, backup_database};

#[derive(Subcommand)]
pub enum DbCommand {
    /// Copy the database to FILE while postdesk keeps running.
    Backup {
        /// Where to write the copy (refused if it exists, unless --force).
        file: PathBuf,
        /// Replace FILE if it exists (atomically, once the copy is complete).
        #[arg(long)]
        force: bool,
    },
}

pub fn db(config: &Path, command: DbCommand) -> Result<u8, Failure> {
    let desk = load_desk(config)?;
    match command {
        DbCommand::Backup { file, force } => {
            let database = desk.database_path();
            let existing = if force {
                Existing::Replace
            } else {
                Existing::Refuse
            };
            let report = backup_database(&database, &file, existing)?;
            println!(
                "{} -> {}: {} pages, {} bytes, {} tickets, schema v{}",
                database.display(),
                report.path.display(),
                report.pages,
                report.bytes,
                report.tickets,
                report.schema_version
            );
            Ok(0)
        }
    }
}
