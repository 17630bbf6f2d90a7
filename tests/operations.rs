//! Operating a running daemon (Maildir in, files out; no mail server):
//! `/healthz` and `/metrics` on `[http] listen`, the metrics page read by
//! the Prometheus project's own parser, an outbox that backs up, and SIGHUP
//! reloads (a broken config refused, a new mailbox served, a removed one
//! stopped).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::daemon::{Daemon, http_get, wait_http};
use common::mail::{free_port, wait_for};
use common::{Desk, base_config, fixture};
use serde_json::Value;

/// How long a 1 s-poll daemon may take to notice something.
const NOTICE: Duration = Duration::from_secs(20);

const PYTHON: &str = "/usr/bin/python3";

/// Parses a `/metrics` page with `prometheus_client` (Debian's
/// python3-prometheus-client): the strict OpenMetrics parser, and the
/// classic Prometheus text parser too. Returns `name{labels}` → value.
fn parse_metrics(page: &str) -> serde_json::Map<String, Value> {
    const SCRIPT: &str = r##"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as classic
text = sys.stdin.read()
samples = {}
for family in openmetrics(text):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        samples[f"{s.name}{{{labels}}}"] = s.value
# The classic parser must read the page too (what older scrapers speak).
classic_count = sum(len(f.samples) for f in classic(text.replace("# EOF\n", "")))
samples["classic_samples{}"] = classic_count
print(json.dumps(samples))
"##;
    let probe = Command::new(PYTHON)
        .args(["-c", "import prometheus_client"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        _ => panic!(
            "{PYTHON} cannot import prometheus_client: install it with `apt-get install -y python3-prometheus-client` (scripts/test does)"
        ),
    }
    let mut child = Command::new(PYTHON)
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("write page");
    let out = child.wait_with_output().expect("python3 output");
    assert!(
        out.status.success(),
        "the Prometheus parser refused the page: {}\n{page}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser JSON")
}

fn with_http(config: &str, port: u16, extra: &str) -> String {
    format!("{config}\n[http]\nlisten = \"127.0.0.1:{port}\"\n{extra}")
}

fn drop_mail(dir: &Path, name: &str, raw: &[u8]) {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(dir.join(sub)).expect("maildir");
    }
    let tmp = dir.join("tmp").join(name);
    std::fs::write(&tmp, raw).expect("write mail");
    std::fs::rename(&tmp, dir.join("new").join(name)).expect("deliver mail");
}

fn inbound_rows(desk: &Desk) -> Vec<Value> {
    desk.inbound().as_array().cloned().unwrap_or_default()
}

fn wait_rows(desk: &Desk, daemon: &mut Daemon, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} inbound rows"), NOTICE, || {
        daemon.assert_running();
        let rows = inbound_rows(desk);
        (rows.len() >= n).then_some(rows)
    })
}

fn mail(from: &str, subject: &str, id: &str) -> Vec<u8> {
    format!(
        "From: Cliente <{from}>\r\nTo: soporte@example.com\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n\r\nNo funciona la impresora.\r\n"
    )
    .into_bytes()
}

