//! The state a [`crate::Net`] shares with the pods and processes handed out
//! from it: the record on disk, the children to reap, the torn-down flag.
//!
//! Its own module so that `pod` and `process` need not import `net` (which
//! creates pods and stops processes): the modules form no cycle.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::state::{StateError, StateRecord};

/// State shared by a [`crate::Net`] and the pods and processes handed out from it.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) state: Mutex<StateRecord>,
    pub(crate) children: Mutex<BTreeMap<i32, Child>>,
    torn_down: AtomicBool,
    seq: AtomicU64,
}

impl Inner {
    /// The state of a new instance whose record (already saved) lives in `dir`.
    pub(crate) fn new(dir: PathBuf, record: StateRecord) -> Inner {
        Inner {
            dir,
            state: Mutex::new(record),
            children: Mutex::new(BTreeMap::new()),
            torn_down: AtomicBool::new(false),
            seq: AtomicU64::new(0),
        }
    }

    /// Applies `f` to the record and saves it.
    pub(crate) fn update(&self, f: impl FnOnce(&mut StateRecord)) -> Result<(), StateError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state);
        state.save(&self.dir)
    }

    pub(crate) fn is_torn_down(&self) -> bool {
        self.torn_down.load(Ordering::SeqCst)
    }

    /// Marks the instance torn down; returns whether it already was.
    pub(crate) fn set_torn_down(&self) -> bool {
        self.torn_down.swap(true, Ordering::SeqCst)
    }

    /// A fresh number for file names (logs, bootstraps).
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }
}
