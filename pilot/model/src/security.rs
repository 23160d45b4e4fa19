//! Security policies: PeerAuthentication (which mTLS mode a workload's inbound
//! side accepts) and AuthorizationPolicy (who may call what), compiled and
//! validated, plus the Istio precedence rules that pick what applies to one
//! workload and port.
//!
//! ```text
//!  mesh-wide (root namespace, no selector)   ◄─ weakest
//!  namespace (no selector)
//!  workload (selector in the workload's namespace)
//!  port-level (portLevelMtls of the workload policy)   ◄─ strongest
//! ```
//!
//! An `UNSET` mode at any level inherits from the level above; with nothing
//! set the mode is PERMISSIVE (Istio's default). For authorization every
//! policy that applies is used: root-namespace policies apply mesh-wide (a
//! selector narrows them to matching workloads in every namespace), the
//! others to their namespace (a selector narrows them).

use std::{collections::BTreeMap, fmt, net::IpAddr};

use crate::{
    identity::SpiffeId,
    route::RuleRef,
    service::{selects, Labels},
};

/// A PeerAuthentication mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MtlsMode {
    /// Inherit from the level above.
    #[default]
    Unset,
    /// Plaintext only.
    Disable,
    /// mTLS and plaintext on the same port (TLS inspector decides).
    Permissive,
    /// mTLS only; plaintext connections are refused.
    Strict,
}

impl MtlsMode {
    /// Parses Istio's spelling (`STRICT`); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "UNSET" => MtlsMode::Unset,
            "DISABLE" => MtlsMode::Disable,
            "PERMISSIVE" => MtlsMode::Permissive,
            "STRICT" => MtlsMode::Strict,
            _ => return None,
        })
    }

    /// Istio's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MtlsMode::Unset => "UNSET",
            MtlsMode::Disable => "DISABLE",
            MtlsMode::Permissive => "PERMISSIVE",
            MtlsMode::Strict => "STRICT",
        }
    }

    fn or(self, parent: MtlsMode) -> MtlsMode {
        if self == MtlsMode::Unset {
            parent
        } else {
            self
        }
    }
}

impl fmt::Display for MtlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compiled PeerAuthentication.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerAuthn {
    /// Where it came from (namespace = the policy's namespace).
    pub source: RuleRef,
    /// `selector.matchLabels`; `None` for namespace- or mesh-wide policies.
    pub selector: Option<Labels>,
    /// Workload-level mode.
    pub mode: MtlsMode,
    /// Modes per target port (only with a selector).
    pub port_level: BTreeMap<u16, MtlsMode>,
}

/// ALLOW, DENY or AUDIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthzAction {
    /// A request must match some ALLOW policy once any applies.
    Allow,
    /// A matching request is refused (evaluated before ALLOW).
    Deny,
    /// A matching request is marked for audit logging (Envoy's RBAC `LOG`
    /// action sets the `access_log_hint` metadata); it decides nothing.
    Audit,
}

/// A string pattern as AuthorizationPolicy writes it: `*`, `prefix*`,
/// `*suffix`, or exact.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pattern {
    /// `*`: any value (present).
    Any,
    /// Equal.
    Exact(String),
    /// `abc*`.
    Prefix(String),
    /// `*abc`.
    Suffix(String),
}

impl Pattern {
    /// Parses the `*` forms; `None` when a `*` sits anywhere else.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "*" {
            return Some(Pattern::Any);
        }
        let stars = s.matches('*').count();
        match (stars, s.strip_prefix('*'), s.strip_suffix('*')) {
            (0, _, _) => Some(Pattern::Exact(s.to_string())),
            (1, Some(rest), _) => Some(Pattern::Suffix(rest.to_string())),
            (1, _, Some(rest)) => Some(Pattern::Prefix(rest.to_string())),
            _ => None,
        }
    }

    /// Whether `value` matches (used by tests and tools; Envoy does it live).
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(s) => value == s,
            Pattern::Prefix(s) => value.starts_with(s.as_str()),
            Pattern::Suffix(s) => value.ends_with(s.as_str()),
        }
    }
}

