//! The command line of SPEC §2: every `--json` document's exact shape,
//! `check-config` errors (exit 2 naming file, line and key), `ticket update`
//! with its events and notifications, and `--now`.

mod common;

use common::{Desk, base_config, mail};
use serde_json::Value;

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

const TICKET_FIELDS: &[&str] = &[
    "id",
    "subject",
    "status",
    "priority",
    "type",
    "categories",
    "queue",
    "mailbox",
    "requester",
    "customer",
    "assignee",
    "participants",
    "duplicate_of",
    "created_at",
    "updated_at",
    "last_update_at",
    "first_response_due",
    "first_response_at",
    "resolution_due",
    "resolved_at",
    "closed_at",
    "sla_state",
    "escalation_level",
];

fn is_rfc3339_utc(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

#[test]
fn json_shapes_of_every_command() {
    let desk = Desk::new();
    desk.ingest_fixture("attachment-traversal.eml");
    desk.ok(&[
        "ticket",
        "update",
        "1",
        "--status",
        "open",
        "--priority",
        "alta",
    ]);

    let list = desk.json(&["ticket", "list", "--json"]);
    let t = &list.as_array().expect("array")[0];
    assert_eq!(keys(t), sorted(TICKET_FIELDS));
    assert_eq!(t["id"], 1);
    assert_eq!(t["priority"], "high");
    assert_eq!(t["type"], Value::Null);
    assert_eq!(t["categories"], serde_json::json!([]));
    assert_eq!(t["sla_state"], "none");
    assert_eq!(t["escalation_level"], 0);
    assert!(is_rfc3339_utc(&t["created_at"]), "{}", t["created_at"]);

    let show = desk.json(&["ticket", "show", "1", "--json"]);
    let mut fields = TICKET_FIELDS.to_vec();
    fields.extend(["messages", "events"]);
    assert_eq!(keys(&show), sorted(&fields));
    let m = &show["messages"][0];
    assert_eq!(
        keys(m),
        sorted(&[
            "id",
            "kind",
            "from",
            "to",
            "cc",
            "subject",
            "message_id",
            "date",
            "received_at",
            "body",
            "attachments"
        ])
    );
    assert_eq!(m["kind"], "customer");
    assert_eq!(m["message_id"], "<attachment-traversal-1@cliente.com>");
    assert_eq!(m["to"], serde_json::json!(["soporte@example.com"]));
    assert!(is_rfc3339_utc(&m["date"]) && is_rfc3339_utc(&m["received_at"]));
    assert_eq!(
        keys(&m["attachments"][0]),
        sorted(&["filename", "content_type", "size", "sha256"])
    );
    let e = &show["events"][2];
    for k in ["at", "kind", "from", "to", "by"] {
        assert!(e.get(k).is_some(), "event lacks {k}: {e}");
    }
    assert_eq!(
        (e["kind"].as_str(), e["from"].as_str(), e["to"].as_str()),
        (Some("status"), Some("new"), Some("open"))
    );

    let inbound = desk.json(&["inbound", "--json"]);
    let i = &inbound.as_array().expect("array")[0];
    assert_eq!(
        keys(i),
        sorted(&[
            "id",
            "mailbox",
            "received_at",
            "message_id",
            "from",
            "subject",
            "disposition",
            "ticket",
            "reason"
        ])
    );
    assert_eq!(i["message_id"], "<attachment-traversal-1@cliente.com>");

    let outbox = desk.json(&["outbox", "--json"]);
    let o = &outbox.as_array().expect("array")[0];
    assert_eq!(
        keys(o),
        sorted(&[
            "id",
            "ticket",
            "template",
            "to",
            "subject",
            "status",
            "attempts",
            "last_error",
            "created_at",
            "sent_at"
        ])
    );
    assert_eq!(
        (
            o["status"].as_str(),
            o["attempts"].as_i64(),
            o["sent_at"].is_null()
        ),
        (Some("pending"), Some(0), true)
    );
    desk.ok(&["run", "--once"]);
    let outbox = desk.json(&["outbox", "--status", "sent", "--json"]);
    assert!(
        outbox
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "sent" && is_rfc3339_utc(&o["sent_at"]))
    );
    assert!(
        desk.json(&["outbox", "--status", "pending", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn empty_lists_are_empty_arrays() {
    let desk = Desk::new();
    assert_eq!(
        desk.json(&["ticket", "list", "--json"]),
        serde_json::json!([])
    );
    assert_eq!(desk.json(&["inbound", "--json"]), serde_json::json!([]));
    assert_eq!(desk.json(&["outbox", "--json"]), serde_json::json!([]));
}

#[test]
fn ticket_list_filters() {
    let desk = Desk::new();
    desk.ingest_bytes(&mail("ana@cliente.com", "Uno", "f1@cliente.com", "", "x"));
    desk.ingest_bytes(&mail("bob@other.org", "Dos", "f2@other.org", "", "x"));
    desk.ok(&["ticket", "update", "2", "--status", "waiting"]);
    let ids = |args: &[&str]| -> Vec<i64> {
        let mut a = vec!["ticket", "list", "--json"];
        a.extend_from_slice(args);
        desk.json(&a)
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&["--status", "waiting"]), vec![2]);
    assert_eq!(
        ids(&["--status", "new", "--status", "en-espera"]),
        vec![1, 2]
    );
    assert_eq!(ids(&["--customer", "Cliente S.A."]), vec![1]);
    assert_eq!(ids(&["--queue", "general"]), vec![1, 2]);
    assert_eq!(ids(&["--queue", "other"]), Vec::<i64>::new());
    let text = desk.ok(&["ticket", "list"]);
    assert!(
        text.starts_with("ID") && text.contains("Uno") && text.contains("Dos"),
        "{text}"
    );
}

#[test]
fn ticket_update_records_events_and_tells_the_customer() {
    let desk = Desk::new();
    desk.ingest_fixture("new-ticket.eml");
    desk.ok(&[
        "ticket",
        "update",
        "1",
        "--assign",
        "Luis",
        "--type",
        "problema",
        "--status",
        "en-proceso",
    ]);
    let t = desk.ticket(1);
    assert_eq!(
        (
            t["assignee"].as_str(),
            t["type"].as_str(),
            t["status"].as_str()
        ),
        (Some("luis@example.com"), Some("problem"), Some("open"))
    );
    let kinds: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["created", "type", "assign", "status"]);
    assert_eq!(desk.outbox_for("assigned").len(), 1);
    assert_eq!(desk.outbox_for("status_changed").len(), 1);

    desk.ingest_bytes(&mail(
        "ana@cliente.com",
        "Otra [Ticket: 1]",
        "second@cliente.com",
        "",
        "x",
    ));
    assert_eq!(
        desk.outbox_for("agent_follow_up")[0]["to"],
        serde_json::json!(["luis@example.com"]),
        "follow-ups go to the assignee"
    );

    desk.ingest_bytes(&mail(
        "ana@cliente.com",
        "Lo mismo otra vez",
        "dup@cliente.com",
        "",
        "x",
    ));
    desk.ok(&["ticket", "update", "2", "--duplicate-of", "1"]);
    let t2 = desk.ticket(2);
    assert_eq!(
        (t2["status"].as_str(), t2["duplicate_of"].as_i64()),
        (Some("cancelled"), Some(1))
    );
    assert_eq!(desk.outbox_for("duplicate_notice").len(), 1);
    assert!(
        desk.ticket(1)["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "merged_note")
    );
    // Mail to the cancelled duplicate goes to the original.
    let row = desk.ingest_bytes(&mail(
        "ana@cliente.com",
        "Re: [Ticket: 2]",
        "to-dup@cliente.com",
        "",
        "x",
    ));
    assert_eq!(row["ticket"], 1);

    let out = desk.run(&["ticket", "update", "1", "--assign", "nadie@example.com"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no agent"));
    let out = desk.run(&["ticket", "update", "1", "--status", "bogus"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn now_flag_sets_the_time_of_every_change() {
    let desk = Desk::new();
    let file = desk.path("m.eml");
    std::fs::write(
        &file,
        mail("ana@cliente.com", "Hola", "now@cliente.com", "", "x"),
    )
    .unwrap();
    desk.ok(&[
        "--now",
        "2026-03-02T08:30:00+01:00",
        "ingest",
        file.to_str().unwrap(),
    ]);
    let t = desk.ticket(1);
    assert_eq!(t["created_at"], "2026-03-02T07:30:00Z");
    assert_eq!(t["messages"][0]["received_at"], "2026-03-02T07:30:00Z");
    let since = desk.json(&["inbound", "--since", "2026-03-02T07:31:00Z", "--json"]);
    assert_eq!(since, serde_json::json!([]));
    let bad = desk.run(&["--now", "yesterday", "ticket", "list"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn check_config_accepts_the_example_and_names_file_line_key() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let out = std::process::Command::new(common::BIN)
        .args(["--config", example.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let text = base_config("").replace("[smtp]\n", "[smtp]\ncolour = \"blue\"\n");
    let desk = Desk::with_config(&text);
    let out = desk.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().position(|l| l.starts_with("colour")).unwrap() + 1;
    let expected = format!("{}:{line}: smtp.colour", desk.config.display());
    assert!(err.contains(&expected), "expected `{expected}` in: {err}");
    assert_eq!(err.matches(&expected).count(), 1, "said once: {err}");
    // The same error from a command that loads the desk, also said once.
    let out = desk.run(&["ingest", "--mailbox", "soporte", "a.eml", "b.eml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches(&expected).count(), 1, "said once: {err}");

    // A bad value: the line of the value and the key in full.
    let text = base_config("reopen_window = \"two weeks\"");
    let desk = Desk::with_config(&text);
    let out = desk.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .position(|l| l.starts_with("reopen_window"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!(":{line}: intake.reopen_window")),
        "{err}"
    );
}

#[test]
fn missing_password_env_is_a_clear_config_error() {
    let text = base_config("").replace(
        "[smtp]\ntransport = \"file\"\ndir = \"outbox\"",
        "[smtp]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = 2587\nsecurity = \"none\"\nusername = \"support\"\npassword_env = \"POSTDESK_TEST_UNSET_PASSWORD\"",
    );
    let desk = Desk::with_config(&text);
    let out = desk
        .cmd()
        .env_remove("POSTDESK_TEST_UNSET_PASSWORD")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("smtp.password_env")
            && err.contains("POSTDESK_TEST_UNSET_PASSWORD is not set"),
        "{err}"
    );
    let out = desk
        .cmd()
        .env("POSTDESK_TEST_UNSET_PASSWORD", "s3cret")
        .arg("check-config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn missing_config_file_and_templates_exit_2() {
    let out = std::process::Command::new(common::BIN)
        .args(["--config", "/nonexistent/postdesk.toml", "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = base_config("").replace(
        &format!(
            "templates_dir = \"{}\"",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("templates")
                .display()
        ),
        "templates_dir = \"nowhere\"",
    );
    let desk = Desk::with_config(&text);
    let out = desk.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));
}

#[test]
fn config_lookup_uses_postdesk_config_env() {
    let desk = Desk::new();
    let out = std::process::Command::new(common::BIN)
        .env("POSTDESK_CONFIG", &desk.config)
        .args(["ticket", "list", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ingest_reads_stdin_like_an_mta_pipe() {
    use std::io::Write;
    let desk = Desk::new();
    let mut child = desk
        .cmd()
        .args(["ingest", "--mailbox", "soporte"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&mail(
            "ana@cliente.com",
            "Por tubería",
            "pipe@cliente.com",
            "",
            "x",
        ))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(desk.tickets().len(), 1);
    let bad = desk.run(&["ingest", "--mailbox", "nope", "/dev/null"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn ingest_of_many_files_reports_each_and_goes_on_past_a_bad_one() {
    let desk = Desk::new();
    let files: Vec<String> = (0..300)
        .map(|i| {
            let path = desk.path(&format!("m{i}.eml"));
            let from = format!("c{i}@cliente.com");
            let id = format!("m{i}@cliente.com");
            std::fs::write(&path, mail(&from, &format!("Aviso {i}"), &id, "", "x")).unwrap();
            path.display().to_string()
        })
        .collect();
    let missing = desk.path("missing.eml").display().to_string();
    // Two batches (256 + 45), a missing file in between, one file twice.
    let mut args: Vec<&str> = vec!["ingest"];
    args.extend(files[..150].iter().map(String::as_str));
    args.push(&missing);
    args.extend(files[150..].iter().map(String::as_str));
    args.push(&files[0]);
    let out = desk.run(&args);
    assert_eq!(out.status.code(), Some(1), "a missing file is exit 1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 301, "{stdout}");
    assert!(
        lines[0].ends_with("m0.eml: new_ticket (ticket 1)"),
        "{}",
        lines[0]
    );
    assert!(
        lines[299].ends_with("m299.eml: new_ticket (ticket 300)"),
        "{}",
        lines[299]
    );
    assert!(
        lines[300].ends_with("m0.eml: already taken in"),
        "{}",
        lines[300]
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.eml"));
    assert_eq!(desk.tickets().len(), 300);
    assert_eq!(desk.inbound().as_array().map(Vec::len), Some(300));
}

#[test]
fn json_logs_name_the_mailbox_and_ticket_of_each_message() {
    let desk = Desk::new();
    let file = desk.path("m.eml");
    std::fs::write(
        &file,
        mail("ana@cliente.com", "Impresora", "j1@cliente.com", "", "x"),
    )
    .unwrap();
    let out = desk
        .cmd()
        .env("RUST_LOG", "info")
        .args(["--log-format", "json", "ingest", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let taken = lines
        .iter()
        .find(|l| l["fields"]["message"] == "message taken in")
        .unwrap_or_else(|| panic!("no `message taken in` line: {lines:?}"));
    assert_eq!(taken["fields"]["mailbox"], "soporte", "{taken}");
    assert_eq!(taken["fields"]["ticket"], 1, "{taken}");
    assert_eq!(taken["fields"]["disposition"], "new_ticket", "{taken}");
}

#[test]
fn sigterm_stops_the_daemon_cleanly_with_exit_0() {
    let desk = Desk::new();
    std::fs::create_dir_all(desk.path("mail/new")).unwrap();
    std::fs::copy(
        common::fixture("new-ticket.eml"),
        desk.path("mail/new/1700000000.M1P1.test"),
    )
    .unwrap();
    let mut child = desk.cmd().arg("run").spawn().unwrap();
    // Wait (bounded) until the daemon has taken the message in: it is then idle.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while desk.path("mail/new/1700000000.M1P1.test").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not take the message in"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert_eq!(desk.tickets().len(), 1);
}
