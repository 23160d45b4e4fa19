//! The sidecar agent: Envoy bootstrap, supervision, hot restart.
#![forbid(unsafe_code)]
