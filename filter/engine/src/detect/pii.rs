//! Personal data detectors: structural patterns over the original text, each confirmed by a
//! validator so that look-alikes (order numbers, timestamps, versions, UUIDs, hashes) are
//! rejected. Cards need a known issuer prefix and the Luhn check; IBANs their country's length
//! and mod-97; SSNs the ranges the SSA issues; IPv6 a real parse; phone numbers a plausible digit
//! count for their form, and bare digit runs only next to a word like "phone" or "call".

use super::rule::Severity;

/// Validates a candidate match `text[start..end]`; may look at the surrounding text.
pub type Validator = fn(text: &str, start: usize, end: usize) -> bool;

/// Confirms a candidate and returns the span actually found in it: for cards, the longest
/// leading run of digit groups that validates (a card followed by more digits).
pub fn confirm(t: &PiiType, text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    if (t.validate)(text, start, end) {
        return Some((start, end));
    }
    let seps: &[char] = match t.id {
        "pii.card" => &[' ', '-'],
        _ => return None,
    };
    let m = text.get(start..end)?;
    let mut cut = m.len();
    while let Some(sep) = m.get(..cut).and_then(|h| h.rfind(seps)) {
        cut = sep;
        if (t.validate)(text, start, start + cut) {
            return Some((start, start + cut));
        }
    }
    None
}

/// A built-in PII type.
#[derive(Debug)]
pub struct PiiType {
    pub id: &'static str,
    /// Placeholder label for redaction (`[EMAIL_1]`).
    pub label: &'static str,
    pub severity: Severity,
    pub pattern: &'static str,
    pub validate: Validator,
    /// What a text must contain for `pattern` to match anywhere in it.
    pub needs: Prerequisite,
    pub description: &'static str,
}

/// The built-in PII types, in priority order (earlier wins when two overlap).
pub static PII_TYPES: &[PiiType] = &[
    PiiType {
        id: "pii.iban",
        label: "IBAN",
        severity: Severity::High,
        pattern: r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
        validate: valid_iban,
        needs: Prerequisite::CountryCode,
        description: "International bank account number (country length, mod-97)",
    },
    PiiType {
        id: "pii.card",
        label: "CARD",
        severity: Severity::High,
        pattern: r"\b\d{4}(?:[ -]?\d{2,4}){2,4}(?:[ -]?\d{1,3})?\b",
        validate: valid_card,
        needs: Prerequisite::CardDigits,
        description:
            "Payment card number (issuer prefix and length of every network, 12-19 digits, Luhn)",
    },
    PiiType {
        id: "pii.ssn",
        label: "SSN",
        severity: Severity::High,
        pattern: r"\b\d{3}[- ]\d{2}[- ]\d{4}\b",
        validate: valid_ssn,
        needs: Prerequisite::SsnShape,
        description: "US social security number (issued ranges)",
    },
    PiiType {
        id: "pii.email",
        label: "EMAIL",
        severity: Severity::Medium,
        pattern: r"(?i)\b[a-z0-9][a-z0-9._%+-]{0,63}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.){1,8}[a-z]{2,24}\b",
        validate: valid_email,
        needs: Prerequisite::At,
        description: "Email address",
    },
    PiiType {
        id: "pii.phone",
        label: "PHONE",
        severity: Severity::Medium,
        pattern: r"(?:\+ ?|\(\+?)?\b\d[\d().\-/ ]{5,24}\d(?: ?(?:x|ext\.?|extension|#) ?\d{1,6})?",
        validate: super::phone::valid_phone,
        needs: Prerequisite::DigitRun,
        description:
            "Phone number (every country's numbering plan; national forms by their region's plan)",
    },
    PiiType {
        id: "pii.ipv4",
        label: "IPV4",
        severity: Severity::Low,
        pattern: r"\b(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\b",
        validate: valid_ipv4,
        needs: Prerequisite::DottedQuad,
        description: "IPv4 address",
    },
    PiiType {
        id: "pii.ipv6",
        label: "IPV6",
        severity: Severity::Low,
        pattern: r"(?i)(?:\b[0-9a-f]{1,4}|::)(?::{1,2}[0-9a-f]{0,4}){2,7}(?:%[0-9a-z]+)?",
        validate: valid_ipv6,
        needs: Prerequisite::ColonPair,
        description: "IPv6 address",
    },
];

