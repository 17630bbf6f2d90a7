//! The text of a mail as the desk keeps it: everything from our reply marker
//! down is cut (SPEC §6), so quoted copies of our own mail never pile up in a
//! ticket.
//!
//! Pure string work.

use crate::text::fold;

/// The marker line every mail we send begins with, per language.
pub fn marker(language: &str) -> &'static str {
    match language {
        "en" => "## Reply above this line ##",
        _ => "## Responda por encima de esta línea ##",
    }
}

/// Cuts `text` at the first line carrying any of our markers (in any language),
/// also when a mail client quoted it (`> ## Reply above…`). Trailing blank
/// lines and a dangling "On … wrote:" attribution just above the marker go too.
pub fn cut_at_marker(text: &str) -> String {
    let markers = [fold(marker("es")), fold(marker("en"))];
    let mut kept: Vec<&str> = Vec::new();
    for line in text.lines() {
        let folded = fold(line.trim_start_matches(|c: char| c == '>' || c.is_whitespace()));
        if markers
            .iter()
            .any(|m| folded.starts_with(m.as_str()) || folded.contains(m.as_str()))
        {
            while kept
                .last()
                .is_some_and(|l| l.trim().is_empty() || l.trim_start().starts_with('>'))
            {
                kept.pop();
            }
            if kept.last().is_some_and(|l| is_attribution(l)) {
                kept.pop();
            }
            break;
        }
        kept.push(line);
    }
    let mut out = kept.join("\n");
    let trimmed_len = out.trim_end().len();
    out.truncate(trimmed_len);
    out
}

fn is_attribution(line: &str) -> bool {
    let l = fold(line.trim());
    (l.ends_with("wrote:")
        || l.ends_with("escribio:")
        || l.ends_with("a ecrit :")
        || l.ends_with("schrieb:"))
        && l.len() < 300
}

/// Cuts the quoted history a mail client appended below the author's reply,
/// for mail where no marker of ours survived (SPEC §6). Conservative: only
/// these forms are cut, always from the separator down to the end, and only
/// when some author text (a non-blank line not starting with `>`) stands
/// above the separator; otherwise nothing is cut.
///
/// - an attribution line ("On … wrote:", "El … escribió:", "Le … a écrit :",
///   "Am … schrieb …:", also wrapped over two lines as Gmail does) directly
///   above a block of `>` lines that runs to the end of the text;
/// - such an attribution (or the first half of a wrapped one) left as the
///   last line once [`cut_at_marker`] removed the quote below it, when it
///   carries a date and a time;
/// - Outlook's "-----Original Message-----" (Spanish, German, French too)
///   and its header block: "From:"/"De:"/"Von:" (after an optional line of
///   underscores) with "Sent:", "To:" and "Subject:" (or their Spanish,
///   German, French names) in the next four lines;
/// - a trailing block of `>`-quoted and blank lines.
///
/// An attribution-looking line followed by ordinary text, a quote followed
/// by more author text (inline replies), "Forwarded message" blocks and a
/// `>` line in the middle of the text are kept. The result has no trailing
/// white space; nothing else is rewritten (line endings and everything above
/// the cut are kept byte for byte).
pub fn cut_quoted_history(text: &str) -> String {
    let lines = split_lines(text);
    let texts: Vec<&str> = lines.iter().map(|&(_, l)| l).collect();
    let cut = [outlook_cut(&texts), quoted_tail_cut(&texts)]
        .into_iter()
        .flatten()
        .min();
    let kept = match cut {
        Some(at) if texts[..at].iter().any(|l| is_author_line(l)) => &text[..lines[at].0],
        _ => text,
    };
    kept.trim_end().to_string()
}

/// Each line with the byte offset where it starts; the line itself without
/// its `\n` or `\r\n`.
fn split_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    for piece in text.split_inclusive('\n') {
        let line = piece.strip_suffix('\n').unwrap_or(piece);
        out.push((start, line.strip_suffix('\r').unwrap_or(line)));
        start += piece.len();
    }
    out
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

