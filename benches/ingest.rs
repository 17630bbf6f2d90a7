//! Intake throughput benchmark (SPEC §10: ≥ 5,000 messages/s from a local
//! Maildir backlog of 10,000 mixed messages, peak RSS ≤ 50 MB).
//!
//! Generates a backlog (30 % follow-ups by tag, Spanish and English, one in
//! ten with an attachment, 2,000 senders across 50 customer domains) into a
//! Maildir, then times `postdesk run --once` — the daemon's real path: read,
//! decide, store, queue the ack and agent notifications, rename, and deliver
//! the outbox to `.eml` files — and reads the child's peak RSS from
//! getrusage(RUSAGE_CHILDREN).
//!
//! `cargo bench --bench ingest` (POSTDESK_BENCH_MESSAGES overrides 10000).

#[path = "common/backlog.rs"]
mod backlog;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_postdesk");

fn main() {
    let n: usize = std::env::var("POSTDESK_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // Under target/tmp: a fresh directory like a real var/ (this machine's /tmp
    // has block groups so full of deleted inodes that creating a file takes 1 ms).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    // POSTDESK_BENCH_DIR keeps the generated desk for profiling.
    let kept = std::env::var_os("POSTDESK_BENCH_DIR").map(std::path::PathBuf::from);
    if let Some(k) = &kept {
        let _ = std::fs::remove_dir_all(k);
        std::fs::create_dir_all(k).expect("bench dir");
    }
    let root = kept.as_deref().unwrap_or(dir.path());
    write_config(root);
    let generated = Instant::now();
    let (follow_ups, _) =
        backlog::generate(&root.join("mail/new"), n, "soporte@example.com", |_| {});
    println!(
        "generated {n} messages ({follow_ups} follow-ups) in {:.2?}",
        generated.elapsed()
    );

    let started = Instant::now();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(root.join("postdesk.toml"))
        .args(["--log-format", "json", "run", "--once"])
        .env("RUST_LOG", "postdesk=info")
        .output()
        .expect("run postdesk");
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "postdesk run --once failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peak_kb = peak_child_rss_kb();
    // The daemon logs how long draining the mailbox took: intake alone.
    let intake_ms = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["fields"]["elapsed_ms"].as_u64())
        .expect("the daemon logs `mailbox drained` with elapsed_ms");

    let inbound = count(root, &["inbound", "--json"]);
    let tickets = count(root, &["ticket", "list", "--json"]);
    let outbox = count(root, &["outbox", "--json"]);
    assert_eq!(inbound, n, "every message must have one inbound row");
    let intake_rate = n as f64 / (intake_ms.max(1) as f64 / 1000.0);
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "intake (read, decide, store, queue mail, rename): {n} messages in {intake_ms} ms = {intake_rate:.0} messages/s (target >= 5000)"
    );
    println!(
        "whole run --once, also delivering all {outbox} queued mails to .eml files: {elapsed:.2?} = {rate:.0} messages/s"
    );
    println!(
        "peak RSS: {:.1} MB (target <= 50 MB)",
        peak_kb as f64 / 1024.0
    );
    println!("tickets: {tickets}");
}

fn count(root: &Path, args: &[&str]) -> usize {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(root.join("postdesk.toml"))
        .args(args)
        .output()
        .expect("postdesk");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v.as_array().map_or(0, Vec::len)
}

fn peak_child_rss_kb() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    usage.ru_maxrss
}

fn write_config(root: &Path) {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut text = format!(
        "[desk]\nname = \"Bench\"\ntemplates_dir = \"{}\"\n\n[[mailboxes]]\nname = \"soporte\"\naddress = \"soporte@example.com\"\nsource = \"maildir\"\npath = \"mail\"\n\n[smtp]\ntransport = \"file\"\ndir = \"outbox\"\n\n[intake]\nack_rate_limit = \"100/h\"\n\n",
        templates.display()
    );
    for a in 0..3 {
        let _ = writeln!(
            text,
            "[[agents]]\nname = \"Agent {a}\"\nemail = \"agent{a}@example.com\"\n"
        );
    }
    for c in 0..50 {
        let lang = if c % 3 == 0 { "en" } else { "es" };
        let _ = writeln!(
            text,
            "[[customers]]\nname = \"Customer {c}\"\ndomains = [\"c{c}.example\"]\nlanguage = \"{lang}\"\n"
        );
    }
    std::fs::write(root.join("postdesk.toml"), text).expect("config");
}
