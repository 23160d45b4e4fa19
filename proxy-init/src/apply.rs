//! Applying rules: one atomic `iptables-restore --noflush` per family, with no
//! half-applied state left behind.
//!
//! Each family's restore is atomic by itself; two families are not. So:
//! 1. read both nat tables (`*-save -t nat`): a missing kernel table fails here,
//!    before anything changes;
//! 2. build each family's restore text from what it holds now (see `plan`);
//! 3. dry-run both (`--test`): legacy parses and resolves targets, nft parses;
//! 4. commit IPv4, then IPv6. If IPv6 fails after IPv4 committed, IPv4 is rolled
//!    back to the state step 1 read (our chains only; nobody else's rules are
//!    touched) and the error says so.

use crate::backend::Backend;
use crate::exec::{ExecError, Executor};
use crate::plan;
use crate::rules::{Family, Rules};

/// Seconds `iptables-restore` waits for the xtables lock (`-w`). The lock is
/// host-wide even across network namespaces, so concurrent pods contend on it.
pub const LOCK_WAIT_SECS: &str = "10";

/// Applying or removing rules failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A tool could not be run at all.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The nat table could not be read: missing kernel support or privileges.
    #[error("cannot read the {family} nat table (`{program} -t nat` exited {code}): {stderr}\
             hint: proxy-init needs NET_ADMIN/NET_RAW and kernel nat support for {family} ({backend} backend); \
             pass --no-ipv6 if the pod has no IPv6")]
    TableUnavailable {
        family: Family,
        backend: Backend,
        program: String,
        code: String,
        stderr: String,
    },
    /// `--test` rejected a family's rules; nothing was changed.
    #[error("{program} --test rejected the {family} rules, nothing was changed: {stderr}")]
    Rejected {
        family: Family,
        program: String,
        stderr: String,
    },
    /// A commit failed; earlier families were rolled back (or the rollback failed too).
    #[error("{program} failed to apply the {family} rules: {stderr}{rollback}")]
    CommitFailed {
        family: Family,
        program: String,
        stderr: String,
        /// Text describing what happened to families committed before this one.
        rollback: String,
    },
}

/// One family's step of a plan: what its nat table held, and what will be restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The family.
    pub family: Family,
    /// `iptables-save -t nat` before.
    pub before: String,
    /// The `iptables-restore --noflush` input.
    pub restore_text: String,
}

/// What to do, per family, to reach a desired state. Built by reading only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The backend whose tools run.
    pub backend: Backend,
    /// One step per family, IPv4 first.
    pub steps: Vec<Step>,
}

fn code_text(code: Option<i32>) -> String {
    code.map_or_else(|| "by a signal".to_string(), |c| c.to_string())
}

fn read_nat(exec: &dyn Executor, backend: Backend, family: Family) -> Result<String, ApplyError> {
    let program = backend.save(family);
    let out = exec.run(&program, &["-t", "nat"], None)?;
    if !out.success() {
        return Err(ApplyError::TableUnavailable {
            family,
            backend,
            program,
            code: code_text(out.code),
            stderr: out.stderr,
        });
    }
    Ok(out.stdout)
}

/// Reads the nat tables and plans the restore that installs `rules`.
pub fn plan_apply(
    exec: &dyn Executor,
    backend: Backend,
    rules: &Rules,
) -> Result<Plan, ApplyError> {
    plan_with(exec, backend, &rules.families(), |family, before| {
        rules.restore_text_replacing(family, before)
    })
}

/// Reads the nat tables of `families` and plans the restore that removes every trace.
pub fn plan_cleanup(
    exec: &dyn Executor,
    backend: Backend,
    families: &[Family],
) -> Result<Plan, ApplyError> {
    plan_with(exec, backend, families, |_, before| {
        plan::replace_text(before, &[], &[])
    })
}

fn plan_with(
    exec: &dyn Executor,
    backend: Backend,
    families: &[Family],
    text: impl Fn(Family, &str) -> String,
) -> Result<Plan, ApplyError> {
    let mut steps = Vec::new();
    for &family in families {
        let before = read_nat(exec, backend, family)?;
        let restore_text = text(family, &before);
        steps.push(Step {
            family,
            before,
            restore_text,
        });
    }
    Ok(Plan { backend, steps })
}

