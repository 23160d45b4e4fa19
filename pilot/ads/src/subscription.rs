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

use std::{
    cell::RefCell,
    collections::{BTreeSet, VecDeque},
    sync::{Arc, Mutex, Weak},
};

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

/// Recent results of a walk over two maps, shared by every stream that walks
/// the same two: after a push, thousands of streams compare the map they
/// were sent with the new one (the same two maps per scope and type), and
/// the walk's result is the same for all of them. The `Weak`s keep both
/// addresses from being reused while an entry lives (a map with a `Weak`
/// is never edited in place: `Arc::make_mut` moves it), so equal pointers
/// mean the same maps.
struct PairMemo<T>(Mutex<VecDeque<PairEntry<T>>>);

/// Two maps (by address) and a walk's result over them.
type PairEntry<T> = (Weak<Content>, Weak<Content>, T);

impl<T: Clone> PairMemo<T> {
    /// Entries kept: a few types times the scopes of a push.
    const KEEP: usize = 64;

    const fn new() -> Self {
        PairMemo(Mutex::new(VecDeque::new()))
    }

    fn get(&self, a: &Arc<Content>, b: &Arc<Content>) -> Option<T> {
        let recent = self.0.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .iter()
            .find(|(x, y, _)| {
                std::ptr::eq(x.as_ptr(), Arc::as_ptr(a)) && std::ptr::eq(y.as_ptr(), Arc::as_ptr(b))
            })
            .map(|(_, _, v)| v.clone())
    }

    fn put(&self, a: &Arc<Content>, b: &Arc<Content>, v: T) {
        let mut recent = self.0.lock().unwrap_or_else(|e| e.into_inner());
        recent.retain(|(x, y, _)| x.strong_count() > 0 && y.strong_count() > 0);
        if recent.len() >= Self::KEEP {
            recent.pop_front();
        }
        recent.push_back((Arc::downgrade(a), Arc::downgrade(b), v));
    }
}

/// Walk results are remembered for other streams when at most this many
/// names came out (a push's changes; not a first response's whole map).
const SHARED_RESULT: usize = 256;

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
    static SHARED: PairMemo<Arc<[String]>> = PairMemo::new();
    let mut out = Vec::new();
    if Arc::ptr_eq(want, have) {
        return out;
    }
    // Nothing held (a first response): everything, without a walk.
    if have.is_empty() {
        return want.iter().collect();
    }
    if let Some(names) = SHARED.get(want, have) {
        return names.iter().filter_map(|n| want.get_key_value(n)).collect();
    }
    // Two proxies' listener maps on the same shared service listeners
    // differ at most in their own entries; on different bases, the bases'
    // difference (one walk shared by every proxy of the scope) and the own
    // entries' make the whole.
    if Content::same_base(want, have) {
        changed_walk(want.own().iter(), have.own().iter(), &mut out);
    } else if let Some((want_base, have_base)) = separate_layers(want, have) {
        let mut own = Vec::new();
        changed_walk(want.own().iter(), have.own().iter(), &mut own);
        out = merged(changed(want_base, have_base), own, |(n, _)| *n);
    } else {
        changed_walk(want.iter(), have.iter(), &mut out);
    }
    // A layered map is one proxy's: remembering its pair would only push
    // the pairs streams share (its bases') out of the memo.
    if out.len() <= SHARED_RESULT && want.base().is_none() {
        SHARED.put(want, have, out.iter().map(|(n, _)| (*n).clone()).collect());
    }
    out
}

/// The bases of two layered maps whose layers keep apart: no own entry of
/// one is named like an entry of the other's base. Then an entry of either
/// base can only be held in the other's base, an own entry only among the
/// other's own entries, and the two maps compare layer by layer.
fn separate_layers<'w, 'h>(
    want: &'w Content,
    have: &'h Content,
) -> Option<(&'w Arc<Content>, &'h Arc<Content>)> {
    let (want_base, have_base) = (want.base()?, have.base()?);
    let apart = |own: &Content, base: &Content| own.own().keys().all(|n| !base.contains_key(n));
    (apart(want, have_base) && apart(have, want_base)).then_some((want_base, have_base))
}

