//! Outbox delivery: takes due `pending` rows in batches, sends them
//! concurrently (one SMTP connection manages only ~22 mails/s on loopback), and
//! records each outcome: `sent`; retried with exponential backoff after a
//! temporary failure; `failed` after a permanent one or too many attempts,
//! with `last_error` kept. A crash between sending and recording can at worst
//! send a mail twice; it can never lose one.

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use tracing::{info, warn};

use crate::store::{Store, StoreError};
use crate::transport::{SendError, Transport};

/// After this many attempts a temporarily failing mail is given up.
pub const MAX_ATTEMPTS: i64 = 10;
/// Mails in flight at once.
pub const CONCURRENCY: usize = 32;
const BATCH: usize = 256;

/// Seconds to wait before attempt number `attempts + 1`.
pub fn backoff_seconds(attempts: i64) -> i64 {
    let exp = attempts.clamp(0, 6) as u32;
    (60 * 2_i64.pow(exp)).min(3600)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

/// Delivers every mail due at `now`; returns the counts.
pub async fn deliver_due(
    store: &mut Store,
    transport: &impl Transport,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<Delivered, StoreError> {
    let mut total = Delivered::default();
    let mut last_id_seen = i64::MIN;
    loop {
        let due = store.due_outbox(now().timestamp(), BATCH)?;
        // Rows retried in this pass come back with a later next_attempt_at; stop when nothing new is due.
        let due: Vec<_> = due
            .into_iter()
            .filter(|r| r.next_attempt_at <= now().timestamp())
            .collect();
        if due.is_empty() || due.iter().all(|r| r.id == last_id_seen) {
            return Ok(total);
        }
        last_id_seen = due.last().map_or(last_id_seen, |r| r.id);
        let results: Vec<_> = stream::iter(due)
            .map(|row| async move {
                let result = transport.send(&row).await;
                (row, result)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let at = now().timestamp();
        let tx = store.begin()?;
        for (row, result) in results {
            match result {
                Ok(()) => {
                    tx.mark_sent(row.id, at)?;
                    total.sent += 1;
                }
                Err(SendError::Permanent(e)) => {
                    warn!(outbox = row.id, ticket = row.ticket, to = ?row.to, error = %e, "delivery failed permanently");
                    tx.mark_failed(row.id, &e)?;
                    total.failed += 1;
                }
                Err(SendError::Temporary(e)) if row.attempts + 1 >= MAX_ATTEMPTS => {
                    warn!(outbox = row.id, ticket = row.ticket, error = %e, "delivery given up after {MAX_ATTEMPTS} attempts");
                    tx.mark_failed(
                        row.id,
                        &format!("{e} (gave up after {MAX_ATTEMPTS} attempts)"),
                    )?;
                    total.failed += 1;
                }
                Err(SendError::Temporary(e)) => {
                    let next = at + backoff_seconds(row.attempts);
                    info!(outbox = row.id, ticket = row.ticket, error = %e, retry_in = next - at, "delivery will be retried");
                    tx.mark_retry(row.id, &e, next)?;
                    total.retried += 1;
                }
            }
        }
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff_seconds(0), 60);
        assert_eq!(backoff_seconds(1), 120);
        assert_eq!(backoff_seconds(3), 480);
        assert_eq!(backoff_seconds(9), 3600);
    }
}
