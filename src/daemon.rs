//! The daemon: one task per mailbox (read, take in, acknowledge after the
//! commit), one outbox task (deliver due mail concurrently) and a shutdown
//! signal shared by all of them (SIGINT/SIGTERM): each task finishes the
//! message in hand and stops; nothing is left half-done because every step
//! is one transaction. `--once` runs one full pass of each and returns.
//!
//! A Maildir mailbox is drained every `poll_interval`. An IMAP mailbox keeps
//! one connection: drain, then wait (IDLE or poll), drain again; after any
//! error it reconnects with exponential backoff and jitter (from 1 s; from
//! 60 s when the account or config needs attention, e.g. a refused
//! password; at most 5 min), resuming from the UIDVALIDITY and last UID kept
//! in the store after every acknowledged batch.
//!
//! A failure in one mailbox is logged and retried with backoff; it never
//! stops another mailbox or the outbox. Intake wakes the outbox task as soon
//! as it queued mail.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use postdesk_core::config::{Mailbox, MailboxSource};
use tokio::sync::{Notify, watch};
use tokio_rustls::rustls::ClientConfig;
use tracing::{Instrument, error, info, info_span, warn};

use crate::clock::Clock;
use crate::delivery::deliver_due;
use crate::desk::Desk;
use crate::http::{self, Monitor};
use crate::intake::{Taken, take_in_batch};
use crate::metrics::Metrics;
use crate::source::imap::{self, ImapError, ImapSource, Settings, Wake};
use crate::source::maildir::Maildir;
use crate::source::{Incoming, Source, SourceError};
use crate::store::Store;
use crate::timers::run_timers;
use crate::transport::Configured;

/// Messages fetched from a source and committed together (group commit).
const BATCH: usize = 256;

/// What the daemon's tasks share.
#[derive(Default)]
pub struct Shared {
    /// Intake tells the outbox task that mail is waiting.
    queued: Notify,
    metrics: Arc<Metrics>,
    /// When each mailbox started being served (`/healthz` grace).
    watched_since: Arc<Mutex<HashMap<String, i64>>>,
}

pub async fn run(
    config_path: &Path,
    desk: Arc<Desk>,
    clock: Clock,
    once: bool,
) -> anyhow::Result<()> {
    let shared = Arc::new(Shared::default());
    let transport = Configured::from_desk(&desk).context("setting up the outgoing transport")?;
    // Create and migrate the database before the tasks open their own
    // connections: first opens at once race on the WAL switch and the schema.
    Store::open(&desk.database_path())?;
    if once {
        let (_keep, stop) = watch::channel(false);
        for mailbox in &desk.config.mailboxes {
            drain_mailbox(&desk, mailbox, clock, &stop, &shared)
                .instrument(info_span!("mailbox", mailbox = %mailbox.name))
                .await?;
        }
        let mut store = Store::open(&desk.database_path())?;
        let started = std::time::Instant::now();
        let fired = tokio::task::block_in_place(|| run_timers(&mut store, &desk, clock.now()))?;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        info!(fired, elapsed_ms, "timer pass done");
        let started = std::time::Instant::now();
        let delivered = deliver_due(&mut store, &transport, || clock.now()).await?;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        info!(
            sent = delivered.sent,
            retried = delivered.retried,
            failed = delivered.failed,
            elapsed_ms,
            "outbox pass done"
        );
        return Ok(());
    }

    // Signal handlers first: SIGHUP's default action would kill a daemon
    // that is still starting.
    let mut signals = Signals::new();
    let (stop_tx, stop) = watch::channel(false);
    let (desk_tx, desks) = watch::channel(desk.clone());
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(http) = &desk.config.http {
        let listener = http::bind(http.listen).await?;
        let monitor = Arc::new(Monitor::new(
            desks.clone(),
            clock,
            shared.metrics.clone(),
            shared.watched_since.clone(),
        ));
        tasks.spawn(http::serve(listener, monitor, stop.clone()).instrument(info_span!("http")));
    }
    {
        let (desks, stop) = (desks.clone(), stop.clone());
        tasks.spawn(
            async move { timer_loop(desks, clock, stop).await }.instrument(info_span!("timers")),
        );
    }
    {
        let (desks, stop, shared) = (desks.clone(), stop.clone(), shared.clone());
        tasks.spawn(
            async move { outbox_loop(desks, transport, clock, stop, shared).await }
                .instrument(info_span!("outbox")),
        );
    }
    let mut mailboxes = Mailboxes::default();
    mailboxes.reconcile(&desk, &desks, clock, &shared).await;
    info!(mailboxes = desk.config.mailboxes.len(), "postdesk running");
    while let Wanted::Reload = signals.next().await {
        reload(config_path, &desk_tx, &mut mailboxes, clock, &shared).await;
    }
    info!("shutting down: finishing the message in hand");
    let _ = stop_tx.send(true);
    mailboxes.stop_all().await;
    while tasks.join_next().await.is_some() {}
    info!("stopped");
    Ok(())
}

