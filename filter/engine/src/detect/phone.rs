//! Phone numbers: a candidate run of digits and separators is read the way people write numbers
//! and checked against the world's numbering plans ([`super::phone_plan`], generated from
//! libphonenumber's metadata).
//!
//! An extension (`x2719`, `ext. 12`, `#5`) is kept in the span but not counted. A number written
//! internationally (`+`, `00`, `011`, `001-`) needs a calling code, and a national significant
//! number of a length and two leading digits that the code's plan allows (a `(0)` or written
//! trunk prefix is skipped). A number written nationally needs a region whose plan fits: the
//! NANP's ten digits (area code and exchange not starting with 0 or 1), or a trunk prefix
//! (`0`, `8`) and a national number that fits some plan using it, or a national number of a
//! plan without trunk prefix. Dates, times, versions and thousands-grouped amounts are
//! refused by shape; forms that are also common for other numbers (a bare digit run, a
//! thousands-like grouping, a national form with no trunk prefix) count only next to a phone
//! word in one of the supported languages.

use super::phone_plan::{CallingCode, NationalPlan, CALLING_CODES, NATIONAL_PLANS};
use crate::normalize::{ceil_boundary, floor_boundary};

/// Words that announce a phone number, lowercase (CJK as written).
const CONTEXT: &[&str] = &[
    "phone",
    "tel",
    "call",
    "mobile",
    "cell",
    "whatsapp",
    "fax",
    "contact",
    "reach",
    "text me",
    "sms",
    "voicemail",
    "dial",
    "landline",
    "hotline",
    "helpline",
    "ring",
    "handy",
    "mobil",
    "ruf",
    "anruf",
    "portable",
    "appel",
    "joindre",
    "téléphone",
    "teléfono",
    "telefono",
    "telefone",
    "telefoon",
    "llam",
    "celular",
    "cellulare",
    "chiam",
    "ligue",
    "ligar",
    "contato",
    "contacto",
    "contatto",
    "kontakt",
    "bel ",
    "gsm",
    "telefon",
    "puhelin",
    "tlf",
    "тел",
    "звон",
    "моб",
    "電話",
    "电话",
    "手机",
    "手機",
    "携帯",
    "連絡",
    "联系",
    "聯絡",
    "전화",
    "연락",
    "휴대",
];

/// A candidate read into its parts.
struct Written<'a> {
    /// The number without its extension.
    main: &'a str,
    /// Its digits.
    digits: String,
    /// Digit groups as written (lengths), parentheses and separators ignored.
    groups: Vec<usize>,
    international: bool,
    /// Digits of an international prefix (`00`, `011`) at the start of `digits`.
    exit_digits: usize,
    /// A `(0)` after the calling code: that zero is a trunk prefix, not part of the number.
    paren_zero: bool,
    parens: bool,
}

fn read(m: &str) -> Written<'_> {
    let main = m
        .char_indices()
        .find(|&(i, c)| {
            matches!(c, 'x' | 'X' | '#' | 'e' | 'E')
                && m.get(i..).is_some_and(|rest| {
                    let r = rest.to_ascii_lowercase();
                    r.starts_with('x') || r.starts_with('#') || r.starts_with("ext")
                })
        })
        .map_or(m, |(i, _)| m.get(..i).unwrap_or(m))
        .trim_end();
    let digits: String = main.chars().filter(char::is_ascii_digit).collect();
    let mut groups = Vec::new();
    let mut run = 0usize;
    for c in main.chars() {
        if c.is_ascii_digit() {
            run += 1;
        } else if run > 0 {
            groups.push(run);
            run = 0;
        }
    }
    if run > 0 {
        groups.push(run);
    }
    let international = main.starts_with('+');
    let exit_digits = if international {
        0
    } else if digits.starts_with("011") && groups.first() == Some(&3) {
        3
    } else if digits.starts_with("00") && !digits.starts_with("000") {
        2
    } else {
        0
    };
    Written {
        main,
        international: international || exit_digits > 0,
        exit_digits,
        paren_zero: main.contains("(0)"),
        parens: main.contains('('),
        groups,
        digits,
    }
}

