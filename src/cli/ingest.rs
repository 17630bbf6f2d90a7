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
use crate::intake::{Taken, hex, take_in};

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
    let mut code = 0;
    let mut process = |label: &str, raw: &[u8]| -> u8 {
        // The same bytes ingested twice (an MTA retry, a re-run) are one message.
        let source_ref = format!("sha256:{}", hex(&Sha256::digest(raw)));
        match take_in(&mut store, &desk, mailbox, &source_ref, raw, clock.now()) {
            Ok(Taken::Processed {
                disposition,
                ticket,
                ..
            }) => {
                match ticket {
                    Some(t) => println!("{label}: {disposition} (ticket {t})"),
                    None => println!("{label}: {disposition}"),
                }
                0
            }
            Ok(Taken::AlreadyTaken) => {
                println!("{label}: already taken in");
                0
            }
            Err(e) if e.is_transient() => {
                eprintln!("postdesk: {label}: not stored, try again later: {e}");
                EX_TEMPFAIL
            }
            Err(e) => {
                eprintln!("postdesk: {label}: {e}");
                1
            }
        }
    };
    for (label, raw) in &inputs {
        code = code.max(process(label, raw));
    }
    for file in files {
        // One file at a time: memory stays bounded whatever the batch.
        let label = file.display().to_string();
        match std::fs::read(file) {
            Ok(raw) => {
                let c = process(&label, &raw);
                if c == EX_TEMPFAIL || code == 0 {
                    code = code.max(c);
                }
            }
            Err(e) => {
                eprintln!("postdesk: {label}: {e}");
                code = code.max(1);
            }
        }
    }
    Ok(code)
}
