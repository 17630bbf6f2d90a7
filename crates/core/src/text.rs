//! Small text folds shared by every matcher: accents and case folded so that
//! "Anomalía" equals "anomalia", and addresses compared case-insensitively.
//!
//! Pure functions only.

/// Lower-cases and strips the common Latin accents (á→a, ñ→n, ü→u, ç→c …).
pub fn fold(input: &str) -> String {
    // Most lines of most mail: nothing to strip, one pass over the bytes.
    if input.is_ascii() {
        return input.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        for lower in c.to_lowercase() {
            out.push(match lower {
                'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => 'a',
                'é' | 'è' | 'ê' | 'ë' => 'e',
                'í' | 'ì' | 'î' | 'ï' => 'i',
                'ó' | 'ò' | 'ô' | 'ö' | 'õ' => 'o',
                'ú' | 'ù' | 'û' | 'ü' => 'u',
                'ñ' => 'n',
                'ç' => 'c',
                other => other,
            });
        }
    }
    out
}

/// Canonical form of an e-mail address for comparisons and storage.
pub fn normalize_address(address: &str) -> String {
    address
        .trim()
        .trim_matches(|c| c == '<' || c == '>')
        .to_lowercase()
}

/// The domain part of an address, lower-cased.
pub fn domain_of(address: &str) -> Option<&str> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
}

/// True when `address` matches `pattern`: an exact address or `*@domain`.
pub fn address_matches(pattern: &str, address: &str) -> bool {
    let pattern = normalize_address(pattern);
    let address = normalize_address(address);
    match pattern.strip_prefix("*@") {
        Some(domain) => domain_of(&address) == Some(domain),
        None => pattern == address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_accents_and_case() {
        assert_eq!(fold("Facturación ÑANDÚ"), "facturacion nandu");
        // The ASCII path gives what the general one gives.
        assert_eq!(
            fold("RE: Factura #12, [Ticket: 7]"),
            "re: factura #12, [ticket: 7]"
        );
        assert_eq!(fold("RE: Factura Ñ"), "re: factura n");
    }

    #[test]
    fn matches_domain_patterns() {
        assert!(address_matches("*@ServiceNow.com", "bot@servicenow.com"));
        assert!(!address_matches(
            "*@servicenow.com",
            "bot@evil-servicenow.com"
        ));
        assert!(address_matches("a@b.c", "<A@B.C>"));
    }
}
