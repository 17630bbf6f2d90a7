//! Is the desk healthy? The verdict `/healthz` gives, from what the store
//! knows: when each mailbox last polled successfully, and how old the
//! oldest unsent mail of the outbox is.
//!
//! A mailbox is healthy when it polled successfully within three of its
//! poll intervals (one missed poll is normal: a long drain, a reconnect);
//! a daemon that has just started gets the same grace from its start. The
//! outbox is healthy while no mail has waited longer than
//! `[http] outbox_max_age` (an MTA that refuses or is down shows here).
//! Mail that failed for good is not "backing up" and does not count.

use serde::Serialize;

/// Polls missed before a mailbox counts as down.
pub const MISSED_POLLS: i64 = 3;

/// What the store knows of one configured mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxPoll {
    pub name: String,
    pub interval_secs: i64,
    /// Last successful poll (unix seconds), if any.
    pub last_ok_at: Option<i64>,
    /// The error of the last failed attempt, cleared by a successful poll.
    pub last_error: Option<String>,
    /// When the daemon started serving it (its start, or the reload that
    /// added it): a poll before that does not count, the grace runs from it.
    pub watched_since: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxHealth {
    pub name: String,
    pub healthy: bool,
    pub last_ok_at: Option<i64>,
    /// Seconds since the last successful poll (or since the daemon started,
    /// if that is later).
    pub silent_for_secs: i64,
    pub max_silence_secs: i64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxHealth {
    pub healthy: bool,
    /// Mail queued and not yet handed to the MTA (retries included).
    pub pending: i64,
    pub oldest_pending_age_secs: Option<i64>,
    pub max_age_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub healthy: bool,
    /// One sentence per problem, for a human reading the probe's output.
    pub reasons: Vec<String>,
    pub mailboxes: Vec<MailboxHealth>,
    pub outbox: OutboxHealth,
}

/// The outbox as the store sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxBacklog {
    pub pending: i64,
    /// When the oldest pending mail was queued (unix seconds).
    pub oldest_pending_at: Option<i64>,
}

/// The verdict at `now`.
pub fn assess(
    now: i64,
    mailboxes: &[MailboxPoll],
    outbox: OutboxBacklog,
    outbox_max_age_secs: i64,
) -> Health {
    let mut reasons = Vec::new();
    let mailboxes: Vec<MailboxHealth> = mailboxes
        .iter()
        .map(|m| {
            let since = m.last_ok_at.unwrap_or(m.watched_since).max(m.watched_since);
            let silent_for_secs = (now - since).max(0);
            let max_silence_secs = m.interval_secs.max(1) * MISSED_POLLS;
            let healthy = silent_for_secs <= max_silence_secs;
            if !healthy {
                let mut reason = match m.last_ok_at {
                    Some(_) => format!(
                        "mailbox `{}` has not polled successfully for {silent_for_secs} s (limit {max_silence_secs} s)",
                        m.name
                    ),
                    None => format!(
                        "mailbox `{}` has never polled successfully ({silent_for_secs} s since start, limit {max_silence_secs} s)",
                        m.name
                    ),
                };
                if let Some(e) = &m.last_error {
                    reason.push_str(": ");
                    reason.push_str(e);
                }
                reasons.push(reason);
            }
            MailboxHealth {
                name: m.name.clone(),
                healthy,
                last_ok_at: m.last_ok_at,
                silent_for_secs,
                max_silence_secs,
                last_error: m.last_error.clone(),
            }
        })
        .collect();
    let oldest_pending_age_secs = outbox.oldest_pending_at.map(|at| (now - at).max(0));
    let outbox_healthy = oldest_pending_age_secs.is_none_or(|age| age <= outbox_max_age_secs);
    if let (false, Some(age)) = (outbox_healthy, oldest_pending_age_secs) {
        reasons.push(format!(
            "the outbox holds {} unsent mail(s), the oldest queued {age} s ago (limit {outbox_max_age_secs} s)",
            outbox.pending
        ));
    }
    Health {
        healthy: reasons.is_empty(),
        reasons,
        mailboxes,
        outbox: OutboxHealth {
            healthy: outbox_healthy,
            pending: outbox.pending,
            oldest_pending_age_secs,
            max_age_secs: outbox_max_age_secs,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(last_ok_at: Option<i64>, last_error: Option<&str>) -> MailboxPoll {
        MailboxPoll {
            name: "soporte".into(),
            interval_secs: 60,
            last_ok_at,
            last_error: last_error.map(str::to_string),
            watched_since: START,
        }
    }

    const START: i64 = 1_000_000;

    #[test]
    fn a_mailbox_is_down_after_three_missed_polls() {
        let quiet = OutboxBacklog::default();
        let h = assess(START + 500, &[poll(Some(START + 320), None)], quiet, 900);
        assert!(h.healthy, "{h:?}");
        assert_eq!(h.mailboxes[0].silent_for_secs, 180);
        let h = assess(
            START + 500,
            &[poll(Some(START + 319), Some("connection refused"))],
            quiet,
            900,
        );
        assert!(!h.healthy);
        assert_eq!(h.mailboxes[0].max_silence_secs, 180);
        assert!(
            h.reasons[0].contains("`soporte`") && h.reasons[0].ends_with(": connection refused"),
            "{:?}",
            h.reasons
        );
    }

    #[test]
    fn a_fresh_start_gets_the_same_grace_as_a_poll() {
        let quiet = OutboxBacklog::default();
        // Last poll long before this start: counted from the start.
        assert!(assess(START + 180, &[poll(Some(10), None)], quiet, 900).healthy);
        let h = assess(START + 181, &[poll(None, None)], quiet, 900);
        assert!(!h.healthy);
        assert!(h.reasons[0].contains("never polled"), "{:?}", h.reasons);
    }

    #[test]
    fn an_old_unsent_mail_makes_the_outbox_unhealthy() {
        let ok = [poll(Some(START), None)];
        let backlog = |oldest| OutboxBacklog {
            pending: 4,
            oldest_pending_at: Some(oldest),
        };
        let h = assess(START + 60, &ok, backlog(START + 60 - 900), 900);
        assert!(h.healthy);
        assert_eq!(h.outbox.oldest_pending_age_secs, Some(900));
        let h = assess(START + 60, &ok, backlog(START + 60 - 901), 900);
        assert!(!h.healthy && !h.outbox.healthy);
        assert!(h.reasons[0].contains("4 unsent"), "{:?}", h.reasons);
        // Every problem is named.
        let h = assess(START + 1000, &ok, backlog(START - 901), 900);
        assert_eq!(h.reasons.len(), 2, "{:?}", h.reasons);
    }
}
