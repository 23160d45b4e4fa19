//! `pilot-load generate` and `pilot-load run`.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};
use rudder_pilot_load::{
    generate::{generate, write_sidecars, Shape},
    run::{run, Options, Scenario},
    sidecar::Mode,
};

#[derive(Parser, Debug)]
#[command(
    name = "pilot-load",
    about = "Load test for pilot: a generated mesh, emulated Envoys"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a mesh of Istio's load-test shape into a directory.
    Generate {
        /// Services (each with an HTTP port; every tenth also TCP).
        #[arg(long, default_value_t = 1000)]
        services: usize,
        /// Versions per service (DestinationRule subsets, one Deployment each).
        #[arg(long, default_value_t = 3)]
        versions: usize,
        /// Namespaces the services are spread over.
        #[arg(long, default_value_t = 10)]
        namespaces: usize,
        /// Sidecars `run` will emulate: replicas are added until each has its own pod.
        #[arg(long, default_value_t = 1)]
        sidecars: usize,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Also write a Sidecar per namespace importing its own namespace and ns0.
        #[arg(long)]
        scoped: bool,
    },
    /// Start pilot on the directory and drive it with emulated sidecars.
    Run {
        /// A directory written by `generate`.
        #[arg(long)]
        dir: PathBuf,
        /// Emulated sidecars (one ADS stream and TCP connection each).
        #[arg(long, default_value_t = 50)]
        sidecars: usize,
        /// `sotw` or `delta`.
        #[arg(long, default_value = "sotw", value_parser = ["sotw", "delta"])]
        mode: String,
        /// Comma-separated: storm, vs-change, churn, service-add.
        #[arg(
            long,
            default_value = "storm,vs-change,churn,service-add",
            value_delimiter = ','
        )]
        scenarios: Vec<String>,
        /// The pilot binary (default: `pilot` beside this binary).
        #[arg(long)]
        pilot: Option<PathBuf>,
        /// Do not pin pilot to CPU 0 and this process to CPU 1.
        #[arg(long)]
        no_pin: bool,
        /// VirtualService changes.
        #[arg(long, default_value_t = 3)]
        vs_changes: usize,
        /// Pod changes per second.
        #[arg(long, default_value_t = 50.0)]
        churn_rate: f64,
        /// Seconds of churn.
        #[arg(long, default_value_t = 10.0)]
        churn_secs: f64,
        /// Services added.
        #[arg(long, default_value_t = 3)]
        adds: usize,
        /// Longest wait, in seconds, for one scenario to reach every sidecar.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// Pins this process (every thread started after) to `cpu`.
fn pin_self(cpu: usize) -> anyhow::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

/// `generate`: the mesh's YAML (and, `scoped`, one Sidecar per namespace).
fn write_mesh(shape: &Shape, out: &std::path::Path, scoped: bool) -> anyhow::Result<()> {
    generate(out, shape)?;
    if scoped {
        write_sidecars(out, shape)?;
    }
    println!(
        "wrote {} services x {} versions x {} replicas ({} pods) in {} namespaces to {}",
        shape.services,
        shape.versions,
        shape.replicas,
        shape.pods(),
        shape.namespaces,
        out.display()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate {
            services,
            versions,
            namespaces,
            sidecars,
            out,
            scoped,
        } => {
            let shape = Shape::new(services, versions, namespaces, sidecars);
            write_mesh(&shape, &out, scoped)
        }
        Command::Run {
            dir,
            sidecars,
            mode,
            scenarios,
            pilot,
            no_pin,
            vs_changes,
            churn_rate,
            churn_secs,
            adds,
            timeout,
            json,
        } => {
            let scenarios = scenarios
                .iter()
                .map(|s| Scenario::parse(s.trim()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            let pilot = match pilot {
                Some(p) => p,
                None => std::env::current_exe()?
                    .parent()
                    .map(|d| d.join("pilot"))
                    .ok_or_else(|| anyhow::anyhow!("no directory beside pilot-load"))?,
            };
            let pin = !no_pin && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
            if pin {
                pin_self(1)?;
            }
            let opts = Options {
                dir,
                sidecars,
                mode: if mode == "delta" {
                    Mode::Delta
                } else {
                    Mode::Sotw
                },
                scenarios,
                pilot,
                pin,
                vs_changes,
                churn_rate,
                churn_secs,
                adds,
                timeout: Duration::from_secs(timeout),
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let report = rt.block_on(run(opts))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report.to_json())?);
            } else {
                print!("{}", report.table());
            }
            Ok(())
        }
    }
}
