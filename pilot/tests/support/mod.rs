//! Shared by pilot's end-to-end tests: the mesh (harness pods, Envoy, pilot as
//! a child process), pilot's monitoring endpoints, and split statistics.
#![allow(dead_code)]

pub mod edge;
pub mod jwt;
pub mod mesh;
pub mod pilot;
pub mod stats;
pub mod stub;
