//! Number parsers: integers and floats from CSV bytes, a word (8 bytes) at a
//! time where the field is short (SWAR), with thousands separators undone.

use super::*;

/// Field `col` of row `r` as one word and its length, when it is unquoted,
/// 1 to 8 bytes long, and the text has 8 bytes from its start.
#[inline(always)]
pub(super) fn short(chunk: &Chunk, text: &[u8], r: usize, col: usize) -> Option<(u64, usize)> {
    let (s, e) = chunk.text_range(r, col)?;
    (s < e && e - s <= 8).then_some(())?;
    Some((swar::word_at(text, s)?, e - s))
}

/// Field `col` of row `r` when it is an unquoted integer of up to 16 bytes
/// (`[+-]` and up to 8 digits, or 9 to 16 digits: the MTA's counters are 10).
#[inline(always)]
pub(super) fn int_field(chunk: &Chunk, text: &[u8], r: usize, col: usize) -> Option<i64> {
    let (s, e) = chunk.text_range(r, col)?;
    match e - s {
        1..=8 => int_word((swar::word_at(text, s)?, e - s)),
        n @ 9..=16 => {
            // The first 8 digits, and the last n - 8 (at the top of the word ending at `e`).
            let (head, k) = (swar::word_at(text, s)?, n - 8);
            let tail = swar::word_at(text, e - 8)? >> (8 * (8 - k));
            (swar::digits(head, u64::MAX) && swar::digits(tail, swar::low(u64::MAX, k))).then_some(())?;
            Some((swar::decimal(head, 8) * 10u64.pow(k as u32) + swar::decimal(tail, k)) as i64)
        }
        _ => None,
    }
}

/// A leading sign taken off a word of `n` bytes: (rest, its length, negative).
#[inline(always)]
pub(super) fn unsigned(w: u64, n: usize) -> (u64, usize, bool) {
    match w as u8 {
        b'-' => (w >> 8, n - 1, true),
        b'+' => (w >> 8, n - 1, false),
        _ => (w, n, false),
    }
}

/// `[+-]digits` in the first `n` bytes of `w`.
#[inline(always)]
pub(super) fn int_word((w, n): (u64, usize)) -> Option<i64> {
    let (w, n, neg) = unsigned(w, n);
    (n > 0 && swar::digits(w, swar::low(u64::MAX, n))).then_some(())?;
    let x = swar::decimal(w, n) as i64;
    Some(if neg { -x } else { x })
}

/// `[+-]digits[.digits]` (at most 8 bytes, so at most 7 significant digits:
/// the same exact division as [`parse_f64`]'s fast path).
#[inline(always)]
pub(super) fn float_word((w, n): (u64, usize)) -> Option<f64> {
    let (w, n, neg) = unsigned(w, n);
    if n == 0 {
        return None;
    }
    let w = swar::low(w, n);
    let dots = swar::zero_bytes(w ^ (b'.' as u64 * swar::ONES)) & swar::low(u64::MAX, n);
    let (digits, k, frac) = match dots {
        0 => (w, n, 0),
        d if d & (d - 1) == 0 => {
            // The bytes after the dot move down over it.
            let p = (d.trailing_zeros() / 8) as usize;
            let below = (1u64 << (8 * p)) - 1;
            (w & below | (w >> 8) & !below, n - 1, n - 1 - p)
        }
        _ => return None,
    };
    (k > 0 && swar::digits(digits, swar::low(u64::MAX, k))).then_some(())?;
    let x = swar::decimal(digits, k) as f64 / POW10[frac];
    Some(if neg { -x } else { x })
}

/// Integers, accepting the integral floats (`2.0`) that pandas-exported CSVs hold.
/// `"2,122"` -> `2122` for separator `,`: digit groups of three after the
/// first (1-3 digits), then an optional fraction; a number without
/// separators is fine too. `None` when the grouping is wrong (`"21,22"`).
pub(super) fn ungroup(v: &[u8], sep: u8) -> Option<Vec<u8>> {
    let (sign, body) = match v.first() {
        Some(b'-' | b'+') => (&v[..1], &v[1..]),
        _ => (&v[..0], v),
    };
    let int_end = body.iter().position(|&c| c == b'.' && sep != b'.').unwrap_or(body.len());
    let (int, frac) = body.split_at(int_end);
    let groups: Vec<&[u8]> = int.split(|&c| c == sep).collect();
    let ok = groups.iter().all(|g| !g.is_empty() && g.iter().all(u8::is_ascii_digit))
        && (groups.len() == 1 || groups[0].len() <= 3)
        && groups[1..].iter().all(|g| g.len() == 3);
    ok.then(|| [sign, &groups.concat(), frac].concat())
}