fn restore(
    exec: &dyn Executor,
    backend: Backend,
    family: Family,
    text: &str,
    test: bool,
) -> Result<Result<(), String>, ApplyError> {
    let program = backend.restore(family);
    let mut args = vec!["--noflush", "-w", LOCK_WAIT_SECS];
    if test {
        args.push("--test");
    }
    let out = exec.run(&program, &args, Some(text))?;
    Ok(if out.success() {
        Ok(())
    } else {
        Err(out.stderr)
    })
}

/// Executes a plan: tests every step, then commits them in order, rolling back
/// committed families if a later one fails.
pub fn execute(exec: &dyn Executor, plan: &Plan) -> Result<(), ApplyError> {
    let backend = plan.backend;
    for step in &plan.steps {
        if let Err(stderr) = restore(exec, backend, step.family, &step.restore_text, true)? {
            return Err(ApplyError::Rejected {
                family: step.family,
                program: backend.restore(step.family),
                stderr,
            });
        }
    }
    for (i, step) in plan.steps.iter().enumerate() {
        let program = backend.restore(step.family);
        let stderr = match restore(exec, backend, step.family, &step.restore_text, false)? {
            Ok(()) => {
                tracing::info!(family = %step.family, %backend, "restore committed");
                continue;
            }
            Err(stderr) => stderr,
        };
        let mut rollback = String::new();
        for done in &plan.steps[..i] {
            match roll_back(exec, backend, done) {
                Ok(()) => rollback.push_str(&format!("; {} rules rolled back", done.family)),
                Err(why) => rollback.push_str(&format!(
                    "; rolling back the {} rules ALSO FAILED ({why}): run proxy-init --cleanup",
                    done.family
                )),
            }
        }
        return Err(ApplyError::CommitFailed {
            family: step.family,
            program,
            stderr,
            rollback,
        });
    }
    Ok(())
}

