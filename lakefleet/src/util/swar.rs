//! Eight bytes at a time in a `u64` ("SIMD within a register"): the CSV
//! splitter's delimiter search, the fixed-layout date check and the short
//! number parsers. Words are little-endian: byte 0 of the text is the low byte.

/// `0x01` in every byte: `b * ONES` is `b` in every byte.
pub const ONES: u64 = 0x0101_0101_0101_0101;

/// High bit set in each byte of `t` that is zero (exact: no false positives).
#[inline(always)]
pub fn zero_bytes(t: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    !(((t & LOW7) + LOW7) | t | LOW7)
}

/// Whether every byte of `w` selected by `mask` (`0xff` bytes) is an ASCII digit.
/// A digit is `0x3_` and stays `0x3_` with 6 added; a carry out of a byte above
/// `0xf9` can only make the test fail, and that byte fails it anyway.
#[inline(always)]
pub fn digits(w: u64, mask: u64) -> bool {
    let (zeros, high) = ((0x30 * ONES) & mask, (0xf0 * ONES) & mask);
    w & high == zeros && w.wrapping_add(6 * ONES) & high == zeros
}

/// The first `n` (1..=8) bytes of `w`, the rest zeroed.
#[inline(always)]
pub fn low(w: u64, n: usize) -> u64 {
    w & (u64::MAX >> (64 - 8 * n))
}

/// The number written by the `k` (1..=8) ASCII digits at the start of `w`
/// (checked by the caller), most significant first.
#[inline(always)]
pub fn decimal(w: u64, k: usize) -> u64 {
    // Digit values, right-aligned so that leading zero bytes are leading zeros.
    let mut v = low(w ^ (0x30 * ONES), k) << (8 * (8 - k));
    // Pairs, then quadruples, then the eight (fast_float's reduction).
    v = v.wrapping_mul(10).wrapping_add(v >> 8);
    const MASK: u64 = 0x0000_00ff_0000_00ff;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    (v & MASK).wrapping_mul(MUL1).wrapping_add((v >> 16 & MASK).wrapping_mul(MUL2)) >> 32
}

/// `text[at..at + 8]` as a word, when the text has 8 bytes there.
#[inline(always)]
pub fn word_at(text: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(text.get(at..at + 8)?.try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(s: &[u8]) -> u64 {
        let mut w = [0xaau8; 8];
        w[..s.len()].copy_from_slice(s);
        u64::from_le_bytes(w)
    }

    #[test]
    fn decimals_of_one_to_eight_digits() {
        for s in ["0", "7", "42", "007", "1234", "99999", "123456", "9876543", "12345678", "99999999"] {
            let w = word(s.as_bytes());
            assert!(digits(w, low(u64::MAX, s.len())), "{s}");
            assert_eq!(decimal(w, s.len()), s.parse::<u64>().unwrap(), "{s}");
        }
    }

    #[test]
    fn digits_refuses_every_other_byte() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut s = *b"12345678";
                s[at] = b;
                assert_eq!(digits(word(&s), u64::MAX), b.is_ascii_digit(), "byte {b:#x} at {at}");
            }
        }
    }
}
