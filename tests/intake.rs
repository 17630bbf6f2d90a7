//! Intake end to end through the real binary (`postdesk ingest`), one test
//! per rule of SPEC §4: threading, participants, machine mail, loops,
//! de-duplication, size limit, quarantine, charsets and attachments.

mod common;

use common::{Desk, fixture, mail};
use serde_json::Value;

/// Ticket 1 from `new-ticket.eml`, as most threading fixtures assume.
fn desk_with_ticket_1(intake: &str) -> Desk {
    let desk = Desk::with_intake(intake);
    let row = desk.ingest_fixture("new-ticket.eml");
    assert_eq!(row["disposition"], "new_ticket");
    assert_eq!(row["ticket"], 1);
    desk
}

fn messages(ticket: &Value) -> Vec<Value> {
    ticket["messages"].as_array().cloned().unwrap_or_default()
}

#[test]
fn new_ticket_gets_ack_and_agent_notification() {
    let desk = desk_with_ticket_1("");
    let t = desk.ticket(1);
    assert_eq!(t["status"], "new");
    assert_eq!(t["subject"], "No puedo emitir facturas");
    assert_eq!(t["requester"], "ana@cliente.com");
    assert_eq!(t["customer"], "Cliente S.A.");
    assert_eq!(t["mailbox"], "soporte");
    assert_eq!(t["queue"], "general");
    let acks = desk.outbox_for("ack");
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0]["to"], serde_json::json!(["ana@cliente.com"]));
    assert!(
        acks[0]["subject"]
            .as_str()
            .unwrap()
            .ends_with("[Ticket: 1]"),
        "{}",
        acks[0]["subject"]
    );
    let agents = desk.outbox_for("agent_new_ticket");
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["to"], serde_json::json!(["luis@example.com"]));
    let events: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(events, vec!["created"]);
}

#[test]
fn every_tag_variant_threads() {
    let desk = desk_with_ticket_1("");
    for (i, subject) in [
        "Re: x [Ticket: 1]",
        "[ticket:1] hola",
        "Más datos [Ticket #1]",
        "[TICKET 1]",
    ]
    .iter()
    .enumerate()
    {
        let row = desk.ingest_bytes(&mail(
            "ana@cliente.com",
            subject,
            &format!("tag-{i}@cliente.com"),
            "",
            "más datos",
        ));
        assert_eq!(row["disposition"], "follow_up", "{subject}");
        assert_eq!(row["ticket"], 1, "{subject}");
    }
    assert_eq!(desk.tickets().len(), 1);
    assert_eq!(messages(&desk.ticket(1)).len(), 5);
}

#[test]
fn first_tag_naming_an_existing_ticket_wins_and_unknown_tags_are_ignored() {
    let desk = desk_with_ticket_1("");
    let row = desk.ingest_bytes(&mail(
        "ana@cliente.com",
        "[Ticket: 999] y [Ticket: 1]",
        "two-tags@cliente.com",
        "",
        "x",
    ));
    assert_eq!(
        (row["disposition"].as_str(), row["ticket"].as_i64()),
        (Some("follow_up"), Some(1))
    );
    let row = desk.ingest_bytes(&mail(
        "ana@cliente.com",
        "Otra cosa [Ticket: 999]",
        "no-such@cliente.com",
        "",
        "x",
    ));
    assert_eq!(row["disposition"], "new_ticket");
    assert_eq!(row["ticket"], 2);
    // The new ticket's subject has no tag, so replies to its ack cannot thread elsewhere.
    assert_eq!(desk.ticket(2)["subject"], "Otra cosa");
}

