//! Intake rules of SPEC §4 (customers, contracts, rules) and the
//! duplicate-cancel rule of SPEC §5, through the real binary.

mod common;

use common::{Desk, base_config, mail};
use serde_json::Value;

fn ingest_at(desk: &Desk, now: &str, raw: &[u8]) -> Value {
    let file = desk.path("at.eml");
    std::fs::write(&file, raw).unwrap();
    desk.ok(&["--now", now, "ingest", file.to_str().unwrap()]);
    desk.inbound().as_array().unwrap().last().cloned().unwrap()
}

const FIRST: &str = "No puedo emitir facturación";

fn desk_with_original(config: &str) -> Desk {
    let desk = Desk::with_config(config);
    let row = ingest_at(
        &desk,
        "2026-11-02T09:00:00Z",
        &mail(
            "ana@cliente.com",
            FIRST,
            "orig@cliente.com",
            "",
            "La serie B falla al emitir.",
        ),
    );
    assert_eq!(row["ticket"], 1);
    desk
}

#[test]
fn every_prefix_form_of_the_same_subject_is_a_duplicate() {
    for (i, subject) in [
        "RE: No puedo emitir facturación",
        "RV: no puedo emitir FACTURACION",
        "Fwd: No puedo emitir facturación",
        "AW: WG: No  puedo   emitir facturación",
        "[2] No puedo emitir facturación",
        "Re[3]: SV: No puedo emitir facturación",
        "TR: ENC: RES: no puedo emitir facturacion",
    ]
    .iter()
    .enumerate()
    {
        let desk = desk_with_original(&base_config(""));
        let row = ingest_at(
            &desk,
            "2026-11-03T09:00:00Z",
            &mail(
                "ana@cliente.com",
                subject,
                &format!("d{i}@cliente.com"),
                "",
                &format!("Texto distinto {i}"),
            ),
        );
        assert_eq!(
            row["disposition"], "duplicate",
            "{subject}: {}",
            row["reason"]
        );
        let dup = desk.ticket(2);
        assert_eq!(
            (dup["status"].as_str(), dup["duplicate_of"].as_i64()),
            (Some("cancelled"), Some(1)),
            "{subject}"
        );
        let original = desk.ticket(1);
        let note = original["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["kind"] == "note")
            .cloned()
            .expect("merged note");
        assert!(
            note["body"]
                .as_str()
                .unwrap()
                .contains(&format!("Texto distinto {i}"))
        );
        assert!(
            original["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "merged_note")
        );
        let notices = desk.outbox_for("duplicate_notice");
        assert_eq!(notices.len(), 1, "{subject}");
        assert_eq!(notices[0]["to"], serde_json::json!(["ana@cliente.com"]));
        assert_eq!(
            desk.outbox_for("ack").len(),
            1,
            "no second ack for a duplicate"
        );
    }
}

#[test]
fn the_same_body_with_another_subject_is_a_duplicate() {
    let desk = desk_with_original(&base_config(""));
    let row = ingest_at(
        &desk,
        "2026-11-03T09:00:00Z",
        &mail(
            "ana@cliente.com",
            "Urgente!!",
            "body@cliente.com",
            "",
            "la serie B   falla al EMITIR.",
        ),
    );
    assert_eq!(row["disposition"], "duplicate");
}

#[test]
fn not_duplicates_outside_window_resolved_or_other_sender() {
    let again = |id: &str, from: &str| mail(from, FIRST, id, "", "Otra vez.");
    // Outside the 7-day window.
    let desk = desk_with_original(&base_config(""));
    assert_eq!(
        ingest_at(
            &desk,
            "2026-11-10T09:00:01Z",
            &again("late@cliente.com", "ana@cliente.com")
        )["disposition"],
        "new_ticket"
    );
    // Against a resolved ticket.
    let desk = desk_with_original(&base_config(""));
    desk.ok(&[
        "--now",
        "2026-11-02T10:00:00Z",
        "ticket",
        "update",
        "1",
        "--status",
        "resolved",
    ]);
    assert_eq!(
        ingest_at(
            &desk,
            "2026-11-03T09:00:00Z",
            &again("res@cliente.com", "ana@cliente.com")
        )["disposition"],
        "new_ticket"
    );
    // A colleague with scope = sender.
    let desk = desk_with_original(&base_config(""));
    assert_eq!(
        ingest_at(
            &desk,
            "2026-11-03T09:00:00Z",
            &again("col@cliente.com", "jefe@cliente.com")
        )["disposition"],
        "new_ticket"
    );
    // Duplicates switched off.
    let desk = desk_with_original(&format!(
        "{}\n[duplicates]\nenabled = false\n",
        base_config("")
    ));
    assert_eq!(
        ingest_at(
            &desk,
            "2026-11-03T09:00:00Z",
            &again("off@cliente.com", "ana@cliente.com")
        )["disposition"],
        "new_ticket"
    );
}

#[test]
fn a_colleague_of_the_same_customer_with_scope_customer() {
    let desk = desk_with_original(&format!(
        "{}\n[duplicates]\nscope = \"customer\"\nwindow = \"3d\"\n",
        base_config("")
    ));
    let row = ingest_at(
        &desk,
        "2026-11-03T09:00:00Z",
        &mail(
            "jefe@cliente.com",
            "RE: no puedo emitir facturación",
            "col@cliente.com",
            "",
            "Tampoco a mí.",
        ),
    );
    assert_eq!(row["disposition"], "duplicate", "{}", row["reason"]);
    assert!(
        row["reason"]
            .as_str()
            .unwrap()
            .contains("customer Cliente S.A.")
    );
    // Another customer's identical subject is not.
    let row = ingest_at(
        &desk,
        "2026-11-03T09:00:00Z",
        &mail("bob@other.org", FIRST, "other@other.org", "", "x"),
    );
    assert_eq!(row["disposition"], "new_ticket");
}

#[test]
fn follow_up_to_the_cancelled_duplicate_lands_on_the_original() {
    let desk = desk_with_original(&base_config(""));
    ingest_at(
        &desk,
        "2026-11-03T09:00:00Z",
        &mail(
            "ana@cliente.com",
            "RE: No puedo emitir facturación",
            "dup@cliente.com",
            "",
            "Sigue.",
        ),
    );
    let row = ingest_at(
        &desk,
        "2026-11-03T10:00:00Z",
        &mail(
            "ana@cliente.com",
            "Re: Solicitud duplicada [Ticket: 2]",
            "to-dup@cliente.com",
            "",
            "¿Entonces?",
        ),
    );
    assert_eq!(
        (row["disposition"].as_str(), row["ticket"].as_i64()),
        (Some("follow_up"), Some(1))
    );
}

#[test]
fn inactive_contract_gets_a_cancelled_ticket_and_a_notice() {
    let desk = Desk::with_config(&base_config("").replace(
        "domains = [\"cliente.com\"]",
        "domains = [\"cliente.com\"]\nactive = false",
    ));
    let row = desk.ingest_fixture("new-ticket.eml");
    assert_eq!(row["disposition"], "new_ticket");
    let t = desk.ticket(1);
    assert_eq!(t["status"], "cancelled");
    assert_eq!(desk.outbox_for("contract_inactive").len(), 1);
    assert!(desk.outbox_for("ack").is_empty());
    let listed = desk.json(&["ticket", "list", "--status", "cancelled", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[test]
fn unknown_senders_rejected_with_one_notice_per_day() {
    let desk = Desk::with_intake("unknown_senders = \"reject\"");
    let first = ingest_at(
        &desk,
        "2026-11-03T09:00:00Z",
        &mail("bob@other.org", "Hola", "u1@other.org", "", "uno"),
    );
    assert_eq!(first["disposition"], "rejected");
    ingest_at(
        &desk,
        "2026-11-03T15:00:00Z",
        &mail("bob@other.org", "Hola otra vez", "u2@other.org", "", "dos"),
    );
    assert_eq!(
        desk.outbox_for("unknown_sender").len(),
        1,
        "once per sender per day"
    );
    ingest_at(
        &desk,
        "2026-11-04T15:00:01Z",
        &mail("bob@other.org", "Mañana", "u3@other.org", "", "tres"),
    );
    assert_eq!(
        desk.outbox_for("unknown_sender").len(),
        2,
        "and again the next day"
    );
    assert!(desk.tickets().is_empty());
    // A known customer still gets a ticket.
    assert_eq!(
        desk.ingest_fixture("new-ticket.eml")["disposition"],
        "new_ticket"
    );
}

#[test]
fn rules_set_every_field_in_file_order() {
    let text = format!(
        "{}\n[[rules]]\nsubject = \"factur\"\nset = {{ priority = \"alta\", type = \"problema\", categories = [\"facturacion\"] }}\n\n[[rules]]\nfrom = \"@cliente\\\\.com$\"\nbody = \"serie\"\nset = {{ queue = \"billing\", assignee = \"Luis\", categories = [\"vip\"] }}\n\n[[rules]]\nmailbox = \"^soporte$\"\nsubject = \"urgente\"\nset = {{ priority = \"urgent\" }}\n",
        base_config("")
    );
    let desk = Desk::with_config(&text);
    desk.ingest_bytes(&mail(
        "ana@cliente.com",
        "Facturas urgente",
        "r1@cliente.com",
        "",
        "La serie B falla",
    ));
    let t = desk.ticket(1);
    assert_eq!(
        (
            t["priority"].as_str(),
            t["type"].as_str(),
            t["queue"].as_str(),
            t["assignee"].as_str()
        ),
        (
            Some("urgent"),
            Some("problem"),
            Some("billing"),
            Some("luis@example.com")
        )
    );
    assert_eq!(t["categories"], serde_json::json!(["facturacion", "vip"]));
    assert_eq!(
        desk.outbox_for("agent_new_ticket")[0]["to"],
        serde_json::json!(["luis@example.com"]),
        "the assignee is told"
    );
    desk.ingest_bytes(&mail("bob@other.org", "Hola", "r2@other.org", "", "nada"));
    let t = desk.ticket(2);
    assert_eq!(
        (t["priority"].as_str(), t["queue"].as_str()),
        (Some("medium"), Some("general"))
    );
}

#[test]
fn a_bad_rule_regex_is_a_located_config_error() {
    let text = format!(
        "{}\n[[rules]]\nsubject = \"(sin cerrar\"\nset = {{ priority = \"alta\" }}\n",
        base_config("")
    );
    let desk = Desk::with_config(&text);
    let out = desk.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .position(|l| l.starts_with("subject = \"(sin"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!(":{line}: rules.subject")) && err.contains("regex"),
        "{err}"
    );
}
