//! `pilot`: Rudder's control plane.
//!
//! ```text
//!  --config-dir DIR ─► registry (store, validation, debounce) ─► Arc<Snapshot>
//!                                                                   │
//!        proxies.rs: per connected sidecar, Generator::generate ◄───┘
//!                                   │ watch<Arc<ProxyResources>>
//!                                   ▼
//!                    rudder-ads (SotW + Delta on :15010) ─► Envoy
//!  monitoring.rs (:15014): /ready /metrics /debug/syncz /debug/config_dump
//!  mesh/ (:15014): the live mesh page at / and /ui, its model at /debug/mesh
//! ```
//!
//! `pilot serve --config-dir DIR` serves a directory of Kubernetes YAML;
//! `pilot validate -f FILE...` checks route rules offline.
//!
//! The whole data flow and the contracts: `docs/architecture.md`.

#![forbid(unsafe_code)]

mod identity;
mod jwks;
mod mesh;
mod monitoring;
mod proxies;
mod secure_tls;
mod serve;
mod validate;
mod xds_auth;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc rather than glibc's malloc: pushes allocate and free many
/// short-lived buffers on several threads, and glibc's per-thread arenas kept
/// RSS at about 2.5 times the live heap (see the README's scale section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rudder's control plane: Kubernetes objects and Istio route rules in, Envoy
/// configuration out over ADS.
#[derive(Parser, Debug)]
#[command(name = "pilot", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Serve sidecars over xDS (ADS, SotW and Delta) from a config source.
    Serve(serve::ServeArgs),
    /// Check route rules offline: one line per problem; non-zero exit only for errors.
    Validate(validate::ValidateArgs),
}

/// Threads for blocking work: generation only (a push, a new proxy's first
/// resources), which is CPU-bound. Tokio's default (512) let a connection
/// storm run a hundred generations on a hundred threads, each with its own
/// malloc arena: no faster on a few cores, and hundreds of MB of arena
/// fragmentation.
const BLOCKING_THREADS: usize = 4;

/// Transparent huge pages off for this process: mimalloc advises them on
/// its arenas, and then every freshly touched region (a large request's
/// buffer, a push's maps) is faulted in, zeroed and held as 2 MiB pages.
/// At 2000 Delta sidecars this call lowered pilot's peak RSS from 505 to
/// 464 MiB at the same CPU (README, load test). Best effort: a kernel without the call keeps its default.
fn without_huge_pages() {
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("pilot: transparent huge pages stay as the kernel sets them: {e}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            without_huge_pages();
            init_logging(&args.log_format);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .max_blocking_threads(BLOCKING_THREADS)
                .build()
            {
                Ok(rt) => rt,
                Err(error) => {
                    eprintln!("pilot: cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(serve::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("pilot: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Validate(args) => validate::run(&args),
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
