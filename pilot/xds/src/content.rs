//! [`Content`]: the resources of one type by name, in name order.
//!
//! Most maps are flat. A proxy's listener map is layered: the service
//! listeners its scope shares (the `base`, one `Arc` for every proxy of the
//! scope) beside its own one or two capture listeners (which hold its pod's
//! addresses). Copying the thousand shared entries into each proxy's map
//! cost about 100 KB per sidecar at Istio's load-test shape; a layered map
//! costs its own entries and a pointer.
//!
//! A layered map reads as the union of both layers (names are disjoint: an
//! own entry named like a base entry is dropped when the map is made, the
//! base's wins). Editing a layered map first copies the base in (it becomes
//! flat); nothing edits the maps it shares.

use std::{
    collections::{btree_map, BTreeMap},
    iter::Peekable,
    sync::Arc,
};

use crate::resources::Resource;

/// Resources of one type by name (see the module doc).
#[derive(Clone, Default)]
pub struct Content {
    /// The shared layer (itself flat), if any.
    base: Option<Arc<Content>>,
    /// This map's own entries (none named like a base entry).
    own: BTreeMap<String, Arc<Resource>>,
}

impl Content {
    /// An empty map.
    pub fn new() -> Self {
        Content::default()
    }

    /// `base` (shared) with `own` beside it; an own entry named like a base
    /// entry is dropped. A layered `base` is copied flat first.
    pub fn layered(
        base: Arc<Content>,
        own: impl IntoIterator<Item = (String, Arc<Resource>)>,
    ) -> Self {
        let base = if base.base.is_some() {
            Arc::new(Content {
                base: None,
                own: base.flat_entries(),
            })
        } else {
            base
        };
        let own = own
            .into_iter()
            .filter(|(n, _)| !base.own.contains_key(n))
            .collect();
        Content {
            base: Some(base),
            own,
        }
    }

    /// The shared layer of a layered map.
    pub fn base(&self) -> Option<&Arc<Content>> {
        self.base.as_ref()
    }

    /// Whether `a` and `b` are layered on the same shared map (pointer):
    /// then they differ at most in their own entries.
    pub fn same_base(a: &Content, b: &Content) -> bool {
        matches!((&a.base, &b.base), (Some(x), Some(y)) if Arc::ptr_eq(x, y))
    }

    /// This map's own entries (all of them when it is flat).
    pub fn own(&self) -> &BTreeMap<String, Arc<Resource>> {
        &self.own
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.own.len() + self.base.as_ref().map_or(0, |b| b.own.len())
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The resource named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Resource>> {
        self.get_key_value(name).map(|(_, r)| r)
    }

    /// The entry named `name`.
    pub fn get_key_value(&self, name: &str) -> Option<(&String, &Arc<Resource>)> {
        self.base
            .as_ref()
            .and_then(|b| b.own.get_key_value(name))
            .or_else(|| self.own.get_key_value(name))
    }

    /// Whether an entry is named `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get_key_value(name).is_some()
    }

    /// The entries in name order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.base {
            None => Iter::Flat(self.own.iter()),
            Some(b) => Iter::Merged(b.own.iter().peekable(), self.own.iter().peekable()),
        }
    }

    /// The names in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> + '_ {
        self.iter().map(|(n, _)| n)
    }

    /// The resources in name order.
    pub fn values(&self) -> impl Iterator<Item = &Arc<Resource>> + '_ {
        self.iter().map(|(_, r)| r)
    }

    /// A copy of every entry in one map.
    fn flat_entries(&self) -> BTreeMap<String, Arc<Resource>> {
        match &self.base {
            None => self.own.clone(),
            Some(_) => self.iter().map(|(n, r)| (n.clone(), r.clone())).collect(),
        }
    }

    /// The map to edit: a layered map becomes flat first.
    fn flat_mut(&mut self) -> &mut BTreeMap<String, Arc<Resource>> {
        if self.base.is_some() {
            self.own = self.flat_entries();
            self.base = None;
        }
        &mut self.own
    }

    /// Sets `name`; returns what it replaced.
    pub fn insert(&mut self, name: String, r: Arc<Resource>) -> Option<Arc<Resource>> {
        self.flat_mut().insert(name, r)
    }

    /// Removes `name`; returns what it held.
    pub fn remove(&mut self, name: &str) -> Option<Arc<Resource>> {
        if !self.contains_key(name) {
            return None;
        }
        self.flat_mut().remove(name)
    }

    /// The resource named `name`, to replace.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Arc<Resource>> {
        if !self.contains_key(name) {
            return None;
        }
        self.flat_mut().get_mut(name)
    }

    /// Keeps the entries `keep` accepts.
    pub fn retain(&mut self, keep: impl FnMut(&String, &mut Arc<Resource>) -> bool) {
        self.flat_mut().retain(keep)
    }

    /// The entry of `name`, to fill or edit.
    pub fn entry(&mut self, name: String) -> btree_map::Entry<'_, String, Arc<Resource>> {
        self.flat_mut().entry(name)
    }
}

