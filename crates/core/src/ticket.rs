//! The help desk's closed vocabularies: ticket status, priority, type, message
//! kind and inbound disposition. Each parses the English codes and the Spanish
//! aliases of SPEC §1 (accents and case folded) and prints the English code,
//! which is what the store, the CLI and the JSON use.
//!
//! Never does I/O; never knows about SQL or mail.

use std::fmt;

use crate::text::fold;

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The English code stored and printed everywhere.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            /// Parses a code or an alias as a person types it ("Resuelto", "anomalía").
            pub fn parse(input: &str) -> Option<Self> {
                let folded = fold(input.trim());
                $(
                    if folded == $code $(|| folded == fold($alias))* {
                        return Some($name::$variant);
                    }
                )+
                None
            }

            /// The accepted spellings, for error messages.
            pub fn accepted() -> String {
                let all: &[&str] = &[$($code, $($alias,)*)+];
                all.join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

vocabulary! {
    /// Where a ticket is in its life (SPEC §1).
    Status {
        New = "new" | "nuevo",
        Open = "open" | "abierto" | "en-proceso" | "en proceso" | "in-progress",
        Waiting = "waiting" | "en-espera" | "en espera" | "pending",
        Resolved = "resolved" | "resuelto",
        Closed = "closed" | "cerrado",
        Cancelled = "cancelled" | "cancelado" | "canceled",
    }
}

impl Status {
    /// Still needs work from the desk or the customer (not resolved, closed, cancelled).
    pub fn is_active(self) -> bool {
        matches!(self, Status::New | Status::Open | Status::Waiting)
    }
}

vocabulary! {
    /// How urgent a ticket is; customers call it impact.
    Priority {
        Urgent = "urgent" | "urgente" | "critical" | "critico",
        High = "high" | "alta" | "alto",
        Medium = "medium" | "media" | "medio" | "normal",
        Low = "low" | "baja" | "bajo",
    }
}

vocabulary! {
    /// What kind of request a ticket is; drives the SLA policy.
    TicketType {
        Problem = "problem" | "problema",
        Question = "question" | "pregunta",
        Anomaly = "anomaly" | "anomalia",
        Usability = "usability" | "usabilidad",
        Bug = "bug" | "error",
        Request = "request" | "solicitud",
    }
}

vocabulary! {
    /// Who wrote a stored message and whether the customer sees it.
    MessageKind {
        Customer = "customer",
        Agent = "agent",
        Note = "note",
        Auto = "auto",
        System = "system",
    }
}

vocabulary! {
    /// What intake did with one inbound message (exactly one each).
    Disposition {
        NewTicket = "new_ticket",
        FollowUp = "follow_up",
        Duplicate = "duplicate",
        Note = "note",
        Ignored = "ignored",
        Quarantined = "quarantined",
        Rejected = "rejected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spanish_aliases_parse_with_accents_and_case_folded() {
        assert_eq!(TicketType::parse("Anomalía"), Some(TicketType::Anomaly));
        assert_eq!(TicketType::parse("anomalia"), Some(TicketType::Anomaly));
        assert_eq!(Status::parse("EN-ESPERA"), Some(Status::Waiting));
        assert_eq!(Status::parse("resuelto"), Some(Status::Resolved));
        assert_eq!(Priority::parse("urgente"), Some(Priority::Urgent));
        assert_eq!(TicketType::parse("error"), Some(TicketType::Bug));
        assert_eq!(Status::parse("bogus"), None);
    }

    #[test]
    fn codes_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.code()), Some(*s));
        }
        for d in Disposition::ALL {
            assert_eq!(Disposition::parse(d.code()), Some(*d));
        }
    }
}