/// SIGHUP: load and validate the config file again; if it is sound, swap
/// it in (intake, timers and the outbox read the new one from their next
/// pass) and start, restart or stop mailbox tasks to match. A config that
/// does not load is refused and the running one stays.
async fn reload(
    path: &Path,
    desk_tx: &watch::Sender<Arc<Desk>>,
    mailboxes: &mut Mailboxes,
    clock: Clock,
    shared: &Arc<Shared>,
) {
    info!(config = %path.display(), "SIGHUP: reloading the configuration");
    let new = match Desk::load(path) {
        Ok(desk) => Arc::new(desk),
        Err(e) => {
            let error = anyhow::Error::new(e);
            error!(config = %path.display(), error = format!("{error:#}"), "configuration reload refused; the running configuration stays");
            return;
        }
    };
    let old = desk_tx.borrow().clone();
    if new.database_path() != old.database_path() {
        error!(
            config = %path.display(),
            "configuration reload refused: [desk] database changes only with a restart; the running configuration stays"
        );
        return;
    }
    if new.config.http != old.config.http {
        warn!("[http] changes take effect at the next restart");
    }
    desk_tx.send_replace(new.clone());
    let desks = desk_tx.subscribe();
    let changes = mailboxes.reconcile(&new, &desks, clock, shared).await;
    info!(
        added = ?changes.added,
        restarted = ?changes.restarted,
        removed = ?changes.removed,
        "configuration reloaded"
    );
}

/// The mailbox tasks running, by mailbox name.
#[derive(Default)]
struct Mailboxes {
    served: BTreeMap<String, Served>,
}

struct Served {
    mailbox: Mailbox,
    password: Option<String>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Changes {
    added: Vec<String>,
    restarted: Vec<String>,
    removed: Vec<String>,
}

impl Mailboxes {
    /// Makes the running mailbox tasks match `desk`: a mailbox whose
    /// settings (or resolved password) changed is stopped after the message
    /// in hand and started again; one no longer configured is stopped.
    async fn reconcile(
        &mut self,
        desk: &Arc<Desk>,
        desks: &watch::Receiver<Arc<Desk>>,
        clock: Clock,
        shared: &Arc<Shared>,
    ) -> Changes {
        let mut changes = Changes::default();
        let wanted: BTreeMap<&str, &Mailbox> = desk
            .config
            .mailboxes
            .iter()
            .map(|m| (m.name.as_str(), m))
            .collect();
        let gone: Vec<String> = self
            .served
            .iter()
            .filter(|(name, served)| {
                wanted.get(name.as_str()).is_none_or(|m| {
                    !serves_alike(m, &served.mailbox)
                        || desk.mailbox_password(&m.name) != served.password.as_deref()
                })
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(served) = self.served.remove(&name) {
                served.finish().await;
            }
            if wanted.contains_key(name.as_str()) {
                changes.restarted.push(name);
            } else {
                if let Ok(mut since) = shared.watched_since.lock() {
                    since.remove(&name);
                }
                changes.removed.push(name);
            }
        }
        for (name, mailbox) in wanted {
            if self.served.contains_key(name) {
                continue;
            }
            if !changes.restarted.iter().any(|r| r == name) {
                changes.added.push(name.to_string());
            }
            if let Ok(mut since) = shared.watched_since.lock() {
                since.insert(name.to_string(), clock.now().timestamp());
            }
            self.served.insert(
                name.to_string(),
                Served::start(desk, mailbox, desks, clock, shared),
            );
        }
        changes
    }

    async fn stop_all(&mut self) {
        let served = std::mem::take(&mut self.served);
        for served in served.values() {
            let _ = served.stop.send(true);
        }
        for (_, served) in served {
            served.finish().await;
        }
    }
}

impl Served {
    fn start(
        desk: &Desk,
        mailbox: &Mailbox,
        desks: &watch::Receiver<Arc<Desk>>,
        clock: Clock,
        shared: &Arc<Shared>,
    ) -> Served {
        let (stop, stopping) = watch::channel(false);
        let (desks, shared, owned) = (desks.clone(), shared.clone(), mailbox.clone());
        let span = info_span!("mailbox", mailbox = %mailbox.name);
        let task = match Settings::of(mailbox) {
            Some(settings) => tokio::spawn(
                async move { imap_loop(desks, owned, settings, clock, stopping, shared).await }
                    .instrument(span),
            ),
            None => tokio::spawn(
                async move { mailbox_loop(desks, owned, clock, stopping, shared).await }
                    .instrument(span),
            ),
        };
        Served {
            mailbox: mailbox.clone(),
            password: desk.mailbox_password(&mailbox.name).map(str::to_string),
            stop,
            task,
        }
    }

