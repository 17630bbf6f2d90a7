//! One inbound message as intake sees it: the parsed fields postdesk decides
//! on, the machine-mail signals of SPEC §4.4, the delivery-status details of a
//! bounce, and the attachments. Built from raw RFC 5322 bytes with
//! mail-parser; anything it cannot make a mail of is a [`Defect`], never a
//! panic.
//!
//! Pure: takes bytes, returns values. Never touches the store or the clock.

use chrono::{DateTime, TimeZone, Utc};
use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders};

use crate::text::normalize_address;

/// Why a message could not be taken in; intake quarantines it with this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    Empty,
    Unparseable,
    NoHeaders,
    NoSender,
}

impl std::fmt::Display for Defect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Defect::Empty => "empty message",
            Defect::Unparseable => "not an RFC 5322 message: no header could be parsed",
            Defect::NoHeaders => "no mail headers (no From, To, Subject, Date or Message-ID)",
            Defect::NoSender => "no sender: the From header is missing or holds no address",
        })
    }
}

/// A file attached to an inbound mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The name as the sender gave it (sanitised only when stored).
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// Header evidence that a mail was written by a machine (SPEC §4.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineSignals {
    pub auto_submitted: Option<String>,
    pub precedence: Option<String>,
    pub x_autoreply: bool,
    pub x_autorespond: bool,
    pub list_id: bool,
    pub return_path_empty: bool,
    pub report: bool,
    pub x_loop: Vec<String>,
    pub auto_response_suppress: Option<String>,
}

/// What a delivery-status report says about the mail that bounced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// `5.1.1`-style status of the first failed recipient.
    pub status: Option<String>,
    pub failed_recipient: Option<String>,
    /// The Message-ID of the mail that bounced (without angle brackets).
    pub original_message_id: Option<String>,
}

impl DeliveryReport {
    /// A 5.x.x status: the address will not work, retrying is pointless.
    pub fn is_permanent(&self) -> bool {
        self.status.as_deref().is_some_and(|s| s.starts_with('5'))
    }
}

/// The parsed inbound mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboundMail {
    /// Without angle brackets.
    pub message_id: Option<String>,
    pub from: String,
    pub from_name: Option<String>,
    pub reply_to: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub date: Option<DateTime<Utc>>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub body: String,
    pub attachments: Vec<Attachment>,
    pub signals: MachineSignals,
    pub report: Option<DeliveryReport>,
    pub size: usize,
}

impl InboundMail {
    /// Parses raw bytes; a [`Defect`] when there is no mail to speak of.
    pub fn parse(raw: &[u8]) -> Result<InboundMail, Defect> {
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(Defect::Empty);
        }
        let message = MessageParser::default()
            .parse(raw)
            .ok_or(Defect::Unparseable)?;
        let has_mail_header = message.from().is_some()
            || message.to().is_some()
            || message.subject().is_some()
            || message.date().is_some()
            || message.message_id().is_some();
        if !has_mail_header {
            return Err(Defect::NoHeaders);
        }
        let (from, from_name) = message
            .from()
            .and_then(first_address)
            .or_else(|| message.sender().and_then(first_address))
            .ok_or(Defect::NoSender)?;

