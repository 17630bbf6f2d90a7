//! Mail loops with another help desk (SPEC §4.4, §8): a simulated desk that
//! answers every mail it gets. Whatever it does — marking its answers
//! `Auto-Submitted`, keeping our tag, or starting a fresh thread each time —
//! the exchange ends after a bounded number of mails.

mod common;

use common::{Desk, mail};

const OTHER: &str = "helpdesk@other.example";

/// How the other desk answers one of our mails.
#[derive(Clone, Copy)]
enum Style {
    /// `Auto-Submitted: auto-replied`, threaded to our mail.
    Polite,
    /// No Auto-Submitted, our subject (with our tag) kept.
    KeepsSubject,
    /// No Auto-Submitted, no threading headers, its own new subject each time.
    FreshThread,
}

fn answer(style: Style, n: usize, our_subject: &str, our_id: &str) -> Vec<u8> {
    let id = format!("other-{n}@other.example");
    match style {
        Style::Polite => mail(
            OTHER,
            &format!("Auto: {our_subject}"),
            &id,
            &format!("Auto-Submitted: auto-replied\r\nIn-Reply-To: <{our_id}>\r\n"),
            "Hemos recibido su correo.",
        ),
        Style::KeepsSubject => mail(
            OTHER,
            &format!("RE: {our_subject}"),
            &id,
            "",
            "Hemos recibido su correo.",
        ),
        Style::FreshThread => mail(
            OTHER,
            &format!("Solicitud recibida #{}", 9000 + n),
            &id,
            "",
            "Hemos recibido su correo y le responderemos pronto.",
        ),
    }
}

/// Runs the exchange; returns how many mails we sent to the other desk.
fn exchange(style: Style) -> usize {
    let desk = Desk::new();
    desk.ingest_bytes(&mail(
        OTHER,
        "Consulta de integración",
        "start@other.example",
        "",
        "¿Pueden revisar la integración?",
    ));
    let mut answered = std::collections::HashSet::new();
    for round in 0..100 {
        desk.ok(&["run", "--once"]);
        let ours: Vec<_> = desk
            .outbox()
            .into_iter()
            .filter(|o| o["to"][0] == OTHER && !answered.contains(&o["id"].as_i64().unwrap()))
            .collect();
        if ours.is_empty() {
            return desk.outbox().iter().filter(|o| o["to"][0] == OTHER).count();
        }
        for o in ours {
            let id = o["id"].as_i64().unwrap();
            answered.insert(id);
            let raw = std::fs::read_to_string(desk.path(&format!("outbox/{id:08}.eml"))).unwrap();
            let mid = raw
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .unwrap()
                .trim()
                .trim_matches(['<', '>'])
                .to_string();
            desk.ingest_bytes(&answer(
                style,
                round * 10 + answered.len(),
                o["subject"].as_str().unwrap(),
                &mid,
            ));
        }
    }
    panic!("the exchange did not end within 100 rounds");
}

#[test]
fn a_polite_auto_responder_gets_one_mail() {
    assert_eq!(
        exchange(Style::Polite),
        1,
        "only our ack; its auto-reply is machine mail"
    );
}

#[test]
fn an_auto_responder_keeping_our_tag_gets_one_mail() {
    assert_eq!(
        exchange(Style::KeepsSubject),
        1,
        "its answers thread as follow-ups, which are never acknowledged"
    );
}

#[test]
fn an_auto_responder_starting_fresh_threads_is_capped() {
    let sent = exchange(Style::FreshThread);
    assert!(
        sent <= 5,
        "the per-recipient cap (5/h) bounds the loop, sent {sent}"
    );
    assert!(sent >= 1);
}
