//! `proxy-init`: the thin binary over the `rudder_proxy_init` library.
//! Exit codes: 0 done, 1 failed (nothing half-applied), 2 bad flags.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use rudder_proxy_init::apply::{self, plan_apply, LOCK_WAIT_SECS};
use rudder_proxy_init::verify::{self, VerifyOptions};
use rudder_proxy_init::{detect, rules, Backend, BackendChoice, Family, SystemExecutor};

use cli::{Cli, Command};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let (cfg, backend) = match (cli.capture.to_config(), cli.backend()) {
        (Ok(cfg), Ok(backend)) => (cfg, backend),
        (Err(e), _) => return usage_error(&e),
        (_, Err(e)) => return usage_error(&e),
    };
    let result = match &cli.command {
        Some(Command::Verify { to, timeout_ms }) => run_verify(&cfg, *to, *timeout_ms),
        Some(Command::Probe {
            to,
            payload,
            timeout_ms,
        }) => verify::probe(*to, cli::timeout(*timeout_ms), payload.as_bytes())
            .map(|stream| {
                let local = stream
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                println!("connected to {to} from {local}");
            })
            .map_err(anyhow::Error::from),
        None if cli.dry_run => dry_run(&cfg, backend),
        None if cli.cleanup => run_cleanup(&cfg, backend),
        None => run_apply(&cfg, backend),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy-init: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("proxy-init: error: {e}");
    ExitCode::from(2)
}

fn run_apply(cfg: &rudder_proxy_init::CaptureConfig, choice: BackendChoice) -> anyhow::Result<()> {
    let r = rules(cfg);
    let exec = SystemExecutor;
    let backend = detect(&exec, choice, &r.families())?;
    apply::apply(&exec, backend, &r)?;
    if r.families().contains(&Family::V6) {
        // Without ::6 on lo, Envoy cannot deliver inbound IPv6 connections;
        // IPv4 still works, so say why and go on.
        if let Err(why) = apply::add_v6_passthrough_source(&exec) {
            tracing::warn!(%why, "IPv6 inbound delivery source ::6 not added to lo; inbound IPv6 connections will fail");
        }
    }
    let count: usize = r.families().iter().map(|&f| r.rules(f).len()).sum();
    tracing::info!(%backend, rules = count, families = ?r.families(), "capture rules in place");
    Ok(())
}

fn families(cfg: &rudder_proxy_init::CaptureConfig) -> Vec<Family> {
    if cfg.ipv6 {
        Family::ALL.to_vec()
    } else {
        vec![Family::V4]
    }
}

/// `auto` cleans every installed backend: rules left in the other one by an
/// earlier run with a different backend would otherwise survive "every trace".
fn run_cleanup(
    cfg: &rudder_proxy_init::CaptureConfig,
    choice: BackendChoice,
) -> anyhow::Result<()> {
    let exec = SystemExecutor;
    let families = families(cfg);
    let backends = match choice {
        BackendChoice::Fixed(_) => vec![detect(&exec, choice, &families)?],
        BackendChoice::Auto => {
            let installed: Vec<Backend> = [Backend::Nft, Backend::Legacy]
                .into_iter()
                .filter(|b| b.missing(&exec, &families).is_none())
                .collect();
            if installed.is_empty() {
                detect(&exec, choice, &families)?; // the error naming what is missing
            }
            installed
        }
    };
    for backend in backends {
        apply::cleanup(&exec, backend, &families)
            .with_context(|| format!("cleanup with the {backend} backend"))?;
        tracing::info!(%backend, "capture rules removed");
    }
    Ok(())
}

/// Prints the exact restore input per family. It reads the current tables when it
/// can (read-only) so the text is what a real run would feed; without privileges
/// it prints the text for a table holding none of our rules yet, and says so.
fn dry_run(cfg: &rudder_proxy_init::CaptureConfig, choice: BackendChoice) -> anyhow::Result<()> {
    let r = rules(cfg);
    let exec = SystemExecutor;
    let planned = detect(&exec, choice, &r.families())
        .map_err(anyhow::Error::from)
        .and_then(|backend| plan_apply(&exec, backend, &r).map_err(anyhow::Error::from));
    match planned {
        Ok(plan) => {
            for step in &plan.steps {
                println!(
                    "# {}: {} --noflush -w {LOCK_WAIT_SECS}",
                    step.family,
                    plan.backend.restore(step.family)
                );
                print!("{}", step.restore_text);
            }
            if plan.steps.iter().any(|s| s.family == Family::V6) {
                println!("# ip {}", apply::V6_SOURCE_ADDR_ARGS.join(" "));
            }
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot read the current rules; showing the text for a table without ours");
            for family in r.families() {
                println!(
                    "# {family}: {}-restore --noflush -w {LOCK_WAIT_SECS}",
                    family.command()
                );
                print!("{}", r.restore_text(family));
            }
        }
    }
    Ok(())
}

fn run_verify(
    cfg: &rudder_proxy_init::CaptureConfig,
    to: std::net::SocketAddr,
    timeout_ms: u64,
) -> anyhow::Result<()> {
    let opts = VerifyOptions {
        proxy_port: cfg.proxy_port,
        proxy_uid: cfg.proxy_uid,
        proxy_gid: cfg.proxy_gid,
        target: to,
        timeout: cli::timeout(timeout_ms),
        probe_program: std::env::current_exe()
            .context("finding this binary for the proxy-uid probe")?,
    };
    let summary = verify::verify(&opts)?;
    println!("{summary}");
    Ok(())
}
