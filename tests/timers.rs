//! Timers fire exactly once (SPEC §6, §7): called repeatedly with `run
//! --once --now …` before and after the instant, and once, late, when the
//! first call comes long after.

mod common;

use common::{Desk, base_config, mail};
use serde_json::Value;

fn desk() -> Desk {
    let text = format!(
        "{}\n[[sla]]\nname = \"general\"\nfirst_response = \"4h\"\nresolution = \"8h\"\n\n[[escalation]]\nafter_no_update = \"24h\"\nnotify = [\"jefe@example.com\"]\n\n[[escalation]]\nafter_no_update = \"36h\"\nnotify = [\"operaciones@example.com\"]\n\n[validation]\nauto_close_after = \"7d\"\n",
        base_config("ack_rate_limit = \"100/h\"")
    );
    Desk::with_config(&text)
}

fn ingest_at(desk: &Desk, now: &str, from: &str, subject: &str, id: &str) {
    let file = desk.path("m.eml");
    std::fs::write(&file, mail(from, subject, id, "", &format!("texto {id}"))).unwrap();
    desk.ok(&["--now", now, "ingest", file.to_str().unwrap()]);
}

fn run_at(desk: &Desk, now: &str) {
    desk.ok(&["--now", now, "run", "--once"]);
}

fn events(desk: &Desk, id: i64, kind: &str) -> Vec<Value> {
    desk.ticket(id)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

#[test]
fn warning_and_breach_fire_once_before_and_after_the_instant() {
    let desk = desk();
    ingest_at(
        &desk,
        "2026-11-23T08:00:00Z",
        "ana@cliente.com",
        "Consulta",
        "a@x",
    );
    for now in [
        "2026-11-23T09:00:00Z",
        "2026-11-23T11:00:00Z",
        "2026-11-23T11:15:00Z",
        "2026-11-23T11:30:00Z",
    ] {
        run_at(&desk, now);
    }
    // 80 % of 4 h = 3 h 12 min after creation: one warning, no breach yet.
    assert_eq!(events(&desk, 1, "sla_warning").len(), 1);
    assert!(events(&desk, 1, "sla_breach").is_empty());
    assert_eq!(desk.outbox_for("sla_warning").len(), 1);
    for now in [
        "2026-11-23T12:00:00Z",
        "2026-11-23T12:01:00Z",
        "2026-11-23T13:00:00Z",
    ] {
        run_at(&desk, now);
    }
    assert_eq!(
        events(&desk, 1, "sla_breach").len(),
        1,
        "first response breached once"
    );
    // To the assignee (else the queue's agents) and the first escalation level.
    let mut to: Vec<String> = desk
        .outbox_for("sla_breach")
        .iter()
        .flat_map(|o| {
            o["to"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    to.sort();
    assert_eq!(to, vec!["jefe@example.com", "luis@example.com"]);
}

#[test]
fn a_late_first_pass_fires_each_timer_once() {
    let desk = desk();
    ingest_at(
        &desk,
        "2026-11-23T08:00:00Z",
        "ana@cliente.com",
        "Consulta",
        "a@x",
    );
    // The daemon was down for three days.
    run_at(&desk, "2026-11-26T08:00:00Z");
    run_at(&desk, "2026-11-26T08:05:00Z");
    assert_eq!(
        events(&desk, 1, "sla_breach").len(),
        2,
        "first response and resolution, once each"
    );
    let escalated: Vec<String> = events(&desk, 1, "escalated")
        .iter()
        .map(|e| e["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(escalated, vec!["1", "2"], "both levels, once each");
    assert_eq!(desk.ticket(1)["escalation_level"], 2);
    assert_eq!(desk.outbox_for("escalation").len(), 2);
}

#[test]
fn an_agent_reply_resets_escalation() {
    let desk = desk();
    ingest_at(
        &desk,
        "2026-11-23T08:00:00Z",
        "ana@cliente.com",
        "Consulta",
        "a@x",
    );
    run_at(&desk, "2026-11-24T08:30:00Z");
    assert_eq!(desk.ticket(1)["escalation_level"], 1);
    // The agent answers: the silence ends.
    let file = desk.path("r.eml");
    std::fs::write(
        &file,
        mail(
            "luis@example.com",
            "RE: [Ticket: 1]",
            "reply@example.com",
            "",
            "Lo miramos.",
        ),
    )
    .unwrap();
    desk.ok(&[
        "--now",
        "2026-11-24T09:00:00Z",
        "ingest",
        file.to_str().unwrap(),
    ]);
    assert_eq!(desk.ticket(1)["escalation_level"], 0);
    run_at(&desk, "2026-11-24T20:00:00Z");
    assert_eq!(
        events(&desk, 1, "escalated").len(),
        1,
        "no new level before 24 h of new silence"
    );
    run_at(&desk, "2026-11-25T09:30:00Z");
    assert_eq!(
        events(&desk, 1, "escalated").len(),
        2,
        "level 1 again after a new 24 h silence"
    );
}

#[test]
fn weekly_reminder_one_digest_per_requester_per_slot() {
    let desk = desk();
    ingest_at(
        &desk,
        "2026-11-18T08:00:00Z",
        "ana@cliente.com",
        "Uno",
        "1@x",
    );
    ingest_at(
        &desk,
        "2026-11-18T08:00:00Z",
        "ana@cliente.com",
        "Dos",
        "2@x",
    );
    ingest_at(
        &desk,
        "2026-11-18T08:00:00Z",
        "jefe@cliente.com",
        "Tres",
        "3@x",
    );
    for id in ["1", "2", "3"] {
        desk.ok(&[
            "--now",
            "2026-11-19T08:00:00Z",
            "ticket",
            "update",
            id,
            "--status",
            "resolved",
        ]);
    }
    // The slot is Monday 09:00 UTC; the daemon runs before, at, and twice after.
    for now in [
        "2026-11-23T08:59:00Z",
        "2026-11-23T09:00:00Z",
        "2026-11-23T09:30:00Z",
        "2026-11-23T15:00:00Z",
    ] {
        run_at(&desk, now);
    }
    let digests = desk.outbox_for("validation_reminder");
    assert_eq!(digests.len(), 2, "one per requester");
    assert_eq!(events(&desk, 1, "reminder").len(), 1);
    assert_eq!(events(&desk, 2, "reminder").len(), 1);
    let ana = digests
        .iter()
        .find(|d| d["to"][0] == "ana@cliente.com")
        .unwrap();
    assert!(
        ana["subject"].as_str().unwrap().len() > 3
            && !ana["subject"].as_str().unwrap().contains("[Ticket:"),
        "a digest carries no tag"
    );
    // Down over the next slot (Monday 30th): sent once, late, on Tuesday.
    run_at(&desk, "2026-12-01T10:00:00Z");
    run_at(&desk, "2026-12-01T10:05:00Z");
    assert_eq!(desk.outbox_for("validation_reminder").len(), 4);
}

#[test]
fn auto_close_closes_and_tells_the_customer() {
    let desk = desk();
    ingest_at(
        &desk,
        "2026-11-02T08:00:00Z",
        "ana@cliente.com",
        "Consulta",
        "a@x",
    );
    desk.ok(&[
        "--now",
        "2026-11-03T08:00:00Z",
        "ticket",
        "update",
        "1",
        "--status",
        "resolved",
    ]);
    run_at(&desk, "2026-11-09T08:00:00Z");
    assert_eq!(desk.ticket(1)["status"], "resolved");
    run_at(&desk, "2026-11-10T08:00:01Z");
    run_at(&desk, "2026-11-10T09:00:00Z");
    let t = desk.ticket(1);
    assert_eq!(t["status"], "closed");
    assert_eq!(
        events(&desk, 1, "status")
            .iter()
            .filter(|e| e["to"] == "closed")
            .count(),
        1
    );
    let told: Vec<_> = desk
        .outbox_for("status_changed")
        .into_iter()
        .filter(|o| o["created_at"] == "2026-11-10T08:00:01Z")
        .collect();
    assert_eq!(told.len(), 1);
}
