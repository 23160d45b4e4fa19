//! The validation toolkit every compiler shares: a [`Checker`] collects
//! diagnostics for one object, and parses the value types Istio validates
//! (durations, percentages, regexes, ports) so each error names its field.

use std::time::Duration;

use rudder_config::StringMatch as SpecMatch;
use rudder_model::{
    duration::{self, DurationError, Reason},
    Diagnostic, Percent, Severity, StringMatch,
};

use crate::object::{ObjectKey, Origin};

/// Collects the diagnostics of one object.
#[derive(Debug)]
pub struct Checker {
    object: String,
    location: Option<String>,
    /// Findings so far.
    pub diagnostics: Vec<Diagnostic>,
}

impl Checker {
    /// A checker for the object `key` from `origin`.
    pub fn new(key: &ObjectKey, origin: &Origin) -> Self {
        Self {
            object: key.to_string(),
            location: origin.location(),
            diagnostics: Vec::new(),
        }
    }

    fn push(&mut self, mut d: Diagnostic) {
        d.file = self.location.clone();
        self.diagnostics.push(d);
    }

    /// Records an error: the object will be rejected.
    pub fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(Diagnostic::error(self.object.clone(), field, message));
    }

    /// Records a warning: the object is still served.
    pub fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(Diagnostic::warning(self.object.clone(), field, message));
    }

    /// How many errors were recorded (to tell whether a step added one).
    pub fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Whether any error was recorded.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// A duration in Istio's format (`10s`, `1.5s`, `100ms`, `1m`, `1h30m`),
    /// at least 1ms and whole milliseconds, as Istio's validation requires.
    pub fn duration(&mut self, field: impl Into<String>, s: &str) -> Option<Duration> {
        match parse_duration(s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(field, e.to_string());
                None
            }
        }
    }

    /// An optional duration field.
    pub fn opt_duration(
        &mut self,
        field: impl Into<String>,
        s: Option<&String>,
    ) -> Option<Duration> {
        s.and_then(|s| self.duration(field, s))
    }

    /// An `exportTo` list: `.`, `*`, `~` or namespace names (`~` alone).
    pub fn export_to(&mut self, field: &str, list: &[String]) {
        for (i, ns) in list.iter().enumerate() {
            let ok = matches!(ns.as_str(), "." | "*" | "~") || is_dns_label(ns);
            if !ok {
                self.error(
                    format!("{field}[{i}]"),
                    format!("{ns:?} is not `.`, `*`, `~` or a namespace name"),
                );
            }
        }
        if list.len() > 1 && list.iter().any(|ns| ns == "~") {
            self.error(
                field,
                "`~` (exported nowhere) cannot be combined with other entries",
            );
        }
    }

    /// A percentage between 0 and 100.
    pub fn percent(&mut self, field: impl Into<String>, v: f64) -> Option<Percent> {
        if !(0.0..=100.0).contains(&v) || v.is_nan() {
            self.error(field, format!("percentage {v} must be between 0 and 100"));
            return None;
        }
        Some(Percent::from_f64(v))
    }

    /// An HTTP status Envoy can send for an abort fault (200-599).
    pub fn abort_status(&mut self, field: impl Into<String>, status: Option<i32>) -> Option<u32> {
        match status {
            Some(s) if (200..=599).contains(&s) => Some(s as u32),
            Some(s) => {
                self.error(
                    field,
                    format!("HTTP status {s} must be between 200 and 599"),
                );
                None
            }
            None => {
                self.error(field, "HTTP status is required");
                None
            }
        }
    }

    /// A port number (1-65535).
    pub fn port(&mut self, field: impl Into<String>, p: i64) -> Option<u16> {
        match u16::try_from(p) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                self.error(field, format!("port {p} must be between 1 and 65535"));
                None
            }
        }
    }

    /// A non-negative count (connection limits, error counts).
    pub fn count(&mut self, field: impl Into<String>, v: Option<i32>) -> Option<u32> {
        let v = v?;
        match u32::try_from(v) {
            Ok(v) => Some(v),
            Err(_) => {
                self.error(field, format!("{v} must not be negative"));
                None
            }
        }
    }

    /// An integer percentage (0-100).
    pub fn int_percent(&mut self, field: impl Into<String>, v: Option<i32>) -> Option<u32> {
        let v = v?;
        if (0..=100).contains(&v) {
            Some(v as u32)
        } else {
            self.error(field, format!("percentage {v} must be between 0 and 100"));
            None
        }
    }

    /// A string match; regexes must compile with the `regex` crate (the RE2
    /// subset Envoy accepts).
    pub fn string_match(&mut self, field: impl Into<String>, m: &SpecMatch) -> Option<StringMatch> {
        Some(match m {
            SpecMatch::Exact(s) => StringMatch::Exact(s.clone()),
            SpecMatch::Prefix(s) => StringMatch::Prefix(s.clone()),
            SpecMatch::Regex(r) => {
                if let Err(e) = regex::Regex::new(r) {
                    let why = e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or("")
                        .trim()
                        .trim_start_matches("error: ")
                        .to_string();
                    self.error(field, format!("invalid regex {r:?}: {why}"));
                    return None;
                }
                StringMatch::Regex(r.clone())
            }
        })
    }
}

/// Parses a duration in Go's syntax (`rudder_model::duration`) and applies
/// Istio's rules for its CRDs' durations: at least 1ms, whole milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let d = duration::parse_at_least(s, Duration::from_millis(1))?;
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(DurationError::new(s, Reason::NotWholeMillis));
    }
    Ok(d)
}

/// A Kubernetes namespace name (RFC 1123 label).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_istio() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        let why = |s| parse_duration(s).unwrap_err().reason;
        assert_eq!(why("500us"), Reason::TooShort(Duration::from_millis(1)));
        assert_eq!(why("0"), Reason::TooShort(Duration::from_millis(1)));
        assert_eq!(why("1500us"), Reason::NotWholeMillis);
        assert_eq!(why("10"), Reason::MissingUnit);
    }
}