#[test]
fn healthz_and_metrics_describe_a_working_desk() {
    let port = free_port();
    let desk = Desk::with_config(&with_http(&base_config(""), port, ""));
    let new_ticket = std::fs::read(fixture("new-ticket.eml")).expect("fixture");
    drop_mail(&desk.path("mail"), "1.eml", &new_ticket);
    let mut daemon = Daemon::start(&desk, &[]);
    wait_rows(&desk, &mut daemon, 1);

    let health: Value =
        serde_json::from_str(&wait_http(port, "/healthz", 200, NOTICE)).expect("healthz JSON");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["healthy"], true, "{health}");
    assert_eq!(health["mailboxes"][0]["name"], "soporte", "{health}");
    assert_eq!(health["mailboxes"][0]["max_silence_secs"], 3, "{health}");
    assert!(health["mailboxes"][0]["last_ok_at"].is_i64(), "{health}");
    assert_eq!(health["outbox"]["healthy"], true, "{health}");

    // The ack and the team mail are written by the outbox task; wait for it.
    wait_for("the outbox to empty", NOTICE, || {
        let page = http_get(port, "/metrics").2;
        page.contains("postdesk_outbox_messages{status=\"sent\"} 2")
            .then_some(())
    });
    let (status, content_type, page) = http_get(port, "/metrics");
    assert_eq!(status, 200, "{page}");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let samples = parse_metrics(&page);
    let value = |key: &str| {
        samples
            .get(key)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("{key} missing from the parsed page:\n{page}"))
    };
    assert_eq!(
        value(r#"postdesk_messages_total{disposition="new_ticket",mailbox="soporte"}"#),
        1.0
    );
    assert_eq!(value(r#"postdesk_tickets{status="new"}"#), 1.0);
    assert_eq!(value(r#"postdesk_tickets{status="closed"}"#), 0.0);
    assert_eq!(value(r#"postdesk_outbox_messages{status="sent"}"#), 2.0);
    assert_eq!(value(r#"postdesk_outbox_messages{status="pending"}"#), 0.0);
    assert_eq!(value("postdesk_outbox_oldest_pending_age_seconds{}"), 0.0);
    assert_eq!(
        value(r#"postdesk_sla_breaches_total{clock="first_response"}"#),
        0.0
    );
    assert!(value(r#"postdesk_mailbox_last_poll_timestamp_seconds{mailbox="soporte"}"#) > 1e9);
    assert!(value(r#"postdesk_poll_duration_seconds_count{mailbox="soporte"}"#) >= 1.0);
    assert!(value("classic_samples{}") > 10.0);

    // Anything else is a 404, not a crash.
    assert_eq!(http_get(port, "/nothing").0, 404);
    daemon.assert_running();
    daemon.stop();
}

#[test]
fn healthz_fails_when_outbox_mail_waits_too_long() {
    let port = free_port();
    // The MTA is a port nobody listens on: the ack stays pending, retried.
    let dead_mta = free_port();
    let config = base_config("").replace(
        "[smtp]\ntransport = \"file\"\ndir = \"outbox\"",
        &format!("[smtp]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {dead_mta}\nsecurity = \"none\""),
    );
    assert!(config.contains("security = \"none\""), "{config}");
    let desk = Desk::with_config(&with_http(&config, port, "outbox_max_age = \"2s\"\n"));
    let new_ticket = std::fs::read(fixture("new-ticket.eml")).expect("fixture");
    drop_mail(&desk.path("mail"), "1.eml", &new_ticket);
    let mut daemon = Daemon::start(&desk, &[]);
    wait_rows(&desk, &mut daemon, 1);
    let health: Value =
        serde_json::from_str(&wait_http(port, "/healthz", 503, NOTICE)).expect("healthz JSON");
    assert_eq!(health["status"], "unhealthy", "{health}");
    assert_eq!(health["outbox"]["healthy"], false, "{health}");
    assert_eq!(health["outbox"]["pending"], 2, "{health}");
    assert_eq!(health["mailboxes"][0]["healthy"], true, "{health}");
    let reason = health["reasons"][0].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("the outbox holds 2 unsent mail(s)"),
        "{health}"
    );
    daemon.assert_running();
    daemon.stop();
}

#[test]
fn sighup_refuses_a_broken_config_and_serves_a_new_mailbox() {
    let port = free_port();
    let original = with_http(&base_config(""), port, "");
    let desk = Desk::with_config(&original);
    let mut daemon = Daemon::start(&desk, &[]);
    daemon.wait_log("postdesk running", 1, NOTICE);

    // A typo: refused, logged with file, line and key; the old config runs on.
    let broken = original.replace(
        "poll_interval = \"1s\"",
        "poll_interval = \"1s\"\npoll_intervall = \"5s\"",
    );
    std::fs::write(&desk.config, &broken).expect("config");
    daemon.signal(libc::SIGHUP);
    daemon.wait_log("configuration reload refused", 1, NOTICE);
    // Back as it was on disk (the CLI below reads it too), without a reload.
    std::fs::write(&desk.config, &original).expect("config");
    let log = daemon.log();
    let line = broken
        .lines()
        .position(|l| l.starts_with("poll_intervall"))
        .expect("typo line")
        + 1;
    assert!(
        log.contains(&format!("postdesk.toml:{line}")) && log.contains("poll_intervall"),
        "the refusal names file, line and key:\n{log}"
    );
    drop_mail(
        &desk.path("mail"),
        "1.eml",
        &mail("ana@cliente.com", "Impresora", "a1@cliente.com"),
    );
    let rows = wait_rows(&desk, &mut daemon, 1);
    assert_eq!(rows[0]["mailbox"], "soporte", "{rows:?}");

    // A new mailbox: served without a restart.
    let added = original.replace(
        "[smtp]",
        "[[mailboxes]]\nname = \"ventas\"\naddress = \"ventas@example.com\"\nsource = \"maildir\"\npath = \"ventas\"\npoll_interval = \"1s\"\nqueue = \"ventas\"\n\n[smtp]",
    );
    std::fs::write(&desk.config, &added).expect("config");
    drop_mail(
        &desk.path("ventas"),
        "2.eml",
        &mail("eva@cliente.com", "Presupuesto", "v1@cliente.com"),
    );
    daemon.signal(libc::SIGHUP);
    daemon.wait_log("configuration reloaded", 1, NOTICE);
    let rows = wait_rows(&desk, &mut daemon, 2);
    assert_eq!(rows[1]["mailbox"], "ventas", "{rows:?}");
    let ticket = desk.json(&["ticket", "show", "2", "--json"]);
    assert_eq!(ticket["queue"], "ventas", "{ticket}");
    let health: Value =
        serde_json::from_str(&wait_http(port, "/healthz", 200, NOTICE)).expect("healthz JSON");
    let names: Vec<&str> = health["mailboxes"]
        .as_array()
        .expect("mailboxes")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, ["soporte", "ventas"], "{health}");

    // And removed again: its task stops, /healthz no longer waits for it.
    std::fs::write(&desk.config, &original).expect("config");
    daemon.signal(libc::SIGHUP);
    daemon.wait_log("configuration reloaded", 2, NOTICE);
    assert!(
        daemon.log().contains("removed=[\"ventas\"]"),
        "{}",
        daemon.log()
    );
    let health: Value =
        serde_json::from_str(&wait_http(port, "/healthz", 200, NOTICE)).expect("healthz JSON");
    assert_eq!(
        health["mailboxes"].as_array().map(Vec::len),
        Some(1),
        "{health}"
    );
    daemon.assert_running();
    daemon.stop();
}