/// A cheap necessary condition for a PII pattern to match somewhere in a text. One pass over
/// the bytes ([`prerequisites`]) finds which hold, and only the patterns whose condition holds
/// run: a long prose text with a year in it runs two regexes instead of seven. Each condition
/// holds for every match its pattern's validator confirms (a test runs the patterns with and
/// without the conditions), so skipping a pattern never loses a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prerequisite {
    /// `@` (email)
    At,
    /// two upper-case letters then two digits (IBAN)
    CountryCode,
    /// twelve digits in one sequence of digit groups joined by single spaces or dashes (card:
    /// its validator wants 12 to 19 digits, its pattern allows one separator between groups)
    CardDigits,
    /// `ddd-dd-d` or `ddd dd d` (SSN)
    SsnShape,
    /// a digit, five to 24 of `0-9 ( ) . - / space`, a digit (phone)
    DigitRun,
    /// four digit groups joined by single dots (IPv4)
    DottedQuad,
    /// two colons at most five bytes apart (IPv6)
    ColonPair,
}

impl Prerequisite {
    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The prerequisites a text meets (see [`Prerequisite`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prerequisites(u8);

impl Prerequisites {
    pub fn has(self, p: Prerequisite) -> bool {
        self.0 & p.bit() != 0
    }

    fn set(&mut self, p: Prerequisite) {
        self.0 |= p.bit();
    }
}

/// Finds in one pass over `text` which prerequisites it meets.
pub fn prerequisites(text: &[u8]) -> Prerequisites {
    let mut found = Prerequisites::default();
    if memchr::memchr(b'@', text).is_some() {
        found.set(Prerequisite::At);
    }
    let mut colons = memchr::memchr_iter(b':', text);
    if let Some(mut last) = colons.next() {
        for at in colons {
            if at - last <= 5 {
                found.set(Prerequisite::ColonPair);
                break;
            }
            last = at;
        }
    }
    let digit = |i: usize| text.get(i).is_some_and(u8::is_ascii_digit);
    let upper = |i: usize| text.get(i).is_some_and(u8::is_ascii_uppercase);
    let phone_class = |b: u8| matches!(b, b'0'..=b'9' | b'(' | b')' | b'.' | b'-' | b'/' | b' ');
    // digits in a row ending here; where the current run of phone characters saw its first digit
    let mut run = 0usize;
    let mut first_digit: Option<usize> = None;
    // digits of the current groups joined by single spaces or dashes; dots of the current groups
    // joined by single dots (any other byte resets them, so a skipped window does too)
    let mut card_digits = 0usize;
    let mut quad_dots = 0usize;
    let mut i = 0usize;
    while let Some(&b) = text.get(i) {
        // outside any digit run, eight bytes without a digit change nothing: skip them at once
        if run == 0 && first_digit.is_none() {
            if let Some(word) = text.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
                if !has_digit(u64::from_le_bytes(word)) {
                    i += 8;
                    continue;
                }
            }
        }
        if b.is_ascii_digit() {
            run += 1;
            card_digits += 1;
            if card_digits == 12 {
                found.set(Prerequisite::CardDigits);
            }
            if run == 2 && i >= 3 && upper(i - 3) && upper(i - 2) {
                found.set(Prerequisite::CountryCode);
            }
            match first_digit {
                Some(f) if i - f >= 6 => found.set(Prerequisite::DigitRun),
                Some(_) => {}
                None => first_digit = Some(i),
            }
            i += 1;
            continue;
        }
        if !phone_class(b) {
            first_digit = None;
        }
        let joins = run >= 1 && digit(i + 1);
        if !(joins && matches!(b, b' ' | b'-')) {
            card_digits = 0;
        }
        if joins && b == b'.' {
            quad_dots += 1;
            if quad_dots == 3 {
                found.set(Prerequisite::DottedQuad);
            }
        } else {
            quad_dots = 0;
        }
        if run >= 3
            && matches!(b, b'-' | b' ')
            && digit(i + 1)
            && digit(i + 2)
            && text.get(i + 3).is_some_and(|&s| matches!(s, b'-' | b' '))
            && digit(i + 4)
        {
            found.set(Prerequisite::SsnShape);
        }
        run = 0;
        i += 1;
    }
    found
}

/// Whether any of the eight bytes of `word` is an ASCII digit: XOR with `0x30` maps exactly the
/// digits to 0..=9, and the classic "has a byte less than 10" test finds them without a loop.
const fn has_digit(word: u64) -> bool {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let x = word ^ (ONES * 0x30);
    x.wrapping_sub(ONES * 10) & !x & HIGHS != 0
}

fn digits(s: &str) -> impl Iterator<Item = u32> + '_ {
    s.chars().filter_map(|c| c.to_digit(10))
}

fn byte_before(text: &str, start: usize) -> Option<u8> {
    start
        .checked_sub(1)
        .and_then(|i| text.as_bytes().get(i).copied())
}

fn byte_after(text: &str, end: usize) -> Option<u8> {
    text.as_bytes().get(end).copied()
}

/// True when the match continues a longer token: `1.2.3.4.5`, `x-4111...`, `#123`, `v1.2`.
fn glued(text: &str, start: usize, end: usize) -> bool {
    let before = byte_before(text, start);
    let after = byte_after(text, end);
    let b2 = start
        .checked_sub(2)
        .and_then(|i| text.as_bytes().get(i).copied());
    let a2 = text.as_bytes().get(end + 1).copied();
    matches!(before, Some(b'_' | b'/' | b'#'))
        || matches!(after, Some(b'_'))
        || (matches!(before, Some(b'.' | b'-' | b':'))
            && b2.is_some_and(|b| b.is_ascii_alphanumeric()))
        || (matches!(after, Some(b'.' | b'-' | b':')) && a2.is_some_and(|b| b.is_ascii_digit()))
}

/// Luhn checksum over the digits of `s`.
pub fn luhn(s: &str) -> bool {
    let ds: Vec<u32> = digits(s).collect();
    if ds.is_empty() {
        return false;
    }
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

fn valid_card(text: &str, start: usize, end: usize) -> bool {
    let Some(m) = text.get(start..end) else {
        return false;
    };
    if glued(text, start, end) {
        return false;
    }
    let ds: String = m.chars().filter(char::is_ascii_digit).collect();
    let n = ds.len();
    if !(12..=19).contains(&n) || inside_iban(text, start) {
        return false;
    }
    // separators, when present, must be one kind
    let has_space = m.contains(' ');
    let has_dash = m.contains('-');
    if has_space && has_dash {
        return false;
    }
    if ds.bytes().all(|b| Some(b) == ds.bytes().next()) {
        return false;
    }
    card_issuer(&ds) && luhn(&ds)
}

/// Whether a digit string has the prefix and length of a card some payment network issues.
/// From the networks' published IIN ranges: Visa, Mastercard (51–55, 2221–2720), Maestro
/// (50, 56–69; 12–19 digits), American Express, JCB (3528–3589; and the 15-digit 1800, 2131),
/// Diners (300–305, 3095, 36, 38–39), Discover (6011, 644–649, 65), UnionPay (62, 81), Mir
/// (2200–2204), RuPay (60, 65, 81, 82, 508, 353, 356), Verve, Troy (9792), Humo (9860),
/// UzCard (8600), UATP (1, 15 digits) and the regional brands inside those ranges.
pub fn card_issuer(ds: &str) -> bool {
    let n = ds.len();
    let prefix = |k: usize| -> u32 { ds.get(..k).and_then(|p| p.parse().ok()).unwrap_or(0) };
    let (p2, p3, p4) = (prefix(2), prefix(3), prefix(4));
    match ds.as_bytes().first() {
        Some(b'1') => n == 15, // UATP, and JCB 1800
        Some(b'2') => {
            ((2200..=2205).contains(&p4) && (16..=19).contains(&n)) // Mir, BORICA
                || ((2221..=2720).contains(&p4) && n == 16) // Mastercard
                || (p4 == 2131 && n == 15) // JCB
        }
        Some(b'3') => {
            ((p2 == 34 || p2 == 37) && n == 15) // Amex
                || (p2 == 35 && (16..=19).contains(&n)) // JCB
                || (p2 == 31 && n == 19) // China T-Union
                || (((300..=305).contains(&p3) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39)
                    && (14..=19).contains(&n)) // Diners
                || ((p3 == 353 || p3 == 356) && n == 16) // RuPay
        }
        Some(b'4') => (13..=19).contains(&n), // Visa and Visa Electron, Elo
        Some(b'5') => {
            ((51..=55).contains(&p2) && n == 16) // Mastercard
                || ((p2 == 50 || (56..=59).contains(&p2)) && (12..=19).contains(&n))
            // Maestro, Verve, Dankort
        }
        Some(b'6') => (12..=19).contains(&n), // Maestro, Discover, UnionPay, RuPay, Verve, Troy
        Some(b'8') => ((p2 == 81 || p2 == 82) && (16..=19).contains(&n)) || (p4 == 8600 && n == 16),
        Some(b'9') => n == 16, // Troy (9792), Humo (9860), Prostir (9…)
        Some(b'0') => p4 == 604 && (12..=19).contains(&n), // Maestro (UK, 0604)
        _ => false,
    }
}

/// True when the digits at `start` continue an IBAN written in groups ("FR76 3000 6000 ...").
fn inside_iban(text: &str, start: usize) -> bool {
    let head = text
        .get(crate::normalize::floor_boundary(text, start.saturating_sub(48))..start)
        .unwrap_or("");
    for token in head.split_whitespace().rev() {
        let b = token.as_bytes();
        if b.len() == 4
            && b.get(..2)
                .is_some_and(|c| c.iter().all(u8::is_ascii_uppercase))
            && b.get(2..).is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        {
            return true;
        }
        if !(1..=4).contains(&b.len()) || !b.iter().all(u8::is_ascii_alphanumeric) {
            return false;
        }
    }
    false
}

fn valid_ssn(text: &str, start: usize, end: usize) -> bool {
    let Some(m) = text.get(start..end) else {
        return false;
    };
    if glued(text, start, end) {
        return false;
    }
    let seps: Vec<char> = m.chars().filter(|c| !c.is_ascii_digit()).collect();
    if seps.first() != seps.get(1) {
        return false;
    }
    let ds: String = m.chars().filter(char::is_ascii_digit).collect();
    let (Some(area), Some(group), Some(serial)) = (ds.get(..3), ds.get(3..5), ds.get(5..9)) else {
        return false;
    };
    let area: u32 = area.parse().unwrap_or(0);
    area != 0 && area != 666 && area < 900 && group != "00" && serial != "0000"
}

fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" => 20,
        "CH" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "CR" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" | "VA" => 22,
        "AE" | "GI" | "IL" | "IQ" | "TL" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" | "ST" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "BY" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" | "SV" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" => 30,
        "MT" | "SC" => 31,
        "LC" => 32,
        _ => return None,
    })
}

