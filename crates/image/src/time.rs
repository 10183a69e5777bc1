//! Timestamps as Go's `time.Time` writes them in JSON (RFC 3339 with up to
//! nine fractional digits, trailing zeros trimmed, `Z` for UTC).

use std::fmt;

/// A UTC instant with nanosecond precision, formatted exactly like Go's
/// `time.Time.MarshalJSON` (`time.RFC3339Nano`) so that `created` fields,
/// and with them config digests, match BuildKit's. The default is the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

const NANOS_PER_SEC: u32 = 1_000_000_000;
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the years Go can marshal.
const MIN_SECS: i64 = -62_167_219_200;
const MAX_SECS: i64 = 253_402_300_799;

impl Timestamp {
    /// The instant `secs` seconds (plus `nanos`) after the Unix epoch.
    /// `None` outside the years 0000–9999 (Go refuses to marshal those) or
    /// when `nanos` is not below one second.
    pub fn from_unix(secs: i64, nanos: u32) -> Option<Self> {
        ((MIN_SECS..=MAX_SECS).contains(&secs) && nanos < NANOS_PER_SEC)
            .then_some(Timestamp { secs, nanos })
    }

    /// The current time (`None` only if the clock is before 1970).
    pub fn now() -> Option<Self> {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Timestamp::from_unix(i64::try_from(since.as_secs()).ok()?, since.subsec_nanos())
    }

    /// Seconds since the Unix epoch.
    pub fn unix_secs(&self) -> i64 {
        self.secs
    }

    /// The sub-second part, in nanoseconds.
    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    /// Parses RFC 3339 (`2024-05-01T12:34:56.5+02:00`, `…Z`), as Go's
    /// `time.Time.UnmarshalJSON` accepts it, converting to UTC. Returns
    /// `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let num = |range: std::ops::Range<usize>| -> Option<i64> {
            let part = bytes.get(range)?;
            part.iter().all(u8::is_ascii_digit).then_some(())?;
            std::str::from_utf8(part).ok()?.parse().ok()
        };
        let sep = |at: usize, expected: &[u8]| bytes.get(at).is_some_and(|b| expected.contains(b));
        if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
            return None;
        }
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let mut rest = &text[19..];
        let mut nanos = 0u32;
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return None;
            }
            let padded = format!("{:0<9}", &fraction[..digits]);
            nanos = padded.parse().ok()?;
            rest = &fraction[digits..];
        }
        let offset = match rest {
            "Z" | "z" => 0,
            _ => {
                let rb = rest.as_bytes();
                if rb.len() != 6 || rb[3] != b':' {
                    return None;
                }
                let sign = match rb[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let hours: i64 = rest.get(1..3)?.parse().ok()?;
                let minutes: i64 = rest.get(4..6)?.parse().ok()?;
                if hours > 23 || minutes > 59 {
                    return None;
                }
                sign * (hours * 3600 + minutes * 60)
            }
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
        Timestamp::from_unix(secs, nanos)
    }
}

impl fmt::Display for Timestamp {
    /// `2006-01-02T15:04:05.999999999Z`, trailing fractional zeros trimmed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.secs.div_euclid(86_400);
        let of_day = self.secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            of_day / 3600,
            of_day % 3600 / 60,
            of_day % 60
        )?;
        if self.nanos != 0 {
            let fraction = format!("{:09}", self.nanos);
            write!(f, ".{}", fraction.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil-calendar algorithms (public domain), proleptic
// Gregorian, day 0 = 1970-01-01.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano() {
        for (secs, nanos, expected) in [
            (0, 0, "1970-01-01T00:00:00Z"),
            (1_714_566_896, 123_456_789, "2024-05-01T12:34:56.123456789Z"),
            (1_714_566_896, 500_000_000, "2024-05-01T12:34:56.5Z"),
            (951_782_400, 10, "2000-02-29T00:00:00.00000001Z"),
            (-1, 0, "1969-12-31T23:59:59Z"),
            (MIN_SECS, 0, "0000-01-01T00:00:00Z"),
            (MAX_SECS, 999_999_999, "9999-12-31T23:59:59.999999999Z"),
        ] {
            assert_eq!(
                Timestamp::from_unix(secs, nanos).unwrap().to_string(),
                expected
            );
        }
        assert!(Timestamp::from_unix(MAX_SECS + 1, 0).is_none());
        assert!(Timestamp::from_unix(0, NANOS_PER_SEC).is_none());
    }

    #[test]
    fn parses_offsets_and_rejects_garbage() {
        let t = Timestamp::parse("2024-05-01T14:34:56.5+02:00").unwrap();
        assert_eq!(t.to_string(), "2024-05-01T12:34:56.5Z");
        assert_eq!(
            Timestamp::parse("1970-01-01T00:00:00Z")
                .unwrap()
                .unix_secs(),
            0
        );
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01 12:34:56Z",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T12:34:56",
            "2024-05-01T12:34:56.Z",
            "2024-05-01T12:34:56.1234567890Z",
            "2024-05-01T12:34:56+0200",
        ] {
            assert!(Timestamp::parse(bad).is_none(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(secs in MIN_SECS..=MAX_SECS, nanos in 0..NANOS_PER_SEC) {
            let t = Timestamp::from_unix(secs, nanos).unwrap();
            prop_assert_eq!(Timestamp::parse(&t.to_string()), Some(t));
        }
    }
}
