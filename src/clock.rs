//! The only place postdesk reads the system time. `--now` shifts it: every
//! command then behaves as if the current time were that instant (and, for a
//! daemon, time flows on from there).

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    offset: Duration,
}

impl Clock {
    pub fn system() -> Clock {
        Clock {
            offset: Duration::zero(),
        }
    }

    /// A clock that reads `start` now.
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        #[allow(
            clippy::disallowed_methods,
            reason = "the clock module is where system time is read"
        )]
        let offset = start - Utc::now();
        Clock { offset }
    }

    pub fn now(&self) -> DateTime<Utc> {
        #[allow(
            clippy::disallowed_methods,
            reason = "the clock module is where system time is read"
        )]
        let now = Utc::now();
        now + self.offset
    }
}
