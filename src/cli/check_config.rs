//! `postdesk check-config`: validate the config (schema, secrets, templates)
//! and print a short summary; exit 0, or 2 with every problem located.

use std::path::Path;

use postdesk_core::config::{MailboxSource, SmtpTransport};

use super::load_desk;
use crate::Failure;

pub fn check_config(config: &Path) -> Result<u8, Failure> {
    let desk = load_desk(config)?;
    let c = &desk.config;
    println!("{}: OK", config.display());
    println!(
        "desk        {} (language {}, tag [{}: N], time zone {})",
        c.desk.name,
        c.desk.language.code(),
        c.desk.tag,
        c.desk.timezone.0
    );
    println!("database    {}", desk.database_path().display());
    for m in &c.mailboxes {
        let source = match &m.source {
            MailboxSource::Maildir { path } => format!("maildir {}", desk.resolve(path).display()),
            MailboxSource::Imap {
                host, port, folder, ..
            } => format!("imap {host}:{port}/{folder}"),
        };
        println!(
            "mailbox     {} <{}> queue {} via {} every {}s",
            m.name, m.address, m.queue, source, m.poll_interval_secs
        );
    }
    match &c.smtp.transport {
        SmtpTransport::File { dir } => {
            println!("outgoing    .eml files in {}", desk.resolve(dir).display())
        }
        SmtpTransport::Smtp { host, port, .. } => println!("outgoing    smtp {host}:{port}"),
    }
    println!(
        "people      {} agents, {} customers; {} rules, {} SLA policies, {} calendars, {} escalation levels",
        c.agents.len(),
        c.customers.len(),
        c.rules.len(),
        c.sla.len(),
        c.calendars.len(),
        c.escalation.len()
    );
    Ok(0)
}
