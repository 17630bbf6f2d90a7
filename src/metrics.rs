//! `/metrics`: what the daemon counts in memory since it started (messages
//! taken in by disposition, poll durations and failures per mailbox) and
//! what the store holds at scrape time (tickets and outbox mail by status,
//! SLA breaches, each mailbox's last successful poll), in the Prometheus /
//! OpenMetrics text format.
//!
//! In-memory counters restart from zero with the daemon, as Prometheus
//! counters do; mail taken in by a separate `postdesk ingest` process shows
//! in the store-backed series only.

use std::time::Duration;

use postdesk_core::health::OutboxBacklog;
use postdesk_core::ticket::{Disposition, Status};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::monitoring::PollRecord;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    mailbox: String,
    disposition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MailboxLabels {
    mailbox: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClockLabels {
    clock: String,
}

type HistogramFamily = Family<MailboxLabels, Histogram, fn() -> Histogram>;

fn poll_histogram() -> Histogram {
    // 1 ms … ~16 s: an idle poll, a drain of a few batches, a slow server.
    Histogram::new(exponential_buckets(0.001, 4.0, 8))
}

/// The daemon's in-memory counters, shared by its tasks.
pub struct Metrics {
    messages: Family<MessageLabels, Counter>,
    poll_seconds: HistogramFamily,
    poll_failures: Family<MailboxLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            messages: Family::default(),
            poll_seconds: Family::new_with_constructor(poll_histogram as fn() -> Histogram),
            poll_failures: Family::default(),
        }
    }
}

/// What the store says at scrape time.
#[derive(Debug, Default)]
pub struct StoreSnapshot {
    pub tickets_by_status: Vec<(String, i64)>,
    pub outbox_by_status: Vec<(String, i64)>,
    pub sla_breaches_by_clock: Vec<(String, i64)>,
    pub outbox_backlog: OutboxBacklog,
    /// Configured mailboxes with what the store recorded of their polls.
    pub polls: Vec<(String, PollRecord)>,
    pub now: i64,
}

impl Metrics {
    /// One message of `mailbox` committed with `disposition`.
    pub fn taken_in(&self, mailbox: &str, disposition: Disposition) {
        self.messages
            .get_or_create(&MessageLabels {
                mailbox: mailbox.to_string(),
                disposition: disposition.code().to_string(),
            })
            .inc();
    }

    /// A pass over `mailbox` (listing, fetching, intake, acknowledging) ended.
    pub fn polled(&self, mailbox: &str, took: Duration, ok: bool) {
        let labels = MailboxLabels {
            mailbox: mailbox.to_string(),
        };
        if ok {
            self.poll_seconds
                .get_or_create(&labels)
                .observe(took.as_secs_f64());
        } else {
            self.poll_failures.get_or_create(&labels).inc();
        }
    }

    /// The `/metrics` page.
    pub fn render(&self, snapshot: &StoreSnapshot) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::with_prefix("postdesk");
        registry.register(
            "messages",
            "Inbound messages taken in by this daemon since it started, by mailbox and disposition",
            self.messages.clone(),
        );
        registry.register(
            "poll_duration_seconds",
            "Duration of a successful pass over a mailbox (list, fetch, take in, acknowledge)",
            self.poll_seconds.clone(),
        );
        registry.register(
            "poll_failures",
            "Failed passes over a mailbox since the daemon started",
            self.poll_failures.clone(),
        );

        let tickets = Family::<StatusLabels, Gauge>::default();
        // Every status is present, zero or not, so a rate or an alert never
        // sees a series vanish.
        for status in Status::ALL {
            let _ = tickets.get_or_create(&status_labels(status.code()));
        }
        for (status, n) in &snapshot.tickets_by_status {
            tickets.get_or_create(&status_labels(status)).set(*n);
        }
        registry.register("tickets", "Tickets by status", tickets);

        let outbox = Family::<StatusLabels, Gauge>::default();
        for status in ["pending", "sent", "failed"] {
            let _ = outbox.get_or_create(&status_labels(status));
        }
        for (status, n) in &snapshot.outbox_by_status {
            outbox.get_or_create(&status_labels(status)).set(*n);
        }
        registry.register("outbox_messages", "Outbox mail by status", outbox);

        let age = Gauge::<i64>::default();
        if let Some(at) = snapshot.outbox_backlog.oldest_pending_at {
            age.set((snapshot.now - at).max(0));
        }
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest mail not yet handed to the MTA (0 when none waits)",
            age,
        );

        let breaches = Family::<ClockLabels, Counter>::default();
        for clock in ["first_response", "resolution"] {
            let _ = breaches.get_or_create(&ClockLabels {
                clock: clock.to_string(),
            });
        }
        for (clock, n) in &snapshot.sla_breaches_by_clock {
            let n = u64::try_from(*n).unwrap_or(0);
            breaches
                .get_or_create(&ClockLabels {
                    clock: clock.clone(),
                })
                .inc_by(n);
        }
        registry.register(
            "sla_breaches",
            "SLA breaches recorded, by clock (first response, resolution)",
            breaches,
        );

        let last_poll = Family::<MailboxLabels, Gauge>::default();
        for (mailbox, poll) in &snapshot.polls {
            let gauge = last_poll.get_or_create(&MailboxLabels {
                mailbox: mailbox.clone(),
            });
            if let Some(at) = poll.last_ok_at {
                gauge.set(at);
            }
        }
        registry.register(
            "mailbox_last_poll_timestamp_seconds",
            "When each mailbox last polled successfully (unix time; 0: never)",
            last_poll,
        );

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(text)
    }
}

fn status_labels(status: &str) -> StatusLabels {
    StatusLabels {
        status: status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_holds_every_series_with_store_and_memory_values() {
        let metrics = Metrics::default();
        metrics.taken_in("soporte", Disposition::NewTicket);
        metrics.taken_in("soporte", Disposition::NewTicket);
        metrics.polled("soporte", Duration::from_millis(30), true);
        metrics.polled("soporte", Duration::from_millis(30), false);
        let page = metrics
            .render(&StoreSnapshot {
                tickets_by_status: vec![("open".into(), 7)],
                outbox_by_status: vec![("pending".into(), 2)],
                sla_breaches_by_clock: vec![("resolution".into(), 3)],
                outbox_backlog: OutboxBacklog {
                    pending: 2,
                    oldest_pending_at: Some(940),
                },
                polls: vec![(
                    "soporte".into(),
                    PollRecord {
                        last_ok_at: Some(990),
                        last_error: None,
                    },
                )],
                now: 1000,
            })
            .unwrap();
        for line in [
            "postdesk_messages_total{mailbox=\"soporte\",disposition=\"new_ticket\"} 2",
            "postdesk_tickets{status=\"open\"} 7",
            "postdesk_tickets{status=\"closed\"} 0",
            "postdesk_outbox_messages{status=\"pending\"} 2",
            "postdesk_outbox_oldest_pending_age_seconds 60",
            "postdesk_sla_breaches_total{clock=\"resolution\"} 3",
            "postdesk_sla_breaches_total{clock=\"first_response\"} 0",
            "postdesk_mailbox_last_poll_timestamp_seconds{mailbox=\"soporte\"} 990",
            "postdesk_poll_duration_seconds_count{mailbox=\"soporte\"} 1",
            "postdesk_poll_failures_total{mailbox=\"soporte\"} 1",
        ] {
            assert!(page.contains(line), "{line} missing from\n{page}");
        }
        assert!(page.ends_with("# EOF\n"), "{page}");
    }
}
