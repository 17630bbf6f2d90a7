//! IMAP benchmarks against a real Dovecot + Postfix on loopback (SPEC §10):
//!
//! 1. backlog: 10,000 mixed messages (30 % follow-ups by tag, one in ten
//!    with an attachment) waiting in a Dovecot folder are drained by
//!    `postdesk run --once` — connect, list by UID, fetch in batches with
//!    BODY.PEEK[], take in, flag `\Seen`, save the resume point — and the
//!    queued mail is then written to `.eml` files. Target ≥ 500 messages/s;
//!    peak RSS of the postdesk process (wait4) is reported.
//! 2. latency: `postdesk run` waits in IDLE; a mail is submitted to Postfix
//!    (→ LMTP → Dovecot → IDLE wake-up → intake → outbox); the clock stops
//!    when postdesk hands the ack to SMTP (the end of DATA at a local SMTP
//!    sink that stands in for the MTA). Median of 20 rounds; target < 1 s
//!    (Dovecot itself holds IDLE notifications ~500 ms).
//!
//! The backlog is written straight into the Dovecot user's Maildir (owned by
//! uid 8, as LMTP would) and indexed by one SELECT before the clock starts,
//! like mail that arrived while postdesk was down.
//!
//! Starts its own mail server (`scripts/mailserver`, as root) on free ports
//! in its own directory, or with POSTDESK_BENCH_MS_ENV=1 uses the running one
//! the `MS_*` variables describe (`scripts/bench` does). `cargo bench --bench
//! imap`; POSTDESK_BENCH_MESSAGES (10000) and POSTDESK_BENCH_ROUNDS (20)
//! override the sizes. Prints `BENCH imap_backlog ...` and `BENCH
//! imap_latency ...` lines for `scripts/bench`.

#[path = "common/backlog.rs"]
mod backlog;

#[allow(dead_code, reason = "shared with the tests; the bench uses a part")]
#[path = "../tests/common/mail.rs"]
mod mail;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mail::{Imap, MailServer, chown_mail, smtp_send, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_postdesk");

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let messages = env_number("POSTDESK_BENCH_MESSAGES", 10_000);
    let rounds = env_number("POSTDESK_BENCH_ROUNDS", 20);
    let started = Instant::now();
    let (_instance, server) = mail::bench_server();
    println!(
        "mail server up in {:.1} s (IMAP 127.0.0.1:{}, SMTP 127.0.0.1:{})",
        started.elapsed().as_secs_f64(),
        server.imap_port,
        server.smtp_port
    );
    backlog(&server, messages);
    latency(&server, rounds);
}

// ------------------------------------------------------------- backlog ----

#[allow(
    clippy::zombie_processes,
    reason = "the child is reaped with wait4, which also gives its peak RSS"
)]
fn backlog(server: &MailServer, n: usize) {
    let folder = "bench";
    let mut imap = Imap::login(server, "support");
    imap.delete(folder);
    imap.create(folder);
    let generated = Instant::now();
    let new = server.dir.join("mail/support/Maildir/.bench/new");
    let (follow_ups, bytes) = generate(&new, n);
    // Dovecot indexes the new files at the next SELECT, as after delivery.
    let indexed = Instant::now();
    imap.select(folder);
    println!(
        "backlog: {n} messages ({follow_ups} follow-ups, {:.1} MB) written in {:.2?}, indexed by Dovecot in {:.2?}",
        bytes as f64 / 1e6,
        generated.elapsed() - indexed.elapsed(),
        indexed.elapsed()
    );

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    write_config(dir.path(), server, folder, Transport::File);
    let started = Instant::now();
    let child = Command::new(BIN)
        .arg("--config")
        .arg(dir.path().join("postdesk.toml"))
        .args(["--log-format", "json", "run", "--once"])
        .env("RUST_LOG", "postdesk=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run postdesk");
    let pid = child.id() as i32;
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let (status, peak_kb) = wait4(pid);
    let elapsed = started.elapsed();
    assert!(
        status == 0,
        "postdesk run --once failed ({status}): {stderr}"
    );
    let drain_ms = backlog::logged(stderr.as_bytes(), "mailbox drained", "elapsed_ms")
        .and_then(|v| v.as_u64())
        .expect("the daemon logs `mailbox drained` with elapsed_ms");
    let inbound = count(dir.path(), &["inbound", "--json"]);
    let outbox = count(dir.path(), &["outbox", "--json"]);
    assert_eq!(inbound, n, "every message must have one inbound row");
    // NOOP first: this session learns of postdesk's flags, then searches.
    imap.ok("NOOP");
    let unseen = imap
        .ok("UID SEARCH UNSEEN")
        .iter()
        .filter_map(|r| r.text.strip_prefix("* SEARCH"))
        .map(|uids| uids.split_whitespace().count())
        .sum::<usize>();
    assert_eq!(unseen, 0, "every message is flagged \\Seen");
    imap.delete(folder);
    imap.logout();
    println!(
        "backlog: IMAP drain (list, fetch, take in, flag \\Seen, save the resume point): {n} messages in {drain_ms} ms = {:.0} messages/s (target >= 500)",
        n as f64 / (drain_ms.max(1) as f64 / 1000.0)
    );
    println!(
        "backlog: whole run --once (connect, drain, write all {outbox} queued mails to .eml files): {elapsed:.2?} = {:.0} messages/s",
        n as f64 / elapsed.as_secs_f64()
    );
    println!(
        "backlog: peak RSS of postdesk: {:.1} MB",
        peak_kb as f64 / 1024.0
    );
    backlog::report(
        "imap_backlog",
        &[
            ("messages", n.to_string()),
            ("bytes", bytes.to_string()),
            ("queued_mails", outbox.to_string()),
            ("drain_ms", drain_ms.to_string()),
            (
                "drain_rate",
                format!("{:.0}", n as f64 / (drain_ms.max(1) as f64 / 1000.0)),
            ),
            ("whole_ms", elapsed.as_millis().to_string()),
            (
                "whole_rate",
                format!("{:.0}", n as f64 / elapsed.as_secs_f64()),
            ),
            ("peak_rss_kb", peak_kb.to_string()),
        ],
    );
}