/// Two lists in name order (disjoint names) as one in name order.
fn merged<T>(a: Vec<T>, b: Vec<T>, name: impl Fn(&T) -> &String) -> Vec<T> {
    if b.is_empty() {
        return a;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut b = b.into_iter().peekable();
    for x in a {
        while let Some(y) = b.next_if(|y| name(y) < name(&x)) {
            out.push(y);
        }
        out.push(x);
    }
    out.extend(b);
    out
}

/// [`changed`]'s merge walk over two maps' entries in name order.
fn changed_walk<'a, 'b>(
    want: impl Iterator<Item = (&'a String, &'a Arc<Resource>)>,
    have: impl Iterator<Item = (&'b String, &'b Arc<Resource>)>,
    out: &mut Vec<(&'a String, &'a Arc<Resource>)>,
) {
    let mut have_it = have.peekable();
    for (n, r) in want {
        if have_it.peek().is_some_and(|(_, hr)| Arc::ptr_eq(hr, r)) {
            have_it.next();
            continue;
        }
        while have_it.peek().is_some_and(|(h, _)| *h < n) {
            have_it.next();
        }
        // Step past a name found, so the pointer check above lines up again.
        let held = have_it.next_if(|(h, _)| *h == n).map(|(_, hr)| hr);
        if !same_resource(held, r) {
            out.push((n, r));
        }
    }
}

/// The names `have` holds that `want` does not, in name order.
pub(crate) fn missing<'a>(want: &Arc<Content>, have: &'a Arc<Content>) -> Vec<&'a String> {
    static SHARED: PairMemo<Arc<[String]>> = PairMemo::new();
    let mut out = Vec::new();
    if Arc::ptr_eq(want, have) {
        return out;
    }
    if let Some(names) = SHARED.get(want, have) {
        return names
            .iter()
            .filter_map(|n| have.get_key_value(n).map(|(k, _)| k))
            .collect();
    }
    // As in `changed`: the same base, only the own entries differ; on
    // different bases, the bases' and the own entries' walks.
    if Content::same_base(want, have) {
        missing_walk(want.own().iter(), have.own().iter(), &mut out);
    } else if let Some((want_base, have_base)) = separate_layers(want, have) {
        let mut own = Vec::new();
        missing_walk(want.own().iter(), have.own().iter(), &mut own);
        out = merged(missing(want_base, have_base), own, |n| *n);
    } else {
        missing_walk(want.iter(), have.iter(), &mut out);
    }
    // As in `changed`: a layered (one proxy's) map's pair is not kept.
    if out.len() <= SHARED_RESULT && have.base().is_none() {
        SHARED.put(want, have, out.iter().map(|n| (*n).clone()).collect());
    }
    out
}

