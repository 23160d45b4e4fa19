//! Compilers from spec types to the model, validating as they go. Each takes a
//! [`Checker`] and records every problem with its field path; the store
//! rejects an object whose compile recorded an error.
//!
//! The same code runs twice: alone when an object arrives (errors only, no
//! cross-object context) and inside the snapshot build (with services and
//! policies known, adding warnings such as "no Service backs this host").

pub mod contour;
pub mod delegate;
pub mod destination_rule;
pub mod edge;
pub mod emissary;
pub mod gateway;
pub mod gateway_api;
pub mod ingress;
pub mod kube;
pub mod route_rule;
pub mod secret;
pub mod security;
pub mod service_entry;
pub mod sidecar;
pub mod telemetry;
pub mod virtual_service;

use std::collections::BTreeMap;

use rudder_model::{snapshot::resolve_host, Hostname, Service};

use crate::check::Checker;

/// What the compilers may know about the rest of the mesh.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    /// DNS suffix for host resolution.
    pub domain_suffix: &'a str,
    /// Known services (`None`: validating one object alone, no warnings).
    pub services: Option<&'a BTreeMap<Hostname, Service>>,
    /// Known destination policies (subsets).
    pub policies: Option<&'a rudder_model::policy::PolicyMap>,
}

impl<'a> Ctx<'a> {
    /// A context for validating one object alone.
    pub fn alone(domain_suffix: &'a str) -> Self {
        Self {
            domain_suffix,
            services: None,
            policies: None,
        }
    }

    /// Resolves a host as written in a rule of `namespace`.
    pub fn resolve(&self, host: &str, namespace: &str) -> Hostname {
        resolve_host(host, namespace, self.domain_suffix)
    }

    /// Warns when no Service backs `host` (served anyway, as Istio does).
    pub fn check_host(&self, ck: &mut Checker, field: &str, host: &str) {
        if let Some(services) = self.services {
            if !host.contains('*') && !services.contains_key(host) {
                ck.warn(field, format!("no Service backs host {host}"));
            }
        }
    }

    /// Warns when no DestinationRule defines `subset` of `host`.
    pub fn check_subset(&self, ck: &mut Checker, field: &str, host: &str, subset: &str) {
        if let Some(policies) = self.policies {
            if !policies
                .get(host)
                .is_some_and(|p| p.subsets.contains_key(subset))
            {
                ck.warn(
                    field,
                    format!("no DestinationRule defines subset {subset} of {host}"),
                );
            }
        }
    }
}
