//! The SMTP outbox against a real MTA (the test Postfix + Dovecot of
//! `scripts/mailserver`): acks queued while the MTA is unreachable wait with
//! backoff and are delivered exactly once when it comes back, with the headers
//! of SPEC §8, as read back over IMAP; a 5xx marks the mail `failed` at once.
//!
//! Needs the MS_* variables of `scripts/mailserver` (`scripts/test` sets them).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::mail::{Imap, MailServer, free_port, header, headers, mail_server};
use common::{Desk, base_config, mail};
use serde_json::Value;

/// How long Postfix → LMTP → Dovecot may take to show a mail over IMAP.
const DELIVERY_WAIT: Duration = Duration::from_secs(15);

/// The base desk with the `smtp` transport to 127.0.0.1:`port`, no TLS.
fn smtp_desk(port: u16) -> Desk {
    let file = "[smtp]\ntransport = \"file\"\ndir = \"outbox\"\n";
    let base = base_config("");
    assert!(
        base.contains(file),
        "the base config changed: update smtp_desk"
    );
    Desk::with_config(&base.replace(file, &format!("[smtp]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n")))
}

/// Copies `from` into `to` until EOF, then half-closes `to`.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

/// A TCP forwarder 127.0.0.1:`port` → `upstream`, for the life of the test
/// process: the "MTA" postdesk sees, up from this call on.
fn start_forwarder(port: u16, upstream: (String, u16)) {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("forwarder cannot listen on {port}: {e}"));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect((upstream.0.as_str(), upstream.1)) else {
                continue;
            };
            let (c2, s2) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || pump(client, server));
            std::thread::spawn(move || pump(s2, c2));
        }
    });
}

