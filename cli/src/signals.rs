//! SIGINT, SIGTERM and SIGHUP as a flag the runner polls: every wait loop
//! checks it, so an interrupted `up` (or `down` signalling a `--keep`
//! runner) tears down what it made instead of dying half-way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};

/// Installs the handlers; the flag turns true on the first signal.
pub fn install() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Register before returning, so no signal is missed after this call.
    let (mut int, mut term, mut hup) = rt.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        ))
    })?;
    let set = flag.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async {
                loop {
                    let name = tokio::select! {
                        _ = int.recv() => "SIGINT",
                        _ = term.recv() => "SIGTERM",
                        _ = hup.recv() => "SIGHUP",
                    };
                    tracing::info!(signal = name, "stopping");
                    set.store(true, Ordering::SeqCst);
                }
            })
        })?;
    Ok(flag)
}
