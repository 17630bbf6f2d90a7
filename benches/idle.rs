//! Idle daemon (SPEC §10: RSS ≤ 20 MB, ~0 % CPU).
//!
//! A desk shaped like production: one IMAP mailbox waiting in IDLE on a real
//! Dovecot, SMTP delivery to a real Postfix, 1,000 messages of the generated
//! backlog already taken in (`postdesk ingest`), so the database is not
//! empty. `postdesk run` starts, delivers the queued outbox, and once nothing
//! is pending and it has settled (5 s) the bench samples the process for
//! POSTDESK_BENCH_IDLE_SECS (30) seconds: CPU time from /proc/PID/stat
//! (utime + stime) over wall time, RSS from /proc/PID/status once a second
//! (VmRSS; VmHWM is the peak since start, backlog delivery included).
//!
//! Starts its own mail server (`scripts/mailserver`, as root) on free ports,
//! or with POSTDESK_BENCH_MS_ENV=1 uses the one the `MS_*` variables describe.
//! Ends with a `BENCH idle key=value ...` line for `scripts/bench`.

#[path = "common/backlog.rs"]
mod backlog;
#[allow(dead_code, reason = "shared with the tests; the bench uses a part")]
#[path = "../tests/common/mail.rs"]
mod mail;
#[path = "common/postdesk.rs"]
mod postdesk;
#[path = "common/proc.rs"]
mod proc;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mail::{MailServer, wait_for};
use postdesk::{BIN, count};

fn main() {
    let seconds: u64 = std::env::var("POSTDESK_BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let (_instance, server) = mail::bench_server();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let root = dir.path();
    write_config(root, &server);
    let mut files = Vec::new();
    backlog::generate(&root.join("incoming"), 1_000, "soporte@example.com", |p| {
        files.push(p.to_path_buf())
    });
    let out = Command::new(BIN)
        .arg("--config")
        .arg(root.join("postdesk.toml"))
        .arg("ingest")
        .args(&files)
        .env("RUST_LOG", "warn")
        .output()
        .expect("postdesk ingest");
    assert!(out.status.success(), "postdesk ingest failed");
    let pending = count(root, &["outbox", "--status", "pending", "--json"]);

    let log = root.join("daemon.log");
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(root.join("postdesk.toml"))
        .arg("run")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("postdesk run");
    let pid = child.id();
    wait_for("postdesk to connect", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("IMAP connected").then_some(())
    });
    wait_for(
        "the outbox to be delivered",
        Duration::from_secs(120),
        || (count(root, &["outbox", "--status", "pending", "--json"]) == 0).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(5));

    let ticks = clock_ticks();
    let cpu_before = cpu_ticks(pid);
    let started = Instant::now();
    let mut rss_max = 0;
    let mut rss_sum = 0;
    let mut samples = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        let rss = status_kb(pid, "VmRSS:");
        rss_max = rss_max.max(rss);
        rss_sum += rss;
        samples += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu_s = (cpu_ticks(pid) - cpu_before) as f64 / ticks as f64;
    let hwm = status_kb(pid, "VmHWM:");
    let threads = status_kb(pid, "Threads:");
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    let cpu_pct = 100.0 * cpu_s / wall;
    let rss_avg = rss_sum / samples.max(1);
    println!(
        "idle daemon (IMAP IDLE + SMTP, {pending} mails delivered at start): {wall:.0} s sampled, CPU {cpu_s:.3} s = {cpu_pct:.2} %, RSS {:.1} MB (max {:.1} MB), peak since start {:.1} MB, {threads} threads; stopped with {status}",
        rss_avg as f64 / 1024.0,
        rss_max as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    assert!(status.success(), "postdesk run exits cleanly on SIGTERM");
    backlog::report(
        "idle",
        &[
            ("seconds", format!("{wall:.0}")),
            ("cpu_s", format!("{cpu_s:.3}")),
            ("cpu_pct", format!("{cpu_pct:.2}")),
            ("rss_kb", rss_avg.to_string()),
            ("rss_max_kb", rss_max.to_string()),
            ("hwm_kb", hwm.to_string()),
            ("threads", threads.to_string()),
            ("delivered_at_start", pending.to_string()),
        ],
    );
}

fn clock_ticks() -> i64 {
    // SAFETY: sysconf only reads a constant.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; here 11 and 12 (0-based).
    fields[11].parse::<i64>().expect("utime") + fields[12].parse::<i64>().expect("stime")
}

/// A number field of /proc/PID/status (kB for memory fields).
fn status_kb(pid: u32, field: &str) -> i64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("status field")
}

fn write_config(root: &Path, server: &MailServer) {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    std::fs::write(root.join("imap-password"), &server.password).expect("password");
    let mut text = format!(
        "[desk]\nname = \"Bench\"\ntemplates_dir = \"{}\"\n\n[[mailboxes]]\nname = \"soporte\"\naddress = \"soporte@example.com\"\nsource = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nusername = \"support2\"\npassword_file = \"imap-password\"\nfolder = \"INBOX\"\n\n[smtp]\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n\n[intake]\nack_rate_limit = \"100/h\"\n\n",
        templates.display(),
        server.imap_port,
        server.smtp_port
    );
    backlog::write_people(&mut text);
    std::fs::write(root.join("postdesk.toml"), text).expect("config");
}