/// Whether a national significant number has a length the plan allows and, unless the number
/// is written in groups (where the grouping already says "phone number" and a possible length
/// is enough, as libphonenumber's "possible" check), two leading digits the plan allows.
fn plan_fits(lengths: u32, lead2: u128, nsn: &str, grouped: bool) -> bool {
    let n = nsn.len();
    if !(2..=17).contains(&n) || lengths & (1 << n) == 0 {
        return false;
    }
    if grouped {
        return true;
    }
    let p: u32 = nsn.get(..2).and_then(|p| p.parse().ok()).unwrap_or(100);
    p < 100 && lead2 & (1u128 << p) != 0
}

fn calling_code(code: u16) -> Option<&'static CallingCode> {
    CALLING_CODES
        .binary_search_by_key(&code, |c| c.code)
        .ok()
        .and_then(|i| CALLING_CODES.get(i))
}

/// An internationally written number: some calling code whose plan fits the rest. A number
/// written with `+` and in groups is accepted on its length alone (8 to 15 digits, E.164) when
/// no plan fits: the `+` says what it is, and randomly filled test numbers often break plans.
fn international_fits(w: &Written<'_>) -> bool {
    let rest = w.digits.get(w.exit_digits..).unwrap_or("");
    let planned = (1..=3).any(|k| {
        let (Some(cc), Some(nsn)) = (rest.get(..k), rest.get(k..)) else {
            return false;
        };
        let Some(plan) = cc.parse().ok().and_then(calling_code) else {
            return false;
        };
        let fits = |n: &str| plan_fits(plan.lengths, plan.lead2, n, w.groups.len() > 2);
        // a trunk zero written after the code, "(0)" or plain, is not part of the number
        fits(nsn) || ((w.paren_zero || nsn.starts_with('0')) && fits(nsn.get(1..).unwrap_or("")))
    });
    let len = rest.len().saturating_sub(usize::from(w.paren_zero));
    planned
        || (w.main.starts_with('+') && (8..=15).contains(&len) && (w.groups.len() > 1 || len >= 10))
}

/// The NANP's ten digits: area code and exchange start with 2–9.
fn nanp(digits: &str) -> bool {
    let d = digits.as_bytes();
    d.len() == 10 && d.first().is_some_and(|b| *b >= b'2') && d.get(3).is_some_and(|b| *b >= b'2')
}

/// A nationally written number that some region's plan allows: the trunk prefix that region
/// writes before it (`""` for none).
fn national_fits(digits: &str, grouped: bool) -> Option<&'static str> {
    let mut plain = false;
    for p in NATIONAL_PLANS.iter() {
        let NationalPlan {
            trunk,
            lengths,
            lead2,
            ..
        } = p;
        if !trunk.is_empty() {
            if let Some(nsn) = digits.strip_prefix(trunk) {
                // only the common trunk 0 is a signal of its own; "8" and "1" start many numbers
                if plan_fits(*lengths, *lead2, nsn, grouped && *trunk == "0") {
                    return Some(trunk);
                }
            }
        } else if plan_fits(*lengths, *lead2, digits, grouped) {
            plain = true;
        }
    }
    plain.then_some("")
}

/// Dates, times, versions and IPv4 addresses written with the separators phone numbers use.
fn date_like(w: &Written<'_>) -> bool {
    let g = w.groups.as_slice();
    let seps: String = w
        .main
        .chars()
        .filter(|c| !c.is_ascii_digit() && !c.is_whitespace())
        .collect();
    let one_kind = seps.chars().all(|c| seps.starts_with(c));
    let dotted_quad = g.len() == 4 && g.iter().all(|&n| n <= 3) && seps == "...";
    dotted_quad
        || (matches!(
            g,
            [4, 2, 2] | [2, 2, 4] | [1 | 2, 1 | 2, 4] | [4, 1 | 2, 1 | 2] | [1 | 2, 1 | 2, 2]
        ) && one_kind
            && !seps.is_empty())
}

