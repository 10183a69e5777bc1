//! Sizes and times as docker reads and writes them: `--keep-storage 10GB` (binary units, as
//! docker's `RAMInBytes` reads them), `until=24h` (a Go duration or a timestamp), "2 weeks
//! ago", and Go's `time.Time` text ("2023-11-14 22:13:20 +0000 UTC").

use stagecraft_image::Timestamp;
use std::time::Duration;

/// Reads a size as docker's `--keep-storage`, `--shm-size` and `--memory` do (go-units'
/// `RAMInBytes`): a number, optionally with a fraction, then optionally `k`, `m`, `g`, `t` or
/// `p`, `i` and `b` in either case — all binary (`10GB` and `10GiB` are both 10 × 1024³),
/// and a bare number is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid size {text:?}: write a number of bytes, or one with a unit: 500MB, 10GB, 1.5GiB (k, m, g, t, p are 1024-based, as in docker)"
        )
    };
    let digits = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(invalid());
    }
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let mut rest = unit.as_str();
    let exponent = match rest.chars().next() {
        Some(c @ ('k' | 'm' | 'g' | 't' | 'p')) => {
            rest = &rest[1..];
            "kmgtp".find(c).map_or(0, |i| i + 1)
        }
        _ => 0,
    };
    rest = rest.strip_prefix('i').unwrap_or(rest);
    rest = rest.strip_prefix('b').unwrap_or(rest);
    if !rest.is_empty() {
        return Err(invalid());
    }
    let bytes = value * 1024f64.powi(exponent as i32);
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as u64)
}

/// A time `until=` or `before=`-style filter value: a Go duration before `now` (`24h`,
/// `90m`), an RFC 3339 timestamp, or Unix seconds.
pub fn parse_until(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Ok(Some(duration)) = stagecraft_dockerfile::parse_go_duration(text) {
        let secs = i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
        return Timestamp::from_unix(now.unix_secs().saturating_sub(secs), 0)
            .ok_or_else(|| format!("until={text}: too far back"));
    }
    if let Some(time) = Timestamp::parse(text) {
        return Ok(time);
    }
    if let Ok(secs) = text.parse::<i64>()
        && let Some(time) = Timestamp::from_unix(secs, 0)
    {
        return Ok(time);
    }
    Err(format!(
        "invalid time {text:?}: write a duration (24h, 90m) or a timestamp (2024-05-01T12:00:00Z, or Unix seconds)"
    ))
}

/// How long ago, as docker says it (go-units' `HumanDuration`): "2 weeks", "About an hour".
pub fn human_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let minutes = seconds / 60;
    // Hours round to the nearest, as go-units rounds them.
    let hours = (duration.as_secs_f64() / 3600.0 + 0.5) as u64;
    match () {
        _ if seconds < 1 => "Less than a second".to_owned(),
        _ if seconds == 1 => "1 second".to_owned(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".to_owned(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".to_owned(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// "2 weeks ago" for `time` seen at `now` (docker's `CREATED` column).
pub fn time_ago(time: Timestamp, now: Timestamp) -> String {
    let secs = now.unix_secs().saturating_sub(time.unix_secs()).max(0);
    format!("{} ago", human_duration(Duration::from_secs(secs as u64)))
}

/// Go's `time.Time.String()` in UTC, to the second: "2023-11-14 22:13:20 +0000 UTC" (docker's
/// `CreatedAt`).
pub fn go_time(time: Timestamp) -> String {
    let rfc3339 = Timestamp::from_unix(time.unix_secs(), 0)
        .unwrap_or(time)
        .to_string();
    format!(
        "{} +0000 UTC",
        rfc3339.trim_end_matches('Z').replacen('T', " ", 1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_docker_reads_them() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("10GB"), Ok(10 << 30));
        assert_eq!(parse_size("500MB"), Ok(500 << 20));
        assert_eq!(parse_size("500mb"), Ok(500 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("2k"), Ok(2048));
        assert_eq!(parse_size("3 m"), Ok(3 << 20));
        assert_eq!(parse_size("7b"), Ok(7));
        for bad in ["", "GB", "1.2.3", "10 GB!", "-1", "10XB", ".5G", "1e3"] {
            let error = parse_size(bad).unwrap_err();
            assert!(error.contains("500MB, 10GB, 1.5GiB"), "{bad}: {error}");
        }
    }

    #[test]
    fn durations_read_and_said_as_docker_does() {
        let now = Timestamp::from_unix(1_700_000_000, 0).unwrap();
        assert_eq!(
            parse_until("24h", now).unwrap().unix_secs(),
            1_700_000_000 - 86_400
        );
        assert_eq!(parse_until("1700000000", now).unwrap(), now);
        assert_eq!(
            parse_until("2023-11-14T22:13:20Z", now)
                .unwrap()
                .unix_secs(),
            1_700_000_000
        );
        assert!(parse_until("yesterday", now).unwrap_err().contains("24h"));
        let ago = |secs: i64| time_ago(Timestamp::from_unix(1_700_000_000 - secs, 0).unwrap(), now);
        assert_eq!(ago(0), "Less than a second ago");
        assert_eq!(ago(45), "45 seconds ago");
        assert_eq!(ago(90), "About a minute ago");
        assert_eq!(ago(3 * 3600), "3 hours ago");
        assert_eq!(ago(15 * 86_400), "2 weeks ago");
        assert_eq!(ago(90 * 86_400), "3 months ago");
        assert_eq!(ago(3 * 365 * 86_400), "3 years ago");
        assert_eq!(go_time(now), "2023-11-14 22:13:20 +0000 UTC");
    }
}
