//! proxy-init: iptables rules that send a pod's traffic to Envoy.
#![forbid(unsafe_code)]