fn roll_back(exec: &dyn Executor, backend: Backend, step: &Step) -> Result<(), String> {
    let now = read_nat(exec, backend, step.family).map_err(|e| e.to_string())?;
    let text = plan::revert_text(&step.before, &now);
    match restore(exec, backend, step.family, &text, false) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(stderr)) => Err(stderr.trim().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Installs `rules` (replacing any earlier rules of ours) with `backend`.
pub fn apply(exec: &dyn Executor, backend: Backend, rules: &Rules) -> Result<Plan, ApplyError> {
    let plan = plan_apply(exec, backend, rules)?;
    execute(exec, &plan)?;
    Ok(plan)
}

/// The arguments of `ip` that put `::6`, the IPv6 source of inbound delivery
/// (`-o lo -s ::6/128 -j RETURN`), on `lo`, as Istio's init does: Envoy can
/// bind only a local address. `replace` makes re-runs converge.
pub const V6_SOURCE_ADDR_ARGS: [&str; 6] = ["-6", "addr", "replace", "::6/128", "dev", "lo"];

/// Puts `::6` on `lo` (see [`V6_SOURCE_ADDR_ARGS`]); `Err` says why not.
pub fn add_v6_passthrough_source(exec: &dyn Executor) -> Result<(), String> {
    match exec.run("ip", &V6_SOURCE_ADDR_ARGS, None) {
        Ok(out) if out.success() => Ok(()),
        Ok(out) => Err(format!(
            "ip {}: {}",
            V6_SOURCE_ADDR_ARGS.join(" "),
            out.stderr.trim()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Removes every chain and jump of ours from `families` with `backend`.
pub fn cleanup(
    exec: &dyn Executor,
    backend: Backend,
    families: &[Family],
) -> Result<Plan, ApplyError> {
    let plan = plan_cleanup(exec, backend, families)?;
    execute(exec, &plan)?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CaptureConfig;
    use crate::exec::{Call, Output, RecordingExecutor};
    use crate::rules::rules;

    const NFT: [&str; 4] = [
        "iptables-nft-save",
        "iptables-nft-restore",
        "ip6tables-nft-save",
        "ip6tables-nft-restore",
    ];
    const EMPTY_NAT: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";

    fn summary(calls: &[Call]) -> Vec<String> {
        calls
            .iter()
            .map(|c| format!("{} {}", c.program, c.args.join(" ")))
            .collect()
    }

    #[test]
    fn reads_tests_then_commits_each_family_once() {
        let exec = RecordingExecutor::new(&NFT, |_| Output::ok(EMPTY_NAT));
        let r = rules(&CaptureConfig::default());
        apply(&exec, Backend::Nft, &r).unwrap();
        let calls = exec.calls();
        assert_eq!(
            summary(&calls),
            [
                "iptables-nft-save -t nat",
                "ip6tables-nft-save -t nat",
                "iptables-nft-restore --noflush -w 10 --test",
                "ip6tables-nft-restore --noflush -w 10 --test",
                "iptables-nft-restore --noflush -w 10",
                "ip6tables-nft-restore --noflush -w 10",
            ]
        );
        assert_eq!(
            calls[4].stdin.as_deref(),
            Some(r.restore_text(Family::V4).as_str())
        );
        assert_eq!(
            calls[5].stdin.as_deref(),
            Some(r.restore_text(Family::V6).as_str())
        );
    }

    #[test]
    fn unreadable_ipv6_table_changes_nothing_and_says_what_is_missing() {
        let exec = RecordingExecutor::new(&NFT, |c| {
            if c.program.starts_with("ip6") {
                Output::failed("ip6tables v1.8.9 (nf_tables): table `nat' does not exist\n")
            } else {
                Output::ok(EMPTY_NAT)
            }
        });
        let err = apply(&exec, Backend::Nft, &rules(&CaptureConfig::default())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("ipv6 nat table") && text.contains("does not exist"),
            "{text}"
        );
        assert!(exec.calls().iter().all(|c| c.program.ends_with("-save")));
    }

    #[test]
    fn rejected_test_run_commits_nothing() {
        let exec = RecordingExecutor::new(&NFT, |c| {
            if c.args.contains(&"--test".to_string()) && c.program.starts_with("ip6") {
                Output::failed("line 7 failed")
            } else {
                Output::ok(EMPTY_NAT)
            }
        });
        let err = apply(&exec, Backend::Nft, &rules(&CaptureConfig::default())).unwrap_err();
        assert!(
            matches!(
                err,
                ApplyError::Rejected {
                    family: Family::V6,
                    ..
                }
            ),
            "{err}"
        );
        let commits = exec
            .calls()
            .iter()
            .filter(|c| c.program.ends_with("-restore") && !c.args.contains(&"--test".to_string()))
            .count();
        assert_eq!(commits, 0);
    }

    #[test]
    fn failed_ipv6_commit_rolls_ipv4_back_to_what_it_held() {
        let old = "*nat\n:RUDDER_OUTPUT - [0:0]\n-A RUDDER_OUTPUT -j RETURN\n\
                   -A OUTPUT -p tcp -j RUDDER_OUTPUT\nCOMMIT\n";
        let exec = RecordingExecutor::new(&NFT, move |c| {
            let test = c.args.contains(&"--test".to_string());
            match c.program.as_str() {
                "ip6tables-nft-restore" if !test => Output::failed("kernel said no"),
                p if p.ends_with("-save") => Output::ok(old),
                _ => Output::ok(""),
            }
        });
        let err = apply(&exec, Backend::Nft, &rules(&CaptureConfig::default())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("kernel said no") && text.contains("ipv4 rules rolled back"),
            "{text}"
        );
        let calls = exec.calls();
        let last = calls.last().unwrap();
        assert_eq!(last.program, "iptables-nft-restore");
        let revert = last.stdin.as_deref().unwrap();
        assert!(
            revert.contains("-A RUDDER_OUTPUT -j RETURN\n-A OUTPUT -p tcp -j RUDDER_OUTPUT\n"),
            "{revert}"
        );
        assert!(
            !revert.contains("rudder/"),
            "new rules are not re-added: {revert}"
        );
    }

    #[test]
    fn cleanup_removes_jumps_and_chains_in_both_families() {
        let current = rules(&CaptureConfig::default()).restore_text(Family::V4);
        let exec = RecordingExecutor::new(&NFT, move |_| Output::ok(&current));
        let plan = cleanup(&exec, Backend::Nft, &Family::ALL).unwrap();
        assert_eq!(plan.steps.len(), 2);
        let text = &plan.steps[0].restore_text;
        assert!(
            text.contains(
                "-D OUTPUT -p tcp -m comment --comment \"rudder/outbound\" -j RUDDER_OUTPUT"
            ),
            "{text}"
        );
        assert!(
            text.contains("-X RUDDER_INBOUND\n") && text.contains("-X RUDDER_REDIRECT\n"),
            "{text}"
        );
        assert!(!text.contains("-A "), "{text}");
    }
}