    /// Stops the task after the message in hand and waits for it.
    async fn finish(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            error!(mailbox = %self.mailbox.name, error = %e, "mailbox task ended abnormally");
        }
    }
}

/// Same mailbox, same settings (the line it is written on aside).
fn serves_alike(a: &Mailbox, b: &Mailbox) -> bool {
    a.name == b.name
        && a.address == b.address
        && a.queue == b.queue
        && a.source == b.source
        && a.poll_interval_secs == b.poll_interval_secs
        && a.notes_address == b.notes_address
}

enum Wanted {
    Stop,
    Reload,
}

/// SIGINT/SIGTERM stop the daemon, SIGHUP reloads the config.
struct Signals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                terminate: signal(SignalKind::terminate()).ok(),
                hangup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) -> Wanted {
        #[cfg(unix)]
        {
            let Signals { terminate, hangup } = self;
            let terminated = async {
                if let Some(s) = terminate.as_mut()
                    && s.recv().await.is_some()
                {
                    return;
                }
                std::future::pending::<()>().await
            };
            let hung_up = async {
                if let Some(s) = hangup.as_mut()
                    && s.recv().await.is_some()
                {
                    return;
                }
                std::future::pending::<()>().await
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Wanted::Stop,
                _ = terminated => Wanted::Stop,
                _ = hung_up => Wanted::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Wanted::Stop
        }
    }
}