/// Thousands grouping as amounts are written: a first group of one to three digits not
/// starting with 0, then groups of exactly three, separated by spaces, dots or commas.
fn thousands_like(w: &Written<'_>) -> bool {
    let amount_separators = w
        .main
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .all(|c| matches!(c, ' ' | '.' | ',' | '\u{a0}'));
    match w.groups.split_first() {
        Some((first, rest)) => {
            amount_separators
                && !w.digits.starts_with('0')
                && (1..=3).contains(first)
                && rest.len() >= 2
                && rest.iter().all(|&g| g == 3)
        }
        None => false,
    }
}

fn has_context(text: &str, start: usize, end: usize) -> bool {
    let lo = floor_boundary(text, start.saturating_sub(64));
    let hi = ceil_boundary(text, end + 24);
    let near = |s: &str| {
        let s = s.to_lowercase();
        CONTEXT.iter().any(|w| s.contains(w))
    };
    text.get(lo..start).is_some_and(near) || text.get(end..hi).is_some_and(near)
}

fn han_nearby(text: &str, start: usize, end: usize) -> bool {
    let lo = floor_boundary(text, start.saturating_sub(30));
    let hi = ceil_boundary(text, end + 30);
    let han = |s: &str| s.chars().any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c));
    text.get(lo..start).is_some_and(han) || text.get(end..hi).is_some_and(han)
}

/// Whether `text[start..end]` is a phone number (see the module docs).
pub fn valid_phone(text: &str, start: usize, end: usize) -> bool {
    let Some(m) = text.get(start..end) else {
        return false;
    };
    let before = start
        .checked_sub(1)
        .and_then(|i| text.as_bytes().get(i).copied());
    let after = text.as_bytes().get(end).copied();
    if before.is_some_and(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b'#' | b'.' | b'-' | b':' | b'=')
    }) || after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        || (after == Some(b'.') && text.as_bytes().get(end + 1).is_some_and(u8::is_ascii_digit))
        || matches!(after, Some(b':' | b'%'))
    {
        return false;
    }
    // part of a longer run of numbers: "3313 0189 5159 5767", "18 29 30 32", "1 234,56"
    let bytes = text.as_bytes();
    let sep = |b: Option<&u8>| matches!(b, Some(b' ' | b'.' | b'-' | b'/'));
    let digit = |b: Option<&u8>| b.is_some_and(u8::is_ascii_digit);
    if (start >= 2 && sep(bytes.get(start - 1)) && digit(bytes.get(start - 2)))
        || (matches!(after, Some(b',' | b'.')) && digit(bytes.get(end + 1)))
    {
        return false;
    }
    let w = read(m);
    let n = w.digits.len();
    if !(7..=17).contains(&n) || date_like(&w) || w.main.contains(':') {
        return false;
    }
    if w.digits.bytes().all(|d| Some(d) == w.digits.bytes().next()) {
        return false;
    }
    // SSN-shaped (123-45-6789) is never read as a phone number
    if w.groups == [3, 2, 4] && w.main.contains('-') {
        return false;
    }
    if w.international && international_fits(&w) {
        return true;
    }
    if w.main.starts_with('+') {
        return false;
    }
    if paren_calling_code(&w) {
        return true;
    }
    let grouped = w.groups.len() > 1 || w.parens;
    let context = || has_context(text, start, end);
    // NANP: 3-3-4 as people write it (any digits: the shape is the signal), optionally after
    // `1-`, or ten digits of a valid area code and exchange next to a phone word
    let nanp_digits = match w.digits.strip_prefix('1') {
        Some(rest) if n == 11 && w.groups.first() == Some(&1) => rest,
        _ => w.digits.as_str(),
    };
    let shaped = matches!(w.groups.as_slice(), [3, 3, 4] | [1, 3, 3, 4]) && !w.main.contains('/');
    // the Russian and Kazakh trunk 8 before an NANP-like 3-3-4: "8 626 120 5382"
    if shaped && n == 11 && w.groups.first() == Some(&1) && w.digits.starts_with('8') {
        return true;
    }
    if nanp_digits.len() == 10 && (shaped || (nanp(nanp_digits) && context())) {
        return true;
    }
    if !phone_shaped(&w) {
        return false;
    }
    // a Chinese mobile number, written as one run of eleven digits: in Chinese text or next
    // to a phone word, or on its own when its first three digits are a mobile network's
    if n == 11
        && !grouped
        && w.digits.starts_with('1')
        && w.digits.as_bytes().get(1).is_some_and(|b| *b >= b'3')
        && ((cn_mobile_prefix(&w.digits) && !label_before(text, start))
            || han_nearby(text, start, end)
            || context())
    {
        return true;
    }
    // groupings that are how mobile numbers are written and amounts are not
    // ("512 345 678" with no unit or currency beside it, "12 34 56 78")
    if spaced_mobile_shape(&w) && !amount_beside(text, start, end) && !in_number_table(text, start)
    {
        return true;
    }
    // thousands grouping ("299 792 458", "968.973.217") is an amount unless a phone word says
    // otherwise
    if thousands_like(&w) && !context() {
        return false;
    }
    match national_fits(&w.digits, w.groups.len() > 1) {
        // without a trunk prefix, the grouping has to look like a phone number's, or a phone
        // word be near
        Some("") => (context() && n >= 8) || (grouped && plain_national_shape(&w)),
        // a trunk prefix ("0151 …", "8 (495) …") is how numbers, not amounts, are written; a
        // bare run needs the common trunk 0 and ten digits or more
        Some(trunk) => grouped || (trunk == "0" && n >= 9) || context(),
        None => false,
    }
}

