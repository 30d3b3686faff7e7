//! Untrusted text (from a card's record, a partition name, a config) made safe to print: no
//! terminal escape sequences, no control characters, no unbounded length.

/// `s` with every control character (ESC, CR, BEL ...) written as `\u{..}`, cut after 1000
/// characters.
pub fn printable(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == 1000 {
            out.push_str("...");
            break;
        }
        if c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// A hex number as people write it: `0x` or `0X` (required when `prefixed`, else optional),
/// then 1 to `max_digits` hex digits; `None` for anything else. The one hex reader of every
/// option and config value (MBR types, BOOT_ORDER, bootloader and UEFI values).
pub fn hex(s: &str, prefixed: bool, max_digits: usize) -> Option<u64> {
    let t = s.trim();
    let digits = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(d) => d,
        None if prefixed => return None,
        None => t,
    };
    if digits.is_empty()
        || digits.len() > max_digits.min(16)
        || !digits.chars().all(|c| c.is_ascii_hexdigit())
    {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// The first `n` of `items`, comma-separated and made printable, and how many more there are.
pub fn list_some(items: &[String], n: usize) -> String {
    let shown: Vec<String> = items.iter().take(n).map(|s| printable(s)).collect();
    match items.len().saturating_sub(n) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// Levenshtein's edit distance between `a` and `b` (by characters; each is cut at 256, so a
/// hostile name costs at most 64 Ki steps), for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().take(256).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().take(256).enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The one of `known` closest to `name` when it is a likely misspelling (at most 2 edits).
pub fn near<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_bidi_controls_are_shown_not_sent() {
        assert_eq!(printable("pi-beta"), "pi-beta");
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("x\ry\u{7}"), "x\\u{d}y\\u{7}");
        assert_eq!(printable("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(printable(&"x".repeat(5000)).len(), 1003);
    }

    #[test]
    fn hex_numbers_with_and_without_their_prefix() {
        assert_eq!(hex("0xf41", true, 8), Some(0xf41));
        assert_eq!(hex(" 0XEF ", true, 2), Some(0xef));
        assert_eq!(hex("ef", false, 2), Some(0xef));
        assert_eq!(hex("ef", true, 2), None);
        assert_eq!(hex("0x", true, 8), None);
        assert_eq!(hex("0x123", false, 2), None);
        assert_eq!(hex("0x+1", true, 8), None);
        assert_eq!(hex("0xffffffffffffffffff", true, 99), None);
    }
}
