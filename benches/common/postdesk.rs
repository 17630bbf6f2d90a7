//! Running the release `postdesk` binary from the benchmarks.

#![allow(dead_code, reason = "each bench uses a part of this module")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{backlog, proc};

pub const BIN: &str = env!("CARGO_BIN_EXE_postdesk");

pub struct Run {
    /// The daemon's own `mailbox drained elapsed_ms`: intake alone.
    pub intake_ms: u64,
    /// The whole process, start to exit.
    pub elapsed: Duration,
    pub peak_kb: i64,
    pub stderr: Vec<u8>,
}

/// One `postdesk run --once` over the desk in `root`; JSON logs at info.
pub fn run_once(root: &Path, extra: &[&str]) -> Run {
    let out = proc::measure(
        Command::new(BIN)
            .arg("--config")
            .arg(root.join("postdesk.toml"))
            .args(["--log-format", "json"])
            .args(extra)
            .args(["run", "--once"])
            .env("RUST_LOG", "postdesk=info"),
    );
    assert!(
        out.status == 0,
        "postdesk run --once failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let intake_ms = backlog::logged(&out.stderr, "mailbox drained", "elapsed_ms")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    Run {
        intake_ms,
        elapsed: out.elapsed,
        peak_kb: out.peak_kb,
        stderr: out.stderr,
    }
}

/// The number of rows a `--json` listing of the desk in `root` prints.
pub fn count(root: &Path, args: &[&str]) -> usize {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(root.join("postdesk.toml"))
        .args(args)
        .output()
        .expect("postdesk");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v.as_array().map_or(0, Vec::len)
}
