//! Kube-free Istio and Kubernetes spec types (serde + schemars) that Rudder reads.
#![forbid(unsafe_code)]
