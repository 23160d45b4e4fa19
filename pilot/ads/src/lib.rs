//! The ADS server (SotW and Delta): serves the resources it is handed.
#![forbid(unsafe_code)]
