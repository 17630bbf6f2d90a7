//! `postdesk ingest [--mailbox NAME] [FILE...]`: take in raw messages from
//! files or one from stdin, like `rt-mailgate` under an MTA. Exit 75
//! (EX_TEMPFAIL) when a message could not be stored because of a transient
//! fault, so the MTA retries and nothing is lost. Delivery happens in `run`.

use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use sha2::{Digest, Sha256};

use super::{load_desk, open_store};
use crate::Failure;
use crate::clock::Clock;
use crate::desk::Desk;
use crate::intake::{Taken, hex, take_in_batch};
use crate::store::Store;
use postdesk_core::config::Mailbox;

pub const EX_TEMPFAIL: u8 = 75;

pub fn ingest(
    config: &Path,
    clock: Clock,
    mailbox: Option<&str>,
    files: &[PathBuf],
) -> Result<u8, Failure> {
    if files.is_empty() {
        let desk = load_desk(config)?;
        let mailbox = pick_mailbox(&desk, config, mailbox)?;
        let mut store = open_database(&desk)?;
        let mut raw = Vec::new();
        std::io::stdin()
            .read_to_end(&mut raw)
            .map_err(|e| Failure {
                code: EX_TEMPFAIL,
                error: anyhow::anyhow!("reading stdin: {e}"),
            })?;
        let input = Input::new("stdin".into(), raw);
        return Ok(ingest_batch(&mut store, &desk, mailbox, clock, &[input]));
    }
    // Files go in batches with one commit each, as the daemon takes in a
    // Maildir: a backlog of .eml files imports at the daemon's speed, and
    // memory stays bounded by the batch (and the one read ahead: a reader
    // thread reads and hashes the files, from the start on, while the desk
    // loads and the database opens, then a batch ahead).
    std::thread::scope(|scope| {
        let (ready, batches) = mpsc::sync_channel(1);
        scope.spawn(move || {
            for chunk in files.chunks(BATCH) {
                let batch: Vec<Result<Input, String>> = chunk
                    .iter()
                    .map(|file| {
                        let label = file.display().to_string();
                        std::fs::read(file)
                            .map(|raw| Input::new(label.clone(), raw))
                            .map_err(|e| format!("postdesk: {label}: {e}"))
                    })
                    .collect();
                // Gone: the desk could not be opened, nothing more to read.
                if ready.send(batch).is_err() {
                    return;
                }
            }
        });
        let desk = load_desk(config)?;
        let mailbox = pick_mailbox(&desk, config, mailbox)?;
        let mut store = open_database(&desk)?;
        if files.len() > 1 {
            // A backlog of files: checkpoints off the committing thread.
            store.start_background_checkpoints().map_err(|e| Failure {
                code: EX_TEMPFAIL,
                error: e.into(),
            })?;
        }
        let mut code = 0;
        for loaded in batches {
            let mut batch = Vec::with_capacity(loaded.len());
            for input in loaded {
                match input {
                    Ok(input) => batch.push(input),
                    Err(message) => {
                        eprintln!("{message}");
                        code = code.max(1);
                    }
                }
            }
            let c = ingest_batch(&mut store, &desk, mailbox, clock, &batch);
            if c == EX_TEMPFAIL || code == 0 {
                code = code.max(c);
            }
        }
        Ok(code)
    })
}

/// A database that cannot be opened is a transient fault (EX_TEMPFAIL: the
/// MTA tries again).
fn open_database(desk: &Desk) -> Result<Store, Failure> {
    open_store(desk).map_err(|f| Failure {
        code: EX_TEMPFAIL,
        error: f.error,
    })
}

/// The mailbox named on the command line, else the first one configured.
fn pick_mailbox<'d>(
    desk: &'d Desk,
    config: &Path,
    mailbox: Option<&str>,
) -> Result<&'d Mailbox, Failure> {
    match mailbox {
        Some(name) => desk.config.mailbox(name).ok_or_else(|| Failure {
            code: 2,
            error: anyhow::anyhow!("no mailbox named `{name}` in {}", config.display()),
        }),
        None => desk.config.mailboxes.first().ok_or_else(|| Failure {
            code: 2,
            error: anyhow::anyhow!("no mailboxes configured"),
        }),
    }
}

/// One message to take in: where it came from, its bytes, and its
/// source_ref. The same bytes ingested twice (an MTA retry, a re-run) are
/// one message.
struct Input {
    label: String,
    raw: Vec<u8>,
    source_ref: String,
}

impl Input {
    fn new(label: String, raw: Vec<u8>) -> Input {
        let source_ref = format!("sha256:{}", hex(&Sha256::digest(&raw)));
        Input {
            label,
            raw,
            source_ref,
        }
    }
}

/// Messages taken in together per commit.
const BATCH: usize = 256;

/// Takes in `batch` (label, bytes) with one commit; a message that fails is
/// rolled back alone and taken in again on its own, for its own error and
/// exit code, and the rest go on. Returns the worst exit code.
fn ingest_batch(
    store: &mut Store,
    desk: &Desk,
    mailbox: &Mailbox,
    clock: Clock,
    batch: &[Input],
) -> u8 {
    let mut code = 0;
    let mut next = 0;
    while next < batch.len() {
        let items: Vec<(&str, &[u8])> = batch[next..]
            .iter()
            .map(|input| (input.source_ref.as_str(), input.raw.as_slice()))
            .collect();
        let outcomes = match take_in_batch(store, desk, mailbox, &items, clock.now()) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let label = &batch[next].label;
                if e.is_transient() {
                    eprintln!("postdesk: {label}: not stored, try again later: {e}");
                    code = code.max(EX_TEMPFAIL);
                } else {
                    eprintln!("postdesk: {label}: {e}");
                    code = code.max(1);
                }
                next += 1;
                continue;
            }
        };
        // One line per message, written per batch (stdout is line-buffered).
        let mut report = String::new();
        for (taken, input) in outcomes.iter().zip(&batch[next..]) {
            let label = &input.label;
            let _ = match taken {
                Taken::Processed {
                    disposition,
                    ticket: Some(t),
                    ..
                } => writeln!(report, "{label}: {disposition} (ticket {t})"),
                Taken::Processed { disposition, .. } => writeln!(report, "{label}: {disposition}"),
                Taken::AlreadyTaken => writeln!(report, "{label}: already taken in"),
            };
        }
        // A closed stdout (an MTA that does not read it) loses only the report.
        let _ = std::io::stdout().lock().write_all(report.as_bytes());
        // Whatever was not committed starts the next batch, where its first
        // message fails alone with its own error.
        if outcomes.is_empty() {
            break; // not reached: only an empty batch commits nothing
        }
        next += outcomes.len();
    }
    code
}