pub(super) fn grouped_name(ty: &str, sep: u8) -> String {
    format!("{ty} (thousands separator {:?})", sep as char)
}

pub(in crate::convert) fn parse_i64(v: &[u8]) -> Option<i64> {
    // Up to 18 plain digits cannot overflow: no checks per digit.
    if !v.is_empty() && v.len() <= 18 && v.iter().all(u8::is_ascii_digit) {
        return Some(v.iter().fold(0i64, |n, &c| n * 10 + (c - b'0') as i64));
    }
    let (neg, digits) = match v.first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    let (int, frac) = match digits.iter().position(|&c| c == b'.') {
        Some(i) => (&digits[..i], &digits[i + 1..]),
        None => (digits, &digits[digits.len()..]),
    };
    if int.is_empty() || !frac.iter().all(|&c| c == b'0') {
        return None;
    }
    let mut n: i64 = 0;
    for &c in int {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add((c - b'0') as i64)?;
    }
    Some(if neg { -n } else { n })
}

pub(super) const POW10: [f64; 16] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// Floats. Plain decimals of at most 15 significant digits (`12.5`, `.20`,
/// `-6.80`: nearly every value in real data) take an exact fast path: the
/// digits and the power of ten are both exact doubles, so one division gives
/// the correctly rounded result (Clinger). Anything else goes to `str::parse`.
pub(in crate::convert) fn parse_f64(v: &[u8]) -> Option<f64> {
    let (neg, body) = match v.first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let mut frac = 0usize;
    let mut seen_dot = false;
    let mut ok = !body.is_empty();
    for &c in body {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + (c - b'0') as u64;
                digits += 1;
                frac += seen_dot as usize;
                if digits > 15 {
                    ok = false;
                    break;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => {
                ok = false;
                break;
            }
        }
    }
    if ok && digits > 0 {
        let x = mantissa as f64 / POW10[frac];
        return Some(if neg { -x } else { x });
    }
    std::str::from_utf8(v).ok()?.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_match_the_standard_parser() {
        for s in [
            "0",
            "12.5",
            ".20",
            "-6.80",
            "+3.",
            "123456789012345",
            "1234567890.12345",
            "0.1",
            "2.675",
            "-0.0",
            "1e3",
            "1234567890123456.7",
            "nan",
            "inf",
            "12.34.5",
            "",
            "-",
            ".",
        ] {
            let std = s.parse::<f64>().ok();
            assert_eq!(parse_f64(s.as_bytes()).map(f64::to_bits), std.map(f64::to_bits), "{s:?}");
        }
        // Every cent amount up to 10,000.00 rounds exactly like the standard parser.
        for cents in 0..1_000_000u64 {
            let s = format!("{}.{:02}", cents / 100, cents % 100);
            assert_eq!(parse_f64(s.as_bytes()), s.parse::<f64>().ok(), "{s}");
        }
    }

    /// `s` as the word readers see it: followed by other bytes of the text.
    fn word(s: &str) -> (u64, usize) {
        let mut w = *b",9.-e+ \n";
        w[..s.len()].copy_from_slice(s.as_bytes());
        (u64::from_le_bytes(w), s.len())
    }

    #[test]
    fn short_numbers_read_as_one_word_match_the_standard_parsers() {
        let samples = [
            "0", "5", "12.5", ".20", "-6.80", "+3.", "5.", "-0", "-0.0", "2.675", "1234567", "12345678", "9999999.",
            "1e3", "1.2.3", ".", "-", "+", "-.", " 5", "5 ", "1,5", "0x10", "--1", "1-", "nan", "inf", "",
        ];
        for s in samples.iter().filter(|s| !s.is_empty()) {
            // A refusal is fine (the byte parsers then decide); a value must be the standard one.
            if let Some(x) = float_word(word(s)) {
                assert_eq!(Some(x.to_bits()), s.parse::<f64>().ok().map(f64::to_bits), "{s:?}");
            }
            if let Some(x) = int_word(word(s)) {
                assert_eq!(Some(x), s.parse::<i64>().ok(), "{s:?}");
            }
        }
        // What real files hold is read by the word readers, not refused.
        for cents in (0..10_000_000u64).step_by(7) {
            let s = format!("{}.{:02}", cents / 100, cents % 100);
            assert_eq!(float_word(word(&s)), s.parse::<f64>().ok(), "{s}");
            let neg = format!("-{s}");
            if neg.len() <= 8 {
                assert_eq!(float_word(word(&neg)), neg.parse::<f64>().ok(), "{neg}");
            }
        }
        for n in [0i64, 1, 9, 10, 265, 99_999_999, -1, -9_999_999] {
            assert_eq!(int_word(word(&n.to_string())), Some(n));
        }
    }
}
