//! Pathological MIME, timed (issue 5; no test asserts a time): 10,000
//! nesting levels, 10,000 parts, a 1 MB header, a 50 MB base64 line rejected
//! by the default size limit, and the same line parsed under a raised limit.
//! Each case runs `postdesk ingest` once in a fresh desk; wall time and the
//! child's peak RSS (getrusage of that child alone, measured via wait4) are printed.
//!
//!   cargo bench --bench hostile
//!
//! Each case also prints a `BENCH hostile case=... ms=... peak_rss_kb=...
//! disposition=...` line for `scripts/bench` (the case name with `_` for
//! spaces).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_postdesk");
const HEAD: &str = "From: ana@cliente.com\r\nTo: soporte@example.com\r\nMIME-Version: 1.0\r\n";

fn config(dir: &Path, limit: &str) {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let text = format!(
        "[desk]\ntemplates_dir = \"{}\"\n[[mailboxes]]\nname = \"soporte\"\naddress = \"soporte@example.com\"\nsource = \"maildir\"\npath = \"mail\"\n[smtp]\ntransport = \"file\"\ndir = \"outbox\"\n[intake]\nmax_message_size = \"{limit}\"\n",
        templates.display()
    );
    std::fs::write(dir.join("postdesk.toml"), text).expect("config");
}

fn run(name: &str, raw: &str, limit: &str) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("dir");
    config(dir.path(), limit);
    let file = dir.path().join("m.eml");
    std::fs::write(&file, raw).expect("write");
    let started = Instant::now();
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by wait4 below, which also gives its rusage"
    )]
    let child = Command::new(BIN)
        .arg("--config")
        .arg(dir.path().join("postdesk.toml"))
        .arg("ingest")
        .arg(&file)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: waiting for our own child and reading its resource usage into a zeroed struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(dir.path().join("postdesk.toml"))
        .args(["inbound", "--json"])
        .output()
        .expect("inbound");
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let disposition = log[0]["disposition"].as_str().unwrap_or("?");
    println!(
        "{name:<42} {ms:>8.1} ms  peak RSS {:>6.1} MB  {disposition}",
        usage.ru_maxrss as f64 / 1024.0,
    );
    println!(
        "BENCH hostile case={} ms={ms:.0} peak_rss_kb={} disposition={disposition}",
        name.replace(' ', "_"),
        usage.ru_maxrss
    );
}

fn main() {
    let mut deep = format!(
        "{HEAD}Message-ID: <deep@x>\r\nSubject: deep\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n"
    );
    for i in 1..10_000 {
        deep.push_str(&format!(
            "--b{}\r\nContent-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n",
            i - 1
        ));
    }
    deep.push_str("--b9999\r\nContent-Type: text/plain\r\n\r\nhola\r\n");
    for i in (0..10_000).rev() {
        deep.push_str(&format!("--b{i}--\r\n"));
    }
    run("10,000 nesting levels", &deep, "25MB");

    let mut parts = format!(
        "{HEAD}Message-ID: <parts@x>\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
    );
    for i in 0..10_000 {
        parts.push_str(&format!(
            "--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    parts.push_str("--b--\r\n");
    run("10,000 parts", &parts, "25MB");

    run(
        "1 MB header",
        &format!(
            "{HEAD}Message-ID: <hdr@x>\r\nSubject: {}\r\n\r\nbody\r\n",
            "x".repeat(1 << 20)
        ),
        "25MB",
    );

    let b64 = format!(
        "{HEAD}Message-ID: <b64@x>\r\nSubject: b64\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhola\r\n--b\r\nContent-Type: application/octet-stream; name=\"x.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        "QUFB".repeat((50 << 20) / 4)
    );
    run("50 MB base64 line, default 25 MB limit", &b64, "25MB");
    run("50 MB base64 line, parsed (limit 60 MB)", &b64, "60MB");
}
