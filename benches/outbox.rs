//! Outbox delivery to a local MTA (SPEC §10: ≥ 200 mails/s).
//!
//! `postdesk ingest` takes in N messages of the generated backlog (it queues
//! the acknowledgements and team notifications but never delivers), then one
//! `postdesk run --once` with an empty mailbox delivers the whole outbox over
//! SMTP (`security = "none"`, loopback) to a real Postfix. The figure is the
//! daemon's own `outbox pass done elapsed_ms`: from the first due row read to
//! the last outcome committed, i.e. every mail accepted by Postfix (250 after
//! DATA). Postfix's onward LMTP delivery to Dovecot runs at the same time on
//! the same two cores, as it would in production. The SMTP connections
//! Postfix saw during the pass are counted from its log.
//!
//! Starts its own mail server (`scripts/mailserver`, as root) on free ports,
//! or with POSTDESK_BENCH_MS_ENV=1 uses the one the `MS_*` variables describe.
//! `cargo bench --bench outbox`; POSTDESK_BENCH_MESSAGES (1000) sets how many
//! messages are taken in (each queues about 1.7 mails). Ends with a `BENCH
//! outbox key=value ...` line for `scripts/bench`.

#[path = "common/backlog.rs"]
mod backlog;
#[allow(dead_code, reason = "shared with the tests; the bench uses a part")]
#[path = "../tests/common/mail.rs"]
mod mail;
#[path = "common/postdesk.rs"]
mod postdesk;
#[path = "common/proc.rs"]
mod proc;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use mail::MailServer;
use postdesk::{BIN, count};

fn main() {
    let n: usize = std::env::var("POSTDESK_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let started = Instant::now();
    let (_instance, server) = mail::bench_server();
    println!(
        "mail server up in {:.1} s (SMTP 127.0.0.1:{})",
        started.elapsed().as_secs_f64(),
        server.smtp_port
    );

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let root = dir.path();
    write_config(root, &server);
    let incoming = root.join("incoming");
    let mut files = Vec::new();
    backlog::generate(&incoming, n, "soporte@example.com", |p| {
        files.push(p.to_path_buf())
    });
    let queued_at = Instant::now();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(root.join("postdesk.toml"))
        .arg("ingest")
        .args(&files)
        .env("RUST_LOG", "warn")
        .output()
        .expect("postdesk ingest");
    assert!(
        out.status.success(),
        "postdesk ingest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pending = count(root, &["outbox", "--status", "pending", "--json"]);
    println!(
        "queued {pending} mails by taking in {n} messages in {:.2?}",
        queued_at.elapsed()
    );
    assert!(pending > 0, "intake queued no mail");

    let log = server.dir.join("log/postfix.log");
    let connects_before = connects(&log);
    let run = postdesk::run_once(root, &[]);
    let field = |name: &str| {
        backlog::logged(&run.stderr, "outbox pass done", name)
            .and_then(|v| v.as_u64())
            .unwrap_or_else(|| panic!("the daemon logs `outbox pass done` with {name}"))
    };
    let (sent, failed, retried, pass_ms) = (
        field("sent"),
        field("failed"),
        field("retried"),
        field("elapsed_ms"),
    );
    assert_eq!(
        (sent, failed, retried),
        (pending as u64, 0, 0),
        "every queued mail is accepted by Postfix: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(count(root, &["outbox", "--status", "pending", "--json"]), 0);
    // Postfix logs asynchronously; give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let connections = connects(&log).saturating_sub(connects_before);
    let rate = sent as f64 / (pass_ms.max(1) as f64 / 1000.0);
    println!(
        "outbox pass: {sent} mails handed to Postfix over SMTP in {pass_ms} ms = {rate:.0} mails/s (target >= 200); {connections} SMTP connections; whole run --once {:.2?}, peak RSS {:.1} MB",
        run.elapsed,
        run.peak_kb as f64 / 1024.0
    );
    backlog::report(
        "outbox",
        &[
            ("messages", n.to_string()),
            ("mails", sent.to_string()),
            ("pass_ms", pass_ms.to_string()),
            ("rate", format!("{rate:.0}")),
            ("connections", connections.to_string()),
            ("whole_ms", run.elapsed.as_millis().to_string()),
            ("peak_rss_kb", run.peak_kb.to_string()),
        ],
    );
}

/// SMTP connections Postfix's smtpd logged so far.
fn connects(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("smtpd[") && l.contains(": connect from"))
        .count()
}

fn write_config(root: &Path, server: &MailServer) {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut text = format!(
        "[desk]\nname = \"Bench\"\ntemplates_dir = \"{}\"\n\n[[mailboxes]]\nname = \"soporte\"\naddress = \"soporte@example.com\"\nsource = \"maildir\"\npath = \"mail\"\n\n[smtp]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n\n[intake]\nack_rate_limit = \"100/h\"\n\n",
        templates.display(),
        server.smtp_port
    );
    backlog::write_people(&mut text);
    std::fs::write(root.join("postdesk.toml"), text).expect("config");
    std::fs::create_dir_all(root.join("mail/new")).expect("maildir");
    std::fs::create_dir_all(root.join("mail/cur")).expect("maildir");
    std::fs::create_dir_all(root.join("mail/tmp")).expect("maildir");
}
