//! `pilot-load`: Istio-style load testing for pilot (see
//! `docs/architecture.md` and the README's "Load test" section).
//!
//! ```text
//!  generate: Shape ─► DIR (Namespaces, Services + DestinationRules, VirtualServices, Pods)
//!  run:      DIR ─► pilot serve (CPU 0) ◄══ S ADS streams (this process, CPU 1) ─► Report
//! ```
//!
//! [`generate`] writes the mesh, [`sidecar`] emulates one Envoy's ADS
//! stream (SotW or Delta, warming, ACKs), [`run`] starts pilot, connects the
//! sidecars and runs the scenarios.

pub mod generate;
pub mod run;
pub mod sidecar;
pub mod wire;
