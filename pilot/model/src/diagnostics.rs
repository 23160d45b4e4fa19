//! Validation findings, with enough context that a user can find the problem:
//! file, object, field, reason.

use std::fmt;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The object is of a kind (or version) Rudder does not serve: it has no
    /// effect on traffic, and nothing else fails because of it. Named so a
    /// user moving from another routing API sees why traffic did not change.
    Unsupported,
    /// The object is accepted and served; something is probably not what the user meant.
    Warning,
    /// The object is rejected; the last good version (if any) keeps serving.
    Error,
}

/// One finding about one object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    /// Severity.
    pub severity: Severity,
    /// File (and `:line` when known), for the directory source.
    pub file: Option<String>,
    /// `Kind namespace/name` (or `document N` when the object has no name yet).
    pub object: String,
    /// Field path, e.g. `spec.http[0].route[1].weight`.
    pub field: String,
    /// Why.
    pub message: String,
}

impl Diagnostic {
    /// An error.
    pub fn error(
        object: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Error,
            file: None,
            object: object.into(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// A warning.
    pub fn warning(
        object: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(object, field, message)
        }
    }

    /// An object Rudder does not serve (see [`Severity::Unsupported`]).
    pub fn unsupported(
        object: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Unsupported,
            ..Self::error(object, field, message)
        }
    }

    /// With the file it came from.
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    /// `error: samples/x.yaml:12: VirtualService default/reviews: spec.http[0].route[1].weight: must not be negative`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Unsupported => "unsupported",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{sev}: ")?;
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        write!(f, "{}: ", self.object)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_object_field_and_reason() {
        let d = Diagnostic::error(
            "VirtualService default/reviews",
            "spec.http[0].timeout",
            "bad duration \"5x\"",
        )
        .in_file("rules/reviews.yaml:7");
        assert_eq!(
            d.to_string(),
            "error: rules/reviews.yaml:7: VirtualService default/reviews: spec.http[0].timeout: bad duration \"5x\""
        );
    }
}
