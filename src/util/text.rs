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
}
