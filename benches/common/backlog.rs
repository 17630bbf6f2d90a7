//! The generated backlog both intake benchmarks use (Maildir and IMAP):
//! 30 % follow-ups by tag from their requester, Spanish and English, one in
//! ten with a PDF attachment, 2,000 senders across 50 customer domains.
//! Deterministic, so the two benchmarks measure the same mail.

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

/// Writes `n` messages to `to` into the Maildir folder `new` (names sort in
/// arrival order); `written` is called with each file. Returns the number of
/// follow-ups and of bytes.
pub fn generate(new: &Path, n: usize, to: &str, mut written: impl FnMut(&Path)) -> (usize, usize) {
    let mut bytes = 0;
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
        let path = new.join(format!("{}.M{i:06}P1.bench", 1_700_000_000 + i));
        bytes += mail.len();
        std::fs::write(&path, mail).expect("write");
        written(&path);
    }
    (follow_ups, bytes)
}