/// IBAN check: known country, its length, and mod-97 == 1.
pub fn iban_ok(compact: &str) -> bool {
    let Some(country) = compact.get(..2) else {
        return false;
    };
    if iban_length(country) != Some(compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn valid_iban(text: &str, start: usize, end: usize) -> bool {
    let Some(m) = text.get(start..end) else {
        return false;
    };
    let compact: String = m.chars().filter(|c| *c != ' ').collect();
    iban_ok(&compact)
}

fn valid_email(text: &str, start: usize, end: usize) -> bool {
    let Some(m) = text.get(start..end) else {
        return false;
    };
    let Some((local, domain)) = m.split_once('@') else {
        return false;
    };
    !local.ends_with('.')
        && !local.contains("..")
        && !domain.contains("..")
        && byte_before(text, start) != Some(b'@')
}

fn valid_ipv4(text: &str, start: usize, end: usize) -> bool {
    // part of a longer dotted number (1.2.3.4.5, an OID) or a version (v1.2.3.4)
    let before = byte_before(text, start);
    let b2 = start
        .checked_sub(2)
        .and_then(|i| text.as_bytes().get(i).copied());
    let after = byte_after(text, end);
    let a2 = text.as_bytes().get(end + 1).copied();
    if before == Some(b'.') && b2.is_some_and(|b| b.is_ascii_alphanumeric())
        || after == Some(b'.') && a2.is_some_and(|b| b.is_ascii_digit())
        || before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        || matches!(before, Some(b'v' | b'V'))
    {
        return false;
    }
    let lead = text
        .get(crate::normalize::floor_boundary(text, start.saturating_sub(12))..start)
        .unwrap_or("")
        .to_ascii_lowercase();
    !lead.contains("version") && !lead.contains("ver.")
}

fn valid_ipv6(text: &str, start: usize, end: usize) -> bool {
    let Some(m) = text.get(start..end) else {
        return false;
    };
    let addr = m.split('%').next().unwrap_or(m);
    if matches!(byte_before(text, start), Some(b':' | b'.'))
        || byte_after(text, end).is_some_and(|b| b.is_ascii_alphanumeric() || b == b':')
    {
        return false;
    }
    let groups = addr.split(':').filter(|g| !g.is_empty()).count();
    let compressed = addr.contains("::");
    let has_digit = addr.bytes().any(|b| b.is_ascii_digit());
    has_digit
        && (groups == 8 || (compressed && groups >= 2))
        && addr.parse::<std::net::Ipv6Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    /// What the real detector reports for one PII type.
    fn found(id: &str, text: &str) -> Vec<String> {
        static D: std::sync::OnceLock<crate::detect::Detectors> = std::sync::OnceLock::new();
        let d = D.get_or_init(|| {
            crate::detect::Detectors::compile(&Default::default()).unwrap_or_else(|e| panic!("{e}"))
        });
        let mut hits = Vec::new();
        let set = crate::detect::ScanSet {
            pii: true,
            ..crate::detect::ScanSet::NONE
        };
        d.scan(
            text,
            set,
            &mut crate::normalize::Normalizer::new(),
            &mut hits,
        );
        hits.iter()
            .filter(|h| d.rule(h.rule).is_some_and(|r| &*r.id == id))
            .map(|h| text[h.start..h.end].to_string())
            .collect()
    }

    #[test]
    fn cards() {
        assert_eq!(
            found("pii.card", "my card is 4111 1111 1111 1111 thanks"),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(
            found("pii.card", "amex 3782-822463-10005"),
            ["3782-822463-10005"]
        );
        assert_eq!(found("pii.card", "5555555555554444"), ["5555555555554444"]);
        assert!(found("pii.card", "order #4111111111111112").is_empty());
        assert!(found("pii.card", "ts 1700000000123 and 4111111111111112").is_empty());
        assert!(found("pii.card", "id 1234567890123456").is_empty());
        assert_eq!(
            found("pii.card", "payment_method=4111111111111111&x=1"),
            ["4111111111111111"]
        );
        assert!(found("pii.card", "IBAN FR69 3191 2628 5111 9336 3334 920").is_empty());
        assert_eq!(
            found("pii.card", "0000 4111 1111 1111 1111"),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(
            found("pii.card", "4111 1111 1111 1111 0000"),
            ["4111 1111 1111 1111"]
        );
    }

    #[test]
    fn phones_across_plans_and_forms() {
        for p in [
            "(212)555-0143x2719",
            "415.555.0198x77",
            "001-415-555-0198",
            "+1-415-555-0198",
            "+44 20 7946 0958",
            "+49 (0)30 1234567",
            "+33 1 23 45 67 89",
            "0049 30 1234567",
            "8 (495) 123-45-67",
            "+61 2 9876 5432",
            "06-12345678",
            "010-1234-5678",
        ] {
            assert_eq!(
                found("pii.phone", &format!("reach me at {p} please")),
                [p],
                "{p}"
            );
        }
        assert_eq!(found("pii.phone", "电话13812345678"), ["13812345678"]);
        // shapes that say "phone number" without a phone word: mobile groupings, a calling
        // code in parentheses, the trunk 8 before 3-3-4, a Chinese mobile prefix
        for p in [
            "512 345 678",
            "12 34 56 78",
            "(351) 912 345 678",
            "8 626 120 5382",
            "15912345678",
            "012234567",
        ] {
            assert_eq!(
                found("pii.phone", &format!("Ask for Anna — {p}.")),
                [p],
                "{p}"
            );
        }
        // a phone word up to a line's width before the number
        assert_eq!(
            found(
                "pii.phone",
                "You can reach the front desk on 732.867.5625 or the manager on 3593569654."
            ),
            ["732.867.5625", "3593569654"]
        );
        for n in [
            "Population: 512 345 678 people",
            "Revenue 512 345 678 zł in 2025",
            "Total: € 512 345 678",
            "hexdump 00000: 30 07 02 01 7B 80 02 01 41",
            "cement t 100 478 578 next",
            "SKU 15249740779 - blue",
            "order no. 512 345 678",
            "Speed of light: 299 792 458 m/s",
            "RMA 2021-01-7309 received",
            "Ship to IL 41315-3273.",
            "ORD 3313 0189 5159 5767 is ready",
            "Windows build 10.0.25232.2284",
            "The budget is 750 944 884,48 EUR",
            "SKU 15249740779 - blue",
            "ISBN 978-2-208-57168-1",
        ] {
            assert!(
                found("pii.phone", n).is_empty(),
                "{n}: {:?}",
                found("pii.phone", n)
            );
        }
    }

    /// `prefix` padded with 1s to `len - 1` digits and completed with its Luhn check digit.
    fn luhn_card(prefix: &str, len: usize) -> String {
        let mut body: String = prefix.to_string();
        while body.len() < len - 1 {
            body.push('1');
        }
        (0..10)
            .map(|d| format!("{body}{d}"))
            .find(|c| super::luhn(c))
            .unwrap_or_default()
    }

    #[test]
    fn cards_of_every_network() {
        for (prefix, len) in [
            ("6759", 12), // Maestro, shortest
            ("5018", 19), // Maestro, longest
            ("2200", 16), // Mir
            ("3528", 19), // JCB
            ("2131", 15), // JCB 15
            ("36", 14),   // Diners
            ("62", 18),   // UnionPay
            ("9792", 16), // Troy
            ("1", 15),    // UATP
            ("8600", 16), // UzCard
            ("2221", 16), // Mastercard 2-series
            ("31", 19),   // China T-Union
        ] {
            let card = luhn_card(prefix, len);
            assert_eq!(
                found("pii.card", &format!("card {card} ok")),
                [card.as_str()],
                "{prefix}/{len}"
            );
        }
        // the right prefix at a length the network does not issue, or no network's prefix
        for (prefix, len) in [("34", 16), ("2221", 19), ("7", 16), ("1", 16)] {
            let card = luhn_card(prefix, len);
            assert!(
                found("pii.card", &format!("card {card} ok")).is_empty(),
                "{card}"
            );
        }
    }

    #[test]
    fn ssns() {
        assert_eq!(found("pii.ssn", "SSN 123-45-6789."), ["123-45-6789"]);
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "912-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123-45 6789",
        ] {
            assert!(found("pii.ssn", bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn ibans() {
        assert_eq!(
            found("pii.iban", "IBAN DE89 3704 0044 0532 0130 00 ok"),
            ["DE89 3704 0044 0532 0130 00"]
        );
        assert_eq!(
            found("pii.iban", "GB82WEST12345698765432"),
            ["GB82WEST12345698765432"]
        );
        assert!(found("pii.iban", "DE89 3704 0044 0532 0130 01").is_empty());
    }

    #[test]
    fn emails_and_ips() {
        assert_eq!(
            found("pii.email", "write to jane.doe+x@mail.example.co.uk now"),
            ["jane.doe+x@mail.example.co.uk"]
        );
        assert_eq!(
            found("pii.ipv4", "host 192.168.1.20 is up"),
            ["192.168.1.20"]
        );
        assert!(found("pii.ipv4", "version 1.2.3.4 and v10.2.1.0 and 1.2.3.4.5").is_empty());
        assert_eq!(
            found("pii.ipv6", "addr 2001:db8::8a2e:370:7334 up"),
            ["2001:db8::8a2e:370:7334"]
        );
        assert!(found("pii.ipv6", "at 12:30:45 use std::vec and a::b").is_empty());
        assert!(found("pii.ipv6", "uuid 123e4567-e89b-12d3-a456-426614174000").is_empty());
    }

    #[test]
    fn phones() {
        for p in [
            "+1 415 555 2671",
            "+44 20 7946 0958",
            "+49 30 12345678",
            "+33 1 23 45 67 89",
            "+91 98765 43210",
            "(415) 555-2671",
            "415-555-2671",
            "020 7946 0958",
            "07700 900123",
            "030 12345678",
            "01 23 45 67 89",
            "98765 43210",
        ] {
            assert_eq!(
                found("pii.phone", &format!("call me at {p} today")),
                [p],
                "{p}"
            );
        }
        assert_eq!(found("pii.phone", "phone: 4155552671"), ["4155552671"]);
        assert_eq!(
            found("pii.phone", "a voicemail from 08231426910 asking"),
            ["08231426910"]
        );
        for n in [
            "order 4155552671 shipped",
            "at 2024-05-01T12:30:45Z",
            "on 01.02.2024",
            "ts 1700000000123",
            "v10.2.1",
        ] {
            assert!(found("pii.phone", n).is_empty(), "{n}");
        }
    }

    #[test]
    fn has_digit_sees_any_digit_in_any_place() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut word = [b'a'; 8];
                word[at] = b;
                assert_eq!(
                    super::has_digit(u64::from_le_bytes(word)),
                    b.is_ascii_digit(),
                    "byte {b:#x} at {at}"
                );
            }
        }
    }

    /// Every match of a PII pattern that its validator confirms, from any start, lies in a
    /// text that meets the pattern's prerequisite (else skipping the pattern would lose the
    /// finding). Returns how many were confirmed.
    fn prerequisites_hold(text: &str) -> usize {
        let found = super::prerequisites(text.as_bytes());
        let mut confirmed = 0;
        for t in super::PII_TYPES {
            let re = regex::Regex::new(&crate::detect::ascii_classes(t.pattern))
                .unwrap_or_else(|e| panic!("{e}"));
            let mut pos = 0;
            while let Some(m) = re.find_at(text, pos) {
                if super::confirm(t, text, m.start(), m.end()).is_some() {
                    confirmed += 1;
                    assert!(found.has(t.needs), "{} found in {text:?}", t.id);
                }
                pos = m.start() + 1;
                while !text.is_char_boundary(pos) {
                    pos += 1;
                }
                if pos > text.len() {
                    break;
                }
            }
        }
        confirmed
    }

    /// `digits` completed with its Luhn check digit.
    fn with_luhn_digit(digits: &str) -> String {
        let sum: u32 = digits
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let d = u32::from(b - b'0');
                if i % 2 == 0 {
                    let d = d * 2;
                    if d > 9 {
                        d - 9
                    } else {
                        d
                    }
                } else {
                    d
                }
            })
            .sum();
        format!("{digits}{}", (10 - sum % 10) % 10)
    }

    #[test]
    fn prerequisites_hold_on_every_kind_of_value() {
        for text in [
            "mail me: a.b@example.org",
            "IBAN DE89 3704 0044 0532 0130 00",
            "GB82WEST12345698765432",
            "card 4111 1111 1111 1111 or 4111-1111-1111-1111",
            "ssn 078-05-1120 / 078 05 1120",
            "call (212)555-0143x2719, 415.555.0198, +44 20 7946 0958, 001-212-555-0143",
            "ip 192.168.0.1 and 2001:db8::1, ::ffff:10.0.0.1, fe80::1%eth0",
            "1 2 3 4 5 6 7",
            "AB12 CD34",
            // the shortest text each pattern matches: its prerequisite's boundary
            "a@b.cd",
            "AB12 CDEF GHIJ",
            "1234 12 12",
            "6759 6498 2648",
            "123-45-6789",
            "1-----2",
            "1.2.3.4",
            "a:bcde:f",
        ] {
            prerequisites_hold(text);
            assert_ne!(
                super::prerequisites(text.as_bytes()),
                super::Prerequisites::default()
            );
        }
        // the shortest card and address that are confirmed: the checks above are not vacuous
        assert_eq!(prerequisites_hold("6759 6498 2648"), 1);
        assert_eq!(prerequisites_hold("1.2.3.4"), 1);
        // a year, a date, an amount, a version: no card or address pattern runs
        let ordinary = super::prerequisites(b"in 2023, on 2024-01-31, 98.70 USD, v1.2.3");
        assert!(!ordinary.has(super::Prerequisite::CardDigits));
        assert!(!ordinary.has(super::Prerequisite::DottedQuad));
        assert_eq!(
            super::prerequisites(b"plain prose without any of them, not even a year"),
            super::Prerequisites::default()
        );
    }

    #[cfg(not(target_family = "wasm"))]
    proptest::proptest! {
        #[test]
        fn prerequisites_hold_on_any_text(text in "[0-9 A-Fa-fxX:.@()/+#-]{0,48}") {
            prerequisites_hold(&text);
        }

        /// Valid card numbers of every length, grouped and joined any way the pattern allows,
        /// among digits, dates and addresses.
        #[test]
        fn prerequisites_hold_for_card_numbers(
            prefix in "(4|5[1-5]|6011|65|3[47]|50|5[6-9]|6[0-9]|2[2-7])",
            body in "[0-9]{18}",
            len in 12usize..=19,
            cuts in proptest::collection::vec((1usize..6, "[ -]?"), 0..6),
            before in "[0-9a-z .:/-]{0,12}",
            after in "[0-9a-z .:/-]{0,12}",
        ) {
            let digits = format!("{prefix}{body}");
            let number = with_luhn_digit(digits.get(..len - 1).unwrap_or_default());
            let mut written = String::new();
            let mut at = 0;
            for (n, sep) in &cuts {
                let next = (at + n).min(number.len());
                written.push_str(number.get(at..next).unwrap_or_default());
                if next < number.len() {
                    written.push_str(sep);
                }
                at = next;
            }
            written.push_str(number.get(at..).unwrap_or_default());
            prerequisites_hold(&format!("{before}{written}{after}"));
        }

        /// IPv4 addresses among numbers, versions and dates.
        #[test]
        fn prerequisites_hold_for_ipv4_addresses(
            octets in proptest::collection::vec(0u16..300, 4..6),
            before in "[0-9a-z .:/-]{0,12}",
            after in "[0-9a-z .:/-]{0,12}",
        ) {
            let ip: Vec<String> = octets.iter().map(u16::to_string).collect();
            prerequisites_hold(&format!("{before}{}{after}", ip.join(".")));
        }

        #[test]
        fn has_digit_agrees_with_a_byte_loop(word in proptest::prelude::any::<[u8; 8]>()) {
            proptest::prop_assert_eq!(
                super::has_digit(u64::from_le_bytes(word)),
                word.iter().any(u8::is_ascii_digit)
            );
        }
    }
}
