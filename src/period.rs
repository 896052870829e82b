//! Durations written the way operators write them: `30s`, `5m`, `1h 30m`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::clock::{self, DurationError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period(pub Duration);

/// Budget windows and cooldowns beyond a year are mistakes, and unbounded
/// ones would overflow time arithmetic.
const LONGEST: Period = Period(Duration::from_secs(366 * 24 * 60 * 60));

impl Period {
    pub const fn minutes(minutes: u64) -> Self {
        Self(Duration::from_secs(minutes * 60))
    }
}

impl std::str::FromStr for Period {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let too_long = || format!("{text:?} is longer than the longest period Defender accepts, {LONGEST}");
        match clock::parse_duration(text) {
            Ok(duration) if duration > LONGEST.0 => Err(too_long()),
            Ok(duration) => Ok(Period(duration)),
            Err(DurationError::TooLong) => Err(too_long()),
            Err(DurationError::Malformed(why)) => {
                Err(format!("{text:?} is not a duration like 30s, 5m or 1h ({why})"))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&clock::human(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operator_durations() {
        assert_eq!("10m".parse::<Period>().unwrap(), Period::minutes(10));
        assert_eq!("1h 30m".parse::<Period>().unwrap(), Period::minutes(90));
        assert!("ten minutes".parse::<Period>().unwrap_err().contains("not a duration"));
        assert!("18446744073709551600s".parse::<Period>().unwrap_err().contains("longest period"));
        assert!("400d".parse::<Period>().unwrap_err().contains("longest period"));
        assert!("400d".parse::<Period>().unwrap_err().ends_with("accepts, 366d"));
    }
}
