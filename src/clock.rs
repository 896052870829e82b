//! Time as an injected dependency.
//!
//! Budgets, cooldowns and refill times all depend on "now". Production uses the
//! system clock; the engine takes "now" as a value, so the harness judges each
//! step at the suite's start plus its `at` offset ("delete four namespaces
//! within 30 seconds") without sleeping or a clock of its own.
//!
//! Durations are read and written the way people write them, in jiff's
//! "friendly" format: `500ms`, `4m 13s`, `1h 30m`.

use std::time::Duration;

use jiff::fmt::friendly::SpanPrinter;
use jiff::{SignedDuration, Span, SpanRelativeTo, SpanRound, Timestamp, Unit};

/// A source of the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// `at + by`, saturating at the end of representable time.
pub fn add(at: Timestamp, by: Duration) -> Timestamp {
    SignedDuration::try_from(by).ok().and_then(|by| at.checked_add(by).ok()).unwrap_or(Timestamp::MAX)
}

/// Formats a duration for people: `4m 13s`, rounded up to whole seconds.
pub fn human(duration: Duration) -> String {
    let seconds = duration.as_secs().saturating_add(u64::from(duration.subsec_nanos() > 0));
    human_exact(Duration::from_secs(seconds))
}

/// Formats a duration for people, to the nanosecond: `500ms`, `1h 30m`,
/// `2d 4h` (a day is 24 hours here).
pub fn human_exact(duration: Duration) -> String {
    static PRINTER: SpanPrinter = SpanPrinter::new();
    let in_days = Span::try_from(duration)
        .and_then(|span| span.round(SpanRound::new().largest(Unit::Day).days_are_24_hours()));
    match in_days {
        Ok(span) => PRINTER.span_to_string(&span),
        // Beyond the 20,000 years a span holds: in hours.
        Err(_) => PRINTER.unsigned_duration_to_string(&duration),
    }
}

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0}")]
    Malformed(String),
    /// Written like a duration, with numbers too large to hold.
    #[error("too long")]
    TooLong,
}

/// Reads a duration as people write one, in jiff's "friendly" format:
/// `500ms`, `10s`, `1h30m`, `1h 30m`, `2 days`, units from the largest
/// down; or `0`. A day is 24 hours and a week 7 days; months and years,
/// whose length varies, are refused.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let span: Span = text.parse().map_err(|error: jiff::Error| {
        if with_small_numbers(text).parse::<Span>().is_ok() {
            DurationError::TooLong
        } else {
            DurationError::Malformed(error.to_string())
        }
    })?;
    if span.is_negative() {
        return Err(DurationError::Malformed("a duration cannot be negative".to_owned()));
    }
    if span.get_years() != 0 || span.get_months() != 0 {
        return Err(DurationError::Malformed(
            "months and years have no fixed length: write days or weeks".to_owned(),
        ));
    }
    let duration = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|error| DurationError::Malformed(error.to_string()))?;
    Duration::try_from(duration).map_err(|error| DurationError::Malformed(error.to_string()))
}

/// `text` with every whole number written as `1` (fractions kept): if that
/// parses, only the size of the numbers was wrong.
fn with_small_numbers(text: &str) -> String {
    let mut small = String::with_capacity(text.len());
    let mut previous = ' ';
    let mut in_whole_number = false;
    for c in text.chars() {
        if !c.is_ascii_digit() {
            small.push(c);
        } else if !previous.is_ascii_digit() {
            in_whole_number = !matches!(previous, '.' | ',');
            small.push(if in_whole_number { '1' } else { c });
        } else if !in_whole_number {
            small.push(c);
        }
        previous = c;
    }
    small
}

/// The time from `from` until `to`, zero if `to` is not later.
pub fn until(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_rounds_up_to_whole_seconds() {
        assert_eq!(human(Duration::from_millis(252_100)), "4m 13s");
        assert_eq!(human(Duration::ZERO), "0s");
    }

    #[test]
    fn human_exact_keeps_fractions_and_counts_days() {
        assert_eq!(human_exact(Duration::from_millis(500)), "500ms");
        assert_eq!(human_exact(Duration::from_millis(1500)), "1s 500ms");
        assert_eq!(human_exact(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(human_exact(Duration::from_secs(2 * 86400 + 4 * 3600)), "2d 4h");
        assert_eq!(human_exact(Duration::MAX).split_once('h').map(|(hours, _)| hours.len()), Some(16));
    }

    #[test]
    fn parses_durations_as_people_write_them() {
        for (text, seconds) in [
            ("500ms", 0.5),
            ("10s", 10.0),
            ("1m", 60.0),
            ("10m", 600.0),
            ("1h", 3600.0),
            ("2h30m", 9000.0),
            ("2h 30m", 9000.0),
            ("1.5h", 5400.0),
            ("1hour 12min 5s", 4325.0),
            ("3 days", 259_200.0),
            ("2w", 1_209_600.0),
            ("0", 0.0),
            ("0s", 0.0),
        ] {
            assert_eq!(parse_duration(text), Ok(Duration::from_secs_f64(seconds)), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_duration_and_says_why() {
        let DurationError::Malformed(why) = parse_duration("ten minutes").unwrap_err() else { panic!() };
        assert!(why.contains("expected duration to start with a unit value"), "{why}");
        for text in ["", "10", "10x", "-5s", "5s ago", "30m 1h", "1y", "2mo", "1.1234567891s"] {
            assert!(matches!(parse_duration(text), Err(DurationError::Malformed(_))), "{text}");
        }
        for text in ["18446744073709551600s", "99999999999h", "99999999999999999999ns"] {
            assert_eq!(parse_duration(text), Err(DurationError::TooLong), "{text}");
        }
    }

    #[test]
    fn until_is_never_negative() {
        let a: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let b: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        assert_eq!(until(a, b), Duration::from_secs(10));
        assert_eq!(until(b, a), Duration::ZERO);
    }
}