/// A calling code in parentheses without `+` ("(351) 912 345 678"): the code must exist and the
/// rest fit its plan strictly (length and leading digits), as an area code in parentheses
/// would not.
fn paren_calling_code(w: &Written<'_>) -> bool {
    let Some(inner) = w
        .main
        .strip_prefix('(')
        .and_then(|r| r.split_once(')'))
        .map(|(code, _)| code)
    else {
        return false;
    };
    let Some(plan) = inner.parse().ok().and_then(calling_code) else {
        return false;
    };
    let nsn = w.digits.get(inner.len()..).unwrap_or("");
    inner.len() <= 3
        && inner.bytes().all(|b| b.is_ascii_digit())
        && plan_fits(plan.lengths, plan.lead2, nsn, false)
}

/// The first three digits of Chinese mobile numbers (13x, 145–149, 15x but 154, 16[25–7],
/// 17[0–35–8], 18x, 19x but 194), as libphonenumber's CN mobile pattern allows.
fn cn_mobile_prefix(digits: &str) -> bool {
    let d = digits.as_bytes();
    let (Some(b'1'), Some(&two), Some(&three)) = (d.first(), d.get(1), d.get(2)) else {
        return false;
    };
    match two {
        b'3' | b'8' => true,
        b'4' => matches!(three, b'5'..=b'9'),
        b'5' => three != b'4',
        b'6' => matches!(three, b'2' | b'5'..=b'7'),
        b'7' => matches!(three, b'0'..=b'3' | b'5'..=b'8'),
        b'9' => three != b'4',
        _ => false,
    }
}

/// Space-separated groupings that mobile numbers have: three groups of three not starting with
/// 0 ("512 345 678", Poland, Portugal, Spain), or four pairs ("12 34 56 78", Denmark, Norway),
/// whose digits some plan without a trunk prefix allows by length and leading digits.
fn spaced_mobile_shape(w: &Written<'_>) -> bool {
    let spaced = w.main.chars().all(|c| c.is_ascii_digit() || c == ' ');
    let shape = matches!(w.groups.as_slice(), [3, 3, 3] | [2, 2, 2, 2]);
    spaced
        && shape
        && !w.digits.starts_with('0')
        && NATIONAL_PLANS
            .iter()
            .any(|p| p.trunk.is_empty() && plan_fits(p.lengths, p.lead2, &w.digits, false))
}

