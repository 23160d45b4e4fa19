//! Network-namespace pod harness for the local mesh and end-to-end tests.
//!
//! ```text
//!  rudder mesh (cli/) ──┐
//!  pilot e2e tests ─────┤                ┌── pod "a" (netns) ── app / echo / Envoy (1337)
//!  proxy-init e2e ──────┼─► [ harness ] ─┼── pod "b" (netns) ── proxy-init rules, agent
//!  agent e2e ───────────┘   ▲ you are     └── bridge rdr-<name> (host addr = pilot's address)
//!                           here               + state dir (JSON record → teardown / sweep)
//! ```
//!
//! One [`Net`] is one instance (one runner `--name`, or one test): a Linux
//! bridge with the pod CIDR's first address, forwarding off, no NAT. Pods are
//! network namespaces on it with **no default route**: a pod reaches other
//! pods, the host's bridge address, and (via the host address) the service
//! CIDR, where only iptables/Envoy matches inside pods give VIPs meaning.
//! Everything created is recorded in the instance's state directory before it
//! is created, so [`Net`]'s `Drop` (also on panic) and [`Net::sweep`] (after a
//! crash) remove exactly what the instance made.
//!
//! What runs in pods:
//! - in-process code: [`Pod::enter`], [`Pod::run`] (async), [`Pod::spawn_task`]
//!   (background), on a thread `setns`ed into the pod;
//! - echo upstreams ([`Pod::start_echo`]) and bounded HTTP load loops
//!   ([`Pod::http_load`], [`Pod::http_get`]);
//! - processes as any UID/GID, optionally with private bind mounts
//!   ([`Pod::spawn`] with a [`ProcessSpec`]);
//! - capture rules from the proxy-init binary ([`Pod::capture`], binary
//!   located with [`workspace_bin`]);
//! - Envoy as 1337 ([`Pod::spawn_envoy`], [`Envoy::wait_live`]).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use rudder_harness::{EchoConfig, HttpRequest, LoadSpec, Net, NetConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let net = Net::create(NetConfig::for_test("example"))?; // or Net::for_test("example")
//! let server = net.add_pod("reviews-v2")?;
//! let client = net.add_pod("productpage")?;
//! let echo = server.start_echo(EchoConfig::new(9080, "reviews-v2").echo_header("end-user"))?;
//!
//! let request = HttpRequest::get(echo.addr(), "/").header("end-user", "jason");
//! let report = client.http_load(&LoadSpec { timeout: Duration::from_secs(10), ..LoadSpec::new(request, 20) })?;
//! assert_eq!(report.by_body()["reviews-v2"], 20);
//! assert_eq!(echo.count(), 20);
//! net.teardown()?; // or just drop `net`
//! # Ok(())
//! # }
//! ```
//!
//! Tests needing root or Envoy start with `rudder_test_support::prerequisite`
//! (a visible skip, a failure under `CI=true`).
//!
//! Where this sits among the other parts, and the contracts between them:
//! `docs/architecture.md` at the repository root.

#![forbid(unsafe_code)]

mod bin;
mod cidr;
mod client;
mod cmd;
mod echo;
mod envoy;
mod net;
mod pod;
mod process;
mod shared;
mod state;

pub use bin::{target_dir, workspace_bin, workspace_root, BinError};
pub use cidr::{Cidr, CidrError};
pub use client::{get, load, HttpRequest, LoadReport, LoadSpec, Outcome};
pub use cmd::CmdError;
pub use echo::{EchoConfig, EchoError, EchoServer, RecordedRequest};
pub use envoy::{envoy_bin, shm_path, Envoy, EnvoyError, EnvoySpec};
pub use net::{
    Net, NetConfig, NetError, DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR, DEFAULT_STATE_ROOT,
};
pub use pod::{Pod, PodError, PodTask, Shutdown};
pub use process::{Process, ProcessError, ProcessSpec, STOP_GRACE};
pub use state::{PodRecord, ProcessRecord, StateError, StateRecord};
