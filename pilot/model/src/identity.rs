//! Workload identity: `spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>`.

use std::fmt;

/// A SPIFFE workload identity as Istio spells it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    /// Trust domain, `cluster.local` by default.
    pub trust_domain: String,
    /// Kubernetes namespace.
    pub namespace: String,
    /// Kubernetes service account.
    pub service_account: String,
}

/// Why a string is not an Istio-style SPIFFE id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{input:?} is not a SPIFFE id of the form spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>")]
pub struct ParseSpiffeIdError {
    input: String,
}

impl SpiffeId {
    /// Builds the identity of a service account.
    pub fn new(trust_domain: &str, namespace: &str, service_account: &str) -> Self {
        Self {
            trust_domain: trust_domain.to_string(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
        }
    }

    /// Parses `spiffe://td/ns/NS/sa/SA`.
    pub fn parse(s: &str) -> Result<Self, ParseSpiffeIdError> {
        let err = || ParseSpiffeIdError {
            input: s.to_string(),
        };
        let rest = s.strip_prefix("spiffe://").ok_or_else(err)?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [td, "ns", ns, "sa", sa] if !td.is_empty() && !ns.is_empty() && !sa.is_empty() => {
                Ok(Self::new(td, ns, sa))
            }
            _ => Err(err()),
        }
    }

    /// The principal form AuthorizationPolicy uses: `td/ns/NS/sa/SA`.
    pub fn principal(&self) -> String {
        format!(
            "{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}", self.principal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let id = SpiffeId::new("cluster.local", "default", "bookinfo-reviews");
        assert_eq!(
            id.to_string(),
            "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
        );
        assert_eq!(SpiffeId::parse(&id.to_string()).unwrap(), id);
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "spiffe://cluster.local/ns/default",
            "http://x/ns/a/sa/b",
            "spiffe:///ns/a/sa/b",
        ] {
            assert!(SpiffeId::parse(bad).is_err(), "{bad}");
        }
    }
}
