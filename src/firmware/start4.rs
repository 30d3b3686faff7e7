//! Which start4.elf a firmware carries, read from the file itself: the VideoCore firmware's
//! build strings (`VC_BUILD_ID_TIME: Nov 26 2024` after a line of the same key with the time,
//! `VC_BUILD_ID_VERSION: <git hash> (clean)`), as fwupd's Raspberry Pi plugin reads them.
//!
//! Why it matters: with EEPROM 2025-02-11 or newer, a start4.elf built before 2025-01-16 does
//! not boot a GPT card (rpi-eeprom #668, #854); an MBR card, or a newer start4.elf, does.

use crate::util::text::printable;

/// The first start4.elf build date that boots a GPT card under EEPROM 2025-02-11 and newer.
pub const GPT_FIX: (u16, u8, u8) = (2025, 1, 16);

/// A start4.elf's build.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The build's version string (a git hash), when the file has one.
    pub version: Option<String>,
}

impl Build {
    /// The date as (year, month, day).
    pub fn ymd(&self) -> Option<(u16, u8, u8)> {
        let mut it = self.date.split('-').map(|p| p.parse::<u32>().ok());
        let (y, m, d) = (it.next()??, it.next()??, it.next()??);
        Some((
            u16::try_from(y).ok()?,
            u8::try_from(m).ok()?,
            u8::try_from(d).ok()?,
        ))
    }

    /// Whether this start4.elf is known to fail on a GPT card under a newer EEPROM.
    pub fn before_gpt_fix(&self) -> bool {
        self.ymd().is_some_and(|d| d < GPT_FIX)
    }
}

/// The printable text after each occurrence of `key` (at most 64 characters, up to a NUL).
fn values<'a>(elf: &'a [u8], key: &'a [u8]) -> impl Iterator<Item = String> + 'a {
    let mut at = 0;
    std::iter::from_fn(move || {
        let i = crate::util::find(elf.get(at..)?, key)?;
        let start = at + i + key.len();
        at = start;
        let v: Vec<u8> = elf[start..]
            .iter()
            .take(64)
            .take_while(|b| (0x20..0x7f).contains(*b))
            .copied()
            .collect();
        Some(String::from_utf8_lossy(&v).into_owned())
    })
    // A firmware holds a handful of these strings; more is no build string.
    .take(16)
}

/// A C `__DATE__` ("Aug 24 2020", "Aug  4 2020") as `YYYY-MM-DD`.
fn c_date(s: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = s.split_whitespace();
    let month = parts.next()?;
    let m = MONTHS.iter().position(|m| *m == month)? + 1;
    let d: u32 = parts.next()?.parse().ok()?;
    let y: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=31).contains(&d) || !(2000..=2200).contains(&y) {
        return None;
    }
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

/// The build of a start4.elf, when its build strings say it.
pub fn build_of(elf: &[u8]) -> Option<Build> {
    let date = values(elf, b"VC_BUILD_ID_TIME: ").find_map(|v| c_date(&v))?;
    let version = values(elf, b"VC_BUILD_ID_VERSION: ")
        .next()
        .map(|v| printable(v.trim()))
        .filter(|v| !v.is_empty());
    Some(Build { date, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(strings: &[u8]) -> Vec<u8> {
        let mut e = vec![0x7fu8, b'E', b'L', b'F'];
        e.extend(std::iter::repeat_n(0xAB, 5000));
        e.extend_from_slice(strings);
        e.extend(std::iter::repeat_n(0xCD, 5000));
        e
    }

    #[test]
    fn the_date_after_the_time_is_the_build_date() {
        let b = build_of(&elf(
            b"\0VC_BUILD_ID_TIME: 11:06:32\0VC_BUILD_ID_TIME: Aug 24 2020\0VC_BUILD_ID_VERSION: 4b5fe7b7 (clean)\0",
        ))
        .unwrap();
        assert_eq!(b.date, "2020-08-24");
        assert_eq!(b.version.as_deref(), Some("4b5fe7b7 (clean)"));
        assert!(b.before_gpt_fix());
        let b = build_of(&elf(b"\0VC_BUILD_ID_TIME: Jan  16 2025\0")).unwrap();
        assert_eq!(b.date, "2025-01-16");
        assert!(!b.before_gpt_fix(), "Jan 16 2025 boots");
        assert!(build_of(&elf(b"\0VC_BUILD_ID_TIME: 11:06:32\0")).is_none());
        assert!(build_of(&elf(b"no strings at all")).is_none());
        assert!(build_of(&elf(b"VC_BUILD_ID_TIME: Foo 99 1")).is_none());
        assert!(build_of(b"VC_BUILD_ID_TIME: ").is_none());
        // A hostile file: thousands of keys are read a bounded number of times.
        let many = b"VC_BUILD_ID_TIME: x\0".repeat(100_000);
        assert!(build_of(&many).is_none());
    }
}
