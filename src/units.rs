//! Durations (`90s`, `30m`, `4h`) and rates (`2/s`, `30/m`) as users write them, parsed once.

use std::fmt;
use std::time::Duration;

/// The longest duration soak accepts anywhere (a run, a ramp, a timeout, an interval):
/// a year and a day. Longer is a typo, and timers adding it to "now" would overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses a duration such as `90s`, `30m`, `4h`, `1h 30m` or `250ms`, at most
/// [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|err| {
        format!("invalid duration `{text}` ({err}): expected a number and a unit, like 90s, 30m, 4h or 250ms")
    })?;
    if d > MAX_DURATION {
        return Err(format!(
            "duration `{}` is out of range: at most 366 days (0s to 366d)",
            text.trim()
        ));
    }
    Ok(d)
}

/// Parses a number of hours (`4`, `0.5`, `0.005`) into a duration.
pub fn parse_hours(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid hours `{text}`: expected a positive number, like 4 or 0.5");
    let hours: f64 = text.trim().parse().map_err(|_| bad())?;
    if !hours.is_finite() || hours <= 0.0 || hours > 24.0 * 365.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(hours * 3600.0))
}

/// Parses a percentage, `10%` or `10` (both ten percent), into a ratio (0.10).
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let bad = || format!("invalid percentage `{text}`: expected a number like 10% or 2.5%");
    let number = text.trim().trim_end_matches('%').trim();
    let pct: f64 = number.parse().map_err(|_| bad())?;
    if !(0.0..=1000.0).contains(&pct) {
        return Err(bad());
    }
    Ok(pct / 100.0)
}

/// Writes a duration the way users write it (`1h 30m`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A message rate per user. `0/s` means the user holds its connection and sends nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Messages per second (finite, ≥ 0).
    pub per_second: f64,
}

impl Rate {
    /// The time between two sends, or `None` when the rate is zero.
    pub fn period(self) -> Option<Duration> {
        (self.per_second > 0.0).then(|| Duration::from_secs_f64(1.0 / self.per_second))
    }
}

/// Parses `2/s`, `30/m`, `100/h` or `0.5/s`.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let bad = || {
        format!(
            "invalid rate `{text}`: expected a count per unit, like 2/s, 30/m or 100/h (0/s sends nothing)"
        )
    };
    let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
    let count: f64 = count.trim().parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        _ => return Err(bad()),
    };
    let per_second = count / seconds;
    // Faster than one message per 10 µs per user is a typo, not a load shape; slower than
    // one a year has a period no timer can hold.
    let slowest = 1.0 / MAX_DURATION.as_secs_f64();
    if !(0.0..=100_000.0).contains(&per_second) || per_second > 0.0 && per_second < slowest {
        return Err(format!(
            "rate `{}` is out of range: 0/s, or from one per 366 days up to 100000/s",
            text.trim()
        ));
    }
    Ok(Rate { per_second })
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.per_second)
    }
}

/// Serde adapters so profile files hold durations and rates as the strings users type
/// (`#[serde(with = "serde_units::duration")]`).
pub mod serde_units {
    /// A duration as a string (`30s`).
    pub mod duration {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        use crate::units::{format_duration, parse_duration};

        /// Reads a duration from a string.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            let text = String::deserialize(d)?;
            parse_duration(&text).map_err(serde::de::Error::custom)
        }

        /// Writes a duration as a string.
        pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
            format_duration(*d).serialize(s)
        }
    }

    /// An optional duration as a string, or absent.
    pub mod opt_duration {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        use crate::units::{format_duration, parse_duration};

        /// Reads an optional duration from a string (or null).
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(text) => parse_duration(&text)
                    .map(Some)
                    .map_err(serde::de::Error::custom),
                None => Ok(None),
            }
        }

        /// Writes an optional duration as a string.
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            d.map(format_duration).serialize(s)
        }
    }

    /// A rate as a string (`2/s`).
    pub mod rate {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        use crate::units::{Rate, parse_rate};

        /// Reads a rate from a string.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
            let text = String::deserialize(d)?;
            parse_rate(&text).map_err(serde::de::Error::custom)
        }

        /// Writes a rate as a string.
        pub fn serialize<S: Serializer>(r: &Rate, s: S) -> Result<S::Ok, S::Error> {
            r.to_string().serialize(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_users_type() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("4h"), Ok(Duration::from_secs(14_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("3x").unwrap_err().contains("90s"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn hours_are_positive_numbers() {
        assert_eq!(parse_hours("4"), Ok(Duration::from_secs(14_400)));
        assert_eq!(parse_hours("0.005"), Ok(Duration::from_secs(18)));
        for bad in ["0", "-1", "nan", "inf", "four"] {
            assert!(parse_hours(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("10%"), Ok(0.1));
        assert_eq!(parse_percent("2.5"), Ok(0.025));
        assert!(parse_percent("ten").is_err());
        assert!(parse_percent("-5%").is_err());
    }

    #[test]
    fn rates_per_unit() {
        assert_eq!(parse_rate("2/s").unwrap().per_second, 2.0);
        assert_eq!(parse_rate("30/m").unwrap().per_second, 0.5);
        assert_eq!(parse_rate("3600/h").unwrap().per_second, 1.0);
        assert_eq!(parse_rate("0/s").unwrap().period(), None);
        assert_eq!(
            parse_rate("4/s").unwrap().period(),
            Some(Duration::from_millis(250))
        );
        for bad in ["2", "2/d", "-1/s", "x/s", "1e9/s", "", "nan/s", "inf/s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn out_of_range_values_are_errors_that_give_the_range() {
        for huge in ["500000000000y", "18446744073709551615s", "367d"] {
            let err = parse_duration(huge).unwrap_err();
            assert!(
                err.contains("366 days") || err.contains("invalid"),
                "{huge}: {err}"
            );
        }
        assert_eq!(parse_duration("366d"), Ok(MAX_DURATION));
        for tiny in ["1e-30/h", "1e-300/s", "1e-19/s"] {
            let err = parse_rate(tiny).unwrap_err();
            assert!(err.contains("out of range"), "{tiny}: {err}");
        }
        let slow = parse_rate("1/h").unwrap();
        assert_eq!(slow.period(), Some(Duration::from_secs(3600)));
    }
}
