//! Robustness over the shared real-world corpus (`../shared/corpus/real`,
//! 600 messages from 23 public projects: charsets, Outlook, bounces, broken
//! MIME). Every message must get exactly one disposition, the process must
//! never panic, and non-UTF-8 subjects must come out decoded. The corpus is
//! read in place, never copied into the repository. The two real mbox files
//! are split into their messages; every other file is one message.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::Desk;

fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/real");
    assert!(
        dir.is_dir(),
        "the shared corpus is missing at {}: this test needs the workplace's shared/ folder beside the repository",
        dir.display()
    );
    dir
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read corpus")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name != "MANIFEST.md" && name != "index.tsv" {
                out.push(p);
            }
        }
    }
}

/// Splits an mbox at `From ` lines that follow an empty line (or start the file).
fn split_mbox(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut previous_blank = true;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if previous_blank && line.starts_with(b"From ") && !current.is_empty() {
            messages.push(std::mem::take(&mut current));
        }
        previous_blank = line == b"\n" || line == b"\r\n";
        current.extend_from_slice(line);
    }
    if !current.is_empty() {
        messages.push(current);
    }
    messages
}

const MBOXES: &[&str] = &[
    "mimekit/mbox/content-length.mbox.txt",
    "sisimai/mailbox/mbox-0",
];

#[test]
fn every_corpus_message_gets_one_disposition_and_no_panic() {
    let root = corpus();
    let mut all = Vec::new();
    files(&root, &mut all);
    assert!(
        all.len() >= 590,
        "expected the 600-file corpus, found {}",
        all.len()
    );

    let desk = Desk::with_intake("max_message_size = \"25MB\"");
    let split_dir = desk.path("split");
    std::fs::create_dir_all(&split_dir).unwrap();
    let mut inputs = Vec::new();
    for path in &all {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if MBOXES.contains(&rel.as_str()) {
            for (i, m) in split_mbox(&std::fs::read(path).unwrap())
                .into_iter()
                .enumerate()
            {
                let file = split_dir.join(format!("{}-{i}.eml", rel.replace('/', "_")));
                std::fs::write(&file, m).unwrap();
                inputs.push(file);
            }
        } else {
            inputs.push(path.clone());
        }
    }

    let out = desk.cmd().arg("ingest").args(&inputs).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "postdesk panicked: {stderr}");
    assert_eq!(out.status.code(), Some(0), "ingest failed: {stderr}");

    let log = desk.inbound();
    let rows = log.as_array().unwrap();
    // Identical files (the same bytes twice) are one message: "already taken in".
    let stdout = String::from_utf8_lossy(&out.stdout);
    let already = stdout
        .lines()
        .filter(|l| l.ends_with("already taken in"))
        .count();
    assert_eq!(
        rows.len() + already,
        inputs.len(),
        "every input is one inbound row (or the same bytes as an earlier one)"
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows {
        let d = r["disposition"].as_str().expect("disposition").to_string();
        assert!(
            !r["reason"].as_str().unwrap_or("").is_empty(),
            "a reason for every row: {r}"
        );
        *counts.entry(d).or_default() += 1;
    }
    eprintln!(
        "corpus: {} files, {} messages ({} identical copies); dispositions: {counts:?}",
        all.len(),
        inputs.len(),
        already
    );

    // Spot checks of non-UTF-8 mail: decoded, not mojibake. Rows are in input order.
    assert_eq!(already, 0, "the corpus has no byte-identical copies");
    let row_of = |name: &str| -> serde_json::Value {
        let i = inputs
            .iter()
            .position(|p| p.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not in corpus"));
        rows[i].clone()
    };
    assert_eq!(
        row_of("redmine/subject_as_iso-8859-1.eml")["subject"],
        "Testmail from Webmail: ä ö ü..."
    );
    assert_eq!(
        row_of("redmine/gmail-iso8859-2.eml")["subject"],
        "Nikad više"
    );
    let japanese = row_of("redmine/japanese_keywords_iso_2022_jp.eml");
    let ticket = desk.ticket(japanese["ticket"].as_i64().expect("a ticket"));
    let body = ticket["messages"][0]["body"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        body.chars()
            .any(|c| ('\u{3040}'..='\u{30ff}').contains(&c)
                || ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "ISO-2022-JP body not decoded: {body}"
    );
}
