//! File timestamps on the card: DOS date and time in UTC, from SOURCE_DATE_EPOCH or a date.

/// A DOS timestamp (local time has no meaning on the card; pi-burn writes UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub min: u8,
    pub sec: u8,
}

impl Timestamp {
    pub fn date(year: u16, month: u8, day: u8) -> Self {
        Timestamp {
            year,
            month,
            day,
            hour: 0,
            min: 0,
            sec: 0,
        }
        .clamped()
    }

    /// From seconds since 1970-01-01 UTC (e.g. `SOURCE_DATE_EPOCH`).
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86400);
        let rem = secs.rem_euclid(86400);
        // Civil-from-days (proleptic Gregorian), after Howard Hinnant's published algorithm.
        let z = days + 719468;
        let era = z.div_euclid(146097);
        let doe = z - era * 146097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = if m <= 2 { y + 1 } else { y };
        Timestamp {
            year: y.clamp(0, 9999) as u16,
            month: m as u8,
            day: d as u8,
            hour: (rem / 3600) as u8,
            min: (rem / 60 % 60) as u8,
            sec: (rem % 60) as u8,
        }
        .clamped()
    }

    /// FAT can store 1980-01-01 to 2107-12-31.
    fn clamped(self) -> Self {
        if self.year < 1980 {
            Timestamp {
                year: 1980,
                month: 1,
                day: 1,
                hour: 0,
                min: 0,
                sec: 0,
            }
        } else if self.year > 2107 {
            Timestamp {
                year: 2107,
                month: 12,
                day: 31,
                hour: 23,
                min: 59,
                sec: 58,
            }
        } else {
            self
        }
    }

    /// The DOS (date, time) words of a directory entry.
    pub(super) fn dos(self) -> (u16, u16) {
        let date = ((self.year - 1980) << 9) | ((self.month as u16) << 5) | self.day as u16;
        let time = ((self.hour as u16) << 11) | ((self.min as u16) << 5) | (self.sec as u16 / 2);
        (date, time)
    }
}
