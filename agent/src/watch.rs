//! Watching the certificate directory.
//!
//! Writers change certificates in two ways, and both must be seen: kubelet
//! (Secret and projected volumes) writes a new timestamped directory and
//! atomically swaps the `..data` symlink that `cert-chain.pem` & co. point
//! through; tools and tests rewrite the files in place, one after another.
//! Either produces a burst of events, so the watcher waits until the
//! directory has been quiet for the debounce interval and then sends a single
//! notification; the supervisor reads and checks the files afterwards.

use std::{path::Path, time::Duration};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// The watch could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("watching {dir}: {reason}")]
pub struct WatchError {
    dir: String,
    reason: String,
}

/// Keeps the watch alive; dropping it stops watching.
#[derive(Debug)]
pub struct DirWatch {
    _watcher: RecommendedWatcher,
}

/// Watches `dir` (recursively, so writes through kubelet's `..data` links
/// count too) and calls `notify` once per burst of changes, `debounce` after
/// the last one. Reads (`Access` events, which our own checks cause) are
/// ignored so a check never triggers another.
pub fn watch_dir(
    dir: &Path,
    debounce: Duration,
    on_change: impl Fn() + Send + 'static,
) -> Result<DirWatch, WatchError> {
    let err = |e: notify::Error| WatchError {
        dir: dir.display().to_string(),
        reason: e.to_string(),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) if !matches!(ev.kind, EventKind::Access(_)) => {
                let _ = tx.send(());
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "certificate watch error"),
        })
        .map_err(err)?;
    watcher.watch(dir, RecursiveMode::Recursive).map_err(err)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Quiet period: every further event restarts the wait.
            loop {
                match tokio::time::timeout(debounce, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            on_change();
        }
    });
    Ok(DirWatch { _watcher: watcher })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    async fn wait_for(count: &AtomicUsize, want: usize) -> usize {
        for _ in 0..50 {
            if count.load(Ordering::SeqCst) >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        count.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_burst_is_one_change_and_symlink_swaps_count() {
        let d = tempfile::tempdir().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let _w = watch_dir(d.path(), Duration::from_millis(200), move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        for f in ["cert-chain.pem", "key.pem", "root-cert.pem"] {
            std::fs::write(d.path().join(f), "x").unwrap();
        }
        assert_eq!(wait_for(&count, 1).await, 1);
        // Reading does not count.
        let _ = std::fs::read(d.path().join("key.pem")).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(count.load(Ordering::SeqCst), 1);
        // kubelet style: new data dir, then an atomic rename of the ..data link.
        std::fs::create_dir(d.path().join("..2026_01")).unwrap();
        std::os::unix::fs::symlink("..2026_01", d.path().join("..data_tmp")).unwrap();
        std::fs::rename(d.path().join("..data_tmp"), d.path().join("..data")).unwrap();
        assert_eq!(wait_for(&count, 2).await, 2);
    }
}