/// [`missing`]'s merge walk over two maps' entries in name order.
fn missing_walk<'a, 'b>(
    want: impl Iterator<Item = (&'a String, &'a Arc<Resource>)>,
    have: impl Iterator<Item = (&'b String, &'b Arc<Resource>)>,
    out: &mut Vec<&'b String>,
) {
    let mut want_it = want.peekable();
    for (n, r) in have {
        if want_it.peek().is_some_and(|(_, wr)| Arc::ptr_eq(wr, r)) {
            want_it.next();
            continue;
        }
        while want_it.peek().is_some_and(|(w, _)| *w < n) {
            want_it.next();
        }
        if want_it.next_if(|(w, _)| *w == n).is_none() {
            out.push(n);
        }
    }
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
                static SHARED: PairMemo<bool> = PairMemo::new();
                if let Some(equal) = SHARED.get(k, m) {
                    return equal;
                }
                let equal = k.len() == m.len()
                    && k.iter()
                        .zip(m.iter())
                        .all(|((a, ra), (b, rb))| Arc::ptr_eq(ra, rb) || a == b);
                SHARED.put(k, m, equal);
                equal
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

    /// The names of `m` this set lacks, in name order: one merge walk (by
    /// pointer where both are maps sharing resources).
    fn lacks<'a>(&self, m: &'a Arc<Content>) -> Vec<&'a String> {
        match self {
            NameSet::Keys(k) => missing(k, m),
            NameSet::Own(s) => {
                let mut out = Vec::new();
                let mut it = s.iter().peekable();
                for n in m.keys() {
                    while it.peek().is_some_and(|h| *h < n) {
                        it.next();
                    }
                    if it.peek() != Some(&n) {
                        out.push(n);
                    }
                }
                out
            }
        }
    }

    /// Adds `add`, then removes `remove` (plain names, no `*`). When the
    /// result is exactly the names of `available`, the set becomes those
    /// keys without a name copied: thousands of streams subscribe to the
    /// same thousands of EDS names, and a service add grows them all by a
    /// few. Returns whether the set changed.
    fn edit(
        &mut self,
        add: &[&String],
        remove: &[&String],
        available: Option<&Arc<Content>>,
    ) -> bool {
        let mut new: Vec<&String> = add.iter().copied().filter(|n| !self.contains(n)).collect();
        new.sort_unstable();
        new.dedup();
        let mut gone: Vec<&String> = remove
            .iter()
            .copied()
            .filter(|n| self.contains(n) || new.binary_search(n).is_ok())
            .collect();
        gone.sort_unstable();
        gone.dedup();
        if new.is_empty() && gone.is_empty() {
            return false;
        }
        if let Some(m) = available {
            if self.becomes_keys(&new, &gone, m) {
                *self = NameSet::Keys(m.clone());
                return true;
            }
        }
        let set = self.make_mut();
        set.extend(new.into_iter().cloned());
        for n in gone {
            set.remove(n);
        }
        true
    }

    /// Whether (this set ∪ `new`) − `gone` (both sorted; `new` disjoint
    /// from the set, `gone` within the union) equals the keys of `m`: the
    /// sizes match and every key of `m` is in it.
    fn becomes_keys(&self, new: &[&String], gone: &[&String], m: &Arc<Content>) -> bool {
        let size = self.len() + new.len() - gone.len();
        if size != m.len() || gone.iter().any(|n| m.contains_key(n)) {
            return false;
        }
        // Both in name order: one merge walk, not a binary search per name
        // (a first EDS request names every one of thousands of clusters).
        let mut new_it = new.iter().peekable();
        self.lacks(m).into_iter().all(|n| {
            while new_it.next_if(|x| **x < n).is_some() {}
            new_it.next_if(|x| **x == n).is_some()
        })
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
        s.apply(names, &[], available);
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
        let plain_names = || names.iter().filter(|n| *n != WILDCARD);
        if !self.legacy
            && self.wildcard == explicit_star
            && plain == self.names.len()
            // In name order (as the set holds them) one walk compares
            // them; in any other order each is looked up.
            && (plain_names().eq(self.names.iter())
                || plain_names().all(|n| self.names.contains(n)))
        {
            self.share(available);
            return false;
        }
        let before = (self.wildcard, self.legacy, self.names.clone());
        self.legacy = false;
        self.wildcard = false;
        self.names = NameSet::default();
        self.selected.replace(None);
        self.apply(names, &[], available);
        self.share(available);
        (self.wildcard, self.legacy) != (before.0, before.1)
            || self.names.len() != before.2.len()
            || !self.names.iter().eq(before.2.iter())
    }

    /// Delta: requests carry changes. Returns the names newly subscribed
    /// (explicitly, not through `*`), which the caller must (re)send even if
    /// it believes the client holds them: "resubscribing to a known name
    /// must still return it".
    pub(crate) fn apply_delta<'a>(
        &mut self,
        subscribe: &'a [String],
        unsubscribe: &[String],
        available: Option<&Arc<Content>>,
    ) -> Vec<&'a String> {
        if self.legacy {
            if subscribe.is_empty() {
                // Only `subscribe` counts for leaving legacy mode (xDS spec).
                self.apply(&[], unsubscribe, available);
                return Vec::new();
            }
            self.legacy = false;
            self.wildcard = false;
        }
        let added = self.apply(subscribe, unsubscribe, available);
        self.share(available);
        added
    }

    /// Applies a request's names: `*` toggles the wildcard, the others are
    /// added then removed as one edit. Returns the names subscribed
    /// (explicitly, not through `*`).
    fn apply<'a>(
        &mut self,
        subscribe: &'a [String],
        unsubscribe: &[String],
        available: Option<&Arc<Content>>,
    ) -> Vec<&'a String> {
        let wildcard = if unsubscribe.iter().any(|n| n == WILDCARD) {
            false
        } else {
            self.wildcard || subscribe.iter().any(|n| n == WILDCARD)
        };
        let mut changed = wildcard != self.wildcard;
        self.wildcard = wildcard;
        let add: Vec<&String> = subscribe.iter().filter(|n| *n != WILDCARD).collect();
        let remove: Vec<&String> = unsubscribe.iter().filter(|n| *n != WILDCARD).collect();
        changed |= self.names.edit(&add, &remove, available);
        if changed {
            self.selected.replace(None);
        }
        add
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
            match &self.names {
                NameSet::Keys(k) => shared_selection(k, available),
                NameSet::Own(set) => Arc::new(
                    set.iter()
                        .filter_map(|n| available.get_key_value(n))
                        .map(|(n, r)| (n.clone(), r.clone()))
                        .collect(),
                ),
            }
        };
        self.selected
            .replace(Some((available.clone(), output.clone())));
        output
    }
}

