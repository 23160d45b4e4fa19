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

use crate::status::Names;

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
/// name order. One merge walk over both maps: no lookups, no copies; the
/// same map (pointer) has nothing changed, and the same resource (pointer)
/// at the same position needs no name compared (a resource is only ever
/// held under its own name).
pub(crate) fn changed<'a>(
    want: &'a Arc<Content>,
    have: &Arc<Content>,
) -> Vec<(&'a String, &'a Arc<Resource>)> {
    let mut out = Vec::new();
    if Arc::ptr_eq(want, have) {
        return out;
    }
    let mut have_it = have.iter().peekable();
    for (n, r) in want.iter() {
        if have_it.peek().is_some_and(|(_, hr)| Arc::ptr_eq(hr, r)) {
            have_it.next();
            continue;
        }
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
pub(crate) fn missing<'a>(want: &Arc<Content>, have: &'a Arc<Content>) -> Vec<&'a String> {
    let mut out = Vec::new();
    if Arc::ptr_eq(want, have) {
        return out;
    }
    let mut want_it = want.iter().peekable();
    for (n, r) in have.iter() {
        if want_it.peek().is_some_and(|(_, wr)| Arc::ptr_eq(wr, r)) {
            want_it.next();
            continue;
        }
        while want_it.peek().is_some_and(|(w, _)| *w < n) {
            want_it.next();
        }
        if want_it.peek().map(|(w, _)| *w) != Some(n) {
            out.push(n);
        }
    }
    out
}

/// The explicit names of a subscription. Thousands of sidecars subscribe to
/// the same thousands of names (every EDS cluster), so a set equal to the
/// names of a map pilot published is kept as that map (shared), not copied.
#[derive(Clone, Debug)]
enum NameSet {
    Own(Arc<BTreeSet<String>>),
    Keys(Arc<Content>),
}

impl Default for NameSet {
    fn default() -> Self {
        NameSet::Own(Arc::default())
    }
}

impl NameSet {
    fn contains(&self, n: &str) -> bool {
        match self {
            NameSet::Own(s) => s.contains(n),
            NameSet::Keys(m) => m.contains_key(n),
        }
    }

    fn len(&self) -> usize {
        match self {
            NameSet::Own(s) => s.len(),
            NameSet::Keys(m) => m.len(),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = &String> + '_> {
        match self {
            NameSet::Own(s) => Box::new(s.iter()),
            NameSet::Keys(m) => Box::new(m.keys()),
        }
    }

    /// The same names as `m`'s keys. Against another map (the previous
    /// push's, mostly the same resources) an entry holding the same resource
    /// needs no name compared.
    fn equals_keys(&self, m: &Arc<Content>) -> bool {
        match self {
            NameSet::Keys(k) if Arc::ptr_eq(k, m) => true,
            NameSet::Keys(k) => {
                k.len() == m.len()
                    && k.iter()
                        .zip(m.iter())
                        .all(|((a, ra), (b, rb))| Arc::ptr_eq(ra, rb) || a == b)
            }
            NameSet::Own(_) => {
                self.len() == m.len() && self.iter().zip(m.keys()).all(|(a, b)| a == b)
            }
        }
    }

    /// A set to edit (copied out of a shared map first).
    fn make_mut(&mut self) -> &mut BTreeSet<String> {
        if let NameSet::Keys(m) = self {
            *self = NameSet::Own(Arc::new(m.keys().cloned().collect()));
        }
        match self {
            NameSet::Own(s) => Arc::make_mut(s),
            NameSet::Keys(_) => unreachable!("converted above"),
        }
    }
}

/// One type's subscription on one stream.
#[derive(Debug)]
pub(crate) struct Subscription {
    wildcard: bool,
    /// Still in legacy-wildcard mode (only ever true for CDS/LDS).
    legacy: bool,
    names: NameSet,
    /// The last [`Subscription::select`]: its input map and its result, so a
    /// map that did not change (same pointer) is not walked again.
    selected: RefCell<Option<(Arc<Content>, Arc<Content>)>>,
}

impl Subscription {
    /// The subscription of a type's first request (SotW names, or Delta's
    /// `resource_names_subscribe`); `available` is what pilot has of the
    /// type (a set equal to its names shares them).
    pub(crate) fn first(t: TypeUrl, names: &[String], available: Option<&Arc<Content>>) -> Self {
        let legacy = t.is_wildcard_type() && names.is_empty();
        let mut s = Subscription {
            wildcard: legacy,
            legacy,
            names: NameSet::default(),
            selected: RefCell::new(None),
        };
        s.add(names);
        s.share(available);
        s
    }

    /// Keeps the names as `available`'s keys when they are the same.
    fn share(&mut self, available: Option<&Arc<Content>>) {
        if let Some(m) = available {
            if !matches!(&self.names, NameSet::Keys(k) if Arc::ptr_eq(k, m))
                && self.names.equals_keys(m)
            {
                self.names = NameSet::Keys(m.clone());
            }
        }
    }

