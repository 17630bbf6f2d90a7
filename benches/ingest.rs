//! Intake throughput benchmark (SPEC §10: ≥ 5,000 messages/s from a local
//! Maildir backlog of 10,000 mixed messages, peak RSS ≤ 50 MB).
//!
//! Generates a backlog (30 % follow-ups by tag, Spanish and English, one in
//! ten with an attachment, 2,000 senders across 50 customer domains) into a
//! Maildir, then times `postdesk run --once` — the daemon's real path: read,
//! decide, store, queue the ack and agent notifications, rename, and deliver
//! the outbox to `.eml` files — and reads the child's peak RSS (wait4).
//!
//! `cargo bench --bench ingest` (POSTDESK_BENCH_MESSAGES overrides 10000).
//! Ends with a `BENCH ingest key=value ...` line for `scripts/bench`.

#[path = "common/backlog.rs"]
mod backlog;
#[path = "common/postdesk.rs"]
mod postdesk;
#[path = "common/proc.rs"]
mod proc;

use std::time::Instant;

use postdesk::count;

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
    backlog::write_maildir_config(root);
    let generated = Instant::now();
    let (follow_ups, bytes) =
        backlog::generate(&root.join("mail/new"), n, "soporte@example.com", |_| {});
    println!(
        "generated {n} messages ({follow_ups} follow-ups, {:.1} MB) in {:.2?}",
        bytes as f64 / 1e6,
        generated.elapsed()
    );

    proc::settle();
    let run = postdesk::run_once(root, &[]);
    assert!(
        run.intake_ms > 0,
        "the daemon logs `mailbox drained` with elapsed_ms"
    );
    let inbound = count(root, &["inbound", "--json"]);
    let tickets = count(root, &["ticket", "list", "--json"]);
    let outbox = count(root, &["outbox", "--json"]);
    assert_eq!(inbound, n, "every message must have one inbound row");
    let intake_rate = n as f64 / (run.intake_ms.max(1) as f64 / 1000.0);
    let rate = n as f64 / run.elapsed.as_secs_f64();
    println!(
        "intake (read, decide, store, queue mail, rename): {n} messages in {} ms = {intake_rate:.0} messages/s (target >= 5000)",
        run.intake_ms
    );
    println!(
        "whole run --once, also delivering all {outbox} queued mails to .eml files: {:.2?} = {rate:.0} messages/s",
        run.elapsed
    );
    println!(
        "peak RSS: {:.1} MB (target <= 50 MB)",
        run.peak_kb as f64 / 1024.0
    );
    println!("tickets: {tickets}");
    backlog::report(
        "ingest",
        &[
            ("messages", n.to_string()),
            ("follow_ups", follow_ups.to_string()),
            ("bytes", bytes.to_string()),
            ("tickets", tickets.to_string()),
            ("queued_mails", outbox.to_string()),
            ("intake_ms", run.intake_ms.to_string()),
            ("intake_rate", format!("{intake_rate:.0}")),
            ("whole_ms", run.elapsed.as_millis().to_string()),
            ("whole_rate", format!("{rate:.0}")),
            ("peak_rss_kb", run.peak_kb.to_string()),
        ],
    );
}
