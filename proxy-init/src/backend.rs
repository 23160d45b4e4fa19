//! Which iptables backend to drive: nf_tables (`iptables-nft`) or legacy
//! (`iptables-legacy`).
//!
//! Rules written through one backend are invisible to the other, and the kernel
//! evaluates both, so writing to the wrong one "works" but fights whatever the
//! host manages. Like Kubernetes' iptables-wrapper and istio-iptables, `auto`
//! picks the backend that already holds rules (more `-A` lines wins), nf_tables
//! on a tie, and whichever is installed when only one is.

use std::fmt;
use std::str::FromStr;

use crate::exec::Executor;
use crate::rules::Family;

/// No usable backend.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    /// Neither backend's tools are installed.
    #[error("no iptables backend found: none of {looked_for} is installed (install the iptables package)")]
    NoneInstalled { looked_for: String },
    /// The requested backend lacks a tool.
    #[error("iptables backend {backend}: {program} is not installed")]
    MissingBinary { backend: Backend, program: String },
    /// `--iptables-backend` got something else.
    #[error("--iptables-backend: invalid value {0:?}: expected nft, legacy or auto")]
    BadChoice(String),
}

/// A concrete backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// nf_tables through the `iptables-nft` tools.
    Nft,
    /// The legacy x_tables kernel interface through the `iptables-legacy` tools.
    Legacy,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Nft => "nft",
            Backend::Legacy => "legacy",
        })
    }
}

impl Backend {
    fn suffix(self) -> &'static str {
        match self {
            Backend::Nft => "nft",
            Backend::Legacy => "legacy",
        }
    }

    /// `iptables-nft-save`, `ip6tables-legacy-save`, ...
    pub fn save(self, family: Family) -> String {
        format!("{}-{}-save", family.command(), self.suffix())
    }

    /// `iptables-nft-restore`, `ip6tables-legacy-restore`, ...
    pub fn restore(self, family: Family) -> String {
        format!("{}-{}-restore", family.command(), self.suffix())
    }

    /// The first tool this backend needs for `families` that is not installed.
    pub fn missing(self, exec: &dyn Executor, families: &[Family]) -> Option<String> {
        families
            .iter()
            .flat_map(|&f| [self.save(f), self.restore(f)])
            .find(|p| !exec.has(p))
    }
}

/// What the user asked for with `--iptables-backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// Detect (the default).
    #[default]
    Auto,
    /// Exactly this backend.
    Fixed(Backend),
}

impl FromStr for BackendChoice {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "nft" => Ok(BackendChoice::Fixed(Backend::Nft)),
            "legacy" => Ok(BackendChoice::Fixed(Backend::Legacy)),
            other => Err(BackendError::BadChoice(other.to_string())),
        }
    }
}

/// Resolves `choice` to a backend whose tools for `families` are all installed.
pub fn detect(
    exec: &dyn Executor,
    choice: BackendChoice,
    families: &[Family],
) -> Result<Backend, BackendError> {
    if let BackendChoice::Fixed(backend) = choice {
        return match backend.missing(exec, families) {
            Some(program) => Err(BackendError::MissingBinary { backend, program }),
            None => Ok(backend),
        };
    }
    let installed: Vec<Backend> = [Backend::Nft, Backend::Legacy]
        .into_iter()
        .filter(|b| b.missing(exec, families).is_none())
        .collect();
    match installed.as_slice() {
        [] => Err(BackendError::NoneInstalled {
            looked_for: [Backend::Nft, Backend::Legacy]
                .iter()
                .flat_map(|b| families.iter().flat_map(|&f| [b.save(f), b.restore(f)]))
                .collect::<Vec<_>>()
                .join(", "),
        }),
        [only] => Ok(*only),
        _ => {
            let nft = rule_count(exec, Backend::Nft, families);
            let legacy = rule_count(exec, Backend::Legacy, families);
            let chosen = if legacy > nft {
                Backend::Legacy
            } else {
                Backend::Nft
            };
            tracing::info!(nft, legacy, backend = %chosen, "detected iptables backend by existing rules");
            Ok(chosen)
        }
    }
}

/// How many rules the backend's tables hold now (all tables); 0 if unreadable.
fn rule_count(exec: &dyn Executor, backend: Backend, families: &[Family]) -> usize {
    families
        .iter()
        .filter_map(|&f| exec.run(&backend.save(f), &[], None).ok())
        .filter(|out| out.success())
        .map(|out| out.stdout.lines().filter(|l| l.starts_with("-A ")).count())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{Output, RecordingExecutor};

    const ALL_TOOLS: [&str; 8] = [
        "iptables-nft-save",
        "iptables-nft-restore",
        "ip6tables-nft-save",
        "ip6tables-nft-restore",
        "iptables-legacy-save",
        "iptables-legacy-restore",
        "ip6tables-legacy-save",
        "ip6tables-legacy-restore",
    ];

    fn with_rules(legacy_rules: usize, nft_rules: usize) -> RecordingExecutor {
        RecordingExecutor::new(&ALL_TOOLS, move |call| {
            let n = if call.program.contains("legacy") {
                legacy_rules
            } else {
                nft_rules
            };
            Output::ok(&"-A OUTPUT -j ACCEPT\n".repeat(n))
        })
    }

    #[test]
    fn auto_prefers_the_backend_holding_rules_and_nft_on_a_tie() {
        assert_eq!(
            detect(&with_rules(3, 1), BackendChoice::Auto, &Family::ALL),
            Ok(Backend::Legacy)
        );
        assert_eq!(
            detect(&with_rules(0, 2), BackendChoice::Auto, &Family::ALL),
            Ok(Backend::Nft)
        );
        assert_eq!(
            detect(&with_rules(0, 0), BackendChoice::Auto, &Family::ALL),
            Ok(Backend::Nft)
        );
    }

    #[test]
    fn auto_takes_the_only_installed_backend() {
        let exec = RecordingExecutor::new(&ALL_TOOLS[4..], |_| Output::ok(""));
        assert_eq!(
            detect(&exec, BackendChoice::Auto, &Family::ALL),
            Ok(Backend::Legacy)
        );
        assert!(exec.calls().is_empty(), "no need to count rules");
    }

    #[test]
    fn missing_tools_are_named() {
        let exec = RecordingExecutor::new(&ALL_TOOLS[..2], |_| Output::ok(""));
        let err = detect(&exec, BackendChoice::Fixed(Backend::Nft), &Family::ALL).unwrap_err();
        assert_eq!(
            err.to_string(),
            "iptables backend nft: ip6tables-nft-save is not installed"
        );
        assert_eq!(
            detect(&exec, BackendChoice::Auto, &[Family::V4]),
            Ok(Backend::Nft)
        );
        let none = RecordingExecutor::new(&[], |_| Output::ok(""));
        let text = detect(&none, BackendChoice::Auto, &[Family::V4])
            .unwrap_err()
            .to_string();
        assert!(text.contains("iptables-legacy-restore"), "{text}");
    }

    #[test]
    fn bad_choice_names_the_flag() {
        let err = "iptables".parse::<BackendChoice>().unwrap_err().to_string();
        assert!(
            err.contains("--iptables-backend") && err.contains("\"iptables\""),
            "{err}"
        );
    }
}
