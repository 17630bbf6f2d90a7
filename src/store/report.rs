//! Reads for `report` and `export`: tickets with their status history,
//! participants and customer-message counts, in four queries however many
//! tickets there are (no query per ticket).

use std::collections::HashMap;

use super::{Result, Store, TICKET_COLUMNS, TicketRow, ticket_from_row};

/// A ticket as a report or export needs it.
#[derive(Debug, Clone, Default)]
pub struct ReportTicket {
    pub ticket: TicketRow,
    /// Every status the ticket entered, oldest first: (instant, status code),
    /// from the event log (`created`, `status` and `reopened` events).
    pub history: Vec<(i64, String)>,
    /// Messages the customer side sent (the first one opened the ticket).
    pub customer_messages: i64,
}

impl Store {
    /// Tickets created before `created_before` (all when `None`), by id.
    pub fn report_tickets(&self, created_before: Option<i64>) -> Result<Vec<ReportTicket>> {
        let end = created_before.unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE created_at < ?1 ORDER BY id"
        ))?;
        let tickets: Vec<TicketRow> = stmt
            .query_map([end], ticket_from_row)?
            .collect::<rusqlite::Result<_>>()?;

        let mut history: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.ticket, e.at, e.to_value FROM events e JOIN tickets t ON t.id = e.ticket
             WHERE t.created_at < ?1 AND e.kind IN ('created', 'status', 'reopened') AND e.to_value IS NOT NULL
             ORDER BY e.ticket, e.id",
        )?;
        let rows = stmt.query_map([end], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (ticket, at, status) = row?;
            history.entry(ticket).or_default().push((at, status));
        }

        let mut participants: HashMap<i64, Vec<String>> = HashMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.ticket, p.address FROM participants p JOIN tickets t ON t.id = p.ticket
             WHERE t.created_at < ?1 ORDER BY p.ticket, p.position",
        )?;
        let rows = stmt.query_map([end], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (ticket, address) = row?;
            participants.entry(ticket).or_default().push(address);
        }

        let mut stmt = self.conn.prepare_cached(
            "SELECT m.ticket, COUNT(*) FROM messages m JOIN tickets t ON t.id = m.ticket
             WHERE t.created_at < ?1 AND m.kind = 'customer' GROUP BY m.ticket",
        )?;
        let counts: HashMap<i64, i64> = stmt
            .query_map([end], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;

        Ok(tickets
            .into_iter()
            .map(|mut ticket| {
                ticket.participants = participants.remove(&ticket.id).unwrap_or_default();
                ReportTicket {
                    history: history.remove(&ticket.id).unwrap_or_default(),
                    customer_messages: counts.get(&ticket.id).copied().unwrap_or(0),
                    ticket,
                }
            })
            .collect())
    }
}
