//! The daemon: one task per mailbox (read, take in, acknowledge after the
//! commit), one outbox task (deliver due mail concurrently) and a shutdown
//! signal shared by all of them (SIGINT/SIGTERM): each task finishes the
//! message in hand and stops; nothing is left half-done because every step
//! is one transaction. `--once` runs one full pass of each and returns.
//!
//! A failure in one mailbox is logged and retried with backoff; it never
//! stops another mailbox or the outbox.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use postdesk_core::config::{Mailbox, MailboxSource};
use tokio::sync::watch;
use tracing::{Instrument, error, info, info_span, warn};

use crate::clock::Clock;
use crate::delivery::deliver_due;
use crate::desk::Desk;
use crate::intake::take_in_batch;
use crate::source::Source;
use crate::source::maildir::Maildir;
use crate::store::Store;
use crate::transport::Configured;

/// Messages fetched from a source and committed together (group commit).
const BATCH: usize = 256;

pub async fn run(desk: Arc<Desk>, clock: Clock, once: bool) -> anyhow::Result<()> {
    let (stop_tx, stop) = watch::channel(false);
    let transport =
        Arc::new(Configured::from_desk(&desk).context("setting up the outgoing transport")?);
    // Create and migrate the database before the tasks open their own
    // connections: first opens at once race on the WAL switch and the schema.
    Store::open(&desk.database_path())?;
    if once {
        for mailbox in &desk.config.mailboxes {
            drain_mailbox(&desk, mailbox, clock, &stop).await?;
        }
        let mut store = Store::open(&desk.database_path())?;
        let delivered = deliver_due(&mut store, transport.as_ref(), || clock.now()).await?;
        info!(
            sent = delivered.sent,
            retried = delivered.retried,
            failed = delivered.failed,
            "outbox pass done"
        );
        return Ok(());
    }

    let mut tasks = tokio::task::JoinSet::new();
    for mailbox in desk.config.mailboxes.clone() {
        let (desk, stop) = (desk.clone(), stop.clone());
        let span = info_span!("mailbox", mailbox = %mailbox.name);
        tasks.spawn(async move { mailbox_loop(desk, mailbox, clock, stop).await }.instrument(span));
    }
    {
        let (desk, stop) = (desk.clone(), stop.clone());
        tasks.spawn(
            async move { outbox_loop(desk, transport, clock, stop).await }
                .instrument(info_span!("outbox")),
        );
    }
    info!(mailboxes = desk.config.mailboxes.len(), "postdesk running");
    wait_for_signal().await;
    info!("shutting down: finishing the message in hand");
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Sleeps `duration` unless the stop signal comes first; true when stopping.
async fn pause(stop: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(duration) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

async fn mailbox_loop(
    desk: Arc<Desk>,
    mailbox: Mailbox,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) {
    let interval = Duration::from_secs(mailbox.poll_interval_secs.max(1) as u64);
    let mut failures = 0u32;
    loop {
        match drain_mailbox(&desk, &mailbox, clock, &stop).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                error!(error = %format!("{e:#}"), failures, "mailbox pass failed; will retry");
            }
        }
        let wait = if failures == 0 {
            interval
        } else {
            interval
                .max(Duration::from_secs(5u64 << failures.min(6)))
                .min(Duration::from_secs(300))
        };
        if pause(&mut stop, wait).await {
            return;
        }
    }
}

/// Reads everything waiting in one mailbox: take in, commit, then acknowledge.
async fn drain_mailbox(
    desk: &Desk,
    mailbox: &Mailbox,
    clock: Clock,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let MailboxSource::Maildir { path } = &mailbox.source else {
        anyhow::bail!(
            "mailbox `{}`: the imap source is not available in this build yet",
            mailbox.name
        );
    };
    let mut source = Maildir::open(&desk.resolve(path))?;
    let mut store = Store::open(&desk.database_path())?;
    let mut taken = 0usize;
    let started = std::time::Instant::now();
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let batch = source.fetch(BATCH).await?;
        if batch.is_empty() {
            break;
        }
        let items: Vec<(&str, &[u8])> = batch
            .iter()
            .map(|m| (m.source_ref.as_str(), m.raw.as_slice()))
            .collect();
        let outcomes = tokio::task::block_in_place(|| {
            take_in_batch(&mut store, desk, mailbox, &items, clock.now())
        })
        .with_context(|| format!("taking in {}", batch[0].location.display()))?;
        // Only what was committed is acknowledged; the rest is read again next pass.
        for message in &batch[..outcomes.len()] {
            source.acknowledge(message).await?;
        }
        taken += outcomes.len();
        if outcomes.len() < batch.len() {
            anyhow::bail!(
                "{} message(s) left for the next pass",
                batch.len() - outcomes.len()
            );
        }
    }
    {
        let tx = store.begin()?;
        tx.record_poll(&mailbox.name, clock.now().timestamp(), None)?;
        tx.commit()?;
    }
    if taken > 0 {
        let elapsed_ms = started.elapsed().as_millis() as u64;
        info!(mailbox = %mailbox.name, taken, elapsed_ms, "mailbox drained");
    }
    Ok(())
}

async fn outbox_loop(
    desk: Arc<Desk>,
    transport: Arc<Configured>,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) {
    // The daemon never dies of a lost database either: back off and retry.
    let mut wait = Duration::from_secs(1);
    let mut store = loop {
        match Store::open(&desk.database_path()) {
            Ok(s) => break s,
            Err(e) => {
                error!(error = %e, retry_in_s = wait.as_secs(), "outbox: cannot open the database");
                if pause(&mut stop, wait).await {
                    return;
                }
                wait = (wait * 2).min(Duration::from_secs(300));
            }
        }
    };
    loop {
        match deliver_due(&mut store, transport.as_ref(), || clock.now()).await {
            Ok(d) if d.sent + d.retried + d.failed > 0 => info!(
                sent = d.sent,
                retried = d.retried,
                failed = d.failed,
                "outbox pass"
            ),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "outbox pass failed; will retry"),
        }
        // New mail is queued by intake at any moment; look again soon.
        if pause(&mut stop, Duration::from_secs(1)).await {
            return;
        }
    }
}
