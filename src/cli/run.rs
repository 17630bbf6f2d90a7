//! `postdesk run [--once]`: the daemon (see `daemon.rs`).

use std::path::Path;
use std::sync::Arc;

use super::load_desk;
use crate::Failure;
use crate::clock::Clock;
use crate::daemon;

pub fn run(config: &Path, clock: Clock, once: bool) -> Result<u8, Failure> {
    let desk = Arc::new(load_desk(config)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(daemon::run(config, desk, clock, once))?;
    Ok(0)
}
