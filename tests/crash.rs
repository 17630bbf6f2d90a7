//! "Nothing lost, nothing twice" (SPEC §4, transactional outbox): the daemon
//! and `ingest` are SIGKILLed at pseudo-random moments while a backlog of
//! mail is being taken in and delivered; after they are restarted until the
//! work is done, every message is in the inbound log exactly once, every
//! ticket exists once, every mail it causes is queued once and written once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Desk, mail};
use serde_json::Value;

/// Messages in the backlog.
const MESSAGES: usize = 300;
/// Restarts before a test gives up (about 20 are needed in a debug build).
const MAX_ROUNDS: usize = 200;
/// Time before a test gives up (under 10 s are needed in a debug build).
const MAX_TIME: Duration = Duration::from_secs(120);
/// A kill lands this many milliseconds after the start, pseudo-randomly.
const KILL_AFTER_MS: (u64, u64) = (20, 400);
/// On a machine so loaded that a run makes no progress before the kill, the
/// latest kill moment doubles after each such run, up to this.
const KILL_AFTER_MAX_MS: u64 = 6_400;

/// A small deterministic generator (Knuth's MMIX LCG): the same kill moments
/// every run, no `rand` crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// Uniform-ish in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// Log-uniform in `lo..=hi`: as many kills in 20–40 ms as in 200–400 ms,
    /// so start-up and short bursts of work are hit as often as long ones.
    fn log_between(&mut self, lo: u64, hi: u64) -> u64 {
        let u = self.next() as f64 / (1u64 << 31) as f64;
        ((lo as f64) * (hi as f64 / lo as f64).powf(u)).round() as u64
    }
}

/// One mail of the backlog.
struct Item {
    message_id: String,
    raw: Vec<u8>,
    /// For a follow-up: the index of the mail it answers.
    answers: Option<usize>,
}

/// 300 mails from distinct customers (so the per-recipient ack rate limit
/// never applies): 70 % new tickets with distinct subjects, 30 % follow-ups
/// (same sender, `In-Reply-To` the original) of a new ticket earlier in the
/// backlog.
fn backlog() -> Vec<Item> {
    (0..MESSAGES)
        .map(|i| {
            let message_id = format!("crash-{i:03}@cliente.com");
            if i % 10 >= 7 {
                let original = i - 7;
                let raw = mail(
                    &format!("c{original}@cliente.com"),
                    &format!("Re: Consulta {original:03} sobre facturas"),
                    &message_id,
                    &format!("In-Reply-To: <crash-{original:03}@cliente.com>\r\nReferences: <crash-{original:03}@cliente.com>\r\n"),
                    &format!("Mas datos sobre la consulta {original}.\r\nGracias."),
                );
                Item { message_id, raw, answers: Some(original) }
            } else {
                let raw = mail(
                    &format!("c{i}@cliente.com"),
                    &format!("Consulta {i:03} sobre facturas"),
                    &message_id,
                    "",
                    &format!("No puedo emitir la factura {i}.\r\nUn saludo."),
                );
                Item { message_id, raw, answers: None }
            }
        })
        .collect()
}

fn new_tickets(items: &[Item]) -> usize {
    items.iter().filter(|m| m.answers.is_none()).count()
}

/// Maildir name of mail `i`: zero-padded, so name order is arrival order and
/// every follow-up comes after its original.
fn maildir_name(i: usize) -> String {
    format!("1700000000.M{i:04}P1.test")
}

fn names_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", dir.display()),
    }
}

fn seen(name: &str) -> bool {
    name.split_once(":2,")
        .is_some_and(|(_, flags)| flags.contains('S'))
}

/// `new/` is empty and every entry of `cur/` is marked seen.
fn maildir_done(root: &Path) -> bool {
    names_in(&root.join("new")).is_empty() && names_in(&root.join("cur")).iter().all(|n| seen(n))
}