        let header_text = |name: &str| -> Option<String> {
            message
                .header_raw(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let return_path = message.header_raw("Return-Path").map(str::trim);
        let report = message.root_part().is_content_type("multipart", "report");
        let signals = MachineSignals {
            auto_submitted: header_text("Auto-Submitted"),
            precedence: header_text("Precedence"),
            x_autoreply: message.header_raw("X-Autoreply").is_some(),
            x_autorespond: message.header_raw("X-Autorespond").is_some(),
            list_id: message.header_raw("List-Id").is_some(),
            return_path_empty: return_path
                .is_some_and(|v| v.trim_matches(|c| c == '<' || c == '>').trim().is_empty()),
            report,
            x_loop: message
                .header_values("X-Loop")
                .filter_map(|v| v.as_text())
                .map(normalize_address)
                .collect(),
            auto_response_suppress: header_text("X-Auto-Response-Suppress"),
        };

        let mut body = String::new();
        for i in 0..message.text_body_count() {
            if let Some(text) = message.body_text(i) {
                if !body.is_empty() {
                    body.push_str("\n\n");
                }
                body.push_str(&text);
            }
        }

        let mut attachments = Vec::new();
        let mut delivery = None;
        for (i, part) in message.attachments().enumerate() {
            let content_type = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into())
                .to_ascii_lowercase();
            if report {
                read_report_part(&content_type, part.contents(), &mut delivery);
            }
            let filename = part
                .attachment_name()
                .map(str::to_string)
                .unwrap_or_else(|| {
                    if part.is_message() {
                        format!("message-{}.eml", i + 1)
                    } else {
                        format!("attachment-{}", i + 1)
                    }
                });
            attachments.push(Attachment {
                filename,
                content_type,
                data: part.contents().to_vec(),
            });
        }

        // Bounces that are plain text (Exim, Gmail, qmail) carry the
        // original headers inline instead of a delivery-status part.
        let looks_like_bounce = report
            || return_path
                .is_some_and(|v| v.trim_matches(|c| c == '<' || c == '>').trim().is_empty())
            || {
                let local = from.split('@').next().unwrap_or("").to_ascii_lowercase();
                local == "mailer-daemon" || local == "postmaster"
            };
        if looks_like_bounce
            && delivery
                .as_ref()
                .is_none_or(|d| d.original_message_id.is_none())
        {
            let own_id = message.message_id().unwrap_or("");
            let text = String::from_utf8_lossy(raw);
            let found = text_bounce(&text, own_id);
            let d = delivery.get_or_insert_with(DeliveryReport::default);
            d.original_message_id = d.original_message_id.take().or(found.original_message_id);
            d.status = d.status.take().or(found.status);
            d.failed_recipient = d.failed_recipient.take().or(found.failed_recipient);
        }

        Ok(InboundMail {
            message_id: message
                .message_id()
                .map(|id| id.trim().to_string())
                .filter(|id| !id.is_empty()),
            from,
            from_name,
            reply_to: message.reply_to().and_then(first_address).map(|(a, _)| a),
            to: all_addresses(message.to()),
            cc: all_addresses(message.cc()),
            subject: decoded_subject(raw, &message),
            date: message
                .date()
                .and_then(|d| Utc.timestamp_opt(d.to_timestamp(), 0).single()),
            in_reply_to: id_list(message.in_reply_to()),
            references: id_list(message.references()),
            body,
            attachments,
            signals,
            report: delivery,
            size: raw.len(),
        })
    }

    /// The address replies go to: Reply-To when given, else From.
    pub fn requester(&self) -> &str {
        self.reply_to.as_deref().unwrap_or(&self.from)
    }
}

/// The subject; when the header carries raw 8-bit bytes that are not UTF-8
/// (no encoded words, as some old clients send), they are decoded with the
/// message's declared charset, else windows-1252, instead of becoming U+FFFD.
fn decoded_subject(raw: &[u8], message: &mail_parser::Message<'_>) -> String {
    let parsed = message.subject().unwrap_or("").trim();
    if !parsed.contains('\u{FFFD}') {
        return parsed.to_string();
    }
    let Some(bytes) = raw_header_value(raw, b"subject") else {
        return parsed.to_string();
    };
    if std::str::from_utf8(&bytes).is_ok() {
        return parsed.to_string();
    }
    let charset = message
        .root_part()
        .content_type()
        .and_then(|ct| ct.attribute("charset"))
        .or_else(|| {
            message
                .text_bodies()
                .next()
                .and_then(|p| p.content_type())
                .and_then(|ct| ct.attribute("charset"))
        })
        .and_then(|label| encoding_rs::Encoding::for_label(label.as_bytes()))
        .filter(|e| *e != encoding_rs::UTF_8)
        .unwrap_or(encoding_rs::WINDOWS_1252);
    let (text, _, _) = charset.decode(&bytes);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The unfolded raw bytes of the first header `name` (lower-case) in the header block.
fn raw_header_value(raw: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let mut lines = raw
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            return None;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon].trim_ascii().eq_ignore_ascii_case(name) {
            continue;
        }
        let mut value = line[colon + 1..].trim_ascii().to_vec();
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                value.push(b' ');
                value.extend_from_slice(next.trim_ascii());
                lines.next();
            } else {
                break;
            }
        }
        return Some(value);
    }
    None
}