/// Returns once the stop signal is given (at once if it was).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
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
    desks: watch::Receiver<Arc<Desk>>,
    mailbox: Mailbox,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    let interval = Duration::from_secs(mailbox.poll_interval_secs.max(1) as u64);
    let mut failures = 0u32;
    loop {
        // Each pass runs on the config in force (SIGHUP may have changed it).
        let desk = desks.borrow().clone();
        let started = Instant::now();
        let result = drain_mailbox(&desk, &mailbox, clock, &stop, &shared).await;
        shared
            .metrics
            .polled(&mailbox.name, started.elapsed(), result.is_ok());
        match result {
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
    desk: &Arc<Desk>,
    mailbox: &Mailbox,
    clock: Clock,
    stop: &watch::Receiver<bool>,
    shared: &Shared,
) -> anyhow::Result<()> {
    let path = match &mailbox.source {
        MailboxSource::Maildir { path } => path,
        MailboxSource::Imap { .. } => {
            let Some(settings) = Settings::of(mailbox) else {
                anyhow::bail!("mailbox `{}` is not an IMAP mailbox", mailbox.name);
            };
            let tls = imap::tls_config()?;
            let mut stop = stop.clone();
            let mut backoff = Backoff::default();
            let (_keep, desks) = watch::channel(desk.clone());
            let mut imap = Imap {
                desks: &desks,
                mailbox,
                settings: &settings,
                tls: &tls,
                clock,
                shared,
            };
            return imap.session(&mut stop, &mut backoff, true).await;
        }
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
        // A backlog, not the one mail of a quiet moment: checkpoints on
        // their own thread until the mailbox is drained.
        if batch.len() > 1 {
            store.start_background_checkpoints()?;
        }
        let done = take_in_and_acknowledge(
            &mut source,
            &mut store,
            desk,
            mailbox,
            clock,
            &batch,
            shared,
        )
        .await?;
        taken += done;
        if done < batch.len() {
            anyhow::bail!("{} message(s) left for the next pass", batch.len() - done);
        }
    }
    {
        let tx = store.begin()?;
        tx.record_poll(&mailbox.name, clock.now().timestamp(), None)?;
        tx.commit()?;
    }
    store.stop_background_checkpoints()?;
    if taken > 0 {
        let elapsed_ms = started.elapsed().as_millis() as u64;
        info!(mailbox = %mailbox.name, taken, elapsed_ms, "mailbox drained");
    }
    Ok(())
}

/// Takes in one batch read from a source (one commit), then tells the
/// source about exactly the leading messages that are done; returns how
/// many. Mail a rescan may have read before (`may_be_reread`) that the
/// inbound log already holds for this mailbox (same Message-ID, or the same
/// bytes) is only acknowledged: no second inbound row, nothing processed.
async fn take_in_and_acknowledge(
    source: &mut impl Source,
    store: &mut Store,
    desk: &Desk,
    mailbox: &Mailbox,
    clock: Clock,
    batch: &[Incoming],
    shared: &Shared,
) -> anyhow::Result<usize> {
    let mut reread = vec![false; batch.len()];
    for (i, message) in batch.iter().enumerate() {
        if !message.may_be_reread {
            continue;
        }
        let reading = postdesk_core::intake::read(&message.raw, &desk.config);
        let message_id = reading.mail().and_then(|m| m.message_id.clone());
        reread[i] = store.taken_in_before(&mailbox.name, message_id.as_deref(), &message.raw)?;
        if reread[i] {
            info!(
                source_ref = %message.source_ref,
                message_id = message_id.as_deref().unwrap_or(""),
                "taken in before under an earlier UIDVALIDITY: only acknowledged"
            );
        }
    }
    let items: Vec<(&str, &[u8])> = batch
        .iter()
        .zip(&reread)
        .filter(|(_, reread)| !**reread)
        .map(|(m, _)| (m.source_ref.as_str(), m.raw.as_slice()))
        .collect();
    let outcomes = match items.first() {
        None => Vec::new(),
        Some(first) => {
            tokio::task::block_in_place(|| take_in_batch(store, desk, mailbox, &items, clock.now()))
                .with_context(|| format!("taking in {} of mailbox `{}`", first.0, mailbox.name))?
        }
    };
    let mut processed = false;
    for outcome in &outcomes {
        if let Taken::Processed { disposition, .. } = outcome {
            shared.metrics.taken_in(&mailbox.name, *disposition);
            processed = true;
        }
    }
    if processed {
        shared.queued.notify_one();
    }
    // Only what was committed (or read before) is acknowledged; the rest is
    // read again next pass.
    let mut committed = outcomes.len();
    let mut done = 0;
    for reread in reread {
        if !reread {
            if committed == 0 {
                break;
            }
            committed -= 1;
        }
        done += 1;
    }
    source.acknowledge_all(&batch[..done]).await?;
    Ok(done)
}

/// Reconnect delays: exponential from 1 s (from 60 s for faults that need
/// attention, such as a refused password), at most 5 min, with jitter so
/// that many mailboxes of one server do not reconnect in step.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const CAP_SECS: u64 = 300;

    fn reset(&mut self) {
        self.failures = 0;
    }

    fn next(&mut self, slow: bool) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let base: u64 = if slow { 60 } else { 1 };
        let ceiling = (base << (self.failures - 1).min(10)).min(Self::CAP_SECS) as f64;
        // "Equal jitter": half of the delay fixed, half random.
        let random = std::collections::hash_map::RandomState::new().hash_one(self.failures);
        let unit = (random >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_secs_f64(ceiling * (0.5 + 0.5 * unit))
    }
}

/// True when the error (or what caused it) is an IMAP fault of the account
/// or the configuration rather than of the network.
fn needs_attention(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<ImapError>()
            .is_some_and(ImapError::needs_attention)
            || matches!(cause.downcast_ref::<SourceError>(), Some(SourceError::Imap(e)) if e.needs_attention())
    })
}