/// Starts postdesk with `args`, stderr appended to `log`.
fn spawn(desk: &Desk, args: &[&str], log: &Path, stdout: Stdio) -> Child {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open log");
    desk.cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn postdesk")
}

/// The errors and warnings of a log (first 20), then its last 20 lines.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let problems: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .take(20)
        .collect();
    format!(
        "{}\n...\n{}",
        problems.join("\n"),
        lines[lines.len().saturating_sub(20)..].join("\n")
    )
}

/// Chooses kill moments: pseudo-random (log-uniform) in `KILL_AFTER_MS`, the upper bound
/// widened while runs make no progress (so a slow machine still finishes).
struct Killer {
    rng: Lcg,
    latest_ms: u64,
}

impl Killer {
    fn new(seed: u64) -> Killer {
        Killer {
            rng: Lcg(seed),
            latest_ms: KILL_AFTER_MS.1,
        }
    }

    /// Lets `child` run a pseudo-random while, then SIGKILLs it. Returns its
    /// exit status instead if it ended by itself before the kill.
    fn kill_at_random(&mut self, child: &mut Child) -> Option<std::process::ExitStatus> {
        std::thread::sleep(Duration::from_millis(
            self.rng.log_between(KILL_AFTER_MS.0, self.latest_ms),
        ));
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        child.kill().expect("SIGKILL postdesk");
        child.wait().expect("reap postdesk");
        None
    }

    /// Tells whether the last run got anything done.
    fn progress(&mut self, made: bool) {
        self.latest_ms = if made {
            KILL_AFTER_MS.1
        } else {
            (self.latest_ms * 2).min(KILL_AFTER_MAX_MS)
        };
    }
}

