//! Test harness: a temporary desk (config, Maildir, file transport) and the
//! real `postdesk` binary run against it, with JSON read back.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub mod daemon;
pub mod mail;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_postdesk");

/// The fixtures folder of the repository.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/mail")
        .join(name)
}

pub struct Desk {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

/// The config every test starts from; `extra` is appended (more sections).
pub fn base_config(intake: &str) -> String {
    format!(
        r#"[desk]
name = "Soporte Test"
templates_dir = "{templates}"

[[mailboxes]]
name = "soporte"
address = "soporte@example.com"
source = "maildir"
path = "mail"
poll_interval = "1s"

[smtp]
transport = "file"
dir = "outbox"
from_name = "Soporte Test"

[[agents]]
name = "Luis"
email = "luis@example.com"

[[customers]]
name = "Cliente S.A."
domains = ["cliente.com"]

[intake]
{intake}
"#,
        templates = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("templates")
            .display()
    )
}

impl Desk {
    pub fn new() -> Desk {
        Desk::with_config(&base_config(""))
    }

    pub fn with_intake(intake: &str) -> Desk {
        Desk::with_config(&base_config(intake))
    }

    pub fn with_config(text: &str) -> Desk {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("postdesk.toml");
        std::fs::write(&config, text).expect("write config");
        Desk { dir, config }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(&self.config)
            .env_remove("POSTDESK_CONFIG")
            .env("RUST_LOG", "warn");
        c
    }

    /// Runs postdesk with `args`; panics with its output unless it exits 0.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("run postdesk");
        assert!(
            out.status.success(),
            "postdesk {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run postdesk")
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("postdesk {args:?} did not print JSON ({e}): {text}"))
    }

    /// Ingests raw bytes (through a file) and returns the new inbound row.
    pub fn ingest_bytes(&self, raw: &[u8]) -> Value {
        let before = self.inbound().as_array().map_or(0, Vec::len);
        let file = self.dir.path().join(format!("in-{before}.eml"));
        std::fs::write(&file, raw).expect("write mail");
        self.ok(&["ingest", file.to_str().expect("utf-8 path")]);
        let log = self.inbound();
        let rows = log.as_array().expect("inbound array");
        assert_eq!(
            rows.len(),
            before + 1,
            "ingest must add exactly one inbound row"
        );
        rows[before].clone()
    }

    pub fn ingest_fixture(&self, name: &str) -> Value {
        self.ingest_bytes(&std::fs::read(fixture(name)).expect("fixture"))
    }

    pub fn inbound(&self) -> Value {
        self.json(&["inbound", "--json"])
    }

    pub fn outbox(&self) -> Vec<Value> {
        self.json(&["outbox", "--json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn outbox_for(&self, template: &str) -> Vec<Value> {
        self.outbox()
            .into_iter()
            .filter(|o| o["template"] == template)
            .collect()
    }

    pub fn ticket(&self, id: i64) -> Value {
        self.json(&["ticket", "show", &id.to_string(), "--json"])
    }

    pub fn tickets(&self) -> Vec<Value> {
        self.json(&["ticket", "list", "--json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// A plain customer mail.
pub fn mail(
    from: &str,
    subject: &str,
    message_id: &str,
    extra_headers: &str,
    body: &str,
) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: soporte@example.com\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n{extra_headers}\r\n{body}\r\n"
    )
    .into_bytes()
}
