//! The generated backlog every intake benchmark uses (Maildir, IMAP and the
//! Roundup comparison): 30 % follow-ups by tag from their requester, Spanish
//! and English, one in ten with a PDF attachment, 2,000 senders across 50
//! customer domains. Deterministic, so the benchmarks measure the same mail.
//! Non-ASCII subjects are RFC 2047 encoded words, as mail clients send them.

#![allow(dead_code, reason = "each bench uses a part of this module")]

use std::fmt::Write as _;
use std::path::Path;

/// A tiny deterministic generator: no randomness crate needed.
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// One generated message.
pub struct Generated {
    /// The whole message, CRLF line ends.
    pub raw: String,
    /// The ticket it belongs to: a new message opens the next number
    /// (1, 2, ...), a follow-up carries its ticket's tag.
    pub ticket: u64,
    pub follow_up: bool,
}

/// The first `n` messages of the backlog, addressed to `to`.
pub fn messages(n: usize, to: &str) -> Vec<Generated> {
    let mut rng = Lcg(42);
    let mut tickets = 0u64;
    let mut requesters: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut sender = format!("user{}@c{}.example", rng.next() % 40, rng.next() % 50);
        let spanish = !rng.next().is_multiple_of(3);
        let follow_up = tickets > 0 && rng.next() % 10 < 3;
        let (subject, ticket) = if follow_up {
            let t = 1 + rng.next() % tickets;
            // The ticket's requester writes again: a real follow-up, not a foreign reply.
            sender = requesters[(t - 1) as usize].clone();
            let subject = if spanish {
                format!("RE: Consulta {t} [Ticket: {t}]")
            } else {
                format!("Re: Question {t} [Ticket: {t}]")
            };
            (subject, t)
        } else {
            tickets += 1;
            requesters.push(sender.clone());
            let subject = if spanish {
                // "No puedo emitir la factura número {i}"
                format!("=?utf-8?q?No_puedo_emitir_la_factura_n=C3=BAmero_{i}?=")
            } else {
                format!("Cannot export report {i}")
            };
            (subject, tickets)
        };
        // Every ticket's text differs (a reference), as real ones do; identical
        // texts from one sender would be cancelled as duplicates.
        let text = if spanish {
            "Buenos días:\n\nAl pulsar «Emitir» la aplicación muestra un error y no genera el PDF.\n¿Pueden revisarlo?\n\nUn saludo,\nAna García\n"
        } else {
            "Hello,\n\nWhen I click Export the application shows an error and no file is produced.\nCould you have a look?\n\nThanks,\nBob\n"
        };
        let body = if spanish {
            format!("{text}Referencia: pedido {i}\n")
        } else {
            format!("{text}Reference: order {i}\n")
        };
        let with_attachment = rng.next().is_multiple_of(10);
        let mut mail = format!(
            "From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <bench-{i}@example.net>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n"
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
        out.push(Generated {
            raw: mail,
            ticket,
            follow_up,
        });
    }
    out
}

/// Writes `n` messages to `to` into the Maildir folder `new` (names sort in
/// arrival order); `written` is called with each file. Returns the number of
/// follow-ups and of bytes.
pub fn generate(new: &Path, n: usize, to: &str, written: impl FnMut(&Path)) -> (usize, usize) {
    write_maildir(new, &messages(n, to), written)
}

/// Writes `mail` into the Maildir folder `new`, names in arrival order.
pub fn write_maildir(
    new: &Path,
    mail: &[Generated],
    mut written: impl FnMut(&Path),
) -> (usize, usize) {
    std::fs::create_dir_all(new).expect("maildir");
    let (mut follow_ups, mut bytes) = (0, 0);
    for (i, m) in mail.iter().enumerate() {
        let path = new.join(format!("{}.M{i:06}P1.bench", 1_700_000_000 + i));
        bytes += m.raw.len();
        follow_ups += usize::from(m.follow_up);
        std::fs::write(&path, &m.raw).expect("write");
        written(&path);
    }
    (follow_ups, bytes)
}

/// The desk config the Maildir benchmarks share: mailbox `soporte` reading
/// `root/mail`, the `file` transport into `root/outbox`, 3 agents, 50
/// customer domains (`c0.example` ...).
pub fn write_maildir_config(root: &Path) {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut text = format!(
        "[desk]\nname = \"Bench\"\ntemplates_dir = \"{}\"\n\n[[mailboxes]]\nname = \"soporte\"\naddress = \"soporte@example.com\"\nsource = \"maildir\"\npath = \"mail\"\n\n[smtp]\ntransport = \"file\"\ndir = \"outbox\"\n\n[intake]\nack_rate_limit = \"100/h\"\n\n",
        templates.display()
    );
    write_people(&mut text);
    std::fs::write(root.join("postdesk.toml"), text).expect("config");
}

/// The agents and customers of the bench desks.
pub fn write_people(text: &mut String) {
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
}

/// A value from the JSON log lines of a postdesk run: `field` of the first
/// line whose message is `message`.
pub fn logged(stderr: &[u8], message: &str, field: &str) -> Option<serde_json::Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == message)
        .map(|v| v["fields"][field].clone())
}

/// A machine-readable result line for `scripts/bench`:
/// `BENCH <name> key=value ...`.
pub fn report(name: &str, pairs: &[(&str, String)]) {
    let mut line = format!("BENCH {name}");
    for (k, v) in pairs {
        let _ = write!(line, " {k}={v}");
    }
    println!("{line}");
}