fn is_author_line(line: &str) -> bool {
    !is_blank(line) && !is_quoted(line)
}

/// Folded, trimmed, with no-break spaces made plain (French "a écrit :").
fn norm(line: &str) -> String {
    fold(line.trim()).replace(['\u{a0}', '\u{202f}'], " ")
}

/// The trailing run of `>` and blank lines, together with the attribution
/// just above it; or, when nothing quoted is left, a dangling attribution.
fn quoted_tail_cut(lines: &[&str]) -> Option<usize> {
    let mut start = lines.len();
    while start > 0 && !is_author_line(lines[start - 1]) {
        start -= 1;
    }
    if start == 0 {
        return None;
    }
    let last = start - 1;
    let wrapped = last >= 1 && is_wrapped_attribution(lines[last - 1], lines[last]);
    if lines[start..].iter().any(|l| is_quoted(l)) {
        if is_full_attribution(lines[last]) {
            Some(last)
        } else if wrapped {
            Some(last - 1)
        } else {
            Some(start)
        }
    } else if is_full_attribution(lines[last]) && has_date_and_time(&norm(lines[last])) {
        Some(last)
    } else if wrapped && has_date_and_time(&norm(lines[last - 1])) {
        Some(last - 1)
    } else if is_attribution_head(lines[last]) {
        Some(last)
    } else {
        None
    }
}

const OPENERS: [&str; 4] = ["on ", "el ", "le ", "am "];

fn starts_like_attribution(l: &str) -> bool {
    OPENERS.iter().any(|o| l.starts_with(o)) && l.bytes().any(|b| b.is_ascii_digit())
}

/// One line "On <date>, <name> wrote:" and its Spanish, French and German
/// forms.
fn is_full_attribution(line: &str) -> bool {
    if is_quoted(line) {
        return false;
    }
    let l = norm(line);
    if l.len() > 300 || !starts_like_attribution(&l) {
        return false;
    }
    ["wrote:", "escribio:", "a ecrit :", "a ecrit:", "schrieb:"]
        .iter()
        .any(|v| l.ends_with(v))
        || (l.starts_with("am ") && l.contains(" schrieb ") && l.ends_with(':'))
}

/// An attribution Gmail wrapped over two lines: "On …, Ana García <" +
/// "ana@cliente.com> wrote:".
fn is_wrapped_attribution(first: &str, second: &str) -> bool {
    !is_blank(first)
        && !is_blank(second)
        && !is_quoted(second)
        && !is_full_attribution(first)
        && starts_like_attribution(&norm(first))
        && is_full_attribution(&format!("{} {}", first.trim(), second.trim()))
}

/// The first half of a wrapped attribution whose second half went with our
/// marker: opener, date and time, and ending where Gmail breaks the line
/// (at or after the address).
fn is_attribution_head(line: &str) -> bool {
    if is_quoted(line) {
        return false;
    }
    let l = norm(line);
    l.len() <= 300
        && starts_like_attribution(&l)
        && has_date_and_time(&l)
        && (l.ends_with('<') || l.ends_with('>') || l.ends_with(">)"))
}

/// A year (four digits, or a numeric d/m/y) and a time (h:mm).
fn has_date_and_time(l: &str) -> bool {
    let b = l.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let runs: Vec<(usize, usize)> = {
        let mut runs = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if digit(i) {
                let s = i;
                while digit(i) {
                    i += 1;
                }
                runs.push((s, i));
            } else {
                i += 1;
            }
        }
        runs
    };
    let year = runs.iter().any(|&(s, e)| e - s == 4)
        || runs.windows(3).any(|w| {
            w[0].1 < b.len()
                && matches!(b[w[0].1], b'/' | b'.' | b'-')
                && w[1].0 == w[0].1 + 1
                && w[1].1 < b.len()
                && b[w[1].1] == b[w[0].1]
                && w[2].0 == w[1].1 + 1
        });
    let time = runs
        .windows(2)
        .any(|w| b[w[0].1] == b':' && w[1].0 == w[0].1 + 1 && w[1].1 - w[1].0 == 2);
    year && time
}

