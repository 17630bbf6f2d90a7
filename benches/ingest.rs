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
    let follow_ups = generate(&root.join("mail/new"), n);
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

/// A tiny deterministic generator: no randomness crate needed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn generate(new: &Path, n: usize) -> usize {
    std::fs::create_dir_all(new).expect("maildir");
    let mut rng = Lcg(42);
    let mut tickets = 0u64;
    let mut requesters: Vec<String> = Vec::new();
    let mut follow_ups = 0;
    for i in 0..n {
        let mut sender = format!("user{}@c{}.example", rng.next() % 40, rng.next() % 50);
        let spanish = !rng.next().is_multiple_of(3);
        let follow_up = tickets > 0 && rng.next() % 10 < 3;
        let subject = if follow_up {
            follow_ups += 1;
            let t = 1 + rng.next() % tickets;
            // The ticket's requester writes again: a real follow-up, not a foreign reply.
            sender = requesters[(t - 1) as usize].clone();
            if spanish {
                format!("RE: Consulta {t} [Ticket: {t}]")
            } else {
                format!("Re: Question {t} [Ticket: {t}]")
            }
        } else {
            tickets += 1;
            requesters.push(sender.clone());
            if spanish {
                format!("No puedo emitir la factura número {i}")
            } else {
                format!("Cannot export report {i}")
            }
        };
        let body = if spanish {
            "Buenos días:\n\nAl pulsar «Emitir» la aplicación muestra un error y no genera el PDF.\n¿Pueden revisarlo?\n\nUn saludo,\nAna García\n"
        } else {
            "Hello,\n\nWhen I click Export the application shows an error and no file is produced.\nCould you have a look?\n\nThanks,\nBob\n"
        };
        let with_attachment = rng.next().is_multiple_of(10);
        let mut mail = format!(
            "From: {sender}\r\nTo: soporte@example.com\r\nSubject: {subject}\r\nMessage-ID: <bench-{i}@example.net>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n"
        );
        if with_attachment {
            use base64::Engine;
            let pdf = format!(
                "%PDF-1.4 bench attachment {i}\n{}",
                "0 0 0 rg 100 700 Td (Informe) Tj\n".repeat(400)
            );
            let encoded = base64::engine::general_purpose::STANDARD.encode(pdf);
            let attachment: Vec<&str> = encoded
                .as_bytes()
                .chunks(76)
                .map(|c| std::str::from_utf8(c).unwrap_or(""))
                .collect();
            let attachment = attachment.join("\r\n");
            let _ = write!(
                mail,
                "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n--b\r\nContent-Type: application/pdf; name=\"informe-{i}.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"informe-{i}.pdf\"\r\n\r\n{attachment}\r\n--b--\r\n"
            );
        } else {
            let _ = write!(
                mail,
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}"
            );
        }
        std::fs::write(
            new.join(format!("{}.M{i:06}P1.bench", 1_700_000_000 + i)),
            mail,
        )
        .expect("write");
    }
    follow_ups
}
