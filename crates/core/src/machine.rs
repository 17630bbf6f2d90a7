//! Machine-mail recognition (SPEC §4.4): auto-replies, bulk and list mail,
//! bounces. Machine mail is never acknowledged and never changes a ticket, so
//! two help desks cannot ping-pong.
//!
//! Pure; reads only the signals parsed from the headers.

use crate::mail::InboundMail;
use crate::text::{address_matches, fold};

/// Why a mail counts as written by a machine; `None` for human mail.
pub fn machine_reason(mail: &InboundMail, human_senders: &[String]) -> Option<String> {
    if human_senders.iter().any(|p| address_matches(p, &mail.from)) {
        return None;
    }
    let s = &mail.signals;
    if let Some(value) = &s.auto_submitted {
        let v = strip_comments(value);
        if !v.is_empty() && v != "no" {
            return Some(format!("Auto-Submitted: {v}"));
        }
    }
    if let Some(p) = &s.precedence {
        let p = strip_comments(p);
        if matches!(p.as_str(), "bulk" | "junk" | "list" | "auto_reply") {
            return Some(format!("Precedence: {p}"));
        }
    }
    if s.x_autoreply {
        return Some("X-Autoreply header".into());
    }
    if s.x_autorespond {
        return Some("X-Autorespond header".into());
    }
    if s.list_id {
        return Some("List-Id header (mailing list)".into());
    }
    if s.report {
        return Some("multipart/report (delivery or read report)".into());
    }
    if s.return_path_empty {
        return Some("empty Return-Path (bounce or auto-reply)".into());
    }
    let local = fold(mail.from.split('@').next().unwrap_or(""));
    if local == "mailer-daemon" || local == "postmaster" {
        return Some(format!("sender {}", mail.from));
    }
    None
}

/// True when a human mail asks not to be auto-answered
/// (`X-Auto-Response-Suppress: All` or `AutoReply`).
pub fn suppresses_auto_reply(mail: &InboundMail) -> bool {
    mail.signals
        .auto_response_suppress
        .as_deref()
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .any(|t| t == "all" || t == "autoreply")
        })
}

/// Header value with `(comments)` removed, trimmed and case folded.
fn strip_comments(value: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::MachineSignals;

    fn mail(from: &str, signals: MachineSignals) -> InboundMail {
        InboundMail {
            from: from.into(),
            signals,
            ..Default::default()
        }
    }

    #[test]
    fn every_signal_is_recognised() {
        let cases = [
            MachineSignals {
                auto_submitted: Some("auto-replied".into()),
                ..Default::default()
            },
            MachineSignals {
                auto_submitted: Some(" Auto-Generated (by cron) ".into()),
                ..Default::default()
            },
            MachineSignals {
                precedence: Some("bulk".into()),
                ..Default::default()
            },
            MachineSignals {
                precedence: Some("junk".into()),
                ..Default::default()
            },
            MachineSignals {
                precedence: Some("list".into()),
                ..Default::default()
            },
            MachineSignals {
                precedence: Some("auto_reply".into()),
                ..Default::default()
            },
            MachineSignals {
                x_autoreply: true,
                ..Default::default()
            },
            MachineSignals {
                x_autorespond: true,
                ..Default::default()
            },
            MachineSignals {
                list_id: true,
                ..Default::default()
            },
            MachineSignals {
                return_path_empty: true,
                ..Default::default()
            },
            MachineSignals {
                report: true,
                ..Default::default()
            },
        ];
        for s in cases {
            assert!(
                machine_reason(&mail("a@b.c", s.clone()), &[]).is_some(),
                "{s:?}"
            );
        }
        assert!(
            machine_reason(
                &mail("MAILER-DAEMON@mx.b.c", MachineSignals::default()),
                &[]
            )
            .is_some()
        );
        assert!(machine_reason(&mail("postmaster@b.c", MachineSignals::default()), &[]).is_some());
    }

    #[test]
    fn human_mail_and_human_senders() {
        let no = MachineSignals {
            auto_submitted: Some("no (human)".into()),
            precedence: Some("normal".into()),
            ..Default::default()
        };
        assert!(machine_reason(&mail("a@b.c", no), &[]).is_none());
        let stamped = MachineSignals {
            auto_submitted: Some("auto-generated".into()),
            ..Default::default()
        };
        assert!(
            machine_reason(
                &mail("x@servicenow.com", stamped),
                &["*@servicenow.com".into()]
            )
            .is_none()
        );
    }

    #[test]
    fn auto_response_suppress() {
        let m = |v: &str| InboundMail {
            signals: MachineSignals {
                auto_response_suppress: Some(v.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(suppresses_auto_reply(&m("All")));
        assert!(suppresses_auto_reply(&m("DR, AutoReply")));
        assert!(!suppresses_auto_reply(&m("OOF")));
    }
}