/// Waits for `pid`; its exit status and peak RSS (KiB).
fn wait4(pid: i32) -> (i32, i64) {
    let mut status = 0;
    // SAFETY: wait4 writes into the zeroed struct and the int we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage.ru_maxrss)
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

enum Transport {
    File,
    Smtp(u16),
}

fn write_config(root: &Path, server: &MailServer, folder: &str, transport: Transport) {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    std::fs::write(root.join("imap-password"), &server.password).expect("password");
    let transport = match transport {
        Transport::File => "transport = \"file\"\ndir = \"outbox\"".to_string(),
        Transport::Smtp(port) => format!(
            "transport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\""
        ),
    };
    let mut text = format!(
        "[desk]\nname = \"Bench\"\ntemplates_dir = \"{}\"\n\n[[mailboxes]]\nname = \"soporte\"\naddress = \"support@example.test\"\nsource = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nusername = \"support\"\npassword_file = \"imap-password\"\nfolder = \"{folder}\"\npoll_interval = \"10m\"\n\n[smtp]\n{transport}\n\n[intake]\nack_rate_limit = \"100/h\"\n\n",
        templates.display(),
        server.imap_port
    );
    backlog::write_people(&mut text);
    std::fs::write(root.join("postdesk.toml"), text).expect("config");
}

/// The same mix as the Maildir intake bench, written as Dovecot's Maildir
/// files owned by its mail user. Returns the number of follow-ups and of bytes.
fn generate(new: &Path, n: usize) -> (usize, usize) {
    backlog::generate(new, n, "support@example.test", chown_mail)
}

// ------------------------------------------------------------- latency ----

/// A local SMTP sink standing in for the MTA: accepts everything and
/// reports each message with the instant its DATA ended.
fn smtp_sink() -> (u16, mpsc::Receiver<(Instant, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = conn.set_nodelay(true);
                let mut writer = conn.try_clone().expect("clone");
                let mut reader = BufReader::new(conn);
                let _ = writer.write_all(b"220 sink.example ESMTP\r\n");
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 sink.example\r\n",
                        "DATA" => {
                            let _ = writer.write_all(b"354 go on\r\n");
                            let mut data = String::new();
                            loop {
                                let mut l = String::new();
                                if reader.read_line(&mut l).unwrap_or(0) == 0 || l == ".\r\n" {
                                    break;
                                }
                                data.push_str(&l);
                            }
                            let _ = tx.send((Instant::now(), data));
                            b"250 2.0.0 queued\r\n"
                        }
                        "QUIT" => {
                            let _ = writer.write_all(b"221 bye\r\n");
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    if writer.write_all(reply).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    (port, rx)
}

fn latency(server: &MailServer, rounds: usize) {
    let folder = "latency";
    let mut imap = Imap::login(server, "support");
    imap.delete(folder);
    imap.create(folder);
    let (sink, arrivals) = smtp_sink();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    write_config(dir.path(), server, folder, Transport::Smtp(sink));
    let log = dir.path().join("daemon.log");
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(dir.path().join("postdesk.toml"))
        .arg("run")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("postdesk run");
    wait_for("postdesk to connect", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("IMAP connected").then_some(())
    });
    let mut samples = Vec::new();
    for round in 0..rounds {
        let id = format!("latency-{round}@c{}.example", round % 50);
        let from = format!("user{round}@c{}.example", round % 50);
        let raw = format!(
            "From: {from}\r\nTo: support@example.test\r\nSubject: Consulta de latencia {round}\r\nMessage-ID: <{id}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMedicion {round}.\r\n"
        );
        let sent = Instant::now();
        smtp_send(
            server,
            &from,
            "support+latency@example.test",
            raw.as_bytes(),
        );
        let deadline = sent + Duration::from_secs(30);
        let acked = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, data) = arrivals
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no ack for round {round} within 30 s"));
            if data.contains(&format!("In-Reply-To: <{id}>")) {
                break at;
            }
        };
        samples.push(acked - sent);
    }
    // SAFETY: kill(2) on the pid of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert!(status.success(), "postdesk run exit: {status}");
    imap.delete(folder);
    imap.logout();
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(samples[samples.len() / 2]);
    let p90 = ms(samples[(samples.len() * 9 / 10).min(samples.len() - 1)]);
    println!(
        "latency (SMTP submission -> Postfix -> Dovecot -> IDLE -> intake -> ack handed to SMTP), {rounds} rounds: median {median:.0} ms, p90 {p90:.0} ms, min {:.0} ms, max {:.0} ms (target median < 1000 ms)",
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
    backlog::report(
        "imap_latency",
        &[
            ("rounds", rounds.to_string()),
            ("median_ms", format!("{median:.0}")),
            ("p90_ms", format!("{p90:.0}")),
            ("min_ms", format!("{:.0}", ms(samples[0]))),
            ("max_ms", format!("{:.0}", ms(samples[samples.len() - 1]))),
        ],
    );
}