/// One IMAP mailbox's task: sessions, and reconnects after any error.
async fn imap_loop(
    desks: watch::Receiver<Arc<Desk>>,
    mailbox: Mailbox,
    settings: Settings,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    let mut backoff = Backoff::default();
    let mut tls: Option<Arc<ClientConfig>> = None;
    loop {
        let result = match &tls {
            Some(tls) => Ok(tls.clone()),
            None => imap::tls_config().map_err(anyhow::Error::from),
        };
        let result = match result {
            Ok(config) => {
                tls = Some(config.clone());
                let mut imap = Imap {
                    desks: &desks,
                    mailbox: &mailbox,
                    settings: &settings,
                    tls: &config,
                    clock,
                    shared: &shared,
                };
                imap.session(&mut stop, &mut backoff, false).await
            }
            Err(e) => Err(e),
        };
        let e = match result {
            Ok(()) => return,
            Err(e) => e,
        };
        shared.metrics.polled(&mailbox.name, Duration::ZERO, false);
        let attention = needs_attention(&e);
        let wait = backoff.next(attention);
        let message = format!("{e:#}");
        let retry_in_s = wait.as_secs_f64().round() as u64;
        if attention {
            error!(error = %message, retry_in_s, "IMAP mailbox needs attention; retrying slowly");
        } else {
            warn!(error = %message, retry_in_s, "IMAP mailbox failed; reconnecting");
        }
        // The error is kept for the operator (`/healthz`), best effort.
        let now = clock.now().timestamp();
        let desk = desks.borrow().clone();
        let _ = Store::open(&desk.database_path()).and_then(|mut store| {
            let tx = store.begin()?;
            tx.record_poll(&mailbox.name, now, Some(&message))?;
            tx.commit()
        });
        if pause(&mut stop, wait).await {
            return;
        }
    }
}

/// What an IMAP session needs from the daemon.
struct Imap<'a> {
    /// The config in force, read again before every drain.
    desks: &'a watch::Receiver<Arc<Desk>>,
    mailbox: &'a Mailbox,
    settings: &'a Settings,
    tls: &'a Arc<ClientConfig>,
    clock: Clock,
    shared: &'a Shared,
}

impl Imap<'_> {
    /// Connects and serves the mailbox until stopped (or, with `once`,
    /// until it is drained); returns Ok only then.
    async fn session(
        &mut self,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
        once: bool,
    ) -> anyhow::Result<()> {
        let (mailbox, clock) = (self.mailbox, self.clock);
        let desk = self.desks.borrow().clone();
        let mut store = Store::open(&desk.database_path())?;
        let stored = store.imap_state(&mailbox.name)?;
        let password = desk.mailbox_password(&mailbox.name).unwrap_or_default();
        // Connecting may take a while (timeouts of 30-60 s): a stop wins.
        let connect = ImapSource::connect(self.settings, password, self.tls, &stored);
        let mut source = tokio::select! {
            source = connect => source?,
            _ = stopped(stop) => return Ok(()),
        };
        save_state(&mut store, mailbox, &source)?;
        let interval = Duration::from_secs(mailbox.poll_interval_secs.max(1) as u64);
        loop {
            let desk = self.desks.borrow().clone();
            let started = Instant::now();
            let mut taken = 0usize;
            while !*stop.borrow() {
                let batch = source.fetch_batch(BATCH).await?;
                if batch.is_empty() {
                    break;
                }
                // A backlog, not the one mail IDLE just announced: checkpoints
                // on their own thread until the folder is drained.
                if batch.len() > 1 {
                    store.start_background_checkpoints()?;
                }
                let done = take_in_and_acknowledge(
                    &mut source,
                    &mut store,
                    &desk,
                    mailbox,
                    clock,
                    &batch,
                    self.shared,
                )
                .await?;
                save_state(&mut store, mailbox, &source)?;
                taken += done;
                if done < batch.len() {
                    anyhow::bail!("{} message(s) left for the next pass", batch.len() - done);
                }
            }
            {
                let tx = store.begin()?;
                tx.set_imap_state(&mailbox.name, &source.state())?;
                tx.record_poll(&mailbox.name, clock.now().timestamp(), None)?;
                tx.commit()?;
            }
            store.stop_background_checkpoints()?;
            backoff.reset();
            self.shared
                .metrics
                .polled(&mailbox.name, started.elapsed(), true);
            if taken > 0 {
                let elapsed_ms = started.elapsed().as_millis() as u64;
                info!(mailbox = %mailbox.name, taken, elapsed_ms, "mailbox drained");
            }
            if once || *stop.borrow() {
                source.logout().await;
                return Ok(());
            }
            match source.wait(interval, stop).await? {
                Wake::Stop => {
                    source.logout().await;
                    return Ok(());
                }
                Wake::Changed | Wake::Interval => {}
            }
        }
    }
}

