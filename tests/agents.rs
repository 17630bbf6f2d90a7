//! Agents work from their mail client (SPEC §6): whole conversations driven
//! through intake, read back from the outbox and the delivered `.eml` files.

mod common;

use common::{Desk, base_config, mail};
use serde_json::Value;

fn desk() -> Desk {
    // Many changes in a row: raise the per-recipient cap on automatic mail.
    let text = base_config("ack_rate_limit = \"50/h\"")
        .replace(
            "poll_interval = \"1s\"",
            "poll_interval = \"1s\"\nnotes_address = \"notas@example.com\"",
        )
        .replace(
            "[[customers]]",
            "[[agents]]\nname = \"Marta Ruiz\"\nemail = \"marta@example.com\"\n\n[[customers]]",
        );
    let desk = Desk::with_config(&text);
    let row = desk.ingest_fixture("new-ticket.eml");
    assert_eq!(row["ticket"], 1);
    desk
}

/// An agent's mail onto ticket 1 (the tag threads it).
fn agent_mail(from: &str, id: &str, body: &str) -> Vec<u8> {
    mail(
        from,
        "RE: Nuevo ticket: No puedo emitir facturas [Ticket: 1]",
        id,
        "",
        body,
    )
}

/// Delivers the outbox to .eml files and returns the text of outbox row `id`.
fn delivered(desk: &Desk, row: &Value) -> String {
    desk.ok(&["run", "--once"]);
    let path = desk.path(&format!(
        "outbox/{:08}.eml",
        row["id"].as_i64().expect("outbox id")
    ));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn decoded_body(raw: &str) -> String {
    let parsed = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .expect("mail");
    parsed
        .body_text(0)
        .map(|b| b.replace("\r\n", "\n"))
        .unwrap_or_default()
}

fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    raw.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

fn event_kinds(t: &Value) -> Vec<String> {
    t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

const QUOTED: &str = "\n\nEl lun, 23 nov 2026 a las 10:00, Soporte <soporte@example.com> escribió:\n> ## Responda por encima de esta línea ##\n> Se ha abierto el ticket [Ticket: 1]";

#[test]
fn conversation_reply_resolve_and_validate() {
    let desk = desk();
    assert_eq!(desk.outbox_for("agent_new_ticket").len(), 1);

    // The agent answers from Outlook with commands on top.
    let reply = format!(
        "#status resolved\n#prioridad alta\nHola Ana:\n\nYa está corregida la serie B.{QUOTED}"
    );
    let row = desk.ingest_bytes(&agent_mail(
        "luis@example.com",
        "luis-1@example.com",
        &reply,
    ));
    assert_eq!(
        (row["disposition"].as_str(), row["ticket"].as_i64()),
        (Some("follow_up"), Some(1)),
        "{}",
        row["reason"]
    );
    let t = desk.ticket(1);
    assert_eq!(
        (t["status"].as_str(), t["priority"].as_str()),
        (Some("resolved"), Some("high"))
    );
    assert!(t["first_response_at"].is_string());
    let stored = t["messages"][1].clone();
    assert_eq!(stored["kind"], "agent");
    assert_eq!(stored["body"], "Hola Ana:\n\nYa está corregida la serie B.");

    // One mail to the customer: the solution, from the mailbox, tagged, threaded.
    let to_customer: Vec<Value> = desk
        .outbox()
        .into_iter()
        .filter(|o| o["to"][0] == "ana@cliente.com" && o["template"] != "ack")
        .collect();
    assert_eq!(to_customer.len(), 1, "one mail per change: {to_customer:?}");
    assert_eq!(to_customer[0]["template"], "resolved");
    let raw = delivered(&desk, &to_customer[0]);
    assert!(
        header(&raw, "From")
            .unwrap()
            .contains("<soporte@example.com>"),
        "{raw}"
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap();
    assert!(
        parsed.subject().unwrap().ends_with("[Ticket: 1]"),
        "{:?}",
        parsed.subject()
    );
    assert_eq!(
        header(&raw, "In-Reply-To"),
        Some("<new-ticket-1@cliente.com>")
    );
    assert_eq!(
        header(&raw, "Auto-Submitted"),
        None,
        "a person's reply is not auto-submitted"
    );
    let body = decoded_body(&raw);
    assert!(body.contains("Ya está corregida la serie B."), "{body}");
    assert!(
        !body.contains("#status") && !body.contains("#prioridad") && !body.contains("escribió"),
        "{body}"
    );
    assert!(body.contains("Conforme"), "tells how to validate: {body}");

    // The customer validates.
    desk.ingest_bytes(&mail(
        "ana@cliente.com",
        "RE: Solicitud resuelta [Ticket: 1]",
        "ana-ok@cliente.com",
        "",
        "Conforme\n\nGracias",
    ));
    let t = desk.ticket(1);
    assert_eq!(t["status"], "closed");
    assert!(event_kinds(&t).contains(&"validated".to_string()));
}

#[test]
fn no_conforme_reopens_and_records_the_resolver() {
    let desk = desk();
    desk.ingest_bytes(&agent_mail(
        "luis@example.com",
        "luis-2@example.com",
        "#estado resuelto\nCorregido.",
    ));
    desk.ingest_bytes(&mail(
        "ana@cliente.com",
        "RE: [Ticket: 1]",
        "ana-no@cliente.com",
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
        .expect("reopened event");
    assert_eq!(reopened["detail"], "resolved by luis@example.com");
    assert_eq!(reopened["by"], "ana@cliente.com");
    assert_eq!(desk.outbox_for("reopened").len(), 1);
}

#[test]
fn every_command_and_alias_applies() {
    let desk = desk();
    desk.ingest_bytes(&agent_mail("luis@example.com", "c1@example.com", "#priority urgent\n#type bug\n#category facturación\n#assign marta@example.com\n#status waiting"));
    let t = desk.ticket(1);
    assert_eq!(
        (
            t["priority"].as_str(),
            t["type"].as_str(),
            t["assignee"].as_str(),
            t["status"].as_str()
        ),
        (
            Some("urgent"),
            Some("bug"),
            Some("marta@example.com"),
            Some("waiting")
        )
    );
    assert_eq!(t["categories"], serde_json::json!(["facturación"]));

    desk.ingest_bytes(&agent_mail(
        "luis@example.com",
        "c2@example.com",
        "#prioridad baja\n#tipo solicitud\n#categoria soporte\n#asignar Luis\n#estado en-proceso",
    ));
    let t = desk.ticket(1);
    assert_eq!(
        (
            t["priority"].as_str(),
            t["type"].as_str(),
            t["assignee"].as_str(),
            t["status"].as_str()
        ),
        (
            Some("low"),
            Some("request"),
            Some("luis@example.com"),
            Some("open")
        )
    );
    assert_eq!(
        t["categories"],
        serde_json::json!(["facturación", "soporte"])
    );

    desk.ingest_bytes(&agent_mail("marta@example.com", "c3@example.com", "#tomar"));
    assert_eq!(desk.ticket(1)["assignee"], "marta@example.com");
    desk.ingest_bytes(&agent_mail("luis@example.com", "c4@example.com", "#take"));
    assert_eq!(desk.ticket(1)["assignee"], "luis@example.com");
    let kinds = event_kinds(&desk.ticket(1));
    for k in ["priority", "type", "category", "assign", "status"] {
        assert!(
            kinds.contains(&k.to_string()),
            "{k} event missing: {kinds:?}"
        );
    }
    // Commands alone relay nothing; each change is notified once.
    assert!(desk.outbox_for("agent_reply").is_empty());
    assert_eq!(desk.outbox_for("assigned").len(), 4);
    assert_eq!(desk.outbox_for("status_changed").len(), 2);
}

#[test]
fn invalid_commands_get_an_error_mail_and_the_rest_applies() {
    let desk = desk();
    let row = desk.ingest_bytes(&agent_mail("luis@example.com", "bad@example.com", "#estado volando\n#prioridad alta\n#asignar nadie\n#duplicado 999\n#frobnicate\nTexto para Ana."));
    assert!(
        row["reason"].as_str().unwrap().contains("4 command error"),
        "{}",
        row["reason"]
    );
    let t = desk.ticket(1);
    assert_eq!(t["priority"], "high");
    assert_eq!(t["assignee"], Value::Null);
    assert_eq!(t["status"], "open", "the relayed text answers the ticket");
    let errors = desk.outbox_for("command_error");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["to"], serde_json::json!(["luis@example.com"]));
    let body = decoded_body(&delivered(&desk, &errors[0]));
    for needle in ["volando", "nadie", "999", "frobnicate", "#status"] {
        assert!(body.contains(needle), "error mail lacks {needle}: {body}");
    }
    assert_eq!(desk.outbox_for("agent_reply").len(), 1);
}

#[test]
fn notes_by_command_and_by_notes_address_are_never_relayed() {
    let desk = desk();
    let row = desk.ingest_bytes(&agent_mail(
        "luis@example.com",
        "n1@example.com",
        "#nota\nEl cliente debe la factura 12.",
    ));
    assert_eq!(row["disposition"], "note");
    let note = mail(
        "luis@example.com",
        "RE: [Ticket: 1]",
        "n2@example.com",
        "Cc: notas@example.com\r\n",
        "Llamé por teléfono.",
    );
    let row = desk.ingest_bytes(&note);
    assert_eq!(row["disposition"], "note");
    let t = desk.ticket(1);
    let kinds: Vec<&str> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["customer", "note", "note"]);
    assert!(
        desk.outbox()
            .iter()
            .all(|o| o["to"][0] != "ana@cliente.com" || o["template"] == "ack"),
        "no customer mail for notes"
    );
    assert_eq!(t["status"], "new", "a note does not answer the customer");
    assert!(t["first_response_at"].is_null());
}

#[test]
fn duplicate_merges_into_the_original() {
    let desk = desk();
    let second = mail(
        "ana@cliente.com",
        "Otra vez lo de las facturas",
        "dup-2@cliente.com",
        "",
        "Sigo sin poder facturar la serie B",
    );
    assert_eq!(desk.ingest_bytes(&second)["ticket"], 2);
    let cmd = mail(
        "luis@example.com",
        "RE: [Ticket: 2]",
        "dup-cmd@example.com",
        "",
        "#duplicado 1\nEs el mismo caso.",
    );
    desk.ingest_bytes(&cmd);
    let t2 = desk.ticket(2);
    assert_eq!(
        (t2["status"].as_str(), t2["duplicate_of"].as_i64()),
        (Some("cancelled"), Some(1))
    );
    let t1 = desk.ticket(1);
    assert!(event_kinds(&t1).contains(&"merged_note".to_string()));
    let merged = t1["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "note")
        .cloned()
        .expect("merged note");
    assert!(
        merged["body"]
            .as_str()
            .unwrap()
            .contains("Sigo sin poder facturar la serie B")
    );
    let notices = desk.outbox_for("duplicate_notice");
    assert_eq!(notices.len(), 1);
    assert!(decoded_body(&delivered(&desk, &notices[0])).contains("[Ticket: 1]"));
}

#[test]
fn non_agents_cannot_command_and_non_participants_follow_foreign_replies() {
    let desk = desk();
    // A customer writing commands: a customer follow-up, nothing applied.
    let row = desk.ingest_bytes(&mail(
        "ana@cliente.com",
        "RE: [Ticket: 1]",
        "spoof-1@cliente.com",
        "",
        "#status closed\n#priority low",
    ));
    assert_eq!(row["disposition"], "follow_up");
    let t = desk.ticket(1);
    assert_eq!(
        (t["status"].as_str(), t["priority"].as_str()),
        (Some("new"), Some("medium"))
    );
    assert_eq!(t["messages"][1]["kind"], "customer");
    // A stranger using the tag with commands: not a participant → new ticket.
    let row = desk.ingest_bytes(&mail(
        "mallory@evil.example",
        "RE: [Ticket: 1]",
        "spoof-2@evil.example",
        "",
        "#status closed",
    ));
    assert_eq!(row["disposition"], "new_ticket");
    assert_eq!(desk.ticket(1)["status"], "new");
}

#[test]
fn relayed_replies_reach_cc_participants_in_one_mail() {
    let desk = desk();
    desk.ingest_bytes(&mail(
        "ana@cliente.com",
        "RE: [Ticket: 1]",
        "cc-1@cliente.com",
        "Cc: jefe@cliente.com\r\n",
        "Añado a mi jefe.",
    ));
    desk.ingest_bytes(&agent_mail(
        "luis@example.com",
        "cc-2@example.com",
        "Buenos días a ambos, lo revisamos hoy.",
    ));
    let relays = desk.outbox_for("agent_reply");
    assert_eq!(relays.len(), 1);
    assert_eq!(
        relays[0]["to"],
        serde_json::json!(["ana@cliente.com", "jefe@cliente.com"])
    );
    let raw = delivered(&desk, &relays[0]);
    assert_eq!(header(&raw, "To"), Some("ana@cliente.com"));
    assert_eq!(header(&raw, "Cc"), Some("jefe@cliente.com"));
    assert_eq!(
        header(&raw, "In-Reply-To"),
        Some("<cc-1@cliente.com>"),
        "answers the customer's latest message"
    );
    assert_eq!(
        desk.ticket(1)["status"],
        "open",
        "answering moves new → open"
    );
}

#[test]
fn relayed_replies_carry_the_agents_attachments() {
    let desk = desk();
    let raw = "From: luis@example.com\r\nTo: soporte@example.com\r\nSubject: RE: [Ticket: 1]\r\nMessage-ID: <att-1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAdjunto la guía.\r\n--b\r\nContent-Type: application/pdf; name=\"guia.pdf\"\r\nContent-Disposition: attachment; filename=\"guia.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQgZ3VpYQ==\r\n--b--\r\n";
    desk.ingest_bytes(raw.as_bytes());
    let relay = desk.outbox_for("agent_reply").remove(0);
    let sent = delivered(&desk, &relay);
    let parsed = mail_parser::MessageParser::default()
        .parse(sent.as_bytes())
        .unwrap();
    let names: Vec<String> =
        mail_parser::MimeHeaders::attachment_name(parsed.attachment(0).expect("attachment"))
            .map(str::to_string)
            .into_iter()
            .collect();
    assert_eq!(names, vec!["guia.pdf"]);
    assert_eq!(parsed.attachment(0).unwrap().contents(), b"%PDF-1.4 guia");
}

/// Real-client replies (fixtures/mail/replies): the stored and relayed text
/// is exactly what the author wrote above the quoted history.
#[test]
fn quoted_history_of_real_clients_is_cut_before_storing_and_relaying() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mail/replies");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("eml") {
            continue;
        }
        let expected = std::fs::read_to_string(path.with_extension("expected.txt")).unwrap();
        let desk = desk();
        let row = desk.ingest_bytes(&std::fs::read(&path).unwrap());
        assert_eq!(row["ticket"], 1, "{}: {}", path.display(), row["reason"]);
        let t = desk.ticket(1);
        let stored = t["messages"][1]["body"].as_str().unwrap().to_string();
        let from = t["messages"][1]["from"].as_str().unwrap().to_string();
        if from == "luis@example.com" {
            // Commands (if any) are stripped too; the relay carries the same text.
            let relay = desk
                .outbox()
                .into_iter()
                .find(|o| o["to"][0] == "ana@cliente.com" && o["template"] != "ack");
            let relay = relay.unwrap_or_else(|| panic!("{}: nothing relayed", path.display()));
            let body = decoded_body(&delivered(&desk, &relay));
            assert!(
                body.contains(stored.trim()),
                "{}: relay lacks the text {:?}:\n{body:?}",
                path.display(),
                stored.trim()
            );
            for quoted in ["escribió", "wrote:", "Original Message", "Enviado:"] {
                if !expected.contains(quoted) {
                    assert!(
                        !body.contains(quoted),
                        "{}: quoted history relayed:\n{body}",
                        path.display()
                    );
                }
            }
        } else {
            assert_eq!(stored.trim(), expected.trim(), "{}", path.display());
            let note = desk.outbox_for("agent_follow_up").remove(0);
            let body = decoded_body(&delivered(&desk, &note));
            assert!(
                body.contains(expected.trim().lines().next().unwrap()),
                "{}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} reply fixtures");
}
