//! The reference peer: Roundup's mail gateway against postdesk on the same
//! corpus (SPEC §10 names Roundup with cheap password hashing as the best
//! peer measured).
//!
//! The first N (1000) messages of the generated backlog (30 % follow-ups,
//! Spanish and English, one in ten with a PDF) are written twice: as a Maildir
//! for postdesk and as an mbox for Roundup. In the mbox each follow-up's tag
//! `[Ticket: N]` becomes Roundup's designator `[issueN]`, so both systems file
//! the same follow-ups on the same tickets (both number tickets 1, 2, ... in
//! arrival order); nothing else differs.
//!
//! - postdesk, five rounds on fresh desks, medians: `postdesk ingest
//!   FILE...` of the corpus in one process, whole process start to exit —
//!   the figure the ratio uses, like for like with Roundup's mbox mode: one
//!   process takes the messages in, files them and queues what they cause,
//!   and delivers nothing (Roundup's `classic` sends no mail here; the bench
//!   counts it). Beside it: `postdesk run --once` over the corpus as a
//!   Maildir, which also delivers every queued ack and team notification as
//!   an `.eml` file, and the daemon's own intake time within that run.
//! - Roundup (`roundup-mailgw`, sqlite backend, template `classic`, outgoing
//!   mail written to a file by `[mail] debug`, no MTA; anonymous `Email
//!   Access` switched on in `schema.py` so unknown senders are registered,
//!   as a help desk needs):
//!   - `mbox-cheap`: one process over the mbox (`roundup-mailgw TRACKER
//!     mailbox FILE`), `password_pbkdf2_default_rounds
//!     = 1000` (each unknown sender becomes a user with a hashed password);
//!   - `mbox-default`: the same with the installed version's default rounds;
//!   - `per-message`: one `roundup-mailgw TRACKER < message` per message, like
//!     an MTA pipe, cheap hashing, on the first M (100) messages.
//!
//! Needs POSTDESK_BENCH_ROUNDUP_BIN: the directory holding `roundup-admin`
//! and `roundup-mailgw` (`scripts/bench` installs a pinned Roundup into a
//! venv under target/). POSTDESK_BENCH_MESSAGES (1000) and
//! POSTDESK_BENCH_ROUNDUP_SINGLE (100) set the sizes. Prints `BENCH
//! roundup_postdesk ...` and `BENCH roundup mode=... ratio=...` lines.