/// Persists where the IMAP mailbox resumes (after every acknowledged batch).
fn save_state(store: &mut Store, mailbox: &Mailbox, source: &ImapSource) -> anyhow::Result<()> {
    let tx = store.begin()?;
    tx.set_imap_state(&mailbox.name, &source.state())?;
    tx.commit()?;
    Ok(())
}

/// Fires due timers, then sleeps until the earliest stored timer instant
/// (an indexed MIN), at most 30 s: intake and agents may set an earlier one
/// meanwhile, and the weekly reminder slot has no per-ticket instant.
async fn timer_loop(
    desks: watch::Receiver<Arc<Desk>>,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) {
    // One connection for the task's life; opened again only after a failure.
    let mut store: Option<Store> = None;
    loop {
        let desk = desks.borrow().clone();
        let result = tokio::task::block_in_place(|| {
            let open = match store.take() {
                Some(open) => open,
                None => Store::open(&desk.database_path())?,
            };
            let db = store.insert(open);
            let fired = run_timers(db, &desk, clock.now())?;
            Ok::<_, crate::store::StoreError>((fired, db.next_timer_due()?))
        });
        if result.is_err() {
            store = None;
        }
        let mut wait = Duration::from_secs(30);
        match result {
            Ok((fired, next)) => {
                if fired > 0 {
                    info!(fired, "timer pass");
                }
                if let Some(next) = next {
                    let until = (next - clock.now().timestamp()).clamp(1, 30);
                    wait = Duration::from_secs(until as u64);
                }
            }
            Err(e) => warn!(error = %e, "timer pass failed; will retry"),
        }
        if pause(&mut stop, wait).await {
            return;
        }
    }
}

async fn outbox_loop(
    mut desks: watch::Receiver<Arc<Desk>>,
    mut transport: Configured,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    let desk = desks.borrow_and_update().clone();
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
        // A reloaded config may name another MTA or credentials.
        if desks.has_changed().unwrap_or(false) {
            let desk = desks.borrow_and_update().clone();
            match Configured::from_desk(&desk) {
                Ok(reloaded) => transport = reloaded,
                Err(e) => {
                    error!(error = %e, "outbox: the reloaded [smtp] settings do not work; keeping the previous ones");
                }
            }
        }
        match deliver_due(&mut store, &transport, || clock.now()).await {
            Ok(d) if d.sent + d.retried + d.failed > 0 => {
                info!(
                    sent = d.sent,
                    retried = d.retried,
                    failed = d.failed,
                    "outbox pass"
                );
                store.release_memory();
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "outbox pass failed; will retry"),
        }
        // New mail is queued by intake at any moment: look again when told
        // so, and every second anyway (retries fall due, `ingest` queues).
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shared.queued.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_backoff_grows_with_jitter_and_is_capped() {
        let secs = |d: Duration| d.as_secs_f64();
        let mut backoff = Backoff::default();
        let first = secs(backoff.next(false));
        assert!((0.5..=1.0).contains(&first), "{first}");
        let second = secs(backoff.next(false));
        assert!((1.0..=2.0).contains(&second), "{second}");
        for _ in 0..30 {
            backoff.next(false);
        }
        let capped = secs(backoff.next(false));
        assert!((150.0..=300.0).contains(&capped), "{capped}");
        // A refused password starts slow.
        backoff.reset();
        let slow = secs(backoff.next(true));
        assert!((30.0..=60.0).contains(&slow), "{slow}");
        // The jitter differs between draws.
        let draws: Vec<u64> = (0..8)
            .map(|_| {
                let mut b = Backoff::default();
                b.next(false).as_micros() as u64
            })
            .collect();
        assert!(draws.iter().any(|&d| d != draws[0]), "{draws:?}");
    }
}