/// `hours` after the instant the desk stamped on `row` (tests take time
/// from postdesk's own output: only the Clock reads the system time).
fn hours_after(row: &Value, hours: i64) -> String {
    let created = row["created_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no created_at: {row}"));
    let created = chrono::DateTime::parse_from_rfc3339(created).expect("RFC 3339 created_at");
    (created + chrono::Duration::hours(hours)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The headers of every message in `user`'s INBOX whose Subject contains
/// `token`, keyed by token.
fn inbox_headers(
    ms: &MailServer,
    user: &str,
    tokens: &[String],
) -> BTreeMap<String, Vec<Vec<(String, String)>>> {
    let mut imap = Imap::login(ms, user);
    imap.ok("SELECT INBOX");
    let mut found = BTreeMap::new();
    for token in tokens {
        let search = imap.ok(&format!("UID SEARCH SUBJECT \"{token}\""));
        let uids: Vec<String> = search
            .iter()
            .filter_map(|r| r.text.strip_prefix("* SEARCH"))
            .flat_map(|rest| {
                rest.split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut messages = Vec::new();
        if !uids.is_empty() {
            for response in imap.ok(&format!("UID FETCH {} (BODY.PEEK[HEADER])", uids.join(","))) {
                if let Some(block) = response.literals.first() {
                    messages.push(headers(block));
                }
            }
        }
        found.insert(token.clone(), messages);
    }
    imap.logout();
    found
}

fn rows_of<'a>(outbox: &'a [Value], template: &str) -> Vec<&'a Value> {
    outbox
        .iter()
        .filter(|r| r["template"] == template)
        .collect()
}

#[test]
fn acks_wait_while_the_mta_is_down_and_are_delivered_exactly_once() {
    let ms = mail_server();
    let started = Instant::now();
    let port = free_port();
    let desk = smtp_desk(port);
    // Dovecot's INBOX outlives the test: tag this run's mail with a nonce (the
    // process id and the random name of the desk's temporary folder).
    let folder = desk
        .dir
        .path()
        .file_name()
        .expect("temp dir name")
        .to_string_lossy();
    let nonce = format!(
        "pd{:x}{}",
        std::process::id(),
        folder
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase()
    );

    // Three new tickets; every ack goes to Dovecot user `customer`.
    let mut cases = Vec::new(); // (token, ticket, message id of the customer's mail)
    for (k, domain) in ["a", "b", "c"].iter().enumerate() {
        let token = format!("{nonce}x{k}");
        let message_id = format!("{token}@{domain}.example");
        let row = desk.ingest_bytes(&mail(
            &format!("customer@{domain}.example"),
            &format!("No puedo entrar {token}"),
            &message_id,
            "",
            "La aplicacion no me deja entrar.",
        ));
        assert_eq!(row["disposition"], "new_ticket", "{row}");
        cases.push((token, row["ticket"].as_i64().expect("ticket"), message_id));
    }

    // The MTA is down: nothing listens on `port`.
    desk.ok(&["run", "--once"]);
    let outbox = desk.outbox();
    let acks = rows_of(&outbox, "ack");
    assert_eq!(acks.len(), cases.len(), "one ack per ticket: {outbox:?}");
    for row in &outbox {
        assert_eq!(
            row["status"], "pending",
            "the mail waits while the MTA is down: {row}"
        );
        assert!(row["attempts"].as_i64().expect("attempts") >= 1, "{row}");
        assert!(
            row["last_error"].as_str().is_some_and(|e| !e.is_empty()),
            "the error is kept: {row}"
        );
        assert!(row["sent_at"].is_null(), "{row}");
    }
    println!("while the MTA is down: {}", acks[0]["last_error"]);

    // The MTA is back; time moves past the backoff.
    start_forwarder(port, (ms.host.clone(), ms.smtp_port));
    desk.ok(&["--now", &hours_after(acks[0], 2), "run", "--once"]);
    let delivered = desk.outbox();
    for row in &delivered {
        assert_eq!(
            row["status"], "sent",
            "delivered once the MTA is back: {row}"
        );
        assert!(row["last_error"].is_null(), "{row}");
    }
    // A second pass sends nothing new.
    desk.ok(&["--now", &hours_after(acks[0], 3), "run", "--once"]);
    assert_eq!(
        desk.outbox(),
        delivered,
        "a second pass must not touch sent mail"
    );

    // Read the acks back from Dovecot: each arrived, exactly once.
    let tokens: Vec<String> = cases.iter().map(|c| c.0.clone()).collect();
    let deadline = Instant::now() + DELIVERY_WAIT;
    let mut found = inbox_headers(&ms, "customer", &tokens);
    while found.values().any(Vec::is_empty) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        found = inbox_headers(&ms, "customer", &tokens);
    }
    // A duplicate would be queued right behind the first copy: look once more.
    std::thread::sleep(Duration::from_millis(500));
    found = inbox_headers(&ms, "customer", &tokens);
    for (token, ticket, answered) in &cases {
        let messages = &found[token];
        assert_eq!(
            messages.len(),
            1,
            "the ack of ticket {ticket} ({token}) must arrive exactly once, got {}: {messages:?}",
            messages.len()
        );
        let h = &messages[0];
        let one = |name: &str| -> &str {
            let values = header(h, name);
            assert_eq!(
                values.len(),
                1,
                "ack of ticket {ticket}: one `{name}` header expected: {h:?}"
            );
            values[0]
        };
        assert!(
            one("subject").contains(&format!("[Ticket: {ticket}]")),
            "subject: {}",
            one("subject")
        );
        assert_eq!(one("x-postdesk-ticket"), ticket.to_string());
        assert_eq!(one("x-loop"), "soporte@example.com");
        assert_eq!(one("auto-submitted"), "auto-replied");
        assert_eq!(one("in-reply-to"), format!("<{answered}>"));
        assert_eq!(one("x-auto-response-suppress"), "All");
        let message_id = one("message-id");
        assert!(
            message_id.starts_with('<') && message_id.ends_with("@example.com>"),
            "Message-ID under the mailbox's domain: {message_id}"
        );
        assert!(
            one("to").contains(&format!(
                "customer@{}",
                answered.rsplit('@').next().expect("domain")
            )),
            "to: {}",
            one("to")
        );
    }
    println!(
        "smtp: {} acks delivered after an outage, {:.1} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
}

/// A fake SMTP server that refuses every recipient with a 550; counts RCPTs.
fn start_refusing_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let rcpts = Arc::new(AtomicUsize::new(0));
    let counter = rcpts.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut writer = conn.try_clone().expect("clone");
                let mut reader = BufReader::new(conn);
                let _ = writer.write_all(b"220 fake.example ESMTP\r\n");
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 fake.example\r\n",
                        "MAIL" | "RSET" | "NOOP" => b"250 2.0.0 Ok\r\n",
                        "RCPT" => {
                            counter.fetch_add(1, Ordering::SeqCst);
                            b"550 5.1.1 Recipient address rejected: User unknown\r\n"
                        }
                        "DATA" => b"554 5.5.1 Error: no valid recipients\r\n",
                        "QUIT" => {
                            let _ = writer.write_all(b"221 2.0.0 Bye\r\n");
                            return;
                        }
                        _ => b"502 5.5.2 Error: command not recognized\r\n",
                    };
                    if writer.write_all(reply).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    (port, rcpts)
}

#[test]
fn permanent_smtp_failure_marks_failed() {
    let (port, rcpts) = start_refusing_server();
    let desk = smtp_desk(port);
    let row = desk.ingest_bytes(&mail(
        "ana@cliente.com",
        "No puedo emitir facturas",
        "perm-1@cliente.com",
        "",
        "Hola.",
    ));
    assert_eq!(row["disposition"], "new_ticket", "{row}");

    desk.ok(&["run", "--once"]);
    let outbox = desk.outbox();
    assert_eq!(rows_of(&outbox, "ack").len(), 1, "{outbox:?}");
    for row in &outbox {
        assert_eq!(row["status"], "failed", "a 5xx is permanent: {row}");
        assert_eq!(row["attempts"], 1, "{row}");
        let error = row["last_error"]
            .as_str()
            .unwrap_or_else(|| panic!("the error is kept: {row}"));
        assert!(
            error.contains("550") || error.contains("Recipient address rejected"),
            "the server's answer is kept: {error}"
        );
        assert!(row["sent_at"].is_null(), "{row}");
    }
    assert_eq!(
        rcpts.load(Ordering::SeqCst),
        outbox.len(),
        "one RCPT per mail"
    );
    println!("after a 550: {}", outbox[0]["last_error"]);

    // Failed mail is never tried again.
    desk.ok(&["--now", &hours_after(&outbox[0], 2), "run", "--once"]);
    assert_eq!(
        desk.outbox(),
        outbox,
        "failed mail stays failed, attempts unchanged"
    );
    assert_eq!(
        rcpts.load(Ordering::SeqCst),
        outbox.len(),
        "no retry after a 5xx"
    );
}
