//! IMAP mailboxes against the real Dovecot + Postfix of `scripts/mailserver`:
//! IDLE end to end with the ack read back over IMAP, `\Seen` mail still
//! taken in once, two mailboxes and a refused password, SIGKILL while a
//! backlog drains, Dovecot stopped and started under a running daemon, a
//! folder recreated with a new UIDVALIDITY, and a server without MOVE and
//! IDLE. Each case works in folders of its own (mail to `user+folder@` lands
//! in that folder), so cases run side by side and leave the server as they
//! found it; the two that stop or reconfigure their server start a private
//! one on other ports.
//!
//! Needs the MS_* variables of `scripts/mailserver` (`scripts/test` sets them).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::Desk;
use common::daemon::{Daemon, wait_http};
use common::mail::{
    Imap, Instance, MailServer, deliver_to_maildir, free_port, header, mail_server, nonce,
    smtp_send, wait_for,
};
use serde_json::Value;

/// Postfix → LMTP → Dovecot → IDLE (≥ 0.5 s by Dovecot's design) → intake.
const ARRIVAL: Duration = Duration::from_secs(20);
/// A daemon's reconnect after the server is back (backoff 1, 2, 4 s …).
const RECONNECT: Duration = Duration::from_secs(30);

/// One `[[mailboxes]]` entry of a test desk.
struct Mb<'a> {
    name: &'a str,
    user: &'a str,
    queue: &'a str,
    folder: &'a str,
    after: &'a str,
    security: &'a str,
    idle: bool,
    poll: &'a str,
    password_file: &'a str,
}

impl Mb<'_> {
    fn toml(&self, server: &MailServer) -> String {
        let port = if self.security == "tls" {
            server.imaps_port
        } else {
            server.imap_port
        };
        format!(
            "[[mailboxes]]\nname = \"{}\"\naddress = \"{}@example.test\"\nqueue = \"{}\"\nsource = \"imap\"\nhost = \"{}\"\nport = {port}\nsecurity = \"{}\"\nusername = \"{}\"\npassword_file = \"{}\"\nfolder = \"{}\"\nafter_processing = \"{}\"\nidle = {}\npoll_interval = \"{}\"\n\n",
            self.name,
            self.user,
            self.queue,
            server.host,
            self.security,
            self.user,
            self.password_file,
            self.folder,
            self.after,
            self.idle,
            self.poll
        )
    }
}

fn mb<'a>(name: &'a str, user: &'a str, folder: &'a str) -> Mb<'a> {
    Mb {
        name,
        user,
        queue: "general",
        folder,
        after: "seen",
        security: "none",
        idle: true,
        poll: "30s",
        password_file: "imap-password",
    }
}

/// The desk's config text: `mailboxes`, acks over SMTP to the test
/// Postfix (`smtp`) or into `.eml` files.
fn config(server: &MailServer, mailboxes: &[Mb<'_>], smtp: bool) -> String {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let transport = if smtp {
        format!(
            "[smtp]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n",
            server.smtp_port
        )
    } else {
        "[smtp]\ntransport = \"file\"\ndir = \"outbox\"\n".to_string()
    };
    let boxes: String = mailboxes.iter().map(|m| m.toml(server)).collect();
    format!(
        "[desk]\nname = \"IMAP test\"\ntemplates_dir = \"{}\"\n\n{boxes}{transport}\n[intake]\nack_rate_limit = \"1000/h\"\n",
        templates.display()
    )
}