/// The resource named `name`; panics when there is none (as a map's index).
impl std::ops::Index<&str> for Content {
    type Output = Arc<Resource>;
    fn index(&self, name: &str) -> &Arc<Resource> {
        self.get(name)
            .unwrap_or_else(|| panic!("no resource named {name:?}"))
    }
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Equal entries in the same order, however layered.
impl PartialEq for Content {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl FromIterator<(String, Arc<Resource>)> for Content {
    fn from_iter<I: IntoIterator<Item = (String, Arc<Resource>)>>(iter: I) -> Self {
        Content {
            base: None,
            own: iter.into_iter().collect(),
        }
    }
}

impl From<BTreeMap<String, Arc<Resource>>> for Content {
    fn from(own: BTreeMap<String, Arc<Resource>>) -> Self {
        Content { base: None, own }
    }
}

impl<const N: usize> From<[(String, Arc<Resource>); N]> for Content {
    fn from(entries: [(String, Arc<Resource>); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl Extend<(String, Arc<Resource>)> for Content {
    fn extend<I: IntoIterator<Item = (String, Arc<Resource>)>>(&mut self, iter: I) {
        self.flat_mut().extend(iter)
    }
}

impl<'a> IntoIterator for &'a Content {
    type Item = (&'a String, &'a Arc<Resource>);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Content {
    type Item = (String, Arc<Resource>);
    type IntoIter = btree_map::IntoIter<String, Arc<Resource>>;
    fn into_iter(mut self) -> Self::IntoIter {
        self.flat_mut();
        self.own.into_iter()
    }
}

/// [`Content::iter`]: one map's entries, or both layers' merged by name.
pub enum Iter<'a> {
    /// A flat map.
    Flat(btree_map::Iter<'a, String, Arc<Resource>>),
    /// Base and own entries (disjoint names), merged.
    Merged(
        Peekable<btree_map::Iter<'a, String, Arc<Resource>>>,
        Peekable<btree_map::Iter<'a, String, Arc<Resource>>>,
    ),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a Arc<Resource>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Flat(it) => it.next(),
            Iter::Merged(a, b) => match (a.peek(), b.peek()) {
                (Some((x, _)), Some((y, _))) if y < x => b.next(),
                (Some(_), _) => a.next(),
                (None, _) => b.next(),
            },
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Flat(it) => it.size_hint(),
            Iter::Merged(a, b) => {
                let n = a.len() + b.len();
                (n, Some(n))
            }
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::Any;

    fn r(v: &str) -> Arc<Resource> {
        Arc::new(Resource {
            version: v.into(),
            body: Any::default(),
        })
    }

    fn names(c: &Content) -> Vec<&str> {
        c.keys().map(String::as_str).collect()
    }

    #[test]
    fn a_layered_map_reads_as_the_union_and_edits_flat() {
        let base: Arc<Content> =
            Arc::new([("b".to_string(), r("b1")), ("d".to_string(), r("d1"))].into());
        let mut m = Content::layered(
            base.clone(),
            [
                ("a".to_string(), r("a1")),
                ("d".to_string(), r("own d")),
                ("e".to_string(), r("e1")),
            ],
        );
        assert_eq!(names(&m), ["a", "b", "d", "e"]);
        assert_eq!(m.len(), 4);
        assert_eq!(m.iter().len(), 4);
        assert_eq!(m.get("d").unwrap().version, "d1", "the base wins");
        assert_eq!(m.own().len(), 2);
        assert!(m.contains_key("b") && !m.contains_key("c"));
        let flat: Content = m.iter().map(|(n, r)| (n.clone(), r.clone())).collect();
        assert_eq!(m, flat, "equal to its flat copy");
        let other = Content::layered(base.clone(), [("z".to_string(), r("z1"))]);
        assert!(Content::same_base(&m, &other) && !Content::same_base(&m, &flat));

        m.insert("c".into(), r("c1"));
        assert!(m.base().is_none(), "an edit copies the base in");
        assert_eq!(names(&m), ["a", "b", "c", "d", "e"]);
        assert_eq!(names(&base), ["b", "d"], "the shared map is untouched");
        assert_eq!(m.remove("b").unwrap().version, "b1");
        assert_eq!(names(&m), ["a", "c", "d", "e"]);

        let on_layered = Content::layered(Arc::new(other), [("y".to_string(), r("y1"))]);
        assert_eq!(names(&on_layered), ["b", "d", "y", "z"]);
        assert!(
            on_layered.base().unwrap().base().is_none(),
            "bases are flat"
        );
    }
}