    /// SotW: every request carries the full list. Returns whether it changed.
    /// An ACK that repeats the same names (SotW EDS repeats thousands) is
    /// recognised without copying them.
    pub(crate) fn replace(&mut self, names: &[String], available: Option<&Arc<Content>>) -> bool {
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
            self.share(available);
            return false;
        }
        let before = (self.wildcard, self.legacy, self.names.clone());
        self.legacy = false;
        self.wildcard = false;
        self.names = NameSet::default();
        self.selected.replace(None);
        self.add(names);
        self.share(available);
        (self.wildcard, self.legacy) != (before.0, before.1)
            || self.names.len() != before.2.len()
            || !self.names.iter().eq(before.2.iter())
    }

    /// Delta: requests carry changes. Returns the names newly subscribed
    /// (explicitly, not through `*`), which the caller must (re)send even if
    /// it believes the client holds them: "resubscribing to a known name
    /// must still return it".
    pub(crate) fn apply_delta(
        &mut self,
        subscribe: &[String],
        unsubscribe: &[String],
        available: Option<&Arc<Content>>,
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
        self.share(available);
        added
    }

    fn add(&mut self, names: &[String]) -> Vec<String> {
        let mut added = Vec::new();
        for n in names {
            if n == WILDCARD {
                if !self.wildcard {
                    self.selected.replace(None);
                }
                self.wildcard = true;
            } else {
                if !self.names.contains(n) {
                    self.selected.replace(None);
                    self.names.make_mut().insert(n.clone());
                }
                added.push(n.clone());
            }
        }
        added
    }

    fn remove(&mut self, names: &[String]) {
        for n in names {
            if n == WILDCARD {
                if self.wildcard {
                    self.selected.replace(None);
                }
                self.wildcard = false;
            } else if self.names.contains(n) {
                self.selected.replace(None);
                self.names.make_mut().remove(n);
            }
        }
    }

    pub(crate) fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The explicit names, for `/debug/syncz` (shared, not copied).
    pub(crate) fn names(&self) -> Names {
        match &self.names {
            NameSet::Own(s) => Names::set(s.clone()),
            NameSet::Keys(m) => Names::keys(m.clone()),
        }
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
        let output = if self.names.equals_keys(available) {
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
        assert!(Subscription::first(TypeUrl::Cluster, &[], None).is_wildcard());
        assert!(Subscription::first(TypeUrl::Listener, &[], None).is_wildcard());
        assert!(!Subscription::first(TypeUrl::Endpoint, &[], None).is_wildcard());
        assert!(Subscription::first(TypeUrl::Endpoint, &s(&["*"]), None).is_wildcard());
    }

    #[test]
    fn sotw_names_leave_legacy_mode_and_empty_keeps_it() {
        let mut sub = Subscription::first(TypeUrl::Cluster, &[], None);
        assert!(!sub.replace(&[], None));
        assert!(sub.is_wildcard());
        assert!(sub.replace(&s(&["a"]), None));
        assert!(!sub.is_wildcard());
        assert!(sub.replace(&[], None));
        assert!(!sub.wants("a"), "out of legacy mode an empty list is empty");
    }

    #[test]
    fn delta_resubscribe_reports_names_and_star_toggles() {
        let mut sub = Subscription::first(TypeUrl::Endpoint, &s(&["a"]), None);
        assert_eq!(sub.apply_delta(&s(&["a", "b"]), &[], None), s(&["a", "b"]));
        sub.apply_delta(&[], &s(&["a"]), None);
        assert!(!sub.wants("a") && sub.wants("b"));
        sub.apply_delta(&s(&["*"]), &[], None);
        assert!(sub.wants("zzz"));
        sub.apply_delta(&[], &s(&["*"]), None);
        assert!(!sub.wants("zzz"));
    }

    fn map(names: &[&str]) -> Arc<Content> {
        Arc::new(
            names
                .iter()
                .map(|n| {
                    (
                        n.to_string(),
                        Arc::new(Resource {
                            version: "1".into(),
                            body: Default::default(),
                        }),
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn names_equal_to_a_published_map_share_it_and_select_returns_it() {
        let m = map(&["a", "b", "c"]);
        let mut sub = Subscription::first(TypeUrl::Endpoint, &s(&["c", "a", "b"]), Some(&m));
        assert!(matches!(&sub.names, NameSet::Keys(k) if Arc::ptr_eq(k, &m)));
        assert!(Arc::ptr_eq(&sub.select(Some(&m)), &m));
        // The same names again (a SotW ACK): unchanged, still shared.
        assert!(!sub.replace(&s(&["a", "b", "c"]), Some(&m)));
        // One name more than the map: its own set, and a filtered selection.
        assert!(sub.replace(&s(&["a", "b", "c", "d"]), Some(&m)));
        assert!(matches!(sub.names, NameSet::Own(_)));
        assert!(sub.wants("d"));
        assert_eq!(sub.select(Some(&m)).len(), 3);
        // Delta: unsubscribing "d" makes it the map's names again.
        sub.apply_delta(&[], &s(&["d"]), Some(&m));
        assert!(matches!(&sub.names, NameSet::Keys(k) if Arc::ptr_eq(k, &m)));
        // Editing a shared set copies it; the map is untouched.
        sub.apply_delta(&[], &s(&["a"]), None);
        assert!(!sub.wants("a") && m.contains_key("a"));
    }
}
