//! Bounces of our own mail in the shapes real MTAs send (SPEC §4.4, §8): the
//! DSNs of Postfix, Exim, Sendmail, Outlook.com, Amazon SES, Gmail, qmail and Exchange from the
//! shared corpus (`../shared/corpus/real/sisimai`, read in place), each made
//! to answer our ack: attached to the right ticket, the outbox row `failed`,
//! automatic mail to the address stopped only for permanent (5.x.x) failures.

mod common;

use std::path::Path;

use common::{Desk, mail};
use postdesk_core::mail::InboundMail;

fn dsn(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/real/sisimai/maildir/bsd")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the workplace's shared/ corpus must sit beside the repository)",
            path.display()
        )
    })
}

fn check_bounce(name: &str, permanent: bool) {
    let raw = dsn(name);
    let report = InboundMail::parse(&raw)
        .expect("a DSN parses")
        .report
        .unwrap_or_else(|| panic!("{name}: no delivery report read"));
    let original = report
        .original_message_id
        .clone()
        .unwrap_or_else(|| panic!("{name}: no returned Message-ID found: {report:?}"));
    let recipient = report
        .failed_recipient
        .clone()
        .unwrap_or_else(|| panic!("{name}: no failed recipient found: {report:?}"));
    let status = report
        .status
        .clone()
        .unwrap_or_else(|| panic!("{name}: no status found"));
    assert_eq!(
        status.starts_with('5'),
        permanent,
        "{name}: status {status}"
    );

    // Our ack went to the address that failed.
    let desk = Desk::new();
    desk.ingest_bytes(&mail(&recipient, "Consulta", "first@x.example", "", "Hola"));
    let ack = desk.outbox_for("ack").remove(0);
    desk.ok(&["run", "--once"]);
    let sent = std::fs::read_to_string(
        desk.path(&format!("outbox/{:08}.eml", ack["id"].as_i64().unwrap())),
    )
    .unwrap();
    let ours = sent
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap()
        .trim()
        .trim_matches(['<', '>'])
        .to_string();

    let bounce = String::from_utf8_lossy(&raw).replace(&original, &ours);
    let row = desk.ingest_bytes(bounce.as_bytes());
    assert_eq!(
        (row["disposition"].as_str(), row["ticket"].as_i64()),
        (Some("follow_up"), Some(1)),
        "{name}: {}",
        row["reason"]
    );
    let t = desk.ticket(1);
    assert_eq!(
        t["messages"].as_array().unwrap().last().unwrap()["kind"],
        "auto",
        "{name}"
    );
    assert_eq!(t["status"], "new", "{name}: a bounce changes no status");
    let event = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "bounce")
        .cloned()
        .unwrap_or_else(|| panic!("{name}: no bounce event"));
    assert!(
        event["detail"].as_str().unwrap().contains(&status),
        "{name}: {event}"
    );
    let ack = desk
        .outbox()
        .into_iter()
        .find(|o| o["id"] == ack["id"])
        .unwrap();
    assert_eq!(ack["status"], "failed", "{name}");
    assert!(
        ack["last_error"].as_str().unwrap().contains("bounced"),
        "{name}"
    );

    // A new mail from the same address: acknowledged only after a temporary failure.
    let row = desk.ingest_bytes(&mail(
        &recipient,
        "Otra consulta",
        "second@x.example",
        "",
        "Otra cosa",
    ));
    assert_eq!(row["disposition"], "new_ticket");
    assert_eq!(
        row["reason"].as_str().unwrap().contains("bounce stop"),
        permanent,
        "{name}: {}",
        row["reason"]
    );
    assert_eq!(
        desk.outbox_for("ack").len(),
        if permanent { 1 } else { 2 },
        "{name}"
    );
}

#[test]
fn postfix_dsn() {
    check_bounce("lhost-postfix-48.eml", true);
}

#[test]
fn exim_plain_text_bounce() {
    check_bounce("lhost-exim-01.eml", true);
}

#[test]
fn sendmail_dsn() {
    check_bounce("lhost-sendmail-01.eml", true);
}

#[test]
fn outlook_com_dsn() {
    check_bounce("lhost-outlook-01.eml", true);
}

#[test]
fn amazon_ses_dsn() {
    check_bounce("lhost-amazonses-01.eml", true);
}

#[test]
fn gmail_plain_text_bounce() {
    check_bounce("lhost-gmail-01.eml", true);
}

#[test]
fn qmail_plain_text_bounce() {
    check_bounce("lhost-qmail-01.eml", true);
}

#[test]
fn exchange_delay_is_temporary_and_stops_nothing() {
    check_bounce("lhost-exchange2007-05.eml", false);
}

#[test]
fn a_bounce_of_mail_we_never_sent_is_ignored() {
    let desk = Desk::new();
    let row = desk.ingest_bytes(&dsn("lhost-postfix-48.eml"));
    assert_eq!(row["disposition"], "ignored", "{}", row["reason"]);
    assert!(desk.tickets().is_empty() && desk.outbox().is_empty());
}