fn first_address(address: &Address<'_>) -> Option<(String, Option<String>)> {
    let all = address_list(address);
    let first = all.into_iter().find(|(a, _)| a.contains('@'))?;
    Some(first)
}

fn address_list(address: &Address<'_>) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut push = |a: &mail_parser::Addr<'_>| {
        if let Some(addr) = a.address() {
            let addr = normalize_address(addr);
            if !addr.is_empty() {
                out.push((
                    addr,
                    a.name()
                        .map(|n| n.trim().to_string())
                        .filter(|n| !n.is_empty()),
                ));
            }
        }
    };
    if let Some(list) = address.as_list() {
        list.iter().for_each(&mut push);
    } else if let Some(groups) = address.as_group() {
        groups
            .iter()
            .flat_map(|g| g.addresses.iter())
            .for_each(&mut push);
    }
    out
}

fn all_addresses(address: Option<&Address<'_>>) -> Vec<String> {
    address
        .map(address_list)
        .unwrap_or_default()
        .into_iter()
        .map(|(a, _)| a)
        .filter(|a| a.contains('@'))
        .collect()
}

fn id_list(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => vec![t.trim().to_string()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.trim().to_string()).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|id| !id.is_empty())
    .collect()
}

/// Reads `message/delivery-status` and the returned headers of a DSN.
fn read_report_part(content_type: &str, contents: &[u8], report: &mut Option<DeliveryReport>) {
    let text = String::from_utf8_lossy(contents);
    let r = report.get_or_insert_with(DeliveryReport::default);
    match content_type {
        "message/delivery-status" | "message/global-delivery-status" => {
            for line in text.lines() {
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let value = value.trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "status" if r.status.is_none() => {
                        r.status = value.split_whitespace().next().map(str::to_string);
                    }
                    "final-recipient" | "original-recipient" if r.failed_recipient.is_none() => {
                        let addr = value.rsplit(';').next().unwrap_or(value);
                        r.failed_recipient = Some(normalize_address(addr));
                    }
                    _ => {}
                }
            }
        }
        "message/rfc822"
        | "text/rfc822-headers"
        | "message/rfc822-headers"
        | "message/global"
        | "message/global-headers"
            if r.original_message_id.is_none() =>
        {
            r.original_message_id = header_in_block(&text, "message-id")
                .map(|v| {
                    v.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string()
                })
                .filter(|v| !v.is_empty());
        }
        _ => {}
    }
}

/// What a plain-text bounce says: the first `Message-ID:` line below the
/// bounce's own headers (the returned message), the first enhanced status
/// code (or SMTP reply code), and the first address on an indented line of
/// the failure list.
fn text_bounce(text: &str, own_id: &str) -> DeliveryReport {
    let body = text
        .split_once("\n\n")
        .or_else(|| text.split_once("\r\n\r\n"))
        .map_or("", |(_, b)| b);
    let mut report = DeliveryReport::default();
    for line in body.lines() {
        let trimmed = line.trim();
        if report.original_message_id.is_none()
            && let Some((name, value)) = trimmed.split_once(':')
            && name.eq_ignore_ascii_case("message-id")
        {
            let id = value
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim();
            if !id.is_empty() && id != own_id {
                report.original_message_id = Some(id.to_string());
            }
        }
        if report.status.is_none() {
            report.status = enhanced_status(trimmed);
        }
        // qmail lists `<address>:` at the start of a line.
        if report.failed_recipient.is_none()
            && trimmed.starts_with('<')
            && trimmed.ends_with(">:")
            && trimmed.contains('@')
        {
            report.failed_recipient = Some(normalize_address(trimmed.trim_end_matches(':')));
        }
        if report.failed_recipient.is_none() && line.starts_with(|c: char| c.is_whitespace()) {
            let word = trimmed
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(|c| c == '<' || c == '>' || c == ':' || c == ',');
            if word.contains('@') && !word.contains('[') {
                report.failed_recipient = Some(normalize_address(word));
            }
        }
    }
    report
}