/// The entries of `available` named by the keys of `names`, built once for
/// every stream selecting with the same two maps. Between a push that adds
/// names (a service add) and the streams subscribing to them, thousands of
/// streams select the previous names from the new map: they share one
/// result instead of building a copy each.
fn shared_selection(names: &Arc<Content>, available: &Arc<Content>) -> Arc<Content> {
    static SHARED: PairMemo<Arc<Content>> = PairMemo::new();
    if let Some(out) = SHARED.get(names, available) {
        return out;
    }
    // One merge walk over both (sorted) maps.
    let mut out = Content::new();
    let mut it = names.iter().peekable();
    for (n, r) in available.iter() {
        if it.peek().is_some_and(|(_, kr)| Arc::ptr_eq(kr, r)) {
            it.next();
            out.insert(n.clone(), r.clone());
            continue;
        }
        while it.peek().is_some_and(|(k, _)| *k < n) {
            it.next();
        }
        if it.next_if(|(k, _)| *k == n).is_some() {
            out.insert(n.clone(), r.clone());
        }
    }
    let out = Arc::new(out);
    SHARED.put(names, available, out.clone());
    out
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
    fn a_sotw_ack_repeating_the_names_in_any_order_changes_nothing() {
        let mut sub = Subscription::first(TypeUrl::Endpoint, &s(&["a", "b", "c"]), None);
        // In name order (one walk), in another order (looked up), with `*`
        // where there was none, and one name swapped for another.
        assert!(!sub.replace(&s(&["a", "b", "c"]), None));
        assert!(!sub.replace(&s(&["c", "a", "b"]), None));
        assert!(sub.wants("a") && sub.wants("c") && !sub.is_wildcard());
        assert!(sub.replace(&s(&["a", "b", "d"]), None));
        assert!(sub.wants("d") && !sub.wants("c"));
        assert!(sub.replace(&s(&["*", "a", "b", "d"]), None));
        assert!(sub.is_wildcard());
        assert!(!sub.replace(&s(&["d", "*", "b", "a"]), None));
    }

    #[test]
    fn delta_resubscribe_reports_names_and_star_toggles() {
        let mut sub = Subscription::first(TypeUrl::Endpoint, &s(&["a"]), None);
        let names = s(&["a", "b"]);
        assert_eq!(
            sub.apply_delta(&names, &[], None),
            names.iter().collect::<Vec<_>>()
        );
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
        // As many names, one of them not the map's (either end): its own set.
        for other in [&["a", "b", "d"], &["0", "b", "c"]] {
            let own = Subscription::first(TypeUrl::Endpoint, &s(other), Some(&m));
            assert!(matches!(own.names, NameSet::Own(_)), "{other:?}");
        }
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

    fn with(m: &Arc<Content>, add: &[&str], remove: &[&str]) -> Arc<Content> {
        let mut c = (**m).clone();
        for n in add {
            c.insert(
                n.to_string(),
                Arc::new(Resource {
                    version: "2".into(),
                    body: Default::default(),
                }),
            );
        }
        for n in remove {
            c.remove(n);
        }
        Arc::new(c)
    }

    #[test]
    fn subscribing_to_a_grown_map_takes_its_keys_without_copying_names() {
        let m = map(&["a", "b", "c"]);
        let mut sub = Subscription::first(TypeUrl::Endpoint, &s(&["a", "b", "c"]), Some(&m));
        // A service add: the map grows by "d", the stream subscribes to it.
        let grown = with(&m, &["d"], &[]);
        sub.apply_delta(&s(&["d"]), &[], Some(&grown));
        assert!(matches!(&sub.names, NameSet::Keys(k) if Arc::ptr_eq(k, &grown)));
        // A removal: the map shrinks, the stream unsubscribes.
        let shrunk = with(&grown, &[], &["a"]);
        sub.apply_delta(&[], &s(&["a"]), Some(&shrunk));
        assert!(matches!(&sub.names, NameSet::Keys(k) if Arc::ptr_eq(k, &shrunk)));
        assert!(!sub.wants("a") && sub.wants("d"));
        // A name pilot does not have: the stream's own set, holding it.
        sub.apply_delta(&s(&["zz"]), &[], Some(&shrunk));
        assert!(matches!(sub.names, NameSet::Own(_)));
        assert!(sub.wants("zz") && sub.wants("b"));
        // Subscribed and unsubscribed in one request: removed.
        sub.apply_delta(&s(&["x"]), &s(&["x", "zz"]), Some(&shrunk));
        assert!(!sub.wants("x") && !sub.wants("zz"));
        assert!(matches!(&sub.names, NameSet::Keys(k) if Arc::ptr_eq(k, &shrunk)));
    }

    #[test]
    fn streams_selecting_old_names_from_a_new_map_share_one_selection() {
        let m = map(&["a", "b", "c"]);
        let grown = with(&m, &["bb", "d"], &["c"]);
        let one = Subscription::first(TypeUrl::Endpoint, &s(&["a", "b", "c"]), Some(&m));
        let two = Subscription::first(TypeUrl::Endpoint, &s(&["a", "b", "c"]), Some(&m));
        let x = one.select(Some(&grown));
        let y = two.select(Some(&grown));
        assert!(Arc::ptr_eq(&x, &y));
        assert_eq!(x.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert!(Arc::ptr_eq(&x["a"], &grown["a"]));
    }

    /// The merge walks agree with a lookup per name on maps that share
    /// some resources and differ in others (inserted, removed, replaced), so
    /// the walks lose and regain the pointer fast path along the way.
    #[test]
    fn merge_walks_agree_with_lookups() {
        let names: Vec<String> = (0..40).map(|i| format!("n{i:02}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let base = map(&refs[..30]);
        // Replaced (new version, new pointer), added, and removed names.
        let other = with(
            &base,
            &["n03", "n17", "n31", "n35", "a"],
            &["n00", "n10", "n11", "n29"],
        );
        for (want, have) in [(&base, &other), (&other, &base)] {
            let expect_changed: Vec<&String> = want
                .iter()
                .filter(|(n, r)| have.get(n).is_none_or(|h| h.version != r.version))
                .map(|(n, _)| n)
                .collect();
            // Walked, then (the same two maps) remembered for other streams.
            for _ in 0..2 {
                let got: Vec<&String> = changed(want, have).into_iter().map(|(n, _)| n).collect();
                assert_eq!(got, expect_changed);
                let expect_missing: Vec<&String> =
                    have.keys().filter(|n| !want.contains_key(n)).collect();
                assert_eq!(missing(want, have), expect_missing);
            }
            let selected = shared_selection(have, want);
            let expect: Vec<&String> = want.keys().filter(|n| have.contains_key(n)).collect();
            assert_eq!(selected.keys().collect::<Vec<_>>(), expect);
        }
    }

    /// Listener maps layered on one shared map (two proxies of a scope, or
    /// one proxy before and after its own listener changed) walk only their
    /// own entries and agree with a lookup per name; a map layered on an
    /// equal copy of the base walks everything and agrees too.
    #[test]
    fn layered_maps_walk_their_own_entries_and_agree_with_lookups() {
        let shared = map(&["0.0.0.0_80", "10.0.0.1_3306", "10.0.0.2_9000"]);
        let own = |pairs: &[(&str, &str)]| -> Vec<(String, Arc<Resource>)> {
            pairs
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        Arc::new(Resource {
                            version: v.to_string(),
                            body: Default::default(),
                        }),
                    )
                })
                .collect()
        };
        let one = Arc::new(Content::layered(
            shared.clone(),
            own(&[("virtual", "pod-1"), ("virtualInbound", "in")]),
        ));
        let two = Arc::new(Content::layered(
            shared.clone(),
            own(&[("virtual", "pod-2")]),
        ));
        let copy = Arc::new(Content::layered(
            Arc::new((*shared).clone()),
            own(&[("virtual", "pod-2")]),
        ));
        // A service added and one changed: another base, walked once for
        // every proxy on it; and layers that overlap (an own entry named
        // like the other's base entry) compared whole.
        let grown = Arc::new(Content::layered(
            with(&shared, &["10.0.0.1_3306", "10.0.0.3_80"], &["0.0.0.0_80"]),
            own(&[("virtual", "pod-1")]),
        ));
        let overlap = Arc::new(Content::layered(
            map(&["0.0.0.0_80"]),
            own(&[("10.0.0.1_3306", "own"), ("virtual", "pod-1")]),
        ));
        assert!(Content::same_base(&one, &two) && !Content::same_base(&one, &copy));
        for (want, have) in [
            (&one, &two),
            (&two, &one),
            (&one, &copy),
            (&copy, &one),
            (&grown, &one),
            (&one, &grown),
            (&grown, &two),
            (&overlap, &one),
            (&one, &overlap),
        ] {
            let expect_changed: Vec<&String> = want
                .iter()
                .filter(|(n, r)| have.get(n).is_none_or(|h| h.version != r.version))
                .map(|(n, _)| n)
                .collect();
            let got: Vec<&String> = changed(want, have).into_iter().map(|(n, _)| n).collect();
            assert_eq!(got, expect_changed);
            let expect_missing: Vec<&String> =
                have.keys().filter(|n| !want.contains_key(n)).collect();
            assert_eq!(missing(want, have), expect_missing);
            assert_eq!(
                rudder_xds::same_versions(want, have),
                expect_changed.is_empty() && expect_missing.is_empty()
            );
        }
        let names = |v: Vec<&String>| v.into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(
            names(changed(&one, &two).into_iter().map(|(n, _)| n).collect()),
            ["virtual", "virtualInbound"]
        );
        assert_eq!(names(missing(&two, &one)), ["virtualInbound"]);
        assert!(changed(&two, &copy).is_empty() && rudder_xds::same_versions(&two, &copy));
        assert_eq!(
            names(changed(&grown, &one).into_iter().map(|(n, _)| n).collect()),
            ["10.0.0.1_3306", "10.0.0.3_80"]
        );
        assert_eq!(
            names(missing(&grown, &one)),
            ["0.0.0.0_80", "virtualInbound"]
        );
    }
}