/// The first Outlook separator or header block outside any `>` quote.
fn outlook_cut(lines: &[&str]) -> Option<usize> {
    (0..lines.len()).find_map(|i| {
        let line = lines[i];
        if !is_author_line(line) {
            None
        } else if is_original_message(line) {
            Some(i)
        } else if is_outlook_header_block(lines, i) {
            Some(if i > 0 && is_underscore_rule(lines[i - 1]) {
                i - 1
            } else {
                i
            })
        } else {
            None
        }
    })
}

fn is_original_message(line: &str) -> bool {
    let t = line.trim();
    t.starts_with("--")
        && [
            "original message",
            "mensaje original",
            "ursprungliche nachricht",
            "message d'origine",
        ]
        .contains(&norm(t.trim_matches(|c: char| c == '-' || c.is_whitespace())).as_str())
}

fn is_underscore_rule(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 10 && t.chars().all(|c| c == '_')
}

/// "From: …" with "Sent:", "To:" and "Subject:" (any order, "Cc:" may sit
/// among them) in the next four lines; Spanish, German and French names too.
/// Bold markers (`*From:*`) as plain-text conversions write them are ignored.
fn is_outlook_header_block(lines: &[&str], i: usize) -> bool {
    let header = |line: &str| norm(line).replace('*', "");
    let has = |l: &str, names: &[&str]| {
        names.iter().any(|n| {
            l.strip_prefix(n)
                .is_some_and(|rest| !rest.trim().is_empty())
        })
    };
    if !has(&header(lines[i]), &["from:", "de:", "de :", "von:"]) {
        return false;
    }
    let next: Vec<String> = lines[i + 1..]
        .iter()
        .take(4)
        .filter(|l| !is_quoted(l))
        .map(|l| header(l))
        .collect();
    let any = |names: &[&str]| next.iter().any(|l| has(l, names));
    any(&[
        "sent:",
        "date:",
        "enviado:",
        "enviado el:",
        "fecha:",
        "gesendet:",
        "envoye :",
        "envoye:",
    ]) && any(&["to:", "para:", "an:", "a :", "a:"])
        && any(&["subject:", "asunto:", "betreff:", "objet :", "objet:"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_from_the_marker_down() {
        let text = "Gracias, ya funciona.\n\nEl lun, 3 nov 2026, Soporte escribió:\n> ## Responda por encima de esta línea ##\n> Su ticket 4…";
        assert_eq!(cut_at_marker(text), "Gracias, ya funciona.");
        assert_eq!(
            cut_at_marker("Thanks\n## Reply above this line ##\nold"),
            "Thanks"
        );
        assert_eq!(
            cut_at_marker("no marker here\nline 2\n"),
            "no marker here\nline 2"
        );
    }

    const ACK: &str = "> ## Responda por encima de esta línea ##\n>\n> Estimado/a Ana García:\n>\n> Hemos recibido su solicitud y la hemos registrado con el número 1.\n";

    fn cut(text: &str) -> String {
        cut_quoted_history(text)
    }

    #[test]
    fn gmail_english_attribution_one_line_and_wrapped() {
        let one = format!(
            "Thanks, it works now.\n\nOn Mon, Nov 23, 2026 at 10:00 AM Ana García <ana@cliente.com> wrote:\n\n{ACK}"
        );
        assert_eq!(cut(&one), "Thanks, it works now.");
        let wrapped = format!(
            "Thanks, it works now.\n\nOn Mon, Nov 23, 2026 at 10:00 AM Ana García <\nana@cliente.com> wrote:\n\n{ACK}"
        );
        assert_eq!(cut(&wrapped), "Thanks, it works now.");
        let wrapped_before_address = format!(
            "Thanks.\n\nOn Mon, Nov 23, 2026 at 10:00 AM Soporte Example Helpdesk Team\n<soporte@example.com> wrote:\n{ACK}"
        );
        assert_eq!(cut(&wrapped_before_address), "Thanks.");
    }

    #[test]
    fn gmail_spanish_attribution_one_line_and_wrapped() {
        let one = format!(
            "Sigue fallando.\n\nEl lun, 23 nov 2026 a las 10:00, Ana García (<ana@cliente.com>) escribió:\n\n{ACK}"
        );
        assert_eq!(cut(&one), "Sigue fallando.");
        let wrapped = format!(
            "Sigue fallando.\n\nEl lun, 23 nov 2026 a las 10:00, Ana García (<\nana@cliente.com>) escribió:\n\n{ACK}"
        );
        assert_eq!(cut(&wrapped), "Sigue fallando.");
        let verb_alone = format!(
            "Sigue fallando.\n\nEl lun, 23 nov 2026 a las 10:00, Soporte Example (<soporte@example.com>)\nescribió:\n{ACK}"
        );
        assert_eq!(cut(&verb_alone), "Sigue fallando.");
    }

    #[test]
    fn apple_mail_attribution() {
        let text = format!(
            "Hola,\nya funciona.\n\nAna\n\nOn 23 Nov 2026, at 10:00, Ana <ana@x.com> wrote:\n\n{ACK}"
        );
        assert_eq!(cut(&text), "Hola,\nya funciona.\n\nAna");
        // iOS / newer Apple Mail quote the attribution itself.
        let quoted = format!(
            "Conforme\n\nEnviado desde mi iPhone\n\n> On 23 Nov 2026, at 10:00, Soporte <soporte@example.com> wrote:\n>\n{ACK}"
        );
        assert_eq!(cut(&quoted), "Conforme\n\nEnviado desde mi iPhone");
    }

    #[test]
    fn thunderbird_attributions_english_german_french() {
        for attribution in [
            "On 23/11/2026 10:00, Ana García wrote:",
            "On 11/23/26 10:00 AM, Ana García wrote:",
            "El 23/11/26 a las 10:00, Ana García escribió:",
            "Am 23.11.2026 um 10:00 schrieb Ana García:",
            "Am Mo., 23. Nov. 2026 um 10:00 Uhr schrieb Ana García <ana@cliente.com>:",
            "Le 23/11/2026 à 10:00, Ana García a écrit :",
            "Le lun. 23 nov. 2026 à 10:00, Ana García <ana@cliente.com> a écrit\u{a0}:",
        ] {
            let text = format!("Mi respuesta.\n\n{attribution}\n{ACK}");
            assert_eq!(cut(&text), "Mi respuesta.", "{attribution}");
        }
    }

    #[test]
    fn attribution_left_dangling_by_the_marker_cut() {
        // Gmail wrapped the attribution; cut_at_marker takes the second half
        // ("… wrote:") with the quote and leaves the first.
        for attribution in [
            "On Mon, Nov 23, 2026 at 10:00 AM Soporte Example <\nsoporte@example.com> wrote:",
            "El lun, 23 nov 2026 a las 10:00, Soporte Example (<\nsoporte@example.com>) escribió:",
            "El lun, 23 nov 2026 a las 10:00, Soporte Example (<soporte@example.com>)\nescribió:",
        ] {
            let text = format!("Gracias, ya funciona.\n\n{attribution}\n\n{ACK}");
            let once = cut_at_marker(&text);
            assert_ne!(once, "Gracias, ya funciona.", "{attribution}");
            assert_eq!(cut(&once), "Gracias, ya funciona.", "{attribution}");
        }
        // A whole attribution with nothing quoted below it.
        assert_eq!(
            cut("Gracias.\n\nOn 23/11/2026 10:00, Soporte Example wrote:\n"),
            "Gracias."
        );
    }

    #[test]
    fn outlook_original_message_separators() {
        for separator in [
            "-----Original Message-----",
            "-----Mensaje original-----",
            "-----Ursprüngliche Nachricht-----",
            "-------- Original Message --------",
        ] {
            let text = format!(
                "#status resolved\nDone.\n\n{separator}\nFrom: Soporte <soporte@example.com>\nSent: Monday, November 23, 2026 10:00 AM\nTo: Luis\nSubject: New ticket\n\nOld text\n"
            );
            assert_eq!(cut(&text), "#status resolved\nDone.", "{separator}");
        }
    }

    #[test]
    fn outlook_header_blocks_without_separator() {
        let blocks = [
            "________________________________\nFrom: Soporte Example <soporte@example.com>\nSent: Monday, November 23, 2026 10:00 AM\nTo: Ana García <ana@cliente.com>\nSubject: We have received your request [Ticket: 1]",
            "From: Soporte Example <soporte@example.com>\nSent: Monday, November 23, 2026 10:00 AM\nTo: Ana García <ana@cliente.com>\nCc: Marta <marta@cliente.com>\nSubject: We have received your request [Ticket: 1]",
            "De: Soporte Example <soporte@example.com>\nEnviado: lunes, 23 de noviembre de 2026 10:00\nPara: Ana García <ana@cliente.com>\nAsunto: Hemos recibido su solicitud [Ticket: 1]",
            "________________________________\nDe: Soporte Example <soporte@example.com>\nEnviado el: lunes, 23 de noviembre de 2026 10:00\nPara: Ana García <ana@cliente.com>\nAsunto: Hemos recibido su solicitud [Ticket: 1]",
            "Von: Soporte Example <soporte@example.com>\nGesendet: Montag, 23. November 2026 10:00\nAn: Ana García <ana@cliente.com>\nBetreff: Wir haben Ihre Anfrage erhalten [Ticket: 1]",
            "*From:* Soporte Example <soporte@example.com>\n*Date:* Monday, November 23, 2026 at 10:00\n*To:* Ana García <ana@cliente.com>\n*Subject:* We have received your request [Ticket: 1]",
        ];
        for block in blocks {
            let text = format!(
                "Buenos días:\n\nAdjunto la captura.\n\nAna\n\n{block}\n\nEstimado/a Ana García:\n\nHemos recibido su solicitud.\n"
            );
            assert_eq!(
                cut(&text),
                "Buenos días:\n\nAdjunto la captura.\n\nAna",
                "{block}"
            );
        }
    }

    #[test]
    fn outlook_lookalikes_are_kept() {
        // A From: line without the rest of the block, or with it too far down.
        let texts = [
            "Hola.\n\nFrom: the logs, the service restarted at 10:00.\nTo: be sure, I checked twice.\n",
            "Hola.\n\nDe: Soporte\nPara: Ana\nAsunto: facturas\n",
            "Hola.\n\nFrom: Soporte\n\nline\nline\nline\nSent: lunes\nTo: Ana\nSubject: x\n",
            "Hola.\n\n----- Mensaje del cliente -----\nTexto\n",
        ];
        for text in texts {
            assert_eq!(cut(text), text.trim_end(), "{text}");
        }
    }

    #[test]
    fn trailing_quote_block() {
        assert_eq!(
            cut("Sigue igual.\n\n> Pruebe de nuevo, por favor.\n>\n> Luis\n\n"),
            "Sigue igual."
        );
        assert_eq!(cut("Sigue igual.\n>> nested\n> quote\n"), "Sigue igual.");
    }

    #[test]
    fn separator_first_leaves_the_text() {
        let texts = [
            "On 23/11/2026 10:00, Ana García wrote:\n> hola\n",
            "\n\n> only a quote\n> nothing else\n",
            "-----Original Message-----\nFrom: Ana\nSent: today\nTo: us\nSubject: x\n\nbody\n",
            "________________________________\nFrom: Ana\nSent: today\nTo: us\nSubject: x\n",
        ];
        for text in texts {
            assert_eq!(cut(text), text.trim_end(), "{text}");
        }
        // Bottom-posting: quote first, the author's text below; nothing cut.
        let bottom = "On 23/11/2026 10:00, Ana García wrote:\n> hola\n\nHola Ana, ya está.\n";
        assert_eq!(cut(bottom), bottom.trim_end());
    }

    #[test]
    fn wrote_in_prose_is_kept() {
        let texts = [
            "As the manual wrote: restart the service.\nThen it worked.\n",
            "The vendor wrote:\nrestart the service\nand it worked.\n",
            "On 20/11/2026 at 16:30 the vendor's engineer wrote:\n\n    restart the service\n\nand it worked.\n",
            // A quote in the middle, answered below: an inline reply.
            "Hi,\n\nOn 23/11/2026 10:00, Ana García wrote:\n> Does it fail with series A?\n\nNo, only with B.\n\nLuis\n",
            "Hola.\n> cita\nrespuesta\n> otra cita\notra respuesta\n",
            // Looks like an attribution but carries no date: not cut at the end.
            "Thanks.\nOn Monday, Ana wrote:\n",
            // Date and time but no address and no verb: prose, kept.
            "Gracias.\n\nEl lunes 23 nov 2026 a las 10:00 volví a probar\n",
        ];
        for text in texts {
            assert_eq!(cut(text), text.trim_end(), "{text}");
        }
    }

    #[test]
    fn keeps_bytes_above_the_cut_and_trims_the_end() {
        assert_eq!(
            cut("Line one  \r\nLine two \t\r\n\r\nOn 23/11/2026 10:00, Ana wrote:\r\n> x\r\n"),
            "Line one  \r\nLine two"
        );
        assert_eq!(cut("no history\n\n  \n"), "no history");
        assert_eq!(cut(""), "");
    }

    /// Every fixtures/mail/replies/NAME.eml is checked against its sibling
    /// NAME.expected.txt (the kept text; its final newline is not part of
    /// it), through the intake order: marker cut, then quoted history. The
    /// history cut alone must give the same text.
    #[test]
    fn reply_fixtures_keep_exactly_the_expected_text() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mail/replies");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        let mut checked = 0;
        for name in &names {
            if let Some(stem) = name.strip_suffix(".expected.txt") {
                assert!(
                    names.contains(&format!("{stem}.eml")),
                    "{name} has no {stem}.eml"
                );
                continue;
            }
            let Some(stem) = name.strip_suffix(".eml") else {
                continue;
            };
            let raw = std::fs::read(dir.join(name)).expect("read fixture");
            let expected_path = dir.join(format!("{stem}.expected.txt"));
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
                panic!(
                    "{name} needs its expected kept text in {}: {e}",
                    expected_path.display()
                )
            });
            let expected = expected.strip_suffix('\n').unwrap_or(&expected);
            let mail = crate::mail::InboundMail::parse(&raw)
                .unwrap_or_else(|e| panic!("{name} does not parse: {e:?}"));
            assert_eq!(
                mail.subject, "RE: No puedo emitir facturas [Ticket: 1]",
                "{name}"
            );
            assert!(
                ["luis@example.com", "ana@cliente.com"].contains(&mail.from.as_str()),
                "{name}: from {}",
                mail.from
            );
            assert_eq!(
                cut_quoted_history(&cut_at_marker(&mail.body)),
                expected,
                "{name}: marker cut, then history cut"
            );
            assert_eq!(
                cut_quoted_history(&mail.body),
                expected,
                "{name}: history cut alone"
            );
            checked += 1;
        }
        assert!(checked >= 7, "only {checked} reply fixtures checked");
    }
}
