//! The directory source: `pilot serve --config-dir DIR`.
//!
//! Reads DIR recursively, then watches it (notify, recursive). Each file is
//! its own scope: a change re-reads just that file and `reset`s its scope, so
//! objects removed from the file disappear and a deleted file takes its
//! objects with it. Editors that save by writing a temp file and renaming it
//! over the original produce an event on the final path, which is all this
//! needs. A file that stops parsing keeps its last good objects (`report`).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::mpsc,
    time::Duration,
};

use notify::{RecursiveMode, Watcher};

use crate::{
    load::{collect_files, is_config_file, load_str, LoadError},
    store::{Batch, Sink},
};

/// Errors starting the directory source.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// DIR is missing or unreadable.
    #[error("config dir {path}: {source}")]
    Read {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: LoadError,
    },
    /// The watch could not be set up.
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: notify::Error,
    },
}

/// A running directory source; watching stops when it is dropped. There is
/// no "synced yet" state to ask about: `spawn` returns only after the whole
/// directory is in the sink.
pub struct DirectorySource {
    _watcher: notify::RecommendedWatcher,
}

impl DirectorySource {
    /// Reads `dir` fully (before returning, so the store holds the whole
    /// directory when this returns) and starts watching it.
    pub fn spawn<S: Sink + 'static>(
        dir: PathBuf,
        sink: S,
    ) -> Result<DirectorySource, DirectoryError> {
        let files = collect_files(&dir).map_err(|source| DirectoryError::Read {
            path: dir.clone(),
            source,
        })?;
        let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
        let mut watcher =
            notify::recommended_watcher(tx).map_err(|source| DirectoryError::Watch {
                path: dir.clone(),
                source,
            })?;
        watcher
            .watch(&dir, RecursiveMode::Recursive)
            .map_err(|source| DirectoryError::Watch {
                path: dir.clone(),
                source,
            })?;
        let mut state = State {
            sink,
            known: BTreeSet::new(),
        };
        for f in files {
            state.reload(&f);
        }
        tracing::info!(dir = %dir.display(), files = state.known.len(), "config dir read; watching");
        std::thread::Builder::new()
            .name("config-dir-watch".into())
            .spawn(move || state.run(rx))
            .map_err(|e| DirectoryError::Watch {
                path: dir.clone(),
                source: notify::Error::io(e),
            })?;
        Ok(DirectorySource { _watcher: watcher })
    }
}

struct State<S> {
    sink: S,
    /// Files whose objects are in the store (their scopes).
    known: BTreeSet<PathBuf>,
}

impl<S: Sink> State<S> {
    fn run(mut self, rx: mpsc::Receiver<notify::Result<notify::Event>>) {
        // Ends when the watcher (and so the sender) is dropped.
        while let Ok(first) = rx.recv() {
            let mut paths = BTreeSet::new();
            let mut add = |ev: notify::Result<notify::Event>| match ev {
                // Our own reads show up as access events: ignore them, or
                // every read would trigger another.
                Ok(ev) if matches!(ev.kind, notify::EventKind::Access(_)) => {}
                Ok(ev) => paths.extend(ev.paths),
                Err(error) => tracing::warn!(%error, "config dir watch error"),
            };
            add(first);
            // Gather the rest of a burst (an editor's write + rename) briefly.
            while let Ok(ev) = rx.recv_timeout(Duration::from_millis(20)) {
                add(ev);
            }
            for p in paths {
                self.changed(&p);
            }
        }
    }

    fn changed(&mut self, path: &Path) {
        if path.is_dir() {
            // A directory event (a directory renamed or copied in, or just its
            // entries changing): load only files not yet known; known files
            // get events of their own.
            match collect_files(path) {
                Ok(files) => {
                    let new: Vec<PathBuf> = files
                        .into_iter()
                        .filter(|f| !self.known.contains(f))
                        .collect();
                    new.iter().for_each(|f| self.reload(f));
                }
                Err(error) => tracing::warn!(%error, "cannot read new directory"),
            }
        } else if path.is_file() {
            if is_config_file(path) {
                self.reload(path);
            }
        } else {
            // Gone: the file itself, or a directory that held known files.
            let gone: Vec<PathBuf> = self
                .known
                .iter()
                .filter(|k| k.starts_with(path))
                .cloned()
                .collect();
            for g in gone {
                tracing::info!(file = %g.display(), "config file removed");
                self.sink.reset(&scope(&g), Batch::default());
                self.known.remove(&g);
            }
        }
    }

    fn reload(&mut self, path: &Path) {
        let scope = scope(path);
        let mut text = std::fs::read_to_string(path);
        if self.known.contains(path) && text.as_ref().is_ok_and(|t| t.trim().is_empty()) {
            // An in-place save truncates before writing: give the writer a
            // moment before concluding the file was emptied on purpose.
            std::thread::sleep(Duration::from_millis(100));
            text = std::fs::read_to_string(path);
        }
        let loaded = text.map(|t| load_str(&t, &scope, &scope));
        match loaded {
            Ok(loaded) if loaded.unparseable => {
                tracing::warn!(file = %path.display(), "config file does not parse; its last good objects stay");
                self.sink.report(&scope, loaded.problems);
            }
            Ok(loaded) => {
                tracing::debug!(file = %path.display(), objects = loaded.objects.len(), "config file read");
                self.known.insert(path.to_path_buf());
                // Unsupported objects travel as the scope's problems: the
                // registry logs each once and `/debug/configz` lists them.
                self.sink.reset(&scope, loaded.into_batch());
            }
            // Vanished between the event and the read: the delete event follows.
            Err(error) => tracing::debug!(%error, "config file unreadable"),
        }
    }
}

fn scope(path: &Path) -> String {
    path.display().to_string()
}
