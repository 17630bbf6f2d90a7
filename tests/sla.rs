//! SLA clocks on real tickets (SPEC §7) and `postdesk sla --json` (SPEC §2).

mod common;

use common::{Desk, base_config, mail};
use serde_json::Value;

fn desk() -> Desk {
    let text = format!(
        "{}\n[calendars.oficina]\ntimezone = \"Europe/Madrid\"\nmon = \"09:00-18:00\"\ntue = \"09:00-18:00\"\nwed = \"09:00-18:00\"\nthu = \"09:00-18:00\"\nfri = \"09:00-18:00\"\nholidays = [\"2026-12-08\"]\n\n[[sla]]\nname = \"urgente\"\nmatch = {{ priority = \"urgent\" }}\nresolution = \"8h\"\n\n[[sla]]\nname = \"problema\"\nmatch = {{ type = \"problem\" }}\ncalendar = \"oficina\"\nfirst_response = \"4h\"\nresolution = \"24h\"\n\n[[sla]]\nname = \"general\"\ncalendar = \"oficina\"\nresolution = \"3bd\"\n",
        base_config("ack_rate_limit = \"50/h\"")
    );
    Desk::with_config(&text)
}

fn ingest_at(desk: &Desk, now: &str, from: &str, subject: &str, id: &str) -> Value {
    let file = desk.path("m.eml");
    std::fs::write(&file, mail(from, subject, id, "", &format!("texto {id}"))).unwrap();
    desk.ok(&["--now", now, "ingest", file.to_str().unwrap()]);
    desk.inbound().as_array().unwrap().last().cloned().unwrap()
}

#[test]
fn deadlines_are_set_at_creation_and_recomputed_on_change() {
    let desk = desk();
    // Monday 10:00 Madrid.
    ingest_at(
        &desk,
        "2026-11-23T09:00:00Z",
        "ana@cliente.com",
        "Consulta",
        "a@x",
    );
    let t = desk.json(&[
        "--now",
        "2026-11-23T09:00:00Z",
        "ticket",
        "show",
        "1",
        "--json",
    ]);
    assert_eq!(
        t["resolution_due"], "2026-11-26T09:00:00Z",
        "general: 3 business days"
    );
    assert_eq!(t["first_response_due"], Value::Null);
    assert_eq!(t["sla_state"], "ok");
    // Becoming a problem re-chooses the policy, deadlines from creation.
    desk.ok(&[
        "--now",
        "2026-11-23T10:00:00Z",
        "ticket",
        "update",
        "1",
        "--type",
        "problema",
    ]);
    let t = desk.json(&[
        "--now",
        "2026-11-23T10:00:00Z",
        "ticket",
        "show",
        "1",
        "--json",
    ]);
    assert_eq!(t["first_response_due"], "2026-11-23T13:00:00Z");
    assert_eq!(t["resolution_due"], "2026-11-25T15:00:00Z");
    // The state is the state now: warning at 80 % of the first response budget, then breached.
    let at = |now: &str| {
        desk.json(&["--now", now, "ticket", "show", "1", "--json"])["sla_state"].clone()
    };
    assert_eq!(at("2026-11-23T12:30:00Z"), "warning");
    assert_eq!(at("2026-11-23T13:00:00Z"), "breached");
    let listed = desk.json(&["--now", "2026-11-23T13:00:00Z", "ticket", "list", "--json"]);
    assert_eq!(listed[0]["sla_state"], "breached");
}