/// A principal pattern: exact ones are SPIFFE identities.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PrincipalMatch {
    /// `*`: any authenticated peer.
    Any,
    /// `td/ns/NS/sa/SA`.
    Exact(SpiffeId),
    /// `td/ns/foo*`: the URI SAN starts with `spiffe://` + this.
    Prefix(String),
    /// `*/sa/foo`: the URI SAN ends with this.
    Suffix(String),
}

/// An address block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    /// Network address.
    pub address: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
}

impl Cidr {
    /// Parses `1.2.3.4` (a host) or `1.2.3.0/24` (IPv4 or IPv6).
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let address: IpAddr = addr.parse().ok()?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max)?,
            None => max,
        };
        Some(Self {
            address,
            prefix_len,
        })
    }

    /// Whether `ip` is in this network (never across address families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn bits(ip: IpAddr) -> (u128, u8) {
            match ip {
                IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        }
        let ((net, width), (addr, w)) = (bits(self.address), bits(ip));
        if width != w {
            return false;
        }
        let shift = u32::from(width - self.prefix_len.min(width));
        let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
        (net & mask) == (addr & mask)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

/// Values and negated values of one field (each list ORed; both must hold).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Values<T> {
    /// Any of these (ignored when empty).
    pub values: Vec<T>,
    /// None of these.
    pub not_values: Vec<T>,
}

impl<T> Default for Values<T> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            not_values: Vec::new(),
        }
    }
}

impl<T> Values<T> {
    /// Nothing to check.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.not_values.is_empty()
    }
}

/// `from.source`: every non-empty field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SourceMatch {
    /// Peer identity (URI SAN of the client certificate).
    pub principals: Values<PrincipalMatch>,
    /// JWT principals `<iss>/<sub>` (from a token a RequestAuthentication
    /// verified; a request without one has none).
    pub request_principals: Values<Pattern>,
    /// Peer namespace (from its identity).
    pub namespaces: Values<Pattern>,
    /// Peer address (the connection's).
    pub ip_blocks: Values<Cidr>,
    /// Original client address (X-Forwarded-For aware).
    pub remote_ip_blocks: Values<Cidr>,
}

/// `to.operation`: every non-empty field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct OperationMatch {
    /// `:authority` (HTTP only).
    pub hosts: Values<Pattern>,
    /// Destination port.
    pub ports: Values<u16>,
    /// `:method` (HTTP only).
    pub methods: Values<String>,
    /// Path (HTTP only).
    pub paths: Values<Pattern>,
}

impl OperationMatch {
    /// Whether it uses fields only HTTP can check.
    pub fn is_http_only(&self) -> bool {
        !self.hosts.is_empty() || !self.methods.is_empty() || !self.paths.is_empty()
    }
}

/// A `when` condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    /// `request.headers[<name>]` (HTTP only).
    RequestHeader(String, Values<Pattern>),
    /// `source.ip`.
    SourceIp(Values<Cidr>),
    /// `remote.ip`.
    RemoteIp(Values<Cidr>),
    /// `source.namespace`.
    SourceNamespace(Values<Pattern>),
    /// `source.principal`.
    SourcePrincipal(Values<PrincipalMatch>),
    /// `destination.port`.
    DestinationPort(Values<u16>),
    /// `destination.ip`: the address the connection was sent to.
    DestinationIp(Values<Cidr>),
    /// `connection.sni`: the TLS server name the client asked for.
    ConnectionSni(Values<Pattern>),
    /// `request.auth.principal`: `<iss>/<sub>` of the verified JWT (HTTP only).
    RequestPrincipal(Values<Pattern>),
    /// `request.auth.audiences`: the JWT's `aud` (HTTP only).
    RequestAudiences(Values<Pattern>),
    /// `request.auth.presenter`: the JWT's `azp` (HTTP only).
    RequestPresenter(Values<Pattern>),
    /// `request.auth.claims[a][b]`: a claim (nested by path), a string or a
    /// list of strings one of which matches (HTTP only).
    RequestClaim(Vec<String>, Values<Pattern>),
}

