//! `postdesk ingest [--mailbox NAME] [FILE...]`: take in raw messages from
//! files or one from stdin, like `rt-mailgate` under an MTA. Exit 75
//! (EX_TEMPFAIL) when a message could not be stored because of a transient
//! fault, so the MTA retries and nothing is lost. Delivery happens in `run`.

use std::io::Read;
use std::path::{Path, PathBuf};

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
    let desk = load_desk(config)?;
    let mailbox = match mailbox {
        Some(name) => desk.config.mailbox(name).ok_or_else(|| Failure {
            code: 2,
            error: anyhow::anyhow!("no mailbox named `{name}` in {}", config.display()),
        })?,
        None => desk.config.mailboxes.first().ok_or_else(|| Failure {
            code: 2,
            error: anyhow::anyhow!("no mailboxes configured"),
        })?,
    };
    let mut store = open_store(&desk).map_err(|f| Failure {
        code: EX_TEMPFAIL,
        error: f.error,
    })?;
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    if files.is_empty() {
        let mut raw = Vec::new();
        std::io::stdin()
            .read_to_end(&mut raw)
            .map_err(|e| Failure {
                code: EX_TEMPFAIL,
                error: anyhow::anyhow!("reading stdin: {e}"),
            })?;
        inputs.push(("stdin".into(), raw));
    }
    if files.len() > 1 {
        // A backlog of files: checkpoints off the committing thread.
        store.start_background_checkpoints().map_err(|e| Failure {
            code: EX_TEMPFAIL,
            error: e.into(),
        })?;
    }
    let mut code = 0;
    for (label, raw) in &inputs {
        code = code.max(ingest_batch(
            &mut store,
            &desk,
            mailbox,
            clock,
            &[(label.clone(), raw.clone())],
        ));
    }
    // Files go in batches with one commit each, as the daemon takes in a
    // Maildir: a backlog of .eml files imports at the daemon's speed, and
    // memory stays bounded by the batch.
    for chunk in files.chunks(BATCH) {
        let mut batch = Vec::with_capacity(chunk.len());
        for file in chunk {
            let label = file.display().to_string();
            match std::fs::read(file) {
                Ok(raw) => batch.push((label, raw)),
                Err(e) => {
                    eprintln!("postdesk: {label}: {e}");
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
    batch: &[(String, Vec<u8>)],
) -> u8 {
    // The same bytes ingested twice (an MTA retry, a re-run) are one message.
    let refs: Vec<String> = batch
        .iter()
        .map(|(_, raw)| format!("sha256:{}", hex(&Sha256::digest(raw))))
        .collect();
    let mut code = 0;
    let mut next = 0;
    while next < batch.len() {
        let items: Vec<(&str, &[u8])> = refs[next..]
            .iter()
            .zip(&batch[next..])
            .map(|(r, (_, raw))| (r.as_str(), raw.as_slice()))
            .collect();
        let outcomes = match take_in_batch(store, desk, mailbox, &items, clock.now()) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let label = &batch[next].0;
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
        for (taken, (label, _)) in outcomes.iter().zip(&batch[next..]) {
            match taken {
                Taken::Processed {
                    disposition,
                    ticket: Some(t),
                    ..
                } => println!("{label}: {disposition} (ticket {t})"),
                Taken::Processed { disposition, .. } => println!("{label}: {disposition}"),
                Taken::AlreadyTaken => println!("{label}: already taken in"),
            }
        }
        // Whatever was not committed starts the next batch, where its first
        // message fails alone with its own error.
        if outcomes.is_empty() {
            break; // not reached: only an empty batch commits nothing
        }
        next += outcomes.len();
    }
    code
}
