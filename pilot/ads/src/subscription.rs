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

use std::{cell::RefCell, collections::BTreeSet, sync::Arc};

use rudder_xds::{Resource, TypeUrl};

/// The explicit wildcard name.
pub(crate) const WILDCARD: &str = "*";

/// Resources by name, as sent or to be sent.
pub(crate) use rudder_xds::Content;

/// True when two maps have the same names at the same versions (the same
/// map, by pointer, without a look).
pub(crate) fn same_content(a: &Arc<Content>, b: &Arc<Content>) -> bool {
    rudder_xds::same_versions(a, b)
}

/// Whether `have` holds `r` under its name at `r`'s version.
fn same_resource(have: Option<&Arc<Resource>>, r: &Arc<Resource>) -> bool {
    have.is_some_and(|h| Arc::ptr_eq(h, r) || h.version == r.version)
}

/// The entries of `want` that `have` lacks or holds at another version, in
/// name order. One merge walk over both maps: no lookups, no copies.
pub(crate) fn changed<'a>(
    want: &'a Content,
    have: &Content,
) -> Vec<(&'a String, &'a Arc<Resource>)> {
    let mut out = Vec::new();
    let mut have_it = have.iter().peekable();
    for (n, r) in want {
        while have_it.peek().is_some_and(|(h, _)| *h < n) {
            have_it.next();
        }
        let held = match have_it.peek() {
            Some((h, hr)) if *h == n => Some(*hr),
            _ => None,
        };
        if !same_resource(held, r) {
            out.push((n, r));
        }
    }
    out
}

/// The names `have` holds that `want` does not, in name order.
pub(crate) fn missing<'a>(want: &Content, have: &'a Content) -> Vec<&'a String> {
    let mut out = Vec::new();
    let mut want_it = want.keys().peekable();
    for n in have.keys() {
        while want_it.peek().is_some_and(|w| *w < n) {
            want_it.next();
        }
        if want_it.peek() != Some(&n) {
            out.push(n);
        }
    }
    out
}

/// One type's subscription on one stream.
#[derive(Debug)]
pub(crate) struct Subscription {
    wildcard: bool,
    /// Still in legacy-wildcard mode (only ever true for CDS/LDS).
    legacy: bool,
    /// Shared with `/debug/syncz` (cloning the `Arc`, not the names).
    names: Arc<BTreeSet<String>>,
    /// The last [`Subscription::select`]: its input map and its result, so a
    /// map that did not change (same pointer) is not walked again.
    selected: RefCell<Option<(Arc<Content>, Arc<Content>)>>,
}

impl Subscription {
    /// The subscription of a type's first request (SotW names, or Delta's
    /// `resource_names_subscribe`).
    pub(crate) fn first(t: TypeUrl, names: &[String]) -> Self {
        let legacy = t.is_wildcard_type() && names.is_empty();
        let mut s = Subscription {
            wildcard: legacy,
            legacy,
            names: Arc::default(),
            selected: RefCell::new(None),
        };
        s.add(names);
        s
    }

    /// SotW: every request carries the full list. Returns whether it changed.
    /// An ACK that repeats the same names (SotW EDS repeats thousands) is
    /// recognised without copying them.
    pub(crate) fn replace(&mut self, names: &[String]) -> bool {
        if self.legacy && names.is_empty() {
            return false;
        }
        let explicit_star = names.iter().any(|n| n == WILDCARD);
        let plain = names.len() - names.iter().filter(|n| *n == WILDCARD).count();
        if !self.legacy
            && self.wildcard == explicit_star
            && plain == self.names.len()
            && names
                .iter()
                .filter(|n| *n != WILDCARD)
                .all(|n| self.names.contains(n))
        {
            return false;
        }
        let before = (self.wildcard, self.legacy, self.names.clone());
        self.legacy = false;
        self.wildcard = false;
        self.names = Arc::default();
        self.selected.replace(None);
        self.add(names);
        (self.wildcard, self.legacy) != (before.0, before.1) || *self.names != *before.2
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
        if names.is_empty() {
            return added;
        }
        self.selected.replace(None);
        let set = Arc::make_mut(&mut self.names);
        for n in names {
            if n == WILDCARD {
                self.wildcard = true;
            } else {
                set.insert(n.clone());
                added.push(n.clone());
            }
        }
        added
    }

    fn remove(&mut self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        self.selected.replace(None);
        let set = Arc::make_mut(&mut self.names);
        for n in names {
            if n == WILDCARD {
                self.wildcard = false;
            } else {
                set.remove(n);
            }
        }
    }

    pub(crate) fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    pub(crate) fn names(&self) -> &Arc<BTreeSet<String>> {
        &self.names
    }

    pub(crate) fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// The part of `available` this subscription selects: `available`
    /// itself (shared, not copied) when the subscription covers all of it,
    /// as a wildcard or an EDS subscription naming exactly the clusters does.
    pub(crate) fn select(&self, available: Option<&Arc<Content>>) -> Arc<Content> {
        let Some(available) = available else {
            return Arc::default();
        };
        if self.wildcard {
            return available.clone();
        }
        if let Some((input, output)) = &*self.selected.borrow() {
            if Arc::ptr_eq(input, available) {
                return output.clone();
            }
        }
        let covers_all = self.names.len() == available.len()
            && self.names.iter().zip(available.keys()).all(|(a, b)| a == b);
        let output = if covers_all {
            available.clone()
        } else {
            Arc::new(
                self.names
                    .iter()
                    .filter_map(|n| available.get_key_value(n))
                    .map(|(n, r)| (n.clone(), r.clone()))
                    .collect(),
            )
        };
        self.selected
            .replace(Some((available.clone(), output.clone())));
        output
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
