//! One file per subcommand. Each opens the desk it needs, does its work and
//! returns an exit code; a bad config is exit 2 with file, line and key.

pub mod check_config;
pub mod db;
pub mod export;
pub mod ingest;
pub mod logs;
pub mod report;
pub mod run;
pub mod sla;
pub mod ticket;

use std::path::Path;

use crate::Failure;
use crate::desk::{Desk, LoadError};
use crate::store::Store;

/// Loads the desk; configuration problems exit 2.
pub fn load_desk(config: &Path) -> Result<Desk, Failure> {
    Desk::load(config).map_err(|e| {
        let code = match e {
            LoadError::Read { .. } | LoadError::Invalid(_) | LoadError::Templates(_) => 2,
        };
        Failure {
            code,
            error: anyhow::Error::new(e),
        }
    })
}

pub fn open_store(desk: &Desk) -> Result<Store, Failure> {
    let path = desk.database_path();
    Store::open(&path).map_err(|e| Failure {
        code: 1,
        error: anyhow::anyhow!("opening {}: {e}", path.display()),
    })
}

/// Prints rows as aligned columns.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let text: Vec<String> = cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

pub fn print_json(value: &serde_json::Value) -> Result<(), Failure> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
