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
}
