//! One timer pass over a large desk (SPEC §10: 1,000,000 tickets of which
//! 100,000 open, target < 100 ms). The database is filled directly with SQL
//! (after `postdesk` created and migrated it) — 900,000 closed tickets and
//! 100,000 open ones under an office-hours SLA policy with deadlines set and
//! their next timer instant stored, 1,000 of them due now (nothing fires for
//! them yet: the pass evaluates them and stores their next instant) — then
//! `postdesk run --once` runs one pass and logs its `elapsed_ms`.
//!
//!   cargo bench --bench timers   (POSTDESK_BENCH_TICKETS overrides 1000000)
//!
//! Ends with a `BENCH timers key=value ...` line for `scripts/bench`.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_postdesk");

fn main() {
    let total: i64 = std::env::var("POSTDESK_BENCH_TICKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let open = total / 10;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("dir");
    let root = dir.path();
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    std::fs::write(
        root.join("postdesk.toml"),
        format!(
            "[desk]\ntemplates_dir = \"{}\"\n[[mailboxes]]\nname = \"soporte\"\naddress = \"soporte@example.com\"\nsource = \"maildir\"\npath = \"mail\"\n[smtp]\ntransport = \"file\"\ndir = \"outbox\"\n[[agents]]\nname = \"Luis\"\nemail = \"luis@example.com\"\n[calendars.oficina]\ntimezone = \"Europe/Madrid\"\nmon = \"09:00-18:00\"\ntue = \"09:00-18:00\"\nwed = \"09:00-18:00\"\nthu = \"09:00-18:00\"\nfri = \"09:00-18:00\"\n[[sla]]\nname = \"general\"\ncalendar = \"oficina\"\nfirst_response = \"8h\"\nresolution = \"5bd\"\n[[escalation]]\nafter_no_update = \"24h\"\nnotify = [\"jefe@example.com\"]\n",
            templates.display()
        ),
    )
    .expect("config");
    // Let postdesk create and migrate the database.
    let status = Command::new(BIN)
        .arg("--config")
        .arg(root.join("postdesk.toml"))
        .args(["ticket", "list", "--json"])
        .output()
        .expect("postdesk");
    assert!(status.status.success());

    let mut db = rusqlite::Connection::open(root.join("var/postdesk.db")).expect("db");
    let now: i64 = 1_795_500_000; // Monday 2026-11-23 around 09:20 UTC
    let started = std::time::Instant::now();
    let tx = db.transaction().expect("tx");
    {
        let mut insert = tx
            .prepare("INSERT INTO tickets (id, subject, status, priority, queue, mailbox, requester, created_at, updated_at, last_update_at, first_response_due, resolution_due, sla_policy, sla_state, next_timer_at) VALUES (?1, 'x', ?2, 'medium', 'general', 'soporte', ?3, ?4, ?4, ?4, ?5, ?6, 'general', 'ok', ?7)")
            .expect("prepare");
        for id in 1..=total {
            let is_open = id > total - open;
            // Open tickets arrived in the last hour: nothing is due yet.
            let created = if is_open {
                now - 3600 + id % 3600
            } else {
                now - 86_400 * 30
            };
            let status = if is_open { "open" } else { "closed" };
            // As postdesk stores it: closed tickets have no timer; open ones
            // their next instant, in the future for all but 1,000 of them.
            let next_timer: Option<i64> = match (is_open, id % 100 == 0) {
                (false, _) => None,
                (true, true) => Some(now - 60),
                (true, false) => Some(now + 3600 + id % 36_000),
            };
            insert
                .execute(rusqlite::params![
                    id,
                    status,
                    format!("c{}@cliente.com", id % 5000),
                    created,
                    created + 8 * 3600 * 3,
                    created + 86_400 * 7,
                    next_timer
                ])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    println!(
        "filled {total} tickets ({open} open) in {:.1?}",
        started.elapsed()
    );

    let now_arg = chrono::DateTime::from_timestamp(now, 0)
        .expect("instant")
        .to_rfc3339();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(root.join("postdesk.toml"))
        .args(["--log-format", "json", "--now", &now_arg, "run", "--once"])
        .env("RUST_LOG", "postdesk=info")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pass = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "timer pass done")
        .expect("the daemon logs `timer pass done` with elapsed_ms");
    println!(
        "timer pass over {total} tickets ({open} open): {} ms, fired {} (target < 100 ms)",
        pass["fields"]["elapsed_ms"], pass["fields"]["fired"]
    );
    println!(
        "BENCH timers tickets={total} open={open} pass_ms={} fired={}",
        pass["fields"]["elapsed_ms"], pass["fields"]["fired"]
    );
}
