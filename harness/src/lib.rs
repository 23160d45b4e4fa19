//! Network-namespace pod harness for the local mesh and end-to-end tests.
#![forbid(unsafe_code)]