/// `5.1.1`-style code in a line, else a 4xx/5xx SMTP reply code as `5.0.0`.
fn enhanced_status(line: &str) -> Option<String> {
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '#')
        .collect();
    for w in &words {
        let parts: Vec<&str> = w.split('.').collect();
        if parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()))
        {
            return Some(w.to_string());
        }
    }
    words
        .iter()
        .find(|w| {
            w.len() == 3
                && (w.starts_with('4') || w.starts_with('5'))
                && w.chars().all(|c| c.is_ascii_digit())
        })
        .map(|w| format!("{}.0.0", &w[..1]))
}

/// The value of the first header `name` in a block of header lines.
fn header_in_block(text: &str, name: &str) -> Option<String> {
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            return None;
        }
        if let Some((key, value)) = line.split_once(':')
            && key.trim().eq_ignore_ascii_case(name)
        {
            let mut value = value.trim().to_string();
            while let Some(next) = lines.peek() {
                if next.starts_with([' ', '\t']) {
                    value.push(' ');
                    value.push_str(next.trim());
                    lines.next();
                } else {
                    break;
                }
            }
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fields_intake_needs() {
        let raw = b"From: Ana <Ana@Cliente.com>\r\nTo: soporte@example.com\r\nCc: jefe@cliente.com\r\nSubject: =?ISO-8859-1?Q?Facturaci=F3n?=\r\nMessage-ID: <a1@cliente.com>\r\nIn-Reply-To: <x@example.com>\r\nReferences: <w@example.com> <x@example.com>\r\n\r\nHola\r\n";
        let m = InboundMail::parse(raw).unwrap();
        assert_eq!(m.from, "ana@cliente.com");
        assert_eq!(m.from_name.as_deref(), Some("Ana"));
        assert_eq!(m.subject, "Facturación");
        assert_eq!(m.message_id.as_deref(), Some("a1@cliente.com"));
        assert_eq!(m.in_reply_to, vec!["x@example.com"]);
        assert_eq!(m.references, vec!["w@example.com", "x@example.com"]);
        assert_eq!(m.cc, vec!["jefe@cliente.com"]);
        assert_eq!(m.body.trim(), "Hola");
    }

    #[test]
    fn raw_latin1_subject_is_decoded_not_replaced() {
        let raw = b"From: a@b.c\r\nSubject: Die Hasen und die Fr\xf6sche\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nx";
        assert_eq!(
            InboundMail::parse(raw).unwrap().subject,
            "Die Hasen und die Fr\u{f6}sche"
        );
        let raw = b"From: a@b.c\r\nSubject: 100 \x80\r\n\r\nx";
        assert_eq!(InboundMail::parse(raw).unwrap().subject, "100 \u{20ac}");
    }

    #[test]
    fn garbage_and_senderless_mail_are_defects() {
        assert_eq!(InboundMail::parse(b"   \r\n"), Err(Defect::Empty));
        assert!(InboundMail::parse(b"\x00\x01\x02 garbage \xff\xfe").is_err());
        assert_eq!(
            InboundMail::parse(b"Subject: hi\r\n\r\nbody"),
            Err(Defect::NoSender)
        );
    }

    #[test]
    fn reads_a_delivery_status_report() {
        let raw = b"From: MAILER-DAEMON@mx.cliente.com\r\nTo: soporte@example.com\r\nSubject: Undelivered\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nFailed.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; nadie@cliente.com\r\nAction: failed\r\nStatus: 5.1.1\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: soporte@example.com\r\nMessage-ID: <ack-1@example.com>\r\nSubject: x\r\n--b--\r\n";
        let m = InboundMail::parse(raw).unwrap();
        assert!(m.signals.report);
        let r = m.report.unwrap();
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        assert!(r.is_permanent());
        assert_eq!(r.failed_recipient.as_deref(), Some("nadie@cliente.com"));
        assert_eq!(r.original_message_id.as_deref(), Some("ack-1@example.com"));
    }
}
