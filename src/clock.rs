//! The only place postdesk reads the system time. `--now` replaces it: a
//! one-shot command runs at exactly that instant; the daemon starts there and
//! time flows on from it.

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    offset: Duration,
    /// One-shot commands run at exactly `--now`.
    fixed: Option<DateTime<Utc>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock {
            offset: Duration::zero(),
            fixed: None,
        }
    }

    /// A clock that reads `start` now.
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        #[allow(
            clippy::disallowed_methods,
            reason = "the clock module is where system time is read"
        )]
        let offset = start - Utc::now();
        Clock {
            offset,
            fixed: None,
        }
    }

    /// A clock that always reads `at` (a one-shot command under `--now`).
    pub fn frozen_at(at: DateTime<Utc>) -> Clock {
        Clock {
            offset: Duration::zero(),
            fixed: Some(at),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        if let Some(at) = self.fixed {
            return at;
        }
        #[allow(
            clippy::disallowed_methods,
            reason = "the clock module is where system time is read"
        )]
        let now = Utc::now();
        now + self.offset
    }
}
