//! A mutation fuzzer for intake, usable on stable Rust (cargo-fuzz needs a
//! nightly toolchain, which this project does not require). It feeds
//! mutated messages — bit flips, byte insertions and deletions, truncation,
//! splices of two messages, repeated headers and boundaries — through
//! `intake::read` and `intake::decide` against an in-memory desk, and stops at
//! the first panic, printing the seed and writing the input to a file.
//!
//!   cargo run --release -p postdesk-core --example fuzz_intake -- CORPUS_DIR SECONDS [SEED]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use postdesk_core::config::Config;
use postdesk_core::duplicates::Candidate;
use postdesk_core::intake;
use postdesk_core::ticket::{Priority, Status};
use postdesk_core::view::{DeskView, TicketSnapshot};

/// A desk with a few tickets, answering every question deterministically.
struct FakeDesk;

impl DeskView for FakeDesk {
    fn ticket(&self, id: i64) -> Option<TicketSnapshot> {
        (1..=5).contains(&id).then(|| TicketSnapshot {
            id,
            subject: format!("Ticket {id}"),
            status: [
                Status::New,
                Status::Open,
                Status::Waiting,
                Status::Resolved,
                Status::Closed,
            ][(id - 1) as usize],
            priority: Priority::Medium,
            ticket_type: None,
            queue: "general".into(),
            mailbox: "soporte".into(),
            requester: "ana@cliente.com".into(),
            participants: vec!["ana@cliente.com".into()],
            categories: Vec::new(),
            customer: Some("Cliente S.A.".into()),
            assignee: None,
            duplicate_of: None,
            created_at: Utc
                .timestamp_opt(1_700_000_000, 0)
                .single()
                .unwrap_or_default(),
            resolved_at: None,
            closed_at: Some(
                Utc.timestamp_opt(1_700_000_000, 0)
                    .single()
                    .unwrap_or_default(),
            ),
            resolved_by: Some("luis@example.com".into()),
        })
    }
    fn ticket_for_message_id(&self, message_id: &str) -> Option<i64> {
        message_id.len().is_multiple_of(7).then_some(2)
    }
    fn message_id_seen(&self, message_id: &str) -> bool {
        message_id.len().is_multiple_of(11)
    }
    fn is_participant(&self, _ticket: i64, address: &str) -> bool {
        address.len().is_multiple_of(2)
    }
    fn automatic_mail_count(&self, address: &str, _since: DateTime<Utc>) -> u32 {
        address.len() as u32 % 7
    }
    fn bounce_stopped(&self, address: &str, _now: DateTime<Utc>) -> bool {
        address.len().is_multiple_of(13)
    }
    fn latest_customer_message_id(&self, _ticket: i64) -> Option<String> {
        Some("m@x".into())
    }
    fn duplicate_candidates(
        &self,
        _requester: &str,
        _customer: Option<&str>,
        _since: DateTime<Utc>,
    ) -> Vec<Candidate> {
        Vec::new()
    }
    fn notice_sent(&self, address: &str, _template: &str, _since: DateTime<Utc>) -> bool {
        address.len().is_multiple_of(3)
    }
}

const CONFIG: &str = r#"
[desk]
[[mailboxes]]
name = "soporte"
address = "soporte@example.com"
source = "maildir"
path = "mail"
notes_address = "notas@example.com"
[smtp]
transport = "file"
dir = "outbox"
[[agents]]
name = "Luis"
email = "luis@example.com"
[[customers]]
name = "Cliente S.A."
domains = ["cliente.com"]
[intake]
max_message_size = "2MB"
[[rules]]
subject = "(?i)factura"
set = { priority = "high" }
"#;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const FRAGMENTS: &[&[u8]] = &[
    b"\r\n--b\r\n",
    b"Content-Type: multipart/mixed; boundary=\"b\"\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"=?utf-8?B?w7E=?=",
    b"=?iso-2022-jp?B?GyRCJEskWyQzGyhC?=",
    b"[Ticket: 3]",
    b"#status resolved\n",
    b"Auto-Submitted: auto-replied\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"\r\n\r\n",
    b"=\r\n",
    b"\x00",
    b"\xff\xfe",
    b"Message-ID: <a@b>\r\n",
    b"> ## Reply above this line ##\n",
];

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(data.len() + 1);
                let frag = FRAGMENTS[rng.below(FRAGMENTS.len())];
                data.splice(i..i, frag.iter().copied());
            }
            2 if !data.is_empty() => {
                let i = rng.below(data.len());
                let n = rng.below((data.len() - i).min(512) + 1);
                data.drain(i..i + n);
            }
            3 => data.truncate(rng.below(data.len() + 1)),
            4 if !other.is_empty() => {
                let i = rng.below(data.len() + 1);
                let j = rng.below(other.len());
                data.truncate(i);
                data.extend_from_slice(&other[j..]);
            }
            5 if !data.is_empty() => {
                let i = rng.below(data.len());
                let n = rng.below((data.len() - i).min(256) + 1);
                let chunk = data[i..i + n].to_vec();
                for _ in 0..rng.below(50) {
                    data.splice(i..i, chunk.iter().copied());
                }
            }
            _ => {
                let i = rng.below(data.len() + 1);
                data.insert(i, rng.next() as u8);
            }
        }
    }
    data
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            files(&p, out);
        } else if std::fs::metadata(&p)
            .map(|m| m.len() < 2_000_000)
            .unwrap_or(false)
        {
            out.push(p);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(
        args.get(1)
            .map(String::as_str)
            .unwrap_or("../shared/corpus/real"),
    );
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60);
    let mut rng = Rng(args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15));
    let mut paths = Vec::new();
    files(&dir, &mut paths);
    paths.sort();
    let corpus: Vec<Vec<u8>> = paths.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    assert!(
        !corpus.is_empty(),
        "no corpus files under {}",
        dir.display()
    );
    let config = match Config::parse(CONFIG, "fuzz.toml") {
        Ok(c) => c,
        Err(e) => panic!("fuzz config: {e}"),
    };
    let mailbox = &config.mailboxes[0];
    let now = Utc
        .timestamp_opt(1_795_000_000, 0)
        .single()
        .unwrap_or_default();
    let started = Instant::now();
    let mut runs = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        let seed = rng.0;
        let a = &corpus[rng.below(corpus.len())];
        let b = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, a, b);
        let result = std::panic::catch_unwind(|| {
            let reading = intake::read(&input, &config);
            let _ = intake::decide(&reading, mailbox, &config, &FakeDesk, now);
        });
        if result.is_err() {
            let out = format!("fuzz-crash-{seed:x}.eml");
            let _ = std::fs::write(&out, &input);
            eprintln!("panic after {runs} runs; input written to {out}; seed {seed}");
            std::process::exit(1);
        }
        runs += 1;
    }
    println!(
        "fuzz_intake: {runs} inputs in {seconds} s from {} corpus files, no panic",
        corpus.len()
    );
}
