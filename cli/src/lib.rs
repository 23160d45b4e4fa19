//! rudder: the local mesh runner and istioctl-like commands.
#![forbid(unsafe_code)]