#[path = "common/backlog.rs"]
mod backlog;
#[path = "common/postdesk.rs"]
mod postdesk;
#[path = "common/proc.rs"]
mod proc;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use backlog::Generated;
use postdesk::count;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = env_number("POSTDESK_BENCH_MESSAGES", 1_000);
    let single = env_number("POSTDESK_BENCH_ROUNDUP_SINGLE", 100).min(n);
    let bin = PathBuf::from(
        std::env::var_os("POSTDESK_BENCH_ROUNDUP_BIN")
            .expect("POSTDESK_BENCH_ROUNDUP_BIN: directory with roundup-admin and roundup-mailgw"),
    );
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let mail = backlog::messages(n, "soporte@example.com");
    let follow_ups = mail.iter().filter(|m| m.follow_up).count();
    let new_tickets = n - follow_ups;
    let bytes: usize = mail.iter().map(|m| m.raw.len()).sum();
    println!(
        "corpus: {n} messages, {follow_ups} follow-ups, {new_tickets} new tickets, {:.1} MB",
        bytes as f64 / 1e6
    );

    // ------------------------------------------------------------ postdesk
    // Five rounds, each on fresh desks (the shared disk makes single runs
    // noisy): `run --once` over the corpus as a Maildir, and `postdesk
    // ingest` of the same files in one process.
    let mut ingests = Vec::new();
    let mut runs = Vec::new();
    const ROUNDS: usize = 5;
    for i in 0..ROUNDS {
        let root = dir.path().join(format!("ingest-{i}"));
        std::fs::create_dir_all(&root).expect("desk dir");
        backlog::write_maildir_config(&root);
        let mut files = Vec::new();
        backlog::write_maildir(&root.join("incoming"), &mail, |p| {
            files.push(p.to_path_buf())
        });
        proc::settle();
        let out = proc::measure(
            Command::new(postdesk::BIN)
                .arg("--config")
                .arg(root.join("postdesk.toml"))
                .arg("ingest")
                .args(&files)
                .env("RUST_LOG", "warn"),
        );
        assert_eq!(
            out.status,
            0,
            "postdesk ingest failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(count(&root, &["inbound", "--json"]), n);
        assert_eq!(count(&root, &["ticket", "list", "--json"]), new_tickets);

        let root = dir.path().join(format!("run-{i}"));
        std::fs::create_dir_all(&root).expect("desk dir");
        backlog::write_maildir_config(&root);
        backlog::write_maildir(&root.join("mail/new"), &mail, |_| {});
        proc::settle();
        let run = postdesk::run_once(&root, &[]);
        assert_eq!(count(&root, &["inbound", "--json"]), n);
        let tickets = count(&root, &["ticket", "list", "--json"]);
        assert_eq!(tickets, new_tickets, "one ticket per new message");
        println!(
            "postdesk round {}: ingest {:.0} ms (peak RSS {:.1} MB); run --once {:.0} ms, of which intake {} ms (peak RSS {:.1} MB)",
            i + 1,
            ms(out.elapsed),
            out.peak_kb as f64 / 1024.0,
            ms(run.elapsed),
            run.intake_ms,
            run.peak_kb as f64 / 1024.0
        );
        ingests.push(out);
        runs.push(run);
    }
    ingests.sort_by_key(|r| r.elapsed);
    let ingest = &ingests[ROUNDS / 2];
    runs.sort_by_key(|r| r.elapsed);
    let median = &runs[ROUNDS / 2];
    let mut intakes: Vec<u64> = runs.iter().map(|r| r.intake_ms).collect();
    intakes.sort_unstable();
    let intake_ms = intakes[ROUNDS / 2];
    let pd_ingest_rate = n as f64 / ingest.elapsed.as_secs_f64();
    let pd_rate = n as f64 / median.elapsed.as_secs_f64();
    let pd_intake_rate = n as f64 / (intake_ms.max(1) as f64 / 1000.0);
    println!(
        "postdesk (medians of {ROUNDS}): ingest {:.0} ms = {pd_ingest_rate:.0} msg/s; run --once {:.0} ms = {pd_rate:.0} msg/s; intake alone {intake_ms} ms = {pd_intake_rate:.0} msg/s",
        ms(ingest.elapsed),
        ms(median.elapsed),
    );
    backlog::report(
        "roundup_postdesk",
        &[
            ("messages", n.to_string()),
            ("rounds", ROUNDS.to_string()),
            ("ingest_ms", format!("{:.0}", ms(ingest.elapsed))),
            ("ingest_rate", format!("{pd_ingest_rate:.0}")),
            ("ingest_peak_rss_kb", ingest.peak_kb.to_string()),
            ("whole_ms", format!("{:.0}", ms(median.elapsed))),
            ("whole_rate", format!("{pd_rate:.0}")),
            ("intake_ms", intake_ms.to_string()),
            ("intake_rate", format!("{pd_intake_rate:.0}")),
            ("peak_rss_kb", median.peak_kb.to_string()),
        ],
    );

    // ------------------------------------------------------------- Roundup
    let mbox = dir.path().join("corpus.mbox");
    write_mbox(&mbox, &mail);
    let version = run_ok(Command::new(bin.join("roundup-mailgw")).arg("--version"));
    println!("Roundup {}", version.trim());

    let mut results = Vec::new();
    // Default hashing is slow enough (a 250,000-round PBKDF2 per new sender in
    // 2.6) that POSTDESK_BENCH_ROUNDUP_DEFAULT may cut that mode to the first
    // K messages of the corpus; its rate is still messages per second.
    let default_k = env_number("POSTDESK_BENCH_ROUNDUP_DEFAULT", n).min(n);
    for (mode, rounds, k) in [
        ("mbox-cheap", Some(1000), n),
        ("mbox-default", None, default_k),
    ] {
        let tracker = install(&bin, &dir.path().join(mode), rounds);
        // Roundup empties the mailbox as it goes: each mode reads a copy.
        let copy = dir.path().join(format!("{mode}.mbox"));
        if k == n {
            std::fs::copy(&mbox, &copy).expect("mbox copy");
        } else {
            write_mbox(&copy, &mail[..k]);
        }
        proc::settle();
        let out = proc::measure(
            Command::new(bin.join("roundup-mailgw"))
                .arg(&tracker.home)
                .arg("mailbox")
                .arg(&copy)
                .stdin(Stdio::null()),
        );
        assert_eq!(
            out.status,
            0,
            "roundup-mailgw {mode} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (issues, msgs) = tracker.counts(&bin);
        let rate = k as f64 / out.elapsed.as_secs_f64();
        println!(
            "Roundup {mode} (pbkdf2 rounds {}): {k} messages in {:.1} s = {rate:.1} msg/s; {issues} issues, {msgs} messages stored; peak RSS {:.1} MB",
            tracker.rounds,
            out.elapsed.as_secs_f64(),
            out.peak_kb as f64 / 1024.0
        );
        results.push(Mode {
            mode,
            rounds: tracker.rounds,
            count: k,
            elapsed: out.elapsed,
            issues,
            msgs,
            outgoing: tracker.outgoing(),
            peak_kb: out.peak_kb,
        });
    }

    // One process per message, as an MTA pipe would run it.
    let tracker = install(&bin, &dir.path().join("per-message"), Some(1000));
    let mut total = Duration::ZERO;
    let mut failures = 0;
    let mut peak_single = 0;
    for m in &mail[..single] {
        let file = dir.path().join("one.eml");
        std::fs::write(&file, roundup_text(m)).expect("message");
        proc::settle();
        let out = proc::measure(
            Command::new(bin.join("roundup-mailgw"))
                .arg(&tracker.home)
                .stdin(std::fs::File::open(&file).expect("message")),
        );
        total += out.elapsed;
        peak_single = peak_single.max(out.peak_kb);
        failures += usize::from(out.status != 0);
    }
    assert_eq!(failures, 0, "roundup-mailgw failed on some messages");
    let (issues, msgs) = tracker.counts(&bin);
    println!(
        "Roundup per-message (pbkdf2 rounds {}): {single} processes in {:.1} s = {:.2} msg/s; {issues} issues, {msgs} messages stored",
        tracker.rounds,
        total.as_secs_f64(),
        single as f64 / total.as_secs_f64()
    );
    results.push(Mode {
        mode: "per-message",
        rounds: tracker.rounds,
        count: single,
        elapsed: total,
        issues,
        msgs,
        outgoing: tracker.outgoing(),
        peak_kb: peak_single,
    });

    for Mode {
        mode,
        rounds,
        count,
        elapsed,
        issues,
        msgs,
        outgoing,
        peak_kb,
    } in results
    {
        let rate = count as f64 / elapsed.as_secs_f64();
        // Like for like: one process, start to exit, taking the messages in
        // and queuing what they cause, delivering nothing (Roundup sends none).
        let ratio = pd_ingest_rate / rate;
        println!(
            "postdesk / Roundup {mode}: ingest {pd_ingest_rate:.0} / {rate:.1} = {ratio:.1}x (run --once with delivery {:.1}x, intake alone {:.1}x)",
            pd_rate / rate,
            pd_intake_rate / rate
        );
        backlog::report(
            "roundup",
            &[
                ("mode", mode.to_string()),
                (
                    "version",
                    version.split_whitespace().next().unwrap_or("?").to_string(),
                ),
                ("rounds", rounds.to_string()),
                ("messages", count.to_string()),
                ("ms", format!("{:.0}", ms(elapsed))),
                ("rate", format!("{rate:.2}")),
                ("issues", issues.to_string()),
                ("msgs", msgs.to_string()),
                ("outgoing", outgoing.to_string()),
                ("peak_rss_kb", peak_kb.to_string()),
                ("ratio", format!("{ratio:.1}")),
                ("ratio_run", format!("{:.1}", pd_rate / rate)),
                ("ratio_intake", format!("{:.1}", pd_intake_rate / rate)),
            ],
        );
    }
}

/// One Roundup mode's outcome.
struct Mode {
    mode: &'static str,
    rounds: u64,
    count: usize,
    elapsed: Duration,
    issues: usize,
    msgs: usize,
    /// Mails Roundup sent (to its `[mail] debug` file).
    outgoing: usize,
    peak_kb: i64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The message as Roundup gets it: LF line ends, the follow-up tag as
/// Roundup's designator.
fn roundup_text(m: &Generated) -> String {
    let mut text = m.raw.replace("\r\n", "\n");
    if m.follow_up {
        let tag = format!("[Ticket: {}]", m.ticket);
        let (head, body) = text.split_once("\n\n").expect("header and body");
        assert!(head.contains(&tag), "follow-up carries its tag");
        text = format!(
            "{}\n\n{body}",
            head.replacen(&tag, &format!("[issue{}]", m.ticket), 1)
        );
    }
    text
}

fn write_mbox(path: &Path, mail: &[Generated]) {
    let mut out = String::new();
    for m in mail {
        out.push_str("From bench@example.net Mon Nov 23 10:00:00 2026\n");
        for line in roundup_text(m).lines() {
            // mboxrd quoting.
            if line.trim_start_matches('>').starts_with("From ") {
                out.push('>');
            }
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    std::fs::write(path, out).expect("mbox");
}

struct Tracker {
    home: PathBuf,
    /// Where `[mail] debug` makes Roundup write the mail it sends.
    outgoing: PathBuf,
    /// password_pbkdf2_default_rounds in effect.
    rounds: u64,
}

/// A fresh `classic` tracker on sqlite whose outgoing mail goes to a file.
fn install(bin: &Path, home: &Path, rounds: Option<u32>) -> Tracker {
    let parent = home.parent().expect("parent");
    let outgoing = parent.join(format!(
        "{}-outgoing.txt",
        home.file_name().expect("name").to_string_lossy()
    ));
    let mut settings = format!(
        "mail_domain=example.com,mail_host=localhost,tracker_web=http://localhost/tracker/,mail_debug={}",
        outgoing.display()
    );
    if let Some(r) = rounds {
        settings.push_str(&format!(",password_pbkdf2_default_rounds={r}"));
    }
    run_ok(
        Command::new(bin.join("roundup-admin"))
            .arg("-i")
            .arg(home)
            .args(["install", "classic", "sqlite", &settings]),
    );
    // A help desk takes mail from people it has never heard of: let the mail
    // gateway register unknown senders, the switch `classic` ships commented
    // out (otherwise every message from a new sender bounces).
    let schema = home.join("schema.py");
    let text = std::fs::read_to_string(&schema).expect("schema.py");
    let line = "db.security.addPermissionToRole('Anonymous', 'Email Access')";
    let commented = format!("#{line}");
    assert!(text.contains(&commented), "classic schema.py changed");
    std::fs::write(&schema, text.replace(&commented, line)).expect("schema.py");
    run_ok(
        Command::new(bin.join("roundup-admin"))
            .arg("-i")
            .arg(home)
            .args(["initialise", "admin-password"]),
    );
    let config = std::fs::read_to_string(home.join("config.ini")).expect("config.ini");
    let rounds = config
        .lines()
        .find_map(|l| l.strip_prefix("password_pbkdf2_default_rounds = "))
        .and_then(|v| v.trim().parse().ok())
        .expect("password_pbkdf2_default_rounds in config.ini");
    Tracker {
        home: home.to_path_buf(),
        outgoing,
        rounds,
    }
}

impl Tracker {
    /// Mails sent so far: Roundup's mailer writes `FROM: ...` before each.
    fn outgoing(&self) -> usize {
        std::fs::read_to_string(&self.outgoing)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("FROM: "))
            .count()
    }

    /// Issues and messages stored.
    fn counts(&self, bin: &Path) -> (usize, usize) {
        let n = |class: &str| {
            run_ok(
                Command::new(bin.join("roundup-admin"))
                    .arg("-i")
                    .arg(&self.home)
                    .args(["list", class]),
            )
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
        };
        (n("issue"), n("msg"))
    }
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
