//! Sidecar injection: admission webhook and offline kube-inject.
#![forbid(unsafe_code)]
