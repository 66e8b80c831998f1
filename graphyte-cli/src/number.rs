//! Numbers typed by the user: metric values and timestamps, from the command
//! line or from a bulk input line.

use graphyte::{LineFormat, Sender, Timestamp};

/// A metric value as typed. Integers stay integers on the wire (`42`, not
/// `42.0`); everything else that reads as a finite number is a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A decimal integer that fits in an `i64`.
    Int(i64),
    /// A decimal integer above `i64::MAX` that fits in a `u64`.
    UInt(u64),
    /// Any other finite number (`42.5`, `1e-3`, or an integer beyond `u64`).
    Float(f64),
}

impl Number {
    /// Reads a value: an integer literal (`42`, `-7`, `+3`) is kept exact,
    /// anything else must be a finite decimal number. NaN and the infinities
    /// are refused, as graphyte would refuse them.
    pub fn parse(s: &str) -> Result<Number, String> {
        if let Ok(n) = s.parse::<i64>() {
            return Ok(Number::Int(n));
        }
        if let Ok(n) = s.parse::<u64>() {
            return Ok(Number::UInt(n));
        }
        match s.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Number::Float(f)),
            Ok(f) if f.is_nan() => Err(format!("{s:?} is NaN, which Graphite cannot store")),
            Ok(_) => Err(format!(
                "{s:?} is infinite (or too large for a 64-bit float), which Graphite cannot store"
            )),
            Err(_) => Err(format!("{s:?} is not a number")),
        }
    }

    /// Appends the line `name value timestamp` as `format` builds it (prefix
    /// and default tags applied, everything validated), or leaves `buf` as it
    /// was and says why the line cannot be sent.
    pub fn format_into(
        self,
        format: &LineFormat,
        buf: &mut Vec<u8>,
        name: &str,
        timestamp: Timestamp,
    ) -> graphyte::Result<()> {
        match self {
            Number::Int(n) => format.format_into(buf, name, &[], n, timestamp),
            Number::UInt(n) => format.format_into(buf, name, &[], n, timestamp),
            Number::Float(f) => format.format_into(buf, name, &[], f, timestamp),
        }
    }

    /// Sends `name value timestamp` through `sender`.
    pub fn send(self, sender: &Sender, name: &str, timestamp: Timestamp) -> graphyte::Result<()> {
        match self {
            Number::Int(n) => sender.send_at(name, n, timestamp),
            Number::UInt(n) => sender.send_at(name, n, timestamp),
            Number::Float(f) => sender.send_at(name, f, timestamp),
        }
    }
}

/// Reads a timestamp in Unix seconds. Integers are taken as they are; a
/// finite decimal (`1700000000.75`) is truncated to the second, as Carbon
/// does. Whether whisper can store it is checked when the line is formatted.
pub fn parse_timestamp(s: &str) -> Result<Timestamp, String> {
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(Timestamp::from(secs));
    }
    match s.parse::<f64>() {
        // `as` saturates; out-of-range values are refused by the range check.
        Ok(f) if f.is_finite() => Ok(Timestamp::from(f.trunc() as i64)),
        _ => Err(format!("{s:?} is not a Unix timestamp in seconds")),
    }
}

/// The range whisper can store ([`Timestamp::checked`]). Used for `-t`, so a
/// bad default timestamp is a usage error before anything is read or sent.
pub fn check_timestamp(ts: Timestamp) -> Result<Timestamp, String> {
    ts.checked()
        .map(|_| ts)
        .map_err(|reason| format!("timestamp {} {reason}", ts.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(value: &str) -> String {
        let format = LineFormat::new::<&str, &str>("", &[]).expect("empty format");
        let mut buf = Vec::new();
        Number::parse(value)
            .expect("a number")
            .format_into(&format, &mut buf, "m", Timestamp::from(7))
            .expect("a valid line");
        String::from_utf8(buf).expect("ASCII")
    }

    #[test]
    fn integers_stay_integers() {
        assert_eq!(Number::parse("42"), Ok(Number::Int(42)));
        assert_eq!(Number::parse("-7"), Ok(Number::Int(-7)));
        assert_eq!(Number::parse("+3"), Ok(Number::Int(3)));
        assert_eq!(
            Number::parse("18446744073709551615"),
            Ok(Number::UInt(u64::MAX))
        );
        assert_eq!(line("42"), "m 42 7\n");
        assert_eq!(line("-9223372036854775808"), "m -9223372036854775808 7\n");
        assert_eq!(line("18446744073709551615"), "m 18446744073709551615 7\n");
    }

    #[test]
    fn floats_are_floats() {
        assert_eq!(Number::parse("42.5"), Ok(Number::Float(42.5)));
        assert_eq!(line("42.5"), "m 42.5 7\n");
        assert_eq!(line("42.0"), "m 42.0 7\n");
        assert_eq!(line("1e3"), "m 1000.0 7\n");
        assert_eq!(line("-.5"), "m -0.5 7\n");
        // Beyond u64: a float, not an error.
        assert_eq!(line("18446744073709551616"), "m 1.8446744073709552e19 7\n");
    }

    #[test]
    fn non_numbers_nan_and_infinities_are_refused() {
        for bad in [
            "", "abc", "0x10", "1_000", "4 2", "nan", "NaN", "-nan", "inf", "-inf", "Infinity",
            "1e400",
        ] {
            assert!(Number::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Number::parse("nan").unwrap_err().contains("NaN"));
        assert!(Number::parse("-inf").unwrap_err().contains("infinite"));
        assert!(Number::parse("abc").unwrap_err().contains("not a number"));
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp("1700000000"),
            Ok(Timestamp::from(1_700_000_000))
        );
        assert_eq!(
            parse_timestamp("1700000000.9"),
            Ok(Timestamp::from(1_700_000_000))
        );
        for bad in ["", "now", "nan", "inf", "12:00"] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?}");
        }
        assert!(check_timestamp(Timestamp::from(1)).is_ok());
        assert!(check_timestamp(Timestamp::from(u32::MAX)).is_ok());
        assert!(check_timestamp(Timestamp::from(0)).is_err());
        assert!(check_timestamp(Timestamp::from(-5)).is_err());
        assert!(check_timestamp(Timestamp::from(1_700_000_000_000i64))
            .unwrap_err()
            .contains("milliseconds"));
    }
}