impl Condition {
    /// Whether only HTTP can check it.
    pub fn is_http_only(&self) -> bool {
        matches!(
            self,
            Condition::RequestHeader(..)
                | Condition::RequestPrincipal(..)
                | Condition::RequestAudiences(..)
                | Condition::RequestPresenter(..)
                | Condition::RequestClaim(..)
        )
    }
}

/// One rule: any `from`, any `to`, all `when` (empty lists match everything).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AuthzRule {
    /// Sources (ORed).
    pub from: Vec<SourceMatch>,
    /// Operations (ORed).
    pub to: Vec<OperationMatch>,
    /// Conditions (ANDed).
    pub when: Vec<Condition>,
}

impl AuthzRule {
    /// Whether the rule uses a field only HTTP can check (Istio then drops
    /// the rule on TCP ports for ALLOW, and drops the fields for DENY).
    pub fn is_http_only(&self) -> bool {
        self.to.iter().any(OperationMatch::is_http_only)
            || self.when.iter().any(Condition::is_http_only)
            || self.from.iter().any(|f| !f.request_principals.is_empty())
    }
}

/// A compiled AuthorizationPolicy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AuthzPolicy {
    /// Where it came from (namespace = the policy's namespace).
    pub source: RuleRef,
    /// `selector.matchLabels`; `None` for namespace- or mesh-wide policies.
    pub selector: Option<Labels>,
    /// ALLOW or DENY.
    pub action: AuthzAction,
    /// Rules (ORed); an ALLOW policy with none allows nothing.
    pub rules: Vec<AuthzRule>,
}

impl AuthzPolicy {
    /// Istio's name of rule `i`, shown in Envoy's config dump:
    /// `ns[<ns>]-policy[<name>]-rule[<i>]`.
    pub fn rule_name(&self, i: usize) -> String {
        format!(
            "ns[{}]-policy[{}]-rule[{i}]",
            self.source.namespace, self.source.name
        )
    }
}

/// Where a JWT rule's keys come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum JwksSource {
    /// `jwks`: the key set itself (JSON).
    Inline(String),
    /// `jwksUri`: pilot fetches it (see [`SecurityPolicies::jwks`]).
    Uri(String),
}

/// One `jwtRules` entry of a RequestAuthentication.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JwtRule {
    /// `iss` a token must carry.
    pub issuer: String,
    /// Accepted `aud` (empty: any).
    pub audiences: Vec<String>,
    /// The keys.
    pub jwks: JwksSource,
    /// Headers (name, value prefix) the token may come in; empty with no
    /// params and cookies: `Authorization: Bearer <token>`.
    pub from_headers: Vec<(String, String)>,
    /// Query parameters the token may come in.
    pub from_params: Vec<String>,
    /// Cookies the token may come in.
    pub from_cookies: Vec<String>,
    /// Keep the token in the forwarded request.
    pub forward_original_token: bool,
    /// Header the verified payload is written to.
    pub output_payload_to_header: Option<String>,
    /// (header, claim) pairs copied to the request.
    pub output_claim_to_headers: Vec<(String, String)>,
    /// JWKS fetch timeout.
    pub timeout: Option<std::time::Duration>,
}

/// A compiled RequestAuthentication.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestAuthn {
    /// Where it came from.
    pub source: RuleRef,
    /// `selector.matchLabels`; `None` for namespace- or mesh-wide policies.
    pub selector: Option<Labels>,
    /// Its rules.
    pub rules: Vec<JwtRule>,
}

