//! What `/healthz` and `/metrics` read: the last poll of each mailbox, the
//! outbox backlog, and counts by status. Every query here runs on an index
//! (or on a table with one row per mailbox), so a scrape stays cheap on a
//! database of a million tickets.

use std::collections::HashMap;

use postdesk_core::health::OutboxBacklog;

use super::{Result, Store};

/// The last successful poll (unix seconds) and the last error of a mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollRecord {
    pub last_ok_at: Option<i64>,
    pub last_error: Option<String>,
}

impl Store {
    /// Every mailbox that ever polled, by name.
    pub fn poll_records(&self) -> Result<HashMap<String, PollRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT mailbox, last_poll_at, last_error FROM mailbox_state")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                PollRecord {
                    last_ok_at: r.get(1)?,
                    last_error: r.get(2)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Mail queued and not yet handed over (retries included).
    pub fn outbox_backlog(&self) -> Result<OutboxBacklog> {
        let (pending, oldest_pending_at) = self
            .conn
            .prepare_cached(
                "SELECT count(*), min(created_at) FROM outbox WHERE status = 'pending'",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(OutboxBacklog {
            pending,
            oldest_pending_at,
        })
    }

    /// How many tickets are in each status (statuses with none are absent).
    pub fn tickets_by_status(&self) -> Result<Vec<(String, i64)>> {
        self.count_by("SELECT status, count(*) FROM tickets GROUP BY status")
    }

    /// How many outbox mails are in each status.
    pub fn outbox_by_status(&self) -> Result<Vec<(String, i64)>> {
        self.count_by("SELECT status, count(*) FROM outbox GROUP BY status")
    }

    /// SLA breaches ever recorded, by clock (`first_response`, `resolution`).
    pub fn sla_breaches_by_clock(&self) -> Result<Vec<(String, i64)>> {
        // The breach event's detail reads "<clock> due <instant>".
        self.count_by(
            "SELECT substr(detail, 1, instr(detail, ' ') - 1), count(*) FROM events
             WHERE kind = 'sla_breach' GROUP BY 1",
        )
    }

    fn count_by(&self, sql: &str) -> Result<Vec<(String, i64)>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_desk_has_no_backlog_and_no_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        assert_eq!(store.outbox_backlog().unwrap(), OutboxBacklog::default());
        assert!(store.tickets_by_status().unwrap().is_empty());
        assert!(store.sla_breaches_by_clock().unwrap().is_empty());
        let tx = store.begin().unwrap();
        tx.record_poll("soporte", 100, None).unwrap();
        tx.record_poll("soporte", 200, Some("refused")).unwrap();
        tx.commit().unwrap();
        assert_eq!(
            store.poll_records().unwrap()["soporte"],
            PollRecord {
                last_ok_at: Some(100),
                last_error: Some("refused".into())
            }
        );
    }

    #[test]
    fn breach_counts_use_the_kind_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let plan: String = store
            .conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM events WHERE kind = 'sla_breach'",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("events_kind"), "{plan}");
    }
}
