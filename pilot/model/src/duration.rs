//! The one duration grammar: Go's `time.ParseDuration`, which Istio's CRDs
//! and `pilot-agent` flags use. A duration is a sequence of decimal numbers
//! (optional fraction), each with a unit — `1h2m3.5s`, `500ms`, `10us`,
//! `1µs`, `300ns` — or the bare `0`. No sign: durations here are never
//! negative. Arithmetic is exact (whole nanoseconds, fractions beyond them
//! truncated, as Go does).
//!
//! Fields add their own minimums on top ([`parse_at_least`], or their own
//! check with [`DurationError::new`]): Istio's timeouts must be at least 1ms
//! in whole milliseconds, a certificate lifetime must be positive.
//! Errors name the input: `invalid duration "5x": unknown unit "x" ...`.

use std::time::Duration;

/// Units, as error messages list them.
const UNITS: &str = "h, m, s, ms, us, ns";

/// Why a duration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// Nothing (or only spaces) given.
    #[error("empty")]
    Empty,
    /// A unit or stray character where a number belongs.
    #[error("expected a number followed by a unit ({UNITS})")]
    MissingNumber,
    /// A number without a unit (only `0` may stand alone).
    #[error("missing unit ({UNITS})")]
    MissingUnit,
    /// A unit Go does not know (`d`, `sec`, ...).
    #[error("unknown unit {0:?} (use {UNITS}, e.g. 24h, 1h30m, 500ms)")]
    UnknownUnit(String),
    /// A sign: durations here are never negative.
    #[error("negative durations are not allowed")]
    Negative,
    /// More than `Duration` holds.
    #[error("too large")]
    Overflow,
    /// Below the field's minimum.
    #[error("must be at least {0:?}")]
    TooShort(Duration),
    /// Not whole milliseconds where the field requires them (Istio).
    #[error("only whole milliseconds are supported")]
    NotWholeMillis,
}

/// A refused duration: the input and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}")]
pub struct DurationError {
    /// What was given.
    pub input: String,
    /// Why it was refused.
    pub reason: Reason,
}

impl DurationError {
    /// An error about `input` (for a field's own checks).
    pub fn new(input: &str, reason: Reason) -> DurationError {
        DurationError {
            input: input.to_string(),
            reason,
        }
    }
}

/// Parses Go's duration syntax (surrounding spaces ignored).
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    parse_nanos(input.trim())
        .map(nanos_to_duration)
        .map_err(|reason| DurationError::new(input, reason))
}

/// [`parse`], refusing anything shorter than `min`.
pub fn parse_at_least(input: &str, min: Duration) -> Result<Duration, DurationError> {
    let d = parse(input)?;
    if d < min {
        return Err(DurationError::new(input, Reason::TooShort(min)));
    }
    Ok(d)
}

/// A clap `value_parser` for duration flags (any duration, `0` included).
pub fn flag(input: &str) -> Result<Duration, String> {
    parse(input).map_err(|e| e.to_string())
}

fn nanos_to_duration(ns: u128) -> Duration {
    // parse_nanos bounds ns by Duration's range.
    Duration::new((ns / 1_000_000_000) as u64, (ns % 1_000_000_000) as u32)
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "h" => 3_600_000_000_000,
        "m" => 60_000_000_000,
        "s" => 1_000_000_000,
        "ms" => 1_000_000,
        // U+00B5 (micro sign) and U+03BC (Greek mu), as Go accepts.
        "us" | "µs" | "μs" => 1_000,
        "ns" => 1,
        _ => return None,
    })
}

fn parse_nanos(s: &str) -> Result<u128, Reason> {
    if s.is_empty() {
        return Err(Reason::Empty);
    }
    if s.starts_with('-') {
        return Err(Reason::Negative);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Ok(0);
    }
    let max = u128::from(u64::MAX) * 1_000_000_000 + 999_999_999;
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        // The number: digits, optionally a fraction; at least one digit.
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int, after) = rest.split_at(int_end);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let end = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(end)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(Reason::MissingNumber);
        }
        // The unit: everything up to the next number.
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if unit.is_empty() {
            return Err(Reason::MissingUnit);
        }
        let scale = unit_nanos(unit).ok_or_else(|| Reason::UnknownUnit(unit.to_string()))?;
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| Reason::Overflow)?
        };
        let mut value = whole.checked_mul(scale).ok_or(Reason::Overflow)?;
        // The fraction, truncated to whole nanoseconds.
        let mut place = scale;
        for d in frac.bytes() {
            place /= 10;
            if place == 0 {
                break;
            }
            value += u128::from(d - b'0') * place;
        }
        total = total.checked_add(value).ok_or(Reason::Overflow)?;
        if total > max {
            return Err(Reason::Overflow);
        }
        rest = after;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn reason(s: &str) -> Reason {
        parse(s).unwrap_err().reason
    }

    #[test]
    fn accepts_go_syntax() {
        assert_eq!(ok("1h2m3.5s"), Duration::from_millis(3_723_500));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("10us"), Duration::from_micros(10));
        assert_eq!(ok("1µs"), Duration::from_micros(1));
        assert_eq!(ok("1μs"), Duration::from_micros(1));
        assert_eq!(ok("300ns"), Duration::from_nanos(300));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("24h"), Duration::from_secs(86_400));
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(ok(" 2m "), Duration::from_secs(120));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        // Exact, and fractions below a nanosecond are truncated as Go does.
        assert_eq!(ok("0.1s"), Duration::from_millis(100));
        assert_eq!(ok("1.0000000019s"), Duration::new(1, 1));
        assert_eq!(ok("2.5h"), Duration::from_secs(9000));
    }

    #[test]
    fn refuses_with_a_reason_naming_the_input() {
        assert_eq!(reason(""), Reason::Empty);
        assert_eq!(reason("   "), Reason::Empty);
        assert_eq!(reason("10"), Reason::MissingUnit);
        assert_eq!(reason("1.5"), Reason::MissingUnit);
        assert_eq!(reason("1s5"), Reason::MissingUnit);
        assert_eq!(reason("s"), Reason::MissingNumber);
        assert_eq!(reason("."), Reason::MissingNumber);
        assert_eq!(reason("1..2s"), Reason::MissingUnit);
        assert_eq!(reason("5x"), Reason::UnknownUnit("x".into()));
        assert_eq!(reason("1d"), Reason::UnknownUnit("d".into()));
        assert_eq!(reason("1 s"), Reason::UnknownUnit(" s".into()));
        assert_eq!(reason("-1s"), Reason::Negative);
        assert_eq!(reason("99999999999999999999h"), Reason::Overflow);
        assert_eq!(
            parse("5x").unwrap_err().to_string(),
            "invalid duration \"5x\": unknown unit \"x\" (use h, m, s, ms, us, ns, e.g. 24h, 1h30m, 500ms)"
        );
        assert_eq!(
            parse("10").unwrap_err().to_string(),
            "invalid duration \"10\": missing unit (h, m, s, ms, us, ns)"
        );
    }

    #[test]
    fn minimums() {
        let ms = Duration::from_millis(1);
        assert_eq!(parse_at_least("1ms", ms), Ok(ms));
        assert_eq!(
            parse_at_least("500us", ms).unwrap_err().to_string(),
            "invalid duration \"500us\": must be at least 1ms"
        );
        assert_eq!(flag("1s"), Ok(Duration::from_secs(1)));
        assert!(flag("1").unwrap_err().contains("\"1\""));
    }
}