#[test]
fn tag_follow_up_is_cut_at_the_quoted_marker() {
    let desk = desk_with_ticket_1("");
    let row = desk.ingest_fixture("follow-up-tag.eml");
    assert_eq!(row["disposition"], "follow_up");
    let body = messages(&desk.ticket(1))[1]["body"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(body.contains("serie «B»"), "{body}");
    assert!(
        !body.contains("Responda por encima"),
        "marker must be cut: {body}"
    );
    assert!(
        !body.contains("escribió"),
        "attribution above the marker goes too: {body}"
    );
    assert_eq!(
        desk.outbox_for("agent_follow_up").len(),
        1,
        "the agents hear about the follow-up"
    );
    assert_eq!(
        desk.outbox_for("ack").len(),
        1,
        "follow-ups are not acknowledged"
    );
}

#[test]
fn header_threading_by_in_reply_to_and_by_references_only() {
    let desk = desk_with_ticket_1("");
    let row = desk.ingest_fixture("follow-up-in-reply-to.eml");
    assert_eq!(
        (row["disposition"].as_str(), row["ticket"].as_i64()),
        (Some("follow_up"), Some(1))
    );
    let row = desk.ingest_fixture("follow-up-references-only.eml");
    assert_eq!(
        (row["disposition"].as_str(), row["ticket"].as_i64()),
        (Some("follow_up"), Some(1))
    );
}

#[test]
fn reply_to_our_ack_threads_by_its_message_id() {
    let desk = desk_with_ticket_1("");
    let ack = desk.outbox_for("ack").remove(0);
    let raw = std::fs::read(desk.path(&format!("outbox/{:08}.eml", ack["id"].as_i64().unwrap())));
    // Not delivered yet: read the Message-ID from the outbox after one delivery pass.
    assert!(raw.is_err());
    desk.ok(&["run", "--once"]);
    let raw = String::from_utf8(
        std::fs::read(desk.path(&format!("outbox/{:08}.eml", ack["id"].as_i64().unwrap())))
            .unwrap(),
    )
    .unwrap();
    let id = raw
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap()
        .trim()
        .to_string();
    let reply = mail(
        "ana@cliente.com",
        "Re: su solicitud",
        "reply-to-ack@cliente.com",
        &format!("In-Reply-To: {id}\r\n"),
        "gracias",
    );
    let row = desk.ingest_bytes(&reply);
    assert_eq!(
        (row["disposition"].as_str(), row["ticket"].as_i64()),
        (Some("follow_up"), Some(1))
    );
}

#[test]
fn foreign_sender_with_a_tag_follows_foreign_replies() {
    let desk = desk_with_ticket_1("");
    let row = desk.ingest_fixture("foreign-with-tag.eml");
    assert_eq!(row["disposition"], "new_ticket");
    assert_eq!(row["ticket"], 2);
    assert!(
        row["reason"]
            .as_str()
            .unwrap()
            .contains("not a participant"),
        "{}",
        row["reason"]
    );

    let desk = desk_with_ticket_1("foreign_replies = \"note\"");
    let row = desk.ingest_fixture("foreign-with-tag.eml");
    assert_eq!(
        (row["disposition"].as_str(), row["ticket"].as_i64()),
        (Some("note"), Some(1))
    );
    assert_eq!(messages(&desk.ticket(1)).last().unwrap()["kind"], "note");
    assert!(desk.outbox_for("agent_follow_up").is_empty());

    let desk = desk_with_ticket_1("foreign_replies = \"reject\"");
    let row = desk.ingest_fixture("foreign-with-tag.eml");
    assert_eq!(row["disposition"], "rejected");
    assert_eq!(messages(&desk.ticket(1)).len(), 1);
}

#[test]
fn same_customer_domain_and_cc_are_participants() {
    let desk = desk_with_ticket_1("");
    let row = desk.ingest_bytes(&mail(
        "jefe@cliente.com",
        "Re: [Ticket: 1]",
        "jefe-1@cliente.com",
        "Cc: externo@otro.org\r\n",
        "yo también",
    ));
    assert_eq!(
        (row["disposition"].as_str(), row["ticket"].as_i64()),
        (Some("follow_up"), Some(1))
    );
    let participants = desk.ticket(1)["participants"].clone();
    assert!(
        participants
            .as_array()
            .unwrap()
            .contains(&Value::from("jefe@cliente.com")),
        "{participants}"
    );
    assert!(
        participants
            .as_array()
            .unwrap()
            .contains(&Value::from("externo@otro.org")),
        "{participants}"
    );
    // The Cc'd address may now follow up although it is no customer.
    let row = desk.ingest_bytes(&mail(
        "externo@otro.org",
        "Re: [Ticket: 1]",
        "ext-1@otro.org",
        "",
        "hola",
    ));
    assert_eq!(row["disposition"], "follow_up");
}

/// Each machine-mail signal of SPEC §4.4: no ack, no status change, no mail.
#[test]
fn machine_mail_never_answers_nor_changes_status() {
    for fixture_name in [
        "auto-submitted.eml",
        "auto-submitted-comment.eml",
        "x-autoreply.eml",
    ] {
        let desk = desk_with_ticket_1("");
        desk.ok(&["ticket", "update", "1", "--status", "waiting"]);
        let before = desk.outbox().len();
        let row = desk.ingest_fixture(fixture_name);
        assert_eq!(
            (row["disposition"].as_str(), row["ticket"].as_i64()),
            (Some("follow_up"), Some(1)),
            "{fixture_name}"
        );
        let t = desk.ticket(1);
        assert_eq!(
            t["status"], "waiting",
            "{fixture_name}: machine mail must not reopen"
        );
        assert_eq!(
            messages(&t).last().unwrap()["kind"],
            "auto",
            "{fixture_name}"
        );
        assert_eq!(
            desk.outbox().len(),
            before,
            "{fixture_name}: no mail at all"
        );
    }
    for fixture_name in [
        "precedence-bulk.eml",
        "list-id.eml",
        "empty-return-path.eml",
    ] {
        let desk = Desk::new();
        let row = desk.ingest_fixture(fixture_name);
        assert!(
            row["reason"].as_str().unwrap().contains("machine mail"),
            "{fixture_name}: {}",
            row["reason"]
        );
        assert!(
            desk.outbox().is_empty(),
            "{fixture_name}: no ack, no agent notification"
        );
    }
    // Precedence junk/list/auto_reply, X-Autorespond, postmaster.
    for (i, header) in [
        "Precedence: junk\r\n",
        "Precedence: list\r\n",
        "Precedence: auto_reply\r\n",
        "X-Autorespond: yes\r\n",
    ]
    .iter()
    .enumerate()
    {
        let desk = Desk::new();
        let row = desk.ingest_bytes(&mail(
            "ana@cliente.com",
            "Aviso",
            &format!("m{i}@cliente.com"),
            header,
            "auto",
        ));
        assert!(
            row["reason"].as_str().unwrap().contains("machine mail"),
            "{header}"
        );
        assert!(desk.outbox().is_empty(), "{header}");
    }
    let desk = Desk::new();
    let row = desk.ingest_bytes(&mail(
        "postmaster@cliente.com",
        "Aviso",
        "pm@cliente.com",
        "",
        "auto",
    ));
    assert!(row["reason"].as_str().unwrap().contains("machine mail"));
    assert!(desk.outbox().is_empty());
}

#[test]
fn auto_submitted_no_is_human() {
    let desk = Desk::new();
    let row = desk.ingest_fixture("auto-submitted-no.eml");
    assert_eq!(row["disposition"], "new_ticket");
    assert_eq!(desk.outbox_for("ack").len(), 1);
}

#[test]
fn bounce_of_our_ack_is_attached_fails_the_outbox_row_and_stops_mail() {
    let desk = desk_with_ticket_1("");
    // The bounce names the ack by its Message-ID: rewrite the fixture to our real one.
    let ack = desk.outbox_for("ack").remove(0);
    desk.ok(&["run", "--once"]);
    let sent = String::from_utf8(
        std::fs::read(desk.path(&format!("outbox/{:08}.eml", ack["id"].as_i64().unwrap())))
            .unwrap(),
    )
    .unwrap();
    let id = sent
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap()
        .trim()
        .to_string();
    let bounce = String::from_utf8(std::fs::read(fixture("mailer-daemon.eml")).unwrap())
        .unwrap()
        .replace("<ack-1@example.com>", &id);
    let row = desk.ingest_bytes(bounce.as_bytes());
    assert_eq!(
        (row["disposition"].as_str(), row["ticket"].as_i64()),
        (Some("follow_up"), Some(1)),
        "{}",
        row["reason"]
    );
    let t = desk.ticket(1);
    assert_eq!(messages(&t).last().unwrap()["kind"], "auto");
    assert!(
        t["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "bounce"),
        "{}",
        t["events"]
    );
    let ack = desk
        .json(&["outbox", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == ack["id"])
        .cloned()
        .unwrap();
    assert_eq!(ack["status"], "failed");
    // 5.1.1: no more automatic mail to ana.
    let row = desk.ingest_bytes(&mail(
        "ana@cliente.com",
        "Otra consulta",
        "after-bounce@cliente.com",
        "",
        "hola",
    ));
    assert_eq!(row["disposition"], "new_ticket");
    assert!(
        row["reason"].as_str().unwrap().contains("bounce stop"),
        "{}",
        row["reason"]
    );
    assert_eq!(desk.outbox_for("ack").len(), 1);
}

#[test]
fn human_senders_are_never_machine_mail() {
    let desk = Desk::new();
    let row = desk.ingest_fixture("servicenow.eml");
    assert!(row["reason"].as_str().unwrap().contains("machine mail"));
    assert!(desk.outbox_for("ack").is_empty());

    let desk = Desk::with_intake("human_senders = [\"*@servicenow.partner.com\"]");
    let row = desk.ingest_fixture("servicenow.eml");
    assert_eq!(row["disposition"], "new_ticket");
    assert_eq!(row["reason"], "new ticket");
    assert_eq!(desk.outbox_for("ack").len(), 1);
}

#[test]
fn auto_response_suppress_gets_no_ack_but_agents_hear() {
    let desk = Desk::new();
    let row = desk.ingest_fixture("x-auto-response-suppress.eml");
    assert_eq!(row["disposition"], "new_ticket");
    assert!(desk.outbox_for("ack").is_empty());
    assert_eq!(desk.outbox_for("agent_new_ticket").len(), 1);
}

#[test]
fn own_mail_and_x_loop_are_ignored() {
    let desk = desk_with_ticket_1("");
    for f in ["own-mail.eml", "x-loop.eml"] {
        let row = desk.ingest_fixture(f);
        assert_eq!(row["disposition"], "ignored", "{f}");
        assert_eq!(row["ticket"], Value::Null, "{f}");
    }
    assert_eq!(messages(&desk.ticket(1)).len(), 1);
    assert_eq!(desk.outbox().len(), 2);
}

#[test]
fn the_same_message_id_twice_is_ignored() {
    let desk = Desk::new();
    let first = mail("ana@cliente.com", "Hola", "twice@cliente.com", "", "uno");
    assert_eq!(desk.ingest_bytes(&first)["disposition"], "new_ticket");
    // Same Message-ID, other bytes (e.g. the copy that reached a second mailbox).
    let second = mail(
        "ana@cliente.com",
        "Hola",
        "twice@cliente.com",
        "X-Original-To: otro@example.com\r\n",
        "uno",
    );
    let row = desk.ingest_bytes(&second);
    assert_eq!(row["disposition"], "ignored");
    assert!(row["reason"].as_str().unwrap().contains("already read"));
    assert_eq!(desk.tickets().len(), 1);
    // The very same bytes again are recognised as already taken: no second row.
    let file = desk.path("again.eml");
    std::fs::write(&file, &first).unwrap();
    let out = desk.ok(&["ingest", file.to_str().unwrap()]);
    assert!(out.contains("already taken in"), "{out}");
    assert_eq!(desk.inbound().as_array().unwrap().len(), 2);
}

#[test]
fn oversize_mail_is_rejected_with_one_notice_per_day() {
    let desk = Desk::with_intake("max_message_size = \"2KB\"");
    let big = mail(
        "ana@cliente.com",
        "Adjunto enorme",
        "big-1@cliente.com",
        "",
        &"x".repeat(5000),
    );
    let row = desk.ingest_bytes(&big);
    assert_eq!(row["disposition"], "rejected");
    assert!(row["reason"].as_str().unwrap().contains("max_message_size"));
    assert!(desk.tickets().is_empty());
    assert_eq!(desk.outbox_for("message_rejected").len(), 1);
    let again = mail(
        "ana@cliente.com",
        "Adjunto enorme",
        "big-2@cliente.com",
        "",
        &"y".repeat(5000),
    );
    assert_eq!(desk.ingest_bytes(&again)["disposition"], "rejected");
    assert_eq!(
        desk.outbox_for("message_rejected").len(),
        1,
        "at most one notice per sender per day"
    );
}

#[test]
fn malformed_and_senderless_mail_is_quarantined() {
    let desk = Desk::new();
    for f in ["malformed.eml", "no-from.eml"] {
        let row = desk.ingest_fixture(f);
        assert_eq!(row["disposition"], "quarantined", "{f}");
        assert!(
            row["reason"].as_str().unwrap().starts_with("malformed"),
            "{f}: {}",
            row["reason"]
        );
    }
    assert!(desk.tickets().is_empty());
    assert!(desk.outbox().is_empty());
}

#[test]
fn charsets_are_decoded() {
    let desk = Desk::new();
    desk.ingest_fixture("iso-8859-1-subject.eml");
    let t = desk.ticket(1);
    assert_eq!(t["subject"], "Facturación bloqueada");
    assert!(
        messages(&t)[0]["body"]
            .as_str()
            .unwrap()
            .contains("miércoles"),
        "{}",
        messages(&t)[0]["body"]
    );

    desk.ingest_fixture("windows-1252-body.eml");
    let body = messages(&desk.ticket(2))[0]["body"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(body.contains("100 €") && body.contains("“120 €”"), "{body}");

    desk.ingest_fixture("utf8.eml");
    let t = desk.ticket(3);
    assert_eq!(t["subject"], "Contraseña olvidada 🔑");
}

#[test]
fn attachments_are_stored_once_by_hash_with_safe_names() {
    let desk = Desk::new();
    desk.ingest_fixture("attachment-traversal.eml");
    desk.ingest_fixture("attachment-same.eml");
    let first = messages(&desk.ticket(1))[0]["attachments"]
        .as_array()
        .cloned()
        .unwrap();
    let names: Vec<&str> = first
        .iter()
        .map(|a| a["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["passwd", "informe.pdf"]);
    let pdf = "d663640088750cf16276d623c2588d7233f2b84b45f4b2e20832f47b16aa5618";
    assert_eq!(first[1]["sha256"], pdf);
    assert_eq!(first[1]["size"], 13);
    let second = messages(&desk.ticket(2))[0]["attachments"]
        .as_array()
        .cloned()
        .unwrap();
    assert_eq!(second[0]["sha256"], pdf);
    // One file per content, inside attachments_dir, named by hash.
    let stored: Vec<_> = walk(&desk.path("var/attachments"));
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored.iter().any(|p| p.ends_with(pdf)));
    assert!(!desk.path("etc/passwd").exists() && !desk.path("var/etc/passwd").exists());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[test]
fn follow_up_on_waiting_reopens_to_open() {
    let desk = desk_with_ticket_1("");
    desk.ok(&["ticket", "update", "1", "--status", "waiting"]);
    let row = desk.ingest_fixture("follow-up-in-reply-to.eml");
    assert!(
        row["reason"].as_str().unwrap().contains("waiting → open"),
        "{}",
        row["reason"]
    );
    assert_eq!(desk.ticket(1)["status"], "open");
}

#[test]
fn validation_closes_and_anything_else_reopens() {
    let desk = desk_with_ticket_1("");
    desk.ok(&[
        "ticket",
        "update",
        "1",
        "--status",
        "resolved",
        "--note",
        "Serie B corregida.",
    ]);
    assert_eq!(desk.outbox_for("resolved").len(), 1);
    desk.ingest_bytes(&mail(
        "ana@cliente.com",
        "Re: [Ticket: 1]",
        "v1@cliente.com",
        "",
        "No conforme, sigue fallando",
    ));
    let t = desk.ticket(1);
    assert_eq!(t["status"], "open");
    let reopened = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "reopened")
        .cloned()
        .unwrap();
    assert_eq!(
        reopened["detail"],
        "resolved by admin (postdesk ticket update)"
    );
    desk.ok(&["ticket", "update", "1", "--status", "resolved"]);
    desk.ingest_bytes(&mail(
        "ana@cliente.com",
        "Re: [Ticket: 1]",
        "v2@cliente.com",
        "",
        "\n  Conforme.\n\nGracias",
    ));
    let t = desk.ticket(1);
    assert_eq!(t["status"], "closed");
    assert!(
        t["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "validated")
    );
    assert!(t["closed_at"].is_string());
}

#[test]
fn closed_ticket_reopens_within_the_window_and_continues_after_it() {
    let desk = desk_with_ticket_1("reopen_window = \"14d\"");
    desk.ok(&[
        "--now",
        "2026-11-01T10:00:00Z",
        "ticket",
        "update",
        "1",
        "--status",
        "closed",
    ]);
    let file = desk.path("late.eml");
    std::fs::write(
        &file,
        mail(
            "ana@cliente.com",
            "Re: [Ticket: 1]",
            "late@cliente.com",
            "",
            "vuelve a fallar",
        ),
    )
    .unwrap();
    desk.ok(&[
        "--now",
        "2026-12-01T10:00:00Z",
        "ingest",
        file.to_str().unwrap(),
    ]);
    let row = desk.inbound().as_array().unwrap().last().cloned().unwrap();
    assert_eq!(
        (row["disposition"].as_str(), row["ticket"].as_i64()),
        (Some("new_ticket"), Some(2)),
        "{}",
        row["reason"]
    );
    assert!(
        desk.ticket(2)["events"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("continues closed ticket 1")
    );

    std::fs::write(
        &file,
        mail(
            "ana@cliente.com",
            "Re: [Ticket: 1]",
            "soon@cliente.com",
            "",
            "otra vez",
        ),
    )
    .unwrap();
    desk.ok(&[
        "--now",
        "2026-11-05T10:00:00Z",
        "ingest",
        file.to_str().unwrap(),
    ]);
    assert_eq!(desk.ticket(1)["status"], "open");
}

#[test]
fn ack_rate_limit_caps_automatic_mail_per_recipient() {
    let desk = Desk::with_intake("ack_rate_limit = \"2/h\"");
    for i in 0..4 {
        desk.ingest_bytes(&mail(
            "ana@cliente.com",
            &format!("Consulta {i}"),
            &format!("rl-{i}@cliente.com"),
            "",
            &format!("Pregunta número {i}"),
        ));
    }
    assert_eq!(desk.tickets().len(), 4);
    assert_eq!(desk.outbox_for("ack").len(), 2);
    assert_eq!(
        desk.outbox_for("agent_new_ticket").len(),
        4,
        "agents are not rate limited"
    );
}

/// The same cap when the mails arrive together, in one batch (one commit):
/// the acks queued for the earlier mails of the batch count already.
#[test]
fn ack_rate_limit_counts_the_acks_queued_earlier_in_the_same_batch() {
    let desk = Desk::with_intake("ack_rate_limit = \"2/h\"");
    let mut files = Vec::new();
    for i in 0..4 {
        let file = desk.path(&format!("batch-{i}.eml"));
        std::fs::write(
            &file,
            mail(
                "ana@cliente.com",
                &format!("Consulta {i}"),
                &format!("rl-batch-{i}@cliente.com"),
                "",
                &format!("Pregunta número {i}"),
            ),
        )
        .unwrap();
        files.push(file.to_str().unwrap().to_string());
    }
    let mut args = vec!["ingest"];
    args.extend(files.iter().map(String::as_str));
    desk.ok(&args);
    assert_eq!(desk.tickets().len(), 4);
    let acks = desk.outbox_for("ack");
    assert_eq!(acks.len(), 2, "{acks:#?}");
    // Queued in the order the mails came, for the first two tickets.
    assert_eq!(acks[0]["ticket"], 1);
    assert_eq!(acks[1]["ticket"], 2);
    assert_eq!(desk.outbox_for("agent_new_ticket").len(), 4);
    let inbound = desk.inbound();
    let reasons: Vec<&str> = inbound
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[2].contains("rate limit"), "{reasons:#?}");
    assert!(reasons[3].contains("rate limit"), "{reasons:#?}");
}

/// A message whose write fails in the middle of a batch is rolled back alone:
/// the messages before and after it are taken in once each, and nothing of
/// it (ticket, outbox row, recipients, Message-ID) is left behind.
#[test]
fn a_message_failing_within_a_batch_fails_alone() {
    let desk = Desk::new();
    desk.ok(&["ticket", "list", "--json"]);
    // The store refuses the second mail's message row.
    let db = rusqlite::Connection::open(desk.path("var/postdesk.db")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.subject = 'Refused' \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .unwrap();
    drop(db);
    let mut files = Vec::new();
    for (i, (from, subject)) in [
        ("ana@cliente.com", "Primera"),
        ("eva@cliente.com", "Refused"),
        ("rosa@cliente.com", "Tercera"),
    ]
    .into_iter()
    .enumerate()
    {
        let file = desk.path(&format!("batch-{i}.eml"));
        let raw = mail(from, subject, &format!("fail-{i}@cliente.com"), "", "Texto");
        std::fs::write(&file, raw).unwrap();
        files.push(file.to_str().unwrap().to_string());
    }
    let mut args = vec!["ingest"];
    args.extend(files.iter().map(String::as_str));
    let out = desk.run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("batch-1.eml") && stderr.contains("injected failure"),
        "{stderr}"
    );
    let tickets = desk.tickets();
    let subjects: Vec<&str> = tickets
        .iter()
        .map(|t| t["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["Primera", "Tercera"]);
    assert_eq!(desk.inbound().as_array().unwrap().len(), 2);
    let acks: Vec<String> = desk
        .outbox_for("ack")
        .iter()
        .map(|o| o["to"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(acks, ["ana@cliente.com", "rosa@cliente.com"]);
    let db = rusqlite::Connection::open(desk.path("var/postdesk.db")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT COUNT(*) FROM outbox_recipients WHERE address = 'eva@cliente.com'"),
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM outbox"),
        4,
        "two acks, two team notifications"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM message_ids WHERE direction = 'out'"),
        4
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM message_ids WHERE message_id = 'fail-1@cliente.com'"),
        0
    );
}

#[test]
fn maildir_walkthrough_with_run_once() {
    let desk = Desk::new();
    std::fs::create_dir_all(desk.path("mail/new")).unwrap();
    std::fs::copy(
        fixture("new-ticket.eml"),
        desk.path("mail/new/1700000000.M1P1.test"),
    )
    .unwrap();
    // Already opened by another client: in cur/ without our S flag.
    std::fs::create_dir_all(desk.path("mail/cur")).unwrap();
    std::fs::copy(
        fixture("english.eml"),
        desk.path("mail/cur/1700000001.M2P1.test:2,"),
    )
    .unwrap();
    desk.ok(&["run", "--once"]);
    assert_eq!(desk.tickets().len(), 2);
    assert!(
        std::fs::read_dir(desk.path("mail/new"))
            .unwrap()
            .next()
            .is_none()
    );
    let mut cur: Vec<String> = std::fs::read_dir(desk.path("mail/cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cur.sort();
    assert_eq!(
        cur,
        vec!["1700000000.M1P1.test:2,S", "1700000001.M2P1.test:2,S"]
    );
    let sent: Vec<_> = desk
        .outbox()
        .into_iter()
        .filter(|o| o["status"] == "sent")
        .collect();
    assert_eq!(sent.len(), 4);
    let ack = std::fs::read_to_string(desk.path("outbox/00000001.eml")).unwrap();
    for header in [
        "X-Postdesk-Ticket: 1",
        "X-Loop: soporte@example.com",
        "Auto-Submitted: auto-replied",
        "X-Auto-Response-Suppress: All",
        "In-Reply-To: <new-ticket-1@cliente.com>",
        "References: <new-ticket-1@cliente.com>",
        "Thread-Topic: ",
        "Thread-Index: ",
        "Message-ID: <pd.1.",
    ] {
        assert!(ack.contains(header), "ack lacks {header}:\n{ack}");
    }
    assert!(
        ack.contains("@example.com>"),
        "Message-ID under the mailbox domain"
    );
    // A second pass reads nothing again.
    desk.ok(&["run", "--once"]);
    assert_eq!(desk.inbound().as_array().unwrap().len(), 2);
}

/// A batch taken in by the daemon composes its mail on helper threads; when
/// one of those mails cannot be composed (an address lettre refuses), the
/// batch is done again one message after another: every message still gets
/// its row, the others their mail, and the reason tells what was not queued.
#[test]
fn a_mail_that_cannot_be_composed_in_a_batch_is_logged_and_the_rest_is_queued() {
    let desk = Desk::new();
    std::fs::create_dir_all(desk.path("mail/new")).expect("create maildir");
    let senders = [
        "ana@cliente.com",
        "\"ana maria\"@cliente.com",
        "luisa@cliente.com",
    ];
    for (i, from) in senders.iter().enumerate() {
        let raw = mail(
            from,
            &format!("Problema {i}"),
            &format!("batch-{i}@cliente.com"),
            "",
            "Hola.",
        );
        let name = format!("17000000{i:02}.M{i}P1.test");
        std::fs::write(desk.path("mail/new").join(name), raw).expect("write mail");
    }
    desk.ok(&["run", "--once"]);
    let log = desk.inbound();
    let rows = log.as_array().expect("inbound array");
    assert_eq!(rows.len(), 3, "one row per message: {log:#}");
    for row in rows {
        assert_eq!(row["disposition"], "new_ticket", "{row:#}");
    }
    let reason = rows[1]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("ack not queued"), "{reason}");
    // Acks to the two good senders, the team notification for all three,
    // each composed whole (delivered as a file by `run --once`).
    let outbox = desk.outbox();
    assert_eq!(outbox.len(), 5, "{outbox:#?}");
    assert!(outbox.iter().all(|o| o["status"] == "sent"), "{outbox:#?}");
    let files = std::fs::read_dir(desk.path("outbox"))
        .expect("outbox dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
        .map(|e| std::fs::read_to_string(e.path()).expect("eml"))
        .collect::<Vec<_>>();
    assert_eq!(files.len(), 5);
    assert!(
        files
            .iter()
            .all(|f| f.contains("Subject: ") && f.contains("X-Postdesk-Ticket: ")),
        "every queued mail is complete"
    );
}
