//! What a proxy asked for, per type: a wildcard flag and a set of names, with
//! the xDS rules for legacy wildcard (as go-control-plane's
//! `pkg/server/stream/v3/subscription.go`).
//!
//! - CDS/LDS: a first request with no names means "everything" (legacy
//!   wildcard; Envoy always starts this way). Later empty requests keep it;
//!   the first request that names something leaves legacy mode, after which
//!   only an explicit `*` means wildcard.
//! - EDS/RDS/SDS: only the names asked for (or an explicit `*`). In SotW an
//!   empty list unsubscribes everything.

use std::{collections::BTreeMap, collections::BTreeSet, sync::Arc};

use rudder_xds::{Resource, TypeUrl};

/// The explicit wildcard name.
pub(crate) const WILDCARD: &str = "*";

/// Resources by name, as sent or to be sent.
pub(crate) type Content = BTreeMap<String, Arc<Resource>>;

/// True when two contents have the same names at the same versions.
pub(crate) fn same_content(a: &Content, b: &Content) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((na, ra), (nb, rb))| na == nb && ra.version == rb.version)
}

/// One type's subscription on one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Subscription {
    wildcard: bool,
    /// Still in legacy-wildcard mode (only ever true for CDS/LDS).
    legacy: bool,
    names: BTreeSet<String>,
}

impl Subscription {
    /// The subscription of a type's first request (SotW names, or Delta's
    /// `resource_names_subscribe`).
    pub(crate) fn first(t: TypeUrl, names: &[String]) -> Self {
        let legacy = t.is_wildcard_type() && names.is_empty();
        let mut s = Subscription {
            wildcard: legacy,
            legacy,
            names: BTreeSet::new(),
        };
        s.add(names);
        s
    }

    /// SotW: every request carries the full list. Returns whether it changed.
    pub(crate) fn replace(&mut self, names: &[String]) -> bool {
        let before = self.clone();
        if self.legacy && names.is_empty() {
            return false;
        }
        self.legacy = false;
        self.wildcard = false;
        self.names.clear();
        self.add(names);
        *self != before
    }

    /// Delta: requests carry changes. Returns the names newly subscribed
    /// (explicitly, not through `*`), which the caller must (re)send even if
    /// it believes the client holds them: "resubscribing to a known name
    /// must still return it".
    pub(crate) fn apply_delta(
        &mut self,
        subscribe: &[String],
        unsubscribe: &[String],
    ) -> Vec<String> {
        if self.legacy {
            if subscribe.is_empty() {
                // Only `subscribe` counts for leaving legacy mode (xDS spec).
                self.remove(unsubscribe);
                return Vec::new();
            }
            self.legacy = false;
            self.wildcard = false;
        }
        let added = self.add(subscribe);
        self.remove(unsubscribe);
        added
    }

    fn add(&mut self, names: &[String]) -> Vec<String> {
        let mut added = Vec::new();
        for n in names {
            if n == WILDCARD {
                self.wildcard = true;
            } else {
                self.names.insert(n.clone());
                added.push(n.clone());
            }
        }
        added
    }

    fn remove(&mut self, names: &[String]) {
        for n in names {
            if n == WILDCARD {
                self.wildcard = false;
            } else {
                self.names.remove(n);
            }
        }
    }

    pub(crate) fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    pub(crate) fn names(&self) -> &BTreeSet<String> {
        &self.names
    }

    pub(crate) fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// The part of `available` this subscription selects.
    pub(crate) fn select(&self, available: Option<&Content>) -> Content {
        let Some(available) = available else {
            return Content::new();
        };
        if self.wildcard {
            return available.clone();
        }
        self.names
            .iter()
            .filter_map(|n| available.get(n).map(|r| (n.clone(), r.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn legacy_wildcard_only_for_cds_lds() {
        assert!(Subscription::first(TypeUrl::Cluster, &[]).is_wildcard());
        assert!(Subscription::first(TypeUrl::Listener, &[]).is_wildcard());
        assert!(!Subscription::first(TypeUrl::Endpoint, &[]).is_wildcard());
        assert!(Subscription::first(TypeUrl::Endpoint, &s(&["*"])).is_wildcard());
    }

    #[test]
    fn sotw_names_leave_legacy_mode_and_empty_keeps_it() {
        let mut sub = Subscription::first(TypeUrl::Cluster, &[]);
        assert!(!sub.replace(&[]));
        assert!(sub.is_wildcard());
        assert!(sub.replace(&s(&["a"])));
        assert!(!sub.is_wildcard());
        assert!(sub.replace(&[]));
        assert!(!sub.wants("a"), "out of legacy mode an empty list is empty");
    }

    #[test]
    fn delta_resubscribe_reports_names_and_star_toggles() {
        let mut sub = Subscription::first(TypeUrl::Endpoint, &s(&["a"]));
        assert_eq!(sub.apply_delta(&s(&["a", "b"]), &[]), s(&["a", "b"]));
        sub.apply_delta(&[], &s(&["a"]));
        assert!(!sub.wants("a") && sub.wants("b"));
        sub.apply_delta(&s(&["*"]), &[]);
        assert!(sub.wants("zzz"));
        sub.apply_delta(&[], &s(&["*"]));
        assert!(!sub.wants("zzz"));
    }
}
