//! The exact bytes `compose_as` produces for representative notices, pinned
//! against `fixtures/compose/*.eml` (the multipart boundary, random by
//! design, is replaced by a placeholder). `POSTDESK_BLESS=1` rewrites them.

use std::path::{Path, PathBuf};

use chrono::TimeZone;
use postdesk_core::mail::Attachment;
use postdesk_core::outgoing::AutoSubmitted;
use serde_json::json;

use super::*;

const CONFIG: &str = r#"[desk]
name = "Soporte Ejemplo"
language = "en"
tag = "Ticket"
templates_dir = "templates"

[[mailboxes]]
name = "soporte"
address = "soporte@example.com"
source = "maildir"
path = "mail"
notes_address = "notas@example.com"

[smtp]
transport = "file"
dir = "outbox"
from_name = "Soporte Ejemplo — Atención"

[[agents]]
name = "Luis"
email = "luis@example.com"

[[agents]]
name = "Marta Núñez"
email = "marta@example.com"

[[customers]]
name = "Cliente S.A."
domains = ["cliente.com"]
language = "es"
"#;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 9, 30, 0).unwrap()
}

fn config() -> Config {
    Config::parse(CONFIG, "postdesk.toml").unwrap()
}

fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
}

/// The shipped templates, with `sla_warning` (en) replaced by one that
/// prints every object of the context whole, as a user's template may.
fn dumping_templates() -> (tempfile::TempDir, Templates) {
    let dir = tempfile::tempdir().unwrap();
    for lang in crate::templates::LANGUAGES {
        std::fs::create_dir(dir.path().join(lang)).unwrap();
        for name in crate::templates::NAMES {
            let file = format!("{name}.txt");
            std::fs::copy(
                templates_dir().join(lang).join(&file),
                dir.path().join(lang).join(&file),
            )
            .unwrap();
        }
    }
    let dump = r#"Subject: Dump {{ tag }} {{ lang }}
{{ marker }}
desk: {{ desk }}
mailbox: {{ mailbox }}
ticket: {{ ticket }}
ticket pprint: {{ ticket | pprint }}
{% for k, v in (ticket or {}) | items %}
  {{ k }} = {{ v }} ({{ v is number }}, {{ v is string }}, {{ v is none }})
{% endfor %}
{% if ticket %}
id+1: {{ ticket.id + 1 }} id/2: {{ ticket.id / 2 }} id//2: {{ ticket.id // 2 }}
{% endif %}
message: {{ message }}
message pprint: {{ message | pprint }}
nested pprint: {{ nested | pprint }}
{% for a in message.attachments %}
  {{ a.filename }}: {{ a.size }} {{ a.size / 1048576 }} {{ a.size // 1024 }}
{% endfor %}
tag: {{ tag }} nested: {{ nested }} n: {{ n }} missing: [{{ ticket.nope }}] [{{ nope }}]
keys: {% for k in [desk, mailbox, ticket, message] %}{{ k | length if k else "-" }} {% endfor %}

"#;
    std::fs::write(dir.path().join("en/sla_warning.txt"), dump).unwrap();
    let templates = Templates::load(dir.path()).unwrap();
    (dir, templates)
}

fn ticket(subject: &str) -> TicketRow {
    TicketRow {
        id: 42,
        subject: subject.into(),
        status: "open".into(),
        priority: "urgent".into(),
        ticket_type: Some("problem".into()),
        categories: vec!["facturación".into(), "acceso".into()],
        queue: "general".into(),
        mailbox: "soporte".into(),
        requester: "ana@cliente.com".into(),
        customer: Some("Cliente S.A.".into()),
        assignee: Some("luis@example.com".into()),
        participants: vec!["ana@cliente.com".into(), "pedro@cliente.com".into()],
        duplicate_of: None,
        continues: Some(7),
        created_at: 1_773_134_000,
        updated_at: 1_773_135_000,
        last_update_at: Some(1_773_135_000),
        first_response_due: Some(1_773_137_600),
        first_response_at: None,
        resolution_due: Some(1_773_163_800),
        resolved_at: None,
        resolved_by: None,
        closed_at: None,
        sla_state: "ok".into(),
        escalation_level: 1,
        sla_policy: Some("urgente".into()),
        waiting_since: None,
        paused_seconds: 0,
        next_timer_at: Some(1_773_137_600),
    }
}

fn inbound() -> InboundMail {
    InboundMail {
        message_id: Some("CAF=abc123@mail.cliente.com".into()),
        from: "ana@cliente.com".into(),
        from_name: Some("Ana Pérez".into()),
        to: vec!["soporte@example.com".into()],
        subject: "Factura duplicada: cobro doble en marzo".into(),
        date: Some(Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 5).unwrap()),
        references: (1..=11).map(|i| format!("ref{i}@cliente.com")).collect(),
        body: "Hola,\n\nnos han cobrado dos veces la factura F-2026/031.\n\
               Adjunto las dos.\n\nUn saludo,\nAna\n"
            .into(),
        attachments: vec![
            Attachment {
                filename: "factura 1.pdf".into(),
                content_type: "application/pdf".into(),
                data: vec![b'%'; 1500],
            },
            Attachment {
                filename: "../captura.png".into(),
                content_type: "not a type".into(),
                data: (0..=255).collect(),
            },
        ],
        ..Default::default()
    }
}

struct Case {
    name: &'static str,
    notice: Notice,
    ticket: Option<TicketRow>,
    inbound: Option<InboundMail>,
    thread_root: Option<&'static str>,
    dump: bool,
}

fn case(name: &'static str, notice: Notice) -> Case {
    Case {
        name,
        notice,
        ticket: Some(ticket("Factura duplicada: cobro doble en marzo")),
        inbound: Some(inbound()),
        thread_root: None,
        dump: false,
    }
}

fn cases() -> Vec<Case> {
    let ack = Notice::new(
        "ack",
        vec!["ana@cliente.com".into()],
        About::NewTicket,
        AutoSubmitted::AutoReplied,
    );
    let mut english_ack = case(
        "ack_en",
        Notice {
            to: vec!["someone@elsewhere.org".into()],
            ..ack.clone()
        },
    );
    english_ack.inbound.as_mut().unwrap().from = "someone@elsewhere.org".into();
    let mut no_subject = case("ack_no_subject", ack.clone());
    no_subject.ticket.as_mut().unwrap().subject = String::new();
    no_subject.inbound.as_mut().unwrap().from_name = None;

    let agents = Notice::new(
        "agent_new_ticket",
        vec!["luis@example.com".into(), "marta@example.com".into()],
        About::NewTicket,
        AutoSubmitted::AutoReplied,
    );
    let follow_up = Notice {
        with_attachments: true,
        ..Notice::new(
            "agent_follow_up",
            vec!["luis@example.com".into()],
            About::Ticket(42),
            AutoSubmitted::AutoReplied,
        )
    };
    let mut relay = case(
        "relay",
        Notice {
            cc: vec!["pedro@cliente.com".into(), "eva@cliente.com".into()],
            answers_inbound: false,
            thread_to: Some("CAF=latest@mail.cliente.com".into()),
            with_attachments: true,
            ..Notice::new(
                "agent_reply",
                vec!["ana@cliente.com".into()],
                About::Ticket(42),
                AutoSubmitted::No,
            )
            .with(
                "reply",
                json!({"body": "Hola Ana,\n\nya está anulada la segunda.\n", "agent_name": "Marta Núñez", "agent_email": "marta@example.com"}),
            )
        },
    );
    relay.inbound.as_mut().unwrap().from = "marta@example.com".into();
    relay.inbound.as_mut().unwrap().references = vec!["ref1@cliente.com".into()];

    let status = Notice::new(
        "status_changed",
        vec!["ana@cliente.com".into()],
        About::Ticket(42),
        AutoSubmitted::AutoGenerated,
    )
    .with("old_status", "open")
    .with("new_status", "resolved")
    .with("by", "luis@example.com")
    .with("keywords", vec!["conforme".to_string()]);
    let mut timer = case("status_changed_timer", status);
    timer.inbound = None;
    timer.thread_root = Some("CAF=first@mail.cliente.com");

    let errors = Notice::new(
        "command_error",
        vec!["luis@example.com".into()],
        About::Nothing,
        AutoSubmitted::AutoReplied,
    )
    .with(
        "errors",
        json!([{"line": 1, "text": "#status whatever", "error": "unknown status"}]),
    )
    .with("accepted", "#status open|waiting");

    let dump = Notice::new(
        "sla_warning",
        vec!["luis@example.com".into()],
        About::Ticket(42),
        AutoSubmitted::AutoGenerated,
    )
    .with("tag", "overridden")
    .with("n", 5)
    .with("nested", json!({"b": [1, 2.5, null], "a": {"x": "y"}}));
    let mut dumped = case("dump", dump.clone());
    dumped.dump = true;
    let mut dumped_nothing = case(
        "dump_nothing",
        Notice {
            about: About::Nothing,
            extra: Default::default(),
            ..dump
        },
    );
    dumped_nothing.dump = true;
    dumped_nothing.inbound = None;

    vec![
        case("ack", ack),
        english_ack,
        no_subject,
        case("agent_new_ticket", agents),
        case("agent_follow_up", follow_up),
        relay,
        timer,
        case("command_error", errors),
        dumped,
        dumped_nothing,
    ]
}

/// The composed mail with its multipart boundary made fixed.
fn normalized(raw: &[u8]) -> String {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let Some(start) = text.find("boundary=\"") else {
        return text;
    };
    let start = start + "boundary=\"".len();
    let end = start + text[start..].find('"').unwrap();
    let boundary = text[start..end].to_string();
    text.replace(&boundary, "BOUNDARY")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/compose")
        .join(format!("{name}.eml"))
}

/// The case's mail composed about `about`, as its fixture holds it.
fn composed(case: &Case, about: &Subject<'_>, config: &Config, templates: &Templates) -> String {
    let composed = compose_as(
        &case.notice,
        about,
        &config.mailboxes[0],
        config,
        templates,
        now(),
        format!("pd.42.1773135000.1.{}@example.com", case.name),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    format!(
        "X-Test-Envelope: {}\r\nX-Test-Subject: {}\r\n{}",
        composed.to.join(" "),
        composed.subject,
        normalized(&composed.raw)
    )
}

fn expected(case: &Case) -> String {
    let path = fixture(case.name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn composed_bytes_are_pinned() {
    let config = config();
    let templates = Templates::load(&templates_dir()).unwrap();
    let (_dir, dumping) = dumping_templates();
    let bless = std::env::var_os("POSTDESK_BLESS").is_some();
    for case in cases() {
        let about = Subject {
            ticket: case.ticket.as_ref(),
            inbound: case.inbound.as_ref(),
            thread_root: case.thread_root,
            shared: &Shared::default(),
        };
        let templates = if case.dump { &dumping } else { &templates };
        let text = composed(&case, &about, &config, templates);
        if bless {
            let path = fixture(case.name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(text, expected(&case), "{} differs", case.name);
        // One Content-Type in the header block: text/plain, or
        // multipart/mixed for a mail with attachments.
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        let head = head.split("\n\n").next().unwrap_or(head);
        let types = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("content-type:"))
            .count();
        assert_eq!(types, 1, "{}: {types} Content-Type headers", case.name);
    }
}

/// The mails of one inbound mail share their template objects and give the
/// same bytes; a `Shared` handed with another ticket is not used for it.
#[test]
fn shared_objects_serve_their_ticket_only() {
    let config = config();
    let templates = Templates::load(&templates_dir()).unwrap();
    let all = cases();
    let case = |name: &str| all.iter().find(|c| c.name == name).unwrap();
    let (ack, agents, command_error) =
        (case("ack"), case("agent_new_ticket"), case("command_error"));
    let shared = Shared::default();
    let about = Subject {
        ticket: ack.ticket.as_ref(),
        inbound: ack.inbound.as_ref(),
        thread_root: None,
        shared: &shared,
    };
    // A notice about nothing first: the ticket is still there for the next.
    assert_eq!(
        composed(command_error, &about, &config, &templates),
        expected(command_error)
    );
    assert_eq!(composed(ack, &about, &config, &templates), expected(ack));
    assert_eq!(
        composed(agents, &about, &config, &templates),
        expected(agents)
    );
    for other in ["ack_no_subject", "ack_en"] {
        let other = case(other);
        let about = Subject {
            ticket: other.ticket.as_ref(),
            inbound: other.inbound.as_ref(),
            thread_root: None,
            shared: &shared,
        };
        assert_eq!(
            composed(other, &about, &config, &templates),
            expected(other)
        );
    }
}

#[test]
fn undeliverable_addresses_are_refused() {
    let config = config();
    let mailbox = &config.mailboxes[0];
    let templates = Templates::load(&templates_dir()).unwrap();
    let errors: Vec<String> = [
        (vec!["not an address".to_string()], vec![]),
        (vec!["ana@cliente.com".into()], vec!["bad@".into()]),
        (vec![], vec![]),
    ]
    .into_iter()
    .map(|(to, cc)| {
        let notice = Notice {
            cc,
            ..Notice::new("ack", to, About::NewTicket, AutoSubmitted::AutoReplied)
        };
        let ticket = ticket("x");
        let about = Subject {
            ticket: Some(&ticket),
            inbound: None,
            thread_root: None,
            shared: &Shared::default(),
        };
        match compose_as(
            &notice,
            &about,
            mailbox,
            &config,
            &templates,
            now(),
            "id@example.com".into(),
        ) {
            Ok(_) => "composed".to_string(),
            Err(e) => e.to_string(),
        }
    })
    .collect();
    assert_eq!(
        errors,
        [
            "`not an address` is not a deliverable address",
            "`bad@` is not a deliverable address",
            "cannot build the mail: missing destination address, invalid envelope",
        ]
    );
}