/// The invariants after the crashes: one inbound row per message, one ticket
/// per new mail, follow-ups on their original's ticket, one ack and one agent
/// notification per ticket, one agent notification per follow-up, everything
/// sent, and one `.eml` per outbox row in the file transport's folder.
fn assert_nothing_lost_nothing_twice(desk: &Desk, items: &[Item]) {
    let expected_tickets = new_tickets(items);
    let expected_follow_ups = items.len() - expected_tickets;

    // Inbound log: exactly one row per message.
    let inbound = desk.inbound();
    let inbound = inbound.as_array().expect("inbound array");
    assert_eq!(inbound.len(), items.len(), "one inbound row per message");
    let mut by_message_id: BTreeMap<String, &Value> = BTreeMap::new();
    for row in inbound {
        let id = row["message_id"]
            .as_str()
            .expect("message_id")
            .trim_matches(['<', '>'])
            .to_string();
        assert!(
            by_message_id.insert(id.clone(), row).is_none(),
            "message {id} has two inbound rows"
        );
    }
    let ticket_of = |message_id: &str| -> i64 {
        let row = by_message_id
            .get(message_id)
            .unwrap_or_else(|| panic!("message {message_id} has no inbound row"));
        row["ticket"]
            .as_i64()
            .unwrap_or_else(|| panic!("inbound row of {message_id} has no ticket: {row}"))
    };
    let mut follow_ups_per_ticket: BTreeMap<i64, usize> = BTreeMap::new();
    let mut ticket_ids = BTreeSet::new();
    for item in items {
        let row = by_message_id[&item.message_id];
        match item.answers {
            None => {
                assert_eq!(row["disposition"], "new_ticket", "{row}");
                assert!(
                    ticket_ids.insert(ticket_of(&item.message_id)),
                    "two mails share ticket {}",
                    row["ticket"]
                );
            }
            Some(original) => {
                assert_eq!(row["disposition"], "follow_up", "{row}");
                let ticket = ticket_of(&item.message_id);
                assert_eq!(
                    ticket,
                    ticket_of(&items[original].message_id),
                    "follow-up {} on the wrong ticket",
                    item.message_id
                );
                *follow_ups_per_ticket.entry(ticket).or_default() += 1;
            }
        }
    }
    assert_eq!(ticket_ids.len(), expected_tickets);

    // Tickets: exactly one per new mail.
    let tickets = desk.tickets();
    let listed: BTreeSet<i64> = tickets
        .iter()
        .map(|t| t["id"].as_i64().expect("ticket id"))
        .collect();
    assert_eq!(tickets.len(), expected_tickets, "one ticket per new mail");
    assert_eq!(
        listed, ticket_ids,
        "the tickets are exactly those of the inbound log"
    );

    // Outbox: one ack and one agent notification per ticket, one agent
    // notification per follow-up, nothing else, all sent.
    let outbox = desk.outbox();
    let mut per_template: BTreeMap<String, BTreeMap<i64, usize>> = BTreeMap::new();
    for row in &outbox {
        assert_eq!(row["status"], "sent", "every mail is delivered: {row}");
        let template = row["template"].as_str().expect("template").to_string();
        let ticket = row["ticket"]
            .as_i64()
            .unwrap_or_else(|| panic!("outbox row without ticket: {row}"));
        *per_template
            .entry(template)
            .or_default()
            .entry(ticket)
            .or_default() += 1;
    }
    let templates: BTreeSet<&str> = per_template.keys().map(String::as_str).collect();
    assert_eq!(
        templates,
        BTreeSet::from(["ack", "agent_new_ticket", "agent_follow_up"]),
        "templates queued"
    );
    for template in ["ack", "agent_new_ticket"] {
        let rows = &per_template[template];
        assert_eq!(
            rows.keys().copied().collect::<BTreeSet<_>>(),
            ticket_ids,
            "every ticket has its {template}"
        );
        if let Some((ticket, n)) = rows.iter().find(|(_, n)| **n != 1) {
            panic!("ticket {ticket} has {n} `{template}` mails");
        }
    }
    assert_eq!(
        per_template["agent_follow_up"], follow_ups_per_ticket,
        "one agent_follow_up per follow-up"
    );
    assert_eq!(outbox.len(), 2 * expected_tickets + expected_follow_ups);
    for row in outbox.iter().filter(|r| r["template"] == "ack") {
        let to = row["to"].as_array().expect("to");
        assert_eq!(to.len(), 1, "{row}");
    }

    // File transport: exactly one .eml per outbox row, named by its id.
    let dir = desk.path("outbox");
    let files: BTreeSet<String> = names_in(&dir)
        .into_iter()
        .filter(|n| n.ends_with(".eml"))
        .collect();
    let wanted: BTreeSet<String> = outbox
        .iter()
        .map(|r| format!("{:08}.eml", r["id"].as_i64().expect("outbox id")))
        .collect();
    assert_eq!(files.len(), outbox.len(), "one .eml per outbox row");
    assert_eq!(files, wanted, "the .eml files are those of the outbox rows");
    for row in outbox.iter().filter(|r| r["template"] == "ack") {
        let file = dir.join(format!("{:08}.eml", row["id"].as_i64().expect("outbox id")));
        let text = std::fs::read_to_string(&file).expect("read .eml");
        let ticket = row["ticket"].as_i64().expect("ticket");
        assert!(
            text.contains(&format!("X-Postdesk-Ticket: {ticket}\r\n")),
            "{} is not the ack of ticket {ticket}:\n{text}",
            file.display()
        );
    }
}

