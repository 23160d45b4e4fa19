//! Resource versions: a hash of the model inputs a resource was built from.
//!
//! Never a hash of encoded protobuf: envoy-types uses `HashMap` for some map
//! fields and prost encodes them in iteration order, so equal resources could
//! get different versions. The model is all `BTreeMap`s and derives `Hash`, so
//! hashing the inputs is deterministic; equal inputs give equal versions across
//! calls and across [`crate::Generator`]s.
//!
//! Every version is salted with [`GENERATOR_HASH`], a hash of the generator's
//! own sources computed at build time: a pilot built from different code may
//! build different bytes from the same inputs, so a reconnecting Envoy (Delta
//! sends the versions it holds) never keeps config an older pilot built.
//! The golden tests record every case in a
//! `VersionLedger` (in `fixtures`, feature `testing`), which asserts that same
//! version ⇔ same canonical JSON across all of them.

use std::{
    collections::hash_map::DefaultHasher,
    fmt,
    hash::{Hash, Hasher},
};

/// Hash of the sources of `rudder-xds` and `rudder-model` (and the
/// envoy-types version) this build was made from, computed by `build.rs`.
pub const GENERATOR_HASH: &str = env!("RUDDER_GENERATOR_HASH");

/// A version under construction: feed it every input, then format it.
#[derive(Clone)]
pub(crate) struct Version(DefaultHasher);

impl Version {
    /// A fresh version for a resource kind (the kind keeps a cluster and an
    /// EDS built from the same inputs apart).
    pub(crate) fn new(kind: &str) -> Self {
        let mut h = DefaultHasher::new();
        // Other generator code may build other protos from the same inputs:
        // salt with the hash of that code so reconnecting Envoys get them.
        GENERATOR_HASH.hash(&mut h);
        kind.hash(&mut h);
        Version(h)
    }

    /// Adds one input.
    pub(crate) fn add<T: Hash + ?Sized>(&mut self, input: &T) -> &mut Self {
        input.hash(&mut self.0);
        self
    }

    /// Adds one input, builder style.
    pub(crate) fn with<T: Hash + ?Sized>(mut self, input: &T) -> Self {
        input.hash(&mut self.0);
        self
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0.finish())
    }
}