#[test]
fn waiting_pauses_the_resolution_clock_by_the_working_time_spent() {
    let desk = desk();
    ingest_at(
        &desk,
        "2026-11-23T09:00:00Z",
        "ana@cliente.com",
        "Consulta",
        "a@x",
    );
    let before = desk.ticket(1)["resolution_due"].clone();
    assert_eq!(before, "2026-11-26T09:00:00Z");
    // Waiting from Monday 12:00 to Wednesday 12:00 local: two working days (18 h).
    desk.ok(&[
        "--now",
        "2026-11-23T11:00:00Z",
        "ticket",
        "update",
        "1",
        "--status",
        "waiting",
    ]);
    assert_eq!(
        desk.json(&[
            "--now",
            "2026-11-24T11:00:00Z",
            "ticket",
            "show",
            "1",
            "--json"
        ])["sla_state"],
        "paused"
    );
    desk.ok(&[
        "--now",
        "2026-11-25T11:00:00Z",
        "ticket",
        "update",
        "1",
        "--status",
        "open",
    ]);
    // Thursday 10:00 + 18 working hours = Monday 10:00.
    assert_eq!(desk.ticket(1)["resolution_due"], "2026-11-30T09:00:00Z");
}

#[test]
fn sla_lists_open_tickets_most_urgent_first() {
    let desk = desk();
    ingest_at(
        &desk,
        "2026-11-23T09:00:00Z",
        "ana@cliente.com",
        "Consulta general",
        "a@x",
    );
    ingest_at(
        &desk,
        "2026-11-23T09:00:00Z",
        "jefe@cliente.com",
        "Caída total",
        "b@x",
    );
    desk.ok(&[
        "--now",
        "2026-11-23T09:00:00Z",
        "ticket",
        "update",
        "2",
        "--priority",
        "urgente",
    ]);
    ingest_at(
        &desk,
        "2026-11-23T09:00:00Z",
        "bob@other.org",
        "Resuelto ya",
        "c@x",
    );
    desk.ok(&[
        "--now",
        "2026-11-23T09:30:00Z",
        "ticket",
        "update",
        "3",
        "--status",
        "resolved",
    ]);
    let list = desk.json(&["--now", "2026-11-23T10:00:00Z", "sla", "--json"]);
    let rows = list.as_array().unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(
        ids,
        vec![2, 1],
        "resolved tickets are not listed; the urgent one first"
    );
    let mut keys: Vec<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "assignee",
            "escalation_level",
            "first_response_due",
            "id",
            "policy",
            "priority",
            "remaining_seconds",
            "resolution_due",
            "sla_state",
            "status",
            "subject",
            "type"
        ]
    );
    assert_eq!(rows[0]["policy"], "urgente");
    assert_eq!(
        rows[0]["remaining_seconds"],
        7 * 3600,
        "8 h around the clock, 1 h gone"
    );
    let late = desk.json(&["--now", "2026-11-23T18:00:00Z", "sla", "--json"]);
    assert_eq!(late[0]["sla_state"], "breached");
    assert!(late[0]["remaining_seconds"].as_i64().unwrap() < 0);
}

#[test]
fn reopening_resumes_the_resolution_clock() {
    let desk = desk();
    ingest_at(
        &desk,
        "2026-11-23T09:00:00Z",
        "ana@cliente.com",
        "Consulta",
        "a@x",
    );
    assert_eq!(desk.ticket(1)["resolution_due"], "2026-11-26T09:00:00Z");
    // Resolved Monday 12:00 local, reopened Tuesday 12:00: 9 working hours stopped.
    desk.ok(&[
        "--now",
        "2026-11-23T11:00:00Z",
        "ticket",
        "update",
        "1",
        "--status",
        "resolved",
    ]);
    let file = desk.path("r.eml");
    std::fs::write(
        &file,
        mail(
            "ana@cliente.com",
            "RE: [Ticket: 1]",
            "again@x",
            "",
            "No conforme, sigue fallando",
        ),
    )
    .unwrap();
    desk.ok(&[
        "--now",
        "2026-11-24T11:00:00Z",
        "ingest",
        file.to_str().unwrap(),
    ]);
    let t = desk.ticket(1);
    assert_eq!(t["status"], "open");
    // Thursday 10:00 + 9 working hours = Friday 10:00.
    assert_eq!(t["resolution_due"], "2026-11-27T09:00:00Z");
}