#[test]
fn run_killed_at_random_moments_loses_and_doubles_nothing() {
    let started = Instant::now();
    let desk = Desk::new();
    let items = backlog();
    let maildir = desk.path("mail");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).expect("create maildir");
    }
    // Maildir delivery: write in tmp/, rename into new/.
    let deliver = |i: usize| {
        let tmp = maildir.join("tmp").join(maildir_name(i));
        std::fs::write(&tmp, &items[i].raw).expect("write mail");
        std::fs::rename(&tmp, maildir.join("new").join(maildir_name(i))).expect("deliver mail");
    };
    let log = desk.path("daemon.log");
    let mut killer = Killer::new(0x5EED_DE5C);
    let taken = || {
        names_in(&maildir.join("cur"))
            .iter()
            .filter(|n| seen(n))
            .count()
    };
    // A backlog of 100 waits; the rest arrives in small waves between crashes,
    // so kills land in every phase: start-up, a big group commit, the
    // renames after it, small batches, outbox delivery at start.
    let (mut delivered, mut kills, mut rounds) = (0usize, 0usize, 0usize);
    let (mut mid_intake, mut mid_delivery) = (0usize, 0usize);
    let mut written_unrecorded = BTreeSet::new();
    while delivered < items.len() || !maildir_done(&maildir) {
        rounds += 1;
        assert!(
            rounds <= MAX_ROUNDS && started.elapsed() < MAX_TIME,
            "after {} runs of the daemon in {:.0?}, {} mails are still in new/ and {} in cur/ without S; log:\n{}",
            rounds - 1,
            started.elapsed(),
            names_in(&maildir.join("new")).len(),
            names_in(&maildir.join("cur"))
                .iter()
                .filter(|n| !seen(n))
                .count(),
            tail(&log)
        );
        let wave = if delivered == 0 {
            100
        } else {
            killer.rng.between(1, 20) as usize
        };
        for i in delivered..(delivered + wave).min(items.len()) {
            deliver(i);
        }
        delivered = (delivered + wave).min(items.len());
        let before = taken();
        let mut daemon = spawn(&desk, &["run"], &log, Stdio::null());
        if let Some(status) = killer.kill_at_random(&mut daemon) {
            panic!(
                "the daemon exited by itself with {status}; log:\n{}",
                tail(&log)
            );
        }
        kills += 1;
        if !maildir_done(&maildir) {
            mid_intake += 1;
        }
        // Written by the file transport but not yet recorded as sent: this
        // kill fell inside a delivery pass if such rows are new.
        let outbox = desk.path("outbox");
        let unrecorded: BTreeSet<i64> = desk
            .outbox()
            .iter()
            .filter(|r| r["status"] == "pending")
            .filter_map(|r| r["id"].as_i64())
            .filter(|id| outbox.join(format!("{id:08}.eml")).exists())
            .collect();
        if !unrecorded.is_subset(&written_unrecorded) {
            mid_delivery += 1;
        }
        written_unrecorded = unrecorded;
        killer.progress(maildir_done(&maildir) || taken() > before);
    }
    let cur = names_in(&maildir.join("cur"));
    assert_eq!(
        cur.len(),
        items.len(),
        "every mail is in cur/ exactly once: {cur:?}"
    );
    let uniques: BTreeSet<String> = cur
        .iter()
        .map(|n| n.split(':').next().unwrap_or(n).to_string())
        .collect();
    assert_eq!(
        uniques,
        (0..items.len()).map(maildir_name).collect::<BTreeSet<_>>(),
        "cur/ holds each mail once"
    );

    // The narrowest window, made deterministic: a crash after the commit and
    // before the rename leaves taken-in mail in new/. Put some back there.
    for i in [0, 7, 150, 299] {
        let name = cur
            .iter()
            .find(|n| n.starts_with(&format!("{}:", maildir_name(i))))
            .expect("in cur/");
        std::fs::rename(
            maildir.join("cur").join(name),
            maildir.join("new").join(maildir_name(i)),
        )
        .expect("move back to new/");
    }
    // Deliver whatever the last kill left pending.
    desk.ok(&["run", "--once"]);
    assert!(
        maildir_done(&maildir),
        "mail already taken in is marked seen, not left in new/"
    );
    assert_eq!(names_in(&maildir.join("cur")).len(), items.len());
    assert_nothing_lost_nothing_twice(&desk, &items);
    println!(
        "daemon: {MESSAGES} mails, {kills} SIGKILLs in {rounds} runs ({mid_intake} before all mail was taken in, {mid_delivery} between writing and recording a delivery), {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn ingest_killed_mid_way_loses_and_doubles_nothing() {
    let started = Instant::now();
    let desk = Desk::new();
    let items = backlog();
    let folder = desk.path("incoming");
    std::fs::create_dir_all(&folder).expect("create folder");
    let files: Vec<PathBuf> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let file = folder.join(format!("m{i:03}.eml"));
            std::fs::write(&file, &item.raw).expect("write mail");
            file
        })
        .collect();
    let mut args: Vec<&str> = vec!["ingest"];
    args.extend(files.iter().map(|f| f.to_str().expect("utf-8 path")));
    let log = desk.path("ingest.log");
    let out = desk.path("ingest.out");
    let mut killer = Killer::new(0x1D6E_57ED);
    let (mut kills, mut rounds) = (0usize, 0usize);
    loop {
        rounds += 1;
        assert!(
            rounds <= MAX_ROUNDS && started.elapsed() < MAX_TIME,
            "`ingest` did not complete in {} runs and {:.0?}; log:\n{}",
            rounds - 1,
            started.elapsed(),
            tail(&log)
        );
        let stdout = std::fs::File::create(&out).expect("create ingest.out");
        let mut ingest = spawn(&desk, &args, &log, stdout.into());
        match killer.kill_at_random(&mut ingest) {
            None => kills += 1,
            Some(status) if status.success() => break,
            Some(status) => panic!("ingest failed with {status}; log:\n{}", tail(&log)),
        }
        // `ingest` prints one line per message after its commit.
        let printed = std::fs::read_to_string(&out).unwrap_or_default();
        killer.progress(printed.lines().any(|l| !l.ends_with("already taken in")));
    }
    // `ingest` only queues; the daemon delivers.
    desk.ok(&["run", "--once"]);
    assert_nothing_lost_nothing_twice(&desk, &items);
    println!(
        "ingest: {MESSAGES} mails, {kills} SIGKILLs in {rounds} runs, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A child process SIGKILLed when dropped, so a failing test leaves no daemon.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A daemon started on a fresh database, where its mailbox and outbox tasks
/// open (and migrate) the database at the same moment, takes mail in and
/// delivers it without a restart or an error. (The losing task used to fail
/// with "table tickets already exists" or "database is locked"; when it was
/// the outbox task, it stopped for good: 4 starts out of 5.)
#[test]
fn a_fresh_daemon_takes_in_and_delivers_without_a_restart() {
    const DESKS: usize = 4;
    let started = Instant::now();
    let desks: Vec<Desk> = (0..DESKS).map(|_| Desk::new()).collect();
    let mut daemons = Vec::new();
    for desk in &desks {
        std::fs::create_dir_all(desk.path("mail/new")).expect("create maildir");
        let raw = mail(
            "ana@cliente.com",
            "No puedo emitir facturas",
            "fresh-1@cliente.com",
            "",
            "Hola.",
        );
        std::fs::write(desk.path("mail/new").join(maildir_name(0)), raw).expect("write mail");
        daemons.push(Running(spawn(
            desk,
            &["run"],
            &desk.path("daemon.log"),
            Stdio::null(),
        )));
    }
    // The ack and the agent notification, as .eml files: bounded wait.
    let delivered = |desk: &Desk| {
        names_in(&desk.path("outbox"))
            .iter()
            .filter(|n| n.ends_with(".eml"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while desks.iter().any(|d| delivered(d) < 2) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(daemons);
    for desk in &desks {
        let log = std::fs::read_to_string(desk.path("daemon.log")).unwrap_or_default();
        assert!(
            !log.contains("ERROR"),
            "a fresh daemon must start without errors; log:\n{}",
            tail(&desk.path("daemon.log"))
        );
        assert_eq!(
            delivered(desk),
            2,
            "a fresh daemon must deliver the ack and the agent notification within 20 s; log:\n{}",
            tail(&desk.path("daemon.log"))
        );
    }
    println!(
        "fresh daemons: {DESKS} delivered in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
