//! The output of generation and the input of the ADS server: per xDS type, the
//! named resources with their versions.

use std::{collections::BTreeMap, sync::Arc};

use envoy_types::pb::google::protobuf::Any;

/// The xDS resource types Rudder serves, in make-before-break push order
/// (CDS, EDS, LDS, RDS, SDS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TypeUrl {
    /// `envoy.config.cluster.v3.Cluster`.
    Cluster,
    /// `envoy.config.endpoint.v3.ClusterLoadAssignment`.
    Endpoint,
    /// `envoy.config.listener.v3.Listener`.
    Listener,
    /// `envoy.config.route.v3.RouteConfiguration`.
    Route,
    /// `envoy.extensions.transport_sockets.tls.v3.Secret`.
    Secret,
}

impl TypeUrl {
    /// All types, in push order.
    pub const ALL: [TypeUrl; 5] = [
        TypeUrl::Cluster,
        TypeUrl::Endpoint,
        TypeUrl::Listener,
        TypeUrl::Route,
        TypeUrl::Secret,
    ];

    /// The `type.googleapis.com/...` URL.
    pub fn as_str(self) -> &'static str {
        match self {
            TypeUrl::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            TypeUrl::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            TypeUrl::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            TypeUrl::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            TypeUrl::Secret => {
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            }
        }
    }

    /// Parses a type URL.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Short name for logs and metrics (`cds`, `eds`, ...).
    pub fn short(self) -> &'static str {
        match self {
            TypeUrl::Cluster => "cds",
            TypeUrl::Endpoint => "eds",
            TypeUrl::Listener => "lds",
            TypeUrl::Route => "rds",
            TypeUrl::Secret => "sds",
        }
    }

    /// SotW responses for this type must carry the complete set (missing = deleted).
    pub fn is_wildcard_type(self) -> bool {
        matches!(self, TypeUrl::Cluster | TypeUrl::Listener)
    }
}

/// One resource: its version (a hash of the model inputs it was built from,
/// never of encoded protobuf) and its body.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// Version of this resource.
    pub version: String,
    /// The packed resource.
    pub body: Any,
}

/// Resources of one type by name.
pub use crate::content::Content;

/// Everything one proxy should have, by type then name. Each type's map sits
/// behind its own `Arc`: proxies with the same resources of a type share one
/// map (and every resource in it), and a type that did not change keeps its
/// map from one push to the next, so the ADS server can tell "unchanged" by
/// pointer and per-stream state can hold the map instead of a copy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProxyResources {
    /// Resources by type, then by name.
    pub by_type: BTreeMap<TypeUrl, Arc<Content>>,
}

impl ProxyResources {
    /// The resources of one type.
    pub fn of(&self, t: TypeUrl) -> Option<&Content> {
        self.by_type.get(&t).map(|m| &**m)
    }

    /// The resources of one type as the shared map (for holding on to it).
    pub fn shared(&self, t: TypeUrl) -> Option<&Arc<Content>> {
        self.by_type.get(&t)
    }

    /// One type's resources to edit (copied first if shared; created empty
    /// if absent).
    pub fn make_mut(&mut self, t: TypeUrl) -> &mut Content {
        Arc::make_mut(self.by_type.entry(t).or_default())
    }

    /// Sets one type's resources.
    pub fn insert(&mut self, t: TypeUrl, content: impl Into<Arc<Content>>) {
        self.by_type.insert(t, content.into());
    }

    /// A version for the whole set of one type (SotW `version_info`): a hash of
    /// the names and per-resource versions.
    pub fn type_version(&self, t: TypeUrl) -> String {
        match self.by_type.get(&t) {
            Some(m) => map_version(m),
            None => hash_version(&Content::new()),
        }
    }
}

/// True when two maps hold the same names at the same versions (versions are
/// content hashes); the same map (pointer) is equal without a look, and the
/// same resource (pointer) under a name needs no string compared: a
/// resource is only ever held under its own name.
pub fn same_versions(a: &Arc<Content>, b: &Arc<Content>) -> bool {
    Arc::ptr_eq(a, b) || same_content(a, b)
}

/// [`same_versions`] of two maps not (yet) shared: the same names at the
/// same versions, an entry holding the same resource needing no name
/// compared.
/// Two maps layered on the same shared map compare their own entries only.
pub(crate) fn same_content(a: &Content, b: &Content) -> bool {
    fn entries<'a>(
        a: impl ExactSizeIterator<Item = (&'a String, &'a Arc<Resource>)>,
        b: impl ExactSizeIterator<Item = (&'a String, &'a Arc<Resource>)>,
    ) -> bool {
        a.len() == b.len()
            && a.zip(b).all(|((na, ra), (nb, rb))| {
                Arc::ptr_eq(ra, rb) || (na == nb && ra.version == rb.version)
            })
    }
    if Content::same_base(a, b) {
        return entries(a.own().iter(), b.own().iter());
    }
    entries(a.iter(), b.iter())
}

/// A hash of the names and versions. A layered map hashes its base's
/// version (remembered while the base lives) and its own entries: thousands
/// of proxies' listener maps share one base of a thousand entries. (So the
/// same content layered and flat has two versions: a version names the set,
/// it is compared only with versions of maps built the same way.)
fn hash_version(m: &Content) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let own = match m.base() {
        Some(base) => {
            map_version(base).hash(&mut h);
            m.own()
        }
        None => m.own(),
    };
    for (name, r) in own {
        name.hash(&mut h);
        r.version.hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

/// [`hash_version`] of a shared map, remembered for the map's lifetime:
/// thousands of streams answer with the version of the same map.
fn map_version(m: &Arc<Content>) -> String {
    use std::sync::{Mutex, OnceLock, Weak};
    type Cache = Mutex<Vec<(Weak<Content>, String)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    /// A handful of maps are current at any time (one per type and scope).
    const KEEP: usize = 256;
    let cache = CACHE.get_or_init(Default::default);
    {
        let c = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, v)) = c
            .iter()
            .find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(m)))
        {
            return v.clone();
        }
    }
    let v = hash_version(m);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    c.retain(|(w, _)| w.strong_count() > 0);
    if c.len() >= KEEP {
        c.remove(0);
    }
    c.push((Arc::downgrade(m), v.clone()));
    v
}
