//! Hostile and broken input (SPEC §4 step 1): pathological MIME is handled
//! without a panic or a crash and gets a disposition. No test asserts a time;
//! `cargo bench`-style figures are in the closing notes (release build: each
//! case < 1 s; a 50 MB base64 line parsed under a raised limit ≈ 0.8 s and
//! ≈ 4× its size in memory, which the default 25 MB limit bounds).

mod common;

use common::Desk;

const HEAD: &str = "From: ana@cliente.com\r\nTo: soporte@example.com\r\nMIME-Version: 1.0\r\n";

fn deep_nesting(levels: usize) -> String {
    let mut s = format!(
        "{HEAD}Message-ID: <deep@x>\r\nSubject: deep\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n"
    );
    for i in 1..levels {
        s.push_str(&format!(
            "--b{}\r\nContent-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n",
            i - 1
        ));
    }
    s.push_str(&format!(
        "--b{}\r\nContent-Type: text/plain\r\n\r\nhola\r\n",
        levels - 1
    ));
    for i in (0..levels).rev() {
        s.push_str(&format!("--b{i}--\r\n"));
    }
    s
}

fn many_parts(n: usize) -> String {
    let mut s = format!(
        "{HEAD}Message-ID: <parts@x>\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
    );
    for i in 0..n {
        s.push_str(&format!(
            "--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    s.push_str("--b--\r\n");
    s
}

fn base64_line(bytes: usize, id: &str) -> String {
    format!(
        "{HEAD}Message-ID: <{id}@x>\r\nSubject: b64\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhola\r\n--b\r\nContent-Type: application/octet-stream; name=\"x.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        "QUFB".repeat(bytes / 4)
    )
}

#[test]
fn ten_thousand_levels_of_nesting() {
    let desk = Desk::new();
    let row = desk.ingest_bytes(deep_nesting(10_000).as_bytes());
    assert!(
        ["new_ticket", "quarantined"].contains(&row["disposition"].as_str().unwrap()),
        "{row}"
    );
}

#[test]
fn ten_thousand_parts() {
    let desk = Desk::new();
    let row = desk.ingest_bytes(many_parts(10_000).as_bytes());
    assert_eq!(row["disposition"], "new_ticket");
    assert!(
        desk.ticket(1)["messages"][0]["body"]
            .as_str()
            .unwrap()
            .contains("part 0")
    );
}

#[test]
fn a_one_megabyte_header() {
    let desk = Desk::new();
    let raw = format!(
        "{HEAD}Message-ID: <hdr@x>\r\nSubject: {}\r\n\r\nbody\r\n",
        "x".repeat(1 << 20)
    );
    let row = desk.ingest_bytes(raw.as_bytes());
    assert_eq!(row["disposition"], "new_ticket");
}

#[test]
fn a_fifty_megabyte_base64_line_is_rejected_before_parsing_and_kept() {
    let desk = Desk::new();
    let raw = base64_line(50 << 20, "big");
    let row = desk.ingest_bytes(raw.as_bytes());
    assert_eq!(row["disposition"], "rejected");
    assert_eq!(
        row["message_id"], "<big@x>",
        "headers were read, not the body"
    );
    assert_eq!(desk.outbox_for("message_rejected").len(), 1);
}

#[test]
fn a_long_base64_line_under_the_limit_is_parsed() {
    let desk = Desk::with_intake("max_message_size = \"8MB\"");
    let row = desk.ingest_bytes(base64_line(6 << 20, "mid").as_bytes());
    assert_eq!(row["disposition"], "new_ticket");
    assert_eq!(
        desk.ticket(1)["messages"][0]["attachments"][0]["size"],
        (6 << 20) / 4 * 3
    );
}

#[test]
fn binary_garbage_and_truncated_mime_are_quarantined_or_taken_never_a_crash() {
    let desk = Desk::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..60 {
        // Deterministic pseudo-random bytes mixed with MIME fragments.
        let mut raw = Vec::new();
        if i % 2 == 0 {
            raw.extend_from_slice(format!("From: x{i}@y.z\r\nSubject: r{i}\r\nContent-Type: multipart/mixed; boundary=\"q\"\r\n\r\n--q\r\n").as_bytes());
        }
        for _ in 0..(i * 37 % 900) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            raw.push((seed & 0xff) as u8);
        }
        let row = desk.ingest_bytes(&raw);
        assert!(row["disposition"].is_string(), "{row}");
    }
}