/// The security policies of the mesh, in Istio's precedence order within
/// each list (oldest first).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SecurityPolicies {
    /// PeerAuthentications.
    pub peer_authentications: Vec<PeerAuthn>,
    /// AuthorizationPolicies.
    pub authorization_policies: Vec<AuthzPolicy>,
    /// RequestAuthentications.
    pub request_authentications: Vec<RequestAuthn>,
    /// Key sets pilot fetched, by `jwksUri` (the last good one of each). A
    /// URI missing here was never fetched: its rule gets a key that
    /// verifies no token, as Istio's `FakeJwks`.
    pub jwks: BTreeMap<String, String>,
}

impl SecurityPolicies {
    /// The effective mTLS mode of a workload (namespace, labels) on a target
    /// port, given the mesh root namespace: port-level over workload over
    /// namespace over mesh, UNSET inheriting; PERMISSIVE when nothing is set.
    /// Among several policies at one level the oldest wins, as in Istio.
    pub fn mtls_mode(
        &self,
        root_namespace: &str,
        namespace: &str,
        labels: &Labels,
        port: u16,
    ) -> MtlsMode {
        fn in_ns<'a>(
            all: &'a [PeerAuthn],
            ns: &'a str,
        ) -> impl Iterator<Item = &'a PeerAuthn> + 'a {
            all.iter().filter(move |p| p.source.namespace == ns)
        }
        let all = self.peer_authentications.as_slice();
        let mesh = in_ns(all, root_namespace)
            .find(|p| p.selector.is_none())
            .map_or(MtlsMode::Unset, |p| p.mode);
        let namespace_mode = if namespace == root_namespace {
            MtlsMode::Unset
        } else {
            in_ns(all, namespace)
                .find(|p| p.selector.is_none())
                .map_or(MtlsMode::Unset, |p| p.mode)
        };
        let workload =
            in_ns(all, namespace).find(|p| p.selector.as_ref().is_some_and(|s| selects(s, labels)));
        let (workload_mode, port_mode) = match workload {
            Some(p) => (p.mode, p.port_level.get(&port).copied().unwrap_or_default()),
            None => (MtlsMode::Unset, MtlsMode::Unset),
        };
        port_mode
            .or(workload_mode)
            .or(namespace_mode)
            .or(mesh)
            .or(MtlsMode::Permissive)
    }

    /// The RequestAuthentications that apply to a workload, in order (all
    /// of them: Istio merges their rules).
    pub fn request_authn_for<'a>(
        &'a self,
        root_namespace: &'a str,
        namespace: &'a str,
        labels: &'a Labels,
    ) -> impl Iterator<Item = &'a RequestAuthn> + 'a {
        self.request_authentications.iter().filter(move |p| {
            (p.source.namespace == root_namespace || p.source.namespace == namespace)
                && p.selector.as_ref().is_none_or(|s| selects(s, labels))
        })
    }

    /// Every `jwksUri` some RequestAuthentication names, with the longest
    /// timeout asked for it.
    pub fn jwks_uris(&self) -> BTreeMap<String, Option<std::time::Duration>> {
        let mut out: BTreeMap<String, Option<std::time::Duration>> = BTreeMap::new();
        for r in self.request_authentications.iter().flat_map(|p| &p.rules) {
            if let JwksSource::Uri(u) = &r.jwks {
                let t = out.entry(u.clone()).or_default();
                *t = (*t).max(r.timeout);
            }
        }
        out
    }

    /// The authorization policies that apply to a workload, in order.
    pub fn authz_for<'a>(
        &'a self,
        root_namespace: &'a str,
        namespace: &'a str,
        labels: &'a Labels,
    ) -> impl Iterator<Item = &'a AuthzPolicy> + 'a {
        self.authorization_policies.iter().filter(move |p| {
            (p.source.namespace == root_namespace || p.source.namespace == namespace)
                && p.selector.as_ref().is_none_or(|s| selects(s, labels))
        })
    }
}

#[cfg(test)]
mod tests;
