//! `agent wait`: block until the sidecar is ready.
//!
//! The injector's template runs it as the app container's `postStart` hook
//! (as Istio's `pilot-agent wait`), so the app starts only once its proxy has
//! its configuration and outbound calls from the app's first moment work.

use std::time::Duration;

use hyper::Method;

use crate::admin;

/// Problems with `agent wait` or a duration flag.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WaitError {
    /// Not ready in time.
    #[error("{url} not ready after {timeout:?} ({attempts} attempts); last answer: {last}")]
    Timeout {
        /// The readiness URL.
        url: String,
        /// The limit.
        timeout: Duration,
        /// Attempts made.
        attempts: u32,
        /// The last status or error.
        last: String,
    },
}

/// Polls `url` every `period` until it answers 200; returns the number of
/// attempts it took.
pub async fn wait_ready(url: &str, timeout: Duration, period: Duration) -> Result<u32, WaitError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut attempts = 0;
    let mut last;
    loop {
        attempts += 1;
        match admin::request(Method::GET, url, period.max(Duration::from_secs(1))).await {
            Ok(r) if r.status == 200 => return Ok(attempts),
            Ok(r) => last = format!("HTTP {}: {}", r.status, r.body.trim()),
            Err(e) => last = e.to_string(),
        }
        tracing::debug!(attempts, %last, "not ready yet");
        if tokio::time::Instant::now() + period > deadline {
            return Err(WaitError::Timeout {
                url: url.to_string(),
                timeout,
                attempts,
                last,
            });
        }
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn times_out_with_the_last_answer() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/healthz/ready",
            l.local_addr().unwrap().port()
        );
        drop(l);
        let err = wait_ready(&url, Duration::from_millis(300), Duration::from_millis(100))
            .await
            .unwrap_err();
        let WaitError::Timeout { attempts, last, .. } = err;
        assert!(attempts >= 2, "{attempts}");
        assert!(last.contains("127.0.0.1"), "{last}");
    }
}