fn imap_desk(server: &MailServer, mailboxes: &[Mb<'_>], smtp: bool) -> Desk {
    let desk = Desk::with_config(&config(server, mailboxes, smtp));
    std::fs::write(desk.path("imap-password"), &server.password).expect("password file");
    std::fs::write(desk.path("wrong-password"), "not-the-password").expect("password file");
    desk
}

/// A unique name for this case's folders (and address details).
fn case_nonce(desk: &Desk) -> String {
    nonce(&desk.dir.path().file_name().expect("name").to_string_lossy())
}

/// A customer mail; `from` also gets the reply.
fn customer_mail(
    from: &str,
    to: &str,
    subject: &str,
    message_id: Option<&str>,
    body: &str,
) -> Vec<u8> {
    let id = message_id.map_or(String::new(), |id| format!("Message-ID: <{id}>\r\n"));
    format!(
        "From: Cliente <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\n{id}Date: Mon, 23 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// `postdesk run --once` with `env`; panics with the log unless it exits 0.
fn run_once(desk: &Desk, env: &[(&str, &str)]) -> String {
    let out = desk
        .cmd()
        .args(["run", "--once"])
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .output()
        .expect("run postdesk");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "run --once failed:\n{log}");
    log
}

fn inbound(desk: &Desk) -> Vec<Value> {
    desk.inbound().as_array().cloned().unwrap_or_default()
}

/// Waits until the inbound log has at least `n` rows; returns them.
fn wait_inbound(desk: &Desk, n: usize, limit: Duration) -> Vec<Value> {
    wait_for(&format!("{n} inbound rows"), limit, || {
        let rows = inbound(desk);
        (rows.len() >= n).then_some(rows)
    })
}

/// The database, read directly (source_ref and mailbox_state are not in
/// any JSON document).
fn db(desk: &Desk) -> rusqlite::Connection {
    rusqlite::Connection::open(desk.path("var/postdesk.db")).expect("open the desk database")
}

fn source_refs(desk: &Desk) -> Vec<String> {
    if !desk.path("var/postdesk.db").exists() {
        return Vec::new();
    }
    let conn = db(desk);
    let mut stmt = conn
        .prepare("SELECT source_ref FROM inbound ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// (folder, uidvalidity, last_uid, rescan_below, last_poll_at, last_error).
type StateRow = (
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn mailbox_state(desk: &Desk, mailbox: &str) -> StateRow {
    db(desk)
        .query_row(
            "SELECT folder, uidvalidity, last_uid, rescan_below, last_poll_at, last_error FROM mailbox_state WHERE mailbox = ?1",
            [mailbox],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap_or_else(|e| panic!("mailbox_state of {mailbox}: {e}"))
}

fn bare(message_id: &Value) -> String {
    message_id
        .as_str()
        .unwrap_or("")
        .trim_matches(['<', '>'])
        .to_string()
}

fn cleanup(server: &MailServer, user: &str, folders: &[&str]) {
    let mut imap = Imap::login(server, user);
    for f in folders {
        imap.delete(f);
    }
    imap.logout();
}

#[test]
fn idle_turns_new_mail_into_a_ticket_acked_by_smtp_and_moves_the_original() {
    let ms = mail_server();
    let desk = imap_desk(&ms, &[], true);
    let n = case_nonce(&desk);
    let done = format!("{n}done");
    let mut support = Imap::login(&ms, "support");
    support.delete(&done);
    support.create(&n);
    let mut customer = Imap::login(&ms, "customer");
    customer.create(&n);
    // Implicit TLS with the test CA; only IDLE can bring the mail within
    // ARRIVAL: the poll interval is 10 minutes. The target folder of
    // `move:` does not exist yet.
    let after = format!("move:{done}");
    let soporte = Mb {
        security: "tls",
        poll: "10m",
        after: &after,
        ..mb("soporte", "support", &n)
    };
    std::fs::write(&desk.config, config(&ms, &[soporte], true)).expect("config");
    let ca = ms.ca.display().to_string();
    let mut daemon = Daemon::start(&desk, &[("POSTDESK_EXTRA_CA", &ca)]);
    daemon.wait_log("IMAP connected", 1, Duration::from_secs(30));

    let from = format!("customer+{n}@example.test");
    let message_id = format!("{n}-1@example.test");
    let subject = format!("No puedo emitir facturas {n}");
    let sent = Instant::now();
    smtp_send(
        &ms,
        &from,
        &format!("support+{n}@example.test"),
        &customer_mail(
            &from,
            "support@example.test",
            &subject,
            Some(&message_id),
            "La serie B da error.",
        ),
    );
    let rows = wait_inbound(&desk, 1, ARRIVAL);
    let to_ticket = sent.elapsed();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["disposition"], "new_ticket", "{}", rows[0]);
    assert_eq!(bare(&rows[0]["message_id"]), message_id);
    let ticket = rows[0]["ticket"].as_i64().expect("ticket");

    // The ack, delivered by Postfix into the customer's folder, read back.
    let acks = wait_for("the ack in the customer's mailbox", ARRIVAL, || {
        let h = customer.headers(&n);
        (!h.is_empty()).then_some(h)
    });
    let to_ack = sent.elapsed();
    assert_eq!(acks.len(), 1, "one ack: {acks:?}");
    let one = |name: &str| -> String {
        let values = header(&acks[0], name);
        assert_eq!(values.len(), 1, "one `{name}` header: {:?}", acks[0]);
        values[0].to_string()
    };
    assert!(
        one("subject").contains(&format!("[Ticket: {ticket}]")),
        "{}",
        one("subject")
    );
    assert!(one("subject").contains(&n), "{}", one("subject"));
    assert_eq!(one("in-reply-to"), format!("<{message_id}>"));
    assert!(
        one("references").contains(&format!("<{message_id}>")),
        "{}",
        one("references")
    );
    assert_eq!(one("x-postdesk-ticket"), ticket.to_string());
    assert_eq!(one("x-loop"), "support@example.test");
    assert_eq!(one("auto-submitted"), "auto-replied");
    assert!(one("to").contains(&from), "{}", one("to"));

    // The support copy left the folder for `done`, which postdesk created.
    let left = support.messages(&n);
    assert!(left.is_empty(), "the original is moved away: {left:?}");
    let moved = support.messages(&done);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0].2, format!("<{message_id}>"));

    // The resume point and the successful poll are in the store.
    let (folder, uidvalidity, last_uid, rescan, polled, error) = mailbox_state(&desk, "soporte");
    assert_eq!(folder.as_deref(), Some(n.as_str()));
    assert_eq!(
        source_refs(&desk),
        vec![format!(
            "{}:{}",
            uidvalidity.expect("uidvalidity"),
            last_uid.expect("last uid")
        )]
    );
    assert!(rescan.is_none() && polled.is_some() && error.is_none());

    let log = daemon.stop();
    assert!(!log.contains("ERROR"), "{log}");
    println!(
        "imap idle: SMTP send -> ticket {:.0} ms, -> ack read back {:.0} ms",
        to_ticket.as_secs_f64() * 1e3,
        to_ack.as_secs_f64() * 1e3
    );
    cleanup(&ms, "support", &[&n, &done]);
    cleanup(&ms, "customer", &[&n]);
}

#[test]
fn mail_seen_before_postdesk_starts_is_taken_in_exactly_once() {
    let ms = mail_server();
    let desk = imap_desk(&ms, &[], false);
    let n = case_nonce(&desk);
    let mut support = Imap::login(&ms, "support");
    support.create(&n);
    // Someone read the first one in webmail before postdesk ever ran.
    for (k, flags) in [(1, "\\Seen"), (2, "")] {
        support.append(
            &n,
            flags,
            &customer_mail(
                &format!("c{k}@cliente.example"),
                "support@example.test",
                &format!("Consulta {k} {n}"),
                Some(&format!("{n}-{k}@cliente.example")),
                &format!("Texto {k}."),
            ),
        );
    }
    // STARTTLS with the test CA.
    let soporte = Mb {
        security: "starttls",
        ..mb("soporte", "support", &n)
    };
    std::fs::write(&desk.config, config(&ms, &[soporte], false)).expect("config");
    let ca = ms.ca.display().to_string();
    let env = [("POSTDESK_EXTRA_CA", ca.as_str())];
    run_once(&desk, &env);
    let rows = inbound(&desk);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().all(|r| r["disposition"] == "new_ticket"),
        "{rows:?}"
    );
    let uidvalidity = support.select(&n);
    assert_eq!(
        source_refs(&desk),
        vec![format!("{uidvalidity}:1"), format!("{uidvalidity}:2")]
    );
    let flagged = |imap: &mut Imap| -> Vec<bool> {
        imap.messages(&n)
            .iter()
            .map(|m| m.1.contains("\\Seen"))
            .collect()
    };
    assert_eq!(flagged(&mut support), vec![true, true], "both flagged seen");

    // Nothing new: nothing happens.
    run_once(&desk, &env);
    assert_eq!(inbound(&desk).len(), 2);

    // A crash after the commit but before the flag and the saved UID: the
    // mail is unflagged and the resume point is lost. It is recognised by
    // its UIDVALIDITY:UID, only flagged, not taken in again.
    support.select(&n);
    support.ok("UID STORE 1:* -FLAGS.SILENT (\\Seen)");
    db(&desk)
        .execute(
            "UPDATE mailbox_state SET last_uid = 0 WHERE mailbox = 'soporte'",
            [],
        )
        .expect("reset last_uid");
    run_once(&desk, &env);
    assert_eq!(inbound(&desk).len(), 2, "no second inbound row");
    assert_eq!(desk.tickets().len(), 2, "no second ticket");
    assert_eq!(flagged(&mut support), vec![true, true], "flagged again");
    assert_eq!(mailbox_state(&desk, "soporte").2, Some(2));
    cleanup(&ms, "support", &[&n]);
}

#[test]
fn two_mailboxes_feed_two_queues_and_a_refused_password_stops_only_its_own() {
    let ms = mail_server();
    let desk = imap_desk(&ms, &[], false);
    let n = case_nonce(&desk);
    for user in ["support", "support2"] {
        let mut imap = Imap::login(&ms, user);
        imap.create(&n);
        imap.logout();
    }
    let write_config = |ventas_password: &str| {
        let boxes = [
            // IDLE ended and re-issued every 2 s (the poll interval).
            Mb {
                queue: "soporte",
                poll: "2s",
                ..mb("soporte", "support", &n)
            },
            Mb {
                queue: "ventas",
                password_file: ventas_password,
                ..mb("ventas", "support2", &n)
            },
        ];
        std::fs::write(&desk.config, config(&ms, &boxes, false)).expect("config");
    };
    let send = |user: &str, k: usize| {
        let from = format!("c{k}@{user}.example");
        smtp_send(
            &ms,
            &from,
            &format!("{user}+{n}@example.test"),
            &customer_mail(
                &from,
                &format!("{user}@example.test"),
                &format!("Pedido {k} para {user} {n}"),
                Some(&format!("{n}-{user}-{k}@example.test")),
                &format!("Mensaje {k} para {user}."),
            ),
        );
    };
    let rows_of = |mailbox: &str| -> Vec<Value> {
        inbound(&desk)
            .into_iter()
            .filter(|r| r["mailbox"] == mailbox)
            .collect()
    };

    // Both served at once, each mail in its mailbox's queue.
    write_config("imap-password");
    let mut daemon = Daemon::start(&desk, &[]);
    daemon.wait_log("IMAP connected", 2, Duration::from_secs(30));
    send("support", 1);
    send("support2", 1);
    let rows = wait_inbound(&desk, 2, ARRIVAL);
    for row in &rows {
        let ticket = desk.ticket(row["ticket"].as_i64().expect("ticket"));
        assert_eq!(ticket["queue"], row["mailbox"], "{ticket}");
        assert_eq!(ticket["mailbox"], row["mailbox"], "{ticket}");
    }
    assert_eq!(rows_of("soporte").len(), 1);
    assert_eq!(rows_of("ventas").len(), 1);
    // The IDLE cycle of `soporte` goes round on the same connection: DONE,
    // a poll (recorded), IDLE again; no reconnect.
    let polled = mailbox_state(&desk, "soporte").4.expect("polled");
    wait_for("two more IDLE cycles", Duration::from_secs(20), || {
        (mailbox_state(&desk, "soporte").4 >= Some(polled + 3)).then_some(())
    });
    let log = daemon.stop();
    assert!(
        !log.contains("reconnecting") && !log.contains("ERROR"),
        "{log}"
    );

    // The sales account's password is wrong now: its task says so and
    // retries slowly; the support mailbox goes on; the daemon keeps running.
    write_config("wrong-password");
    let mut daemon = Daemon::start(&desk, &[]);
    daemon.wait_log(
        "refused the login of `support2`",
        1,
        Duration::from_secs(30),
    );
    send("support", 2);
    send("support2", 2);
    wait_for("the second support mail", ARRIVAL, || {
        (rows_of("soporte").len() == 2).then_some(())
    });
    daemon.assert_running();
    assert_eq!(
        rows_of("ventas").len(),
        1,
        "the refused mailbox reads nothing"
    );
    let error = mailbox_state(&desk, "ventas").5.unwrap_or_default();
    assert!(error.contains("refused the login"), "last_error: {error}");
    let log = daemon.stop();
    assert!(log.contains("needs attention"), "{log}");

    // The password is fixed: the waiting mail comes in.
    write_config("imap-password");
    let daemon = Daemon::start(&desk, &[]);
    wait_for("the second sales mail", ARRIVAL, || {
        (rows_of("ventas").len() == 2).then_some(())
    });
    daemon.stop();
    assert_eq!(rows_of("soporte").len(), 2);
    assert!(mailbox_state(&desk, "ventas").5.is_none(), "error cleared");
    cleanup(&ms, "support", &[&n]);
    cleanup(&ms, "support2", &[&n]);
}

/// Knuth's MMIX LCG: the same kill moments every run, no `rand` crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// Log-uniform in `lo..=hi` milliseconds.
    fn log_between(&mut self, lo: u64, hi: u64) -> Duration {
        let u = self.next() as f64 / (1u64 << 31) as f64;
        Duration::from_millis(((lo as f64) * (hi as f64 / lo as f64).powf(u)).round() as u64)
    }
}

#[test]
fn sigkill_while_draining_a_backlog_takes_every_message_exactly_once() {
    const MESSAGES: usize = 300;
    let ms = mail_server();
    let desk = imap_desk(&ms, &[], false);
    let n = case_nonce(&desk);
    let mut support = Imap::login(&ms, "support");
    support.create(&n);
    let ids: Vec<String> = (0..MESSAGES)
        .map(|i| format!("{n}-{i:03}@cliente.example"))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        support.append(
            &n,
            "",
            &customer_mail(
                &format!("c{i}@cliente{}.example", i % 7),
                "support@example.test",
                &format!("Consulta {i:03} sobre facturas {n}"),
                Some(id),
                &format!("No puedo emitir la factura {i}."),
            ),
        );
    }
    let soporte = Mb {
        after: "delete",
        poll: "1s",
        ..mb("soporte", "support", &n)
    };
    std::fs::write(&desk.config, config(&ms, &[soporte], false)).expect("config");

    // Half the kills land a pseudo-random while after the start (connect,
    // listing, fetching, intake); the other half right after a commit shows
    // up in the database (before or while the batch is deleted and the
    // resume point saved).
    let started = Instant::now();
    let mut rng = Lcg(7);
    let mut kills = Vec::new(); // (inbound rows, of which still in the folder)
    let mut round = 0;
    while round < 40 && started.elapsed() < Duration::from_secs(60) {
        round += 1;
        let before = source_refs(&desk).len();
        let daemon = Daemon::start(&desk, &[]);
        if round % 2 == 1 {
            std::thread::sleep(rng.log_between(20, 400));
        } else {
            let count = || -> usize {
                rusqlite::Connection::open(desk.path("var/postdesk.db"))
                    .and_then(|c| {
                        c.query_row("SELECT COUNT(*) FROM inbound", [], |r| r.get::<_, i64>(0))
                    })
                    .map_or(0, |n| n as usize)
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while count() <= before && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        daemon.kill();
        let taken: BTreeSet<String> = inbound(&desk)
            .iter()
            .map(|r| bare(&r["message_id"]))
            .collect();
        let left = support.messages(&n);
        let unacknowledged = left
            .iter()
            .filter(|m| taken.contains(m.2.trim_matches(['<', '>'])))
            .count();
        kills.push((taken.len(), unacknowledged));
        if taken.len() == MESSAGES && left.is_empty() {
            break;
        }
    }
    // Finish whatever the last kill left (committed but not yet deleted).
    run_once(&desk, &[]);

    let rows = inbound(&desk);
    let mut seen = BTreeSet::new();
    for row in &rows {
        assert_eq!(row["disposition"], "new_ticket", "{row}");
        assert!(
            seen.insert(bare(&row["message_id"])),
            "two inbound rows for {}",
            row["message_id"]
        );
    }
    assert_eq!(
        seen,
        ids.iter().cloned().collect(),
        "one inbound row per message"
    );
    let refs: BTreeSet<String> = source_refs(&desk).into_iter().collect();
    assert_eq!(refs.len(), MESSAGES, "one source_ref per message");
    let tickets = desk.tickets();
    assert_eq!(tickets.len(), MESSAGES, "one ticket per message");
    let mut acks: BTreeMap<i64, usize> = BTreeMap::new();
    for row in desk.outbox_for("ack") {
        *acks
            .entry(row["ticket"].as_i64().expect("ticket"))
            .or_default() += 1;
    }
    assert_eq!(acks.len(), MESSAGES, "an ack for every ticket");
    assert!(acks.values().all(|&k| k == 1), "one ack per ticket");
    assert!(
        support.messages(&n).is_empty(),
        "every message deleted after its commit"
    );
    let mid = kills.iter().filter(|k| k.0 > 0 && k.0 < MESSAGES).count();
    let unacked = kills.iter().filter(|k| k.1 > 0).count();
    println!(
        "imap crash: {} SIGKILLs, {mid} with the backlog part-taken, {unacked} with committed mail not yet deleted; (inbound rows, of which undeleted) at each: {kills:?}; {:.1} s",
        kills.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        mid > 0,
        "no kill landed while the backlog was part-taken: {kills:?}"
    );
    cleanup(&ms, "support", &[&n]);
}

#[test]
fn after_dovecot_restarts_postdesk_reconnects_and_takes_what_arrived_meanwhile() {
    let instance = Instance::start(&[]);
    let ms = instance.server.clone();
    let desk = imap_desk(&ms, &[], false);
    let n = case_nonce(&desk);
    let mut support = Imap::login(&ms, "support");
    support.create(&n);
    support.logout();
    std::fs::write(
        &desk.config,
        config(&ms, &[mb("soporte", "support", &n)], false),
    )
    .expect("config");
    let mut daemon = Daemon::start(&desk, &[]);
    daemon.wait_log("IMAP connected", 1, Duration::from_secs(30));
    let mail_k = |k: usize| {
        customer_mail(
            &format!("c{k}@cliente.example"),
            "support@example.test",
            &format!("Aviso {k} {n}"),
            Some(&format!("{n}-{k}@cliente.example")),
            &format!("Aviso numero {k}."),
        )
    };
    let to = format!("support+{n}@example.test");
    smtp_send(&ms, "c1@cliente.example", &to, &mail_k(1));
    wait_inbound(&desk, 1, ARRIVAL);

    // The server goes away under the daemon; a mail arrives meanwhile
    // (straight into the Maildir, as an MDA would write it).
    instance.run("stop");
    daemon.wait_log("reconnecting", 1, Duration::from_secs(30));
    deliver_to_maildir(
        &ms,
        "support",
        Some(&n),
        "1800000000.M1P1.meanwhile",
        &mail_k(2),
    );
    let back = Instant::now();
    instance.run("start");
    wait_inbound(&desk, 2, RECONNECT);
    let reconnected = back.elapsed();
    daemon.wait_log("IMAP connected", 2, Duration::from_secs(30));

    // And IDLE works on the new connection.
    smtp_send(&ms, "c3@cliente.example", &to, &mail_k(3));
    let rows = wait_inbound(&desk, 3, ARRIVAL);
    let ids: BTreeSet<String> = rows.iter().map(|r| bare(&r["message_id"])).collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(ids.len(), 3, "each mail once: {rows:?}");
    assert!(
        rows.iter().all(|r| r["disposition"] == "new_ticket"),
        "{rows:?}"
    );
    daemon.assert_running();
    daemon.stop();
    println!(
        "imap reconnect: mail that arrived during the outage taken in {:.1} s after the server was back",
        reconnected.as_secs_f64()
    );
}

#[test]
fn a_recreated_folder_with_a_new_uidvalidity_is_rescanned_without_duplicates() {
    let ms = mail_server();
    let desk = imap_desk(&ms, &[], false);
    let n = case_nonce(&desk);
    let mail_k = |k: usize, with_id: bool| {
        let id = format!("{n}-{k}@cliente.example");
        customer_mail(
            &format!("c{k}@cliente.example"),
            "support@example.test",
            &format!("Incidencia {k} {n}"),
            with_id.then_some(id.as_str()),
            &format!("Incidencia numero {k}."),
        )
    };
    // Mail 0 has no Message-ID: it is recognised by its bytes.
    let first = [mail_k(0, false), mail_k(1, true), mail_k(2, true)];
    let mut support = Imap::login(&ms, "support");
    support.create(&n);
    for raw in &first {
        support.append(&n, "", raw);
    }
    std::fs::write(
        &desk.config,
        config(&ms, &[mb("soporte", "support", &n)], false),
    )
    .expect("config");
    run_once(&desk, &[]);
    assert_eq!(inbound(&desk).len(), 3);
    let before = support.select(&n);

    // The folder is recreated (a restore, a migration): same mail, new UIDs
    // under a new UIDVALIDITY, and one new mail.
    support.select("INBOX");
    support.delete(&n);
    support.create(&n);
    for raw in first.iter().chain([&mail_k(3, true)]) {
        support.append(&n, "", raw);
    }
    let after = support.select(&n);
    assert_ne!(
        before, after,
        "Dovecot gives a recreated folder a new UIDVALIDITY"
    );

    let log = run_once(&desk, &[]);
    assert!(log.contains("UIDVALIDITY changed"), "{log}");
    assert_eq!(
        log.matches("taken in before under an earlier UIDVALIDITY")
            .count(),
        3,
        "{log}"
    );
    let rows = inbound(&desk);
    assert_eq!(rows.len(), 4, "only the new mail is taken in: {rows:?}");
    assert_eq!(
        bare(&rows[3]["message_id"]),
        format!("{n}-3@cliente.example")
    );
    assert_eq!(desk.tickets().len(), 4);
    assert_eq!(desk.outbox_for("ack").len(), 4, "no second ack");
    let messages = support.messages(&n);
    assert_eq!(messages.len(), 4);
    assert!(
        messages.iter().all(|m| m.1.contains("\\Seen")),
        "all acknowledged: {messages:?}"
    );
    let (_, uidvalidity, last_uid, rescan, _, _) = mailbox_state(&desk, "soporte");
    assert_eq!(
        (uidvalidity, last_uid, rescan),
        (Some(i64::from(after)), Some(4), None)
    );

    run_once(&desk, &[]);
    assert_eq!(inbound(&desk).len(), 4);
    cleanup(&ms, "support", &[&n]);
}

#[test]
fn a_server_without_move_and_idle_is_polled_and_mail_copied_then_expunged() {
    let instance = Instance::start(&[("MS_DOVECOT_NO_MOVE_IDLE", "1")]);
    let ms = instance.server.clone();
    let desk = imap_desk(&ms, &[], false);
    let n = case_nonce(&desk);
    let done = format!("{n}done");
    let mut support = Imap::login(&ms, "support");
    support.create(&n);
    // IDLE is configured (the default) but not offered: poll every second.
    let after = format!("move:{done}");
    let soporte = Mb {
        after: &after,
        poll: "1s",
        ..mb("soporte", "support", &n)
    };
    std::fs::write(&desk.config, config(&ms, &[soporte], false)).expect("config");
    let mut daemon = Daemon::start(&desk, &[]);
    daemon.wait_log("IMAP connected", 1, Duration::from_secs(30));
    let log = daemon.log();
    assert!(
        log.contains("idle=false") && log.contains("move=false"),
        "{log}"
    );

    let id = format!("{n}-1@cliente.example");
    smtp_send(
        &ms,
        "c1@cliente.example",
        &format!("support+{n}@example.test"),
        &customer_mail(
            "c1@cliente.example",
            "support@example.test",
            &format!("Sin MOVE {n}"),
            Some(&id),
            "Hola.",
        ),
    );
    let rows = wait_inbound(&desk, 1, ARRIVAL);
    assert_eq!(rows[0]["disposition"], "new_ticket");
    let moved = wait_for("the original in the done folder", ARRIVAL, || {
        let m = support.messages(&done);
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0].2, format!("<{id}>"));
    assert!(
        support.messages(&n).is_empty(),
        "copied, flagged \\Deleted and expunged"
    );
    daemon.stop();
}

#[test]
fn healthz_fails_while_dovecot_is_down_and_recovers_when_it_is_back() {
    let instance = Instance::start(&[]);
    let ms = instance.server.clone();
    let desk = imap_desk(&ms, &[], false);
    let n = case_nonce(&desk);
    let mut support = Imap::login(&ms, "support");
    support.create(&n);
    support.logout();
    // Polled (IDLE re-issued) every second: down after 3 s without a poll.
    let soporte = Mb {
        poll: "1s",
        ..mb("soporte", "support", &n)
    };
    let port = free_port();
    std::fs::write(
        &desk.config,
        format!(
            "{}\n[http]\nlisten = \"127.0.0.1:{port}\"\n",
            config(&ms, &[soporte], false)
        ),
    )
    .expect("config");
    let mut daemon = Daemon::start(&desk, &[]);
    daemon.wait_log("IMAP connected", 1, Duration::from_secs(30));
    let up = |body: &str| -> Value { serde_json::from_str(body).expect("healthz JSON") };
    let health = up(&wait_http(port, "/healthz", 200, Duration::from_secs(10)));
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["mailboxes"][0]["name"], "soporte", "{health}");
    assert_eq!(health["mailboxes"][0]["healthy"], true, "{health}");

    instance.run("stop");
    // The imap process that holds the daemon's connection keeps serving it
    // for up to ~30 s after the master stops (then says BYE): polls go on
    // succeeding until then, and the verdict rightly stays 200.
    let health = up(&wait_http(port, "/healthz", 503, Duration::from_secs(75)));
    assert_eq!(health["status"], "unhealthy", "{health}");
    assert_eq!(health["mailboxes"][0]["healthy"], false, "{health}");
    let reason = health["reasons"][0].as_str().unwrap_or_default();
    assert!(
        reason.contains("mailbox `soporte` has not polled successfully"),
        "{health}"
    );
    // The outbox is not the problem.
    assert_eq!(health["outbox"]["healthy"], true, "{health}");

    instance.run("start");
    let health = up(&wait_http(port, "/healthz", 200, RECONNECT));
    assert_eq!(health["reasons"], serde_json::json!([]), "{health}");
    daemon.assert_running();
    daemon.stop();
}