/// A currency, unit or percent sign right after a number ("299 792 458 m/s", "512 345 678 zł"),
/// or a label before it that makes it an amount or an identifier ([`label_before`]).
fn amount_beside(text: &str, start: usize, end: usize) -> bool {
    let after = text.get(end..).unwrap_or("").trim_start_matches(' ');
    after.chars().next().is_some_and(|c| {
        c.is_alphanumeric() || matches!(c, '%' | '$' | '€' | '£' | '¥' | '₽' | '₺' | '₩')
    }) || label_before(text, start)
}

/// The word before a number is another number or a one-letter unit, as in tables and dumps
/// ("7B 80 02 01 41", "t 100 478 578").
fn in_number_table(text: &str, start: usize) -> bool {
    let before = text
        .get(..start)
        .unwrap_or("")
        .trim_end_matches([' ', '\t']);
    let word = before.rsplit([' ', '\t', '\n']).next().unwrap_or("");
    word.chars().any(|c| c.is_ascii_digit())
        || (word.chars().count() == 1 && word.chars().all(char::is_alphabetic))
}

/// A currency sign, `#` or `№` just before a number, or a word that labels it as an amount or
/// an identifier ("SKU", "order", "EUR", "no.").
fn label_before(text: &str, start: usize) -> bool {
    const LABELS: &[&str] = &[
        "eur",
        "usd",
        "pln",
        "gbp",
        "chf",
        "dkk",
        "nok",
        "sek",
        "zł",
        "kr",
        "r$",
        "no",
        "nr",
        "n°",
        "id",
        "ref",
        "sku",
        "ean",
        "upc",
        "isbn",
        "serial",
        "part",
        "order",
        "invoice",
        "tracking",
        "account",
        "acct",
        "total",
        "population",
    ];
    let before = text.get(..start).unwrap_or("").trim_end_matches(' ');
    match before.chars().next_back() {
        Some('$' | '€' | '£' | '¥' | '₽' | '₺' | '₩' | '#' | '№') => true,
        Some(c) if c.is_alphabetic() || c == '.' || c == ':' => {
            let word = before
                .rsplit(' ')
                .next()
                .unwrap_or("")
                .trim_end_matches(['.', ':'])
                .to_lowercase();
            LABELS.contains(&word.as_str())
        }
        _ => false,
    }
}

/// Shapes that other numbers have and phone numbers do not: a one-digit group after the first
/// (versions, ISBNs, lottery draws), ZIP+4, a year in front (`2021-01-…`, `1996/02/23`), an
/// IPv4 address in front.
fn phone_shaped(w: &Written<'_>) -> bool {
    let g = w.groups.as_slice();
    let inner_single = g.iter().skip(1).any(|&n| n == 1);
    let zip4 = g == [5, 4] && w.main.contains('-');
    let year = g.len() > 1
        && g.first() == Some(&4)
        && (w.digits.starts_with("19") || w.digits.starts_with("20"))
        && (w.main.contains('-') || w.main.contains('/'));
    let quad = g.len() > 4
        && g.iter().take(4).all(|&n| n <= 3)
        && w.main.split(|c: char| !c.is_ascii_digit()).take(4).count() == 4
        && w.main.matches('.').count() >= 3;
    !(inner_single || zip4 || year || quad)
}

/// A national number with no trunk prefix and no phone word: three or more groups of two to
/// four digits, 9 to 11 digits, not all fours (references, card fragments), not an amount.
fn plain_national_shape(w: &Written<'_>) -> bool {
    let g = w.groups.as_slice();
    let n = w.digits.len();
    (9..=11).contains(&n)
        && g.len() >= 3
        && g.iter().all(|&k| (2..=4).contains(&k))
        && !g.iter().all(|&k| k == 4)
}
