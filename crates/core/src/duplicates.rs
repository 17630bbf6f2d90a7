//! The duplicate-cancel rule (SPEC §5): a new mail is a duplicate of an
//! active ticket from the same sender (or customer) created within the
//! window when the normalised subjects or the normalised bodies are equal.
//! The oldest such ticket wins.
//!
//! Pure: the candidates come from the view, already limited to the window.

use crate::body::{cut_at_marker, cut_quoted_history};
use crate::subject::{TagMatcher, normalize_subject};

/// What a ticket is compared on, stored with it at creation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub subject: String,
    pub body: String,
}

impl Fingerprint {
    pub fn of(subject: &str, body: &str, tags: &TagMatcher) -> Fingerprint {
        Fingerprint::of_reply(subject, &cut_quoted_history(&cut_at_marker(body)), tags)
    }

    /// [`Fingerprint::of`] a body whose marker and quoted history are already cut.
    pub fn of_reply(subject: &str, reply: &str, tags: &TagMatcher) -> Fingerprint {
        Fingerprint {
            subject: normalize_subject(subject, tags),
            body: collapse(reply),
        }
    }

    /// Equal subjects or equal bodies; an empty side never matches.
    pub fn matches(&self, other: &Fingerprint) -> bool {
        (!self.subject.is_empty() && self.subject == other.subject)
            || (!self.body.is_empty() && self.body == other.body)
    }
}

/// Body text after the reply marker and quoted history are cut, white space
/// collapsed, case folded.
pub fn normalize_body(body: &str) -> String {
    collapse(&cut_quoted_history(&cut_at_marker(body)))
}

/// White space collapsed to single spaces, case folded.
fn collapse(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// An active ticket the new mail may duplicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    pub fingerprint: Fingerprint,
}

/// The oldest candidate the mail duplicates. `candidates` are oldest first.
pub fn find_original(mail: &Fingerprint, candidates: &[Candidate]) -> Option<i64> {
    candidates
        .iter()
        .find(|c| mail.matches(&c.fingerprint))
        .map(|c| c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_or_body_match_and_empty_never_does() {
        let t = TagMatcher::new("Ticket");
        let a = Fingerprint::of("No puedo facturar", "Hola,\nno puedo.", &t);
        assert!(a.matches(&Fingerprint::of("RE: no puedo  FACTURAR", "otra cosa", &t)));
        assert!(a.matches(&Fingerprint::of("Otro asunto", "hola, NO puedo.", &t)));
        assert!(!a.matches(&Fingerprint::of("Otro asunto", "otra cosa", &t)));
        let empty = Fingerprint::of("", "", &t);
        assert!(!empty.matches(&Fingerprint::of("", "", &t)));
        let candidates = vec![
            Candidate {
                id: 3,
                fingerprint: Fingerprint::of("x", "y", &t),
            },
            Candidate {
                id: 5,
                fingerprint: Fingerprint::of("No puedo facturar", "", &t),
            },
            Candidate {
                id: 9,
                fingerprint: Fingerprint::of("no puedo facturar", "", &t),
            },
        ];
        assert_eq!(
            find_original(&a, &candidates),
            Some(5),
            "the oldest match wins"
        );
    }
}
