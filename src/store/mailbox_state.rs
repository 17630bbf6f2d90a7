//! Per-mailbox source state (`mailbox_state`): where an IMAP source resumes
//! (folder, UIDVALIDITY, highest UID taken in and acknowledged, rescan
//! bound), next to the last successful poll and last error that
//! `Tx::record_poll` keeps; and the question a rescan asks: "was this
//! message taken in here before?".
//!
//! Never decides what to fetch: the IMAP source does, from what this returns.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store, StoreError, Tx};

/// Where an IMAP mailbox resumes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImapState {
    /// The folder the UIDs below belong to (None: never read).
    pub folder: Option<String>,
    pub uidvalidity: Option<u32>,
    /// Every message of the folder up to this UID is taken in and acknowledged.
    pub last_uid: u32,
    /// After a UIDVALIDITY (or folder) change: messages with a lower UID may
    /// have been taken in before under their old UID; check by Message-ID.
    pub rescan_below: Option<u32>,
}

fn uid(value: Option<i64>, what: &str) -> Result<Option<u32>> {
    value
        .map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} = {v}"))))
        .transpose()
}

impl Store {
    /// The stored resume point of `mailbox` (default: never read).
    pub fn imap_state(&self, mailbox: &str) -> Result<ImapState> {
        let row = self
            .conn
            .prepare_cached("SELECT folder, uidvalidity, last_uid, rescan_below FROM mailbox_state WHERE mailbox = ?1")?
            .query_row([mailbox], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })
            .optional()?;
        let Some((folder, uidvalidity, last_uid, rescan_below)) = row else {
            return Ok(ImapState::default());
        };
        Ok(ImapState {
            folder,
            uidvalidity: uid(uidvalidity, "uidvalidity")?,
            last_uid: uid(last_uid, "last_uid")?.unwrap_or(0),
            rescan_below: uid(rescan_below, "rescan_below")?,
        })
    }

    /// True when this message was already taken in from `mailbox`: the same
    /// Message-ID, or, for mail without one, the same bytes. Asked only for
    /// mail a rescan reads again, so the inbound log gets no second row.
    pub fn taken_in_before(
        &self,
        mailbox: &str,
        message_id: Option<&str>,
        raw: &[u8],
    ) -> Result<bool> {
        Ok(match message_id {
            Some(id) => self
                .conn
                .prepare_cached("SELECT 1 FROM inbound WHERE mailbox = ?1 AND message_id = ?2")?
                .exists(params![mailbox, id])?,
            None => self
                .conn
                .prepare_cached("SELECT 1 FROM inbound i JOIN inbound_raw r ON r.inbound = i.id WHERE i.mailbox = ?1 AND i.message_id IS NULL AND i.size = ?2 AND r.raw = ?3")?
                .exists(params![mailbox, raw.len() as i64, raw])?,
        })
    }
}

impl Tx<'_> {
    /// Records where `mailbox` resumes (its poll time and error are kept).
    pub fn set_imap_state(&self, mailbox: &str, state: &ImapState) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO mailbox_state (mailbox, folder, uidvalidity, last_uid, rescan_below) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(mailbox) DO UPDATE SET folder = excluded.folder, uidvalidity = excluded.uidvalidity,
                 last_uid = excluded.last_uid, rescan_below = excluded.rescan_below",
            )?
            .execute(params![
                mailbox,
                state.folder,
                state.uidvalidity,
                state.last_uid,
                state.rescan_below
            ])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imap_state_round_trips_and_keeps_the_poll() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        assert_eq!(store.imap_state("m").unwrap(), ImapState::default());
        let state = ImapState {
            folder: Some("INBOX".into()),
            uidvalidity: Some(u32::MAX),
            last_uid: 42,
            rescan_below: Some(50),
        };
        let tx = store.begin().unwrap();
        tx.record_poll("m", 1000, None).unwrap();
        tx.set_imap_state("m", &state).unwrap();
        tx.commit().unwrap();
        assert_eq!(store.imap_state("m").unwrap(), state);
        let polled: Option<i64> = store
            .conn
            .query_row(
                "SELECT last_poll_at FROM mailbox_state WHERE mailbox = 'm'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(polled, Some(1000));
    }

    #[test]
    fn mail_taken_in_before_is_found_by_message_id_or_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let tx = store.begin().unwrap();
        for (r, id, raw) in [
            ("1:1", Some("a@b"), &b"one"[..]),
            ("1:2", None, &b"two"[..]),
        ] {
            tx.insert_inbound(
                &super::super::InboundRow {
                    mailbox: "m".into(),
                    source_ref: r.into(),
                    message_id: id.map(str::to_string),
                    size: raw.len() as i64,
                    disposition: "new_ticket".into(),
                    ..Default::default()
                },
                raw,
            )
            .unwrap();
        }
        tx.commit().unwrap();
        assert!(store.taken_in_before("m", Some("a@b"), b"x").unwrap());
        assert!(!store.taken_in_before("other", Some("a@b"), b"x").unwrap());
        assert!(store.taken_in_before("m", None, b"two").unwrap());
        assert!(!store.taken_in_before("m", None, b"tw0").unwrap());
        assert!(!store.taken_in_before("m", Some("c@d"), b"two").unwrap());
    }
}
