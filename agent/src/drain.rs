//! Deciding when a draining Envoy has finished its work.
//!
//! After `POST /drain_listeners?graceful` Envoy tells clients to go away
//! (`connection: close`, HTTP/2 GOAWAY) but keeps serving what is in flight.
//! The agent waits until nothing is in flight, or `--drain-duration` passes:
//! - every HTTP request still active counts (`http.<prefix>.downstream_rq_active`);
//! - every non-HTTP connection counts: listener connections
//!   (`listener.<addr>.downstream_cx_active`) minus those HTTP connection
//!   managers hold (`http.<prefix>.downstream_cx_active`);
//! - idle HTTP keep-alive connections do not: Envoy closes them itself.
//!
//! The admin interface (`admin`) and the Prometheus listener (stat prefix
//! `stats`, address ending in `_<stats port>`) are the agent's and
//! Prometheus's own traffic and never count.

use std::{collections::BTreeMap, time::Duration};

use crate::admin::Admin;

/// How a drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Nothing was in flight any more.
    Idle,
    /// `--drain-duration` passed with work still in flight.
    TimedOut,
    /// Every Envoy exited on its own.
    Exited,
    /// A second shutdown request cut the wait short.
    Forced,
}

/// Requests and non-HTTP connections in flight, from admin `/stats`.
pub fn active_work(stats: &BTreeMap<String, u64>, stats_port: u16) -> u64 {
    let own_http = |prefix: &str| prefix == "admin" || prefix == "stats";
    let stats_suffix = format!("_{stats_port}");
    let (mut requests, mut listener_cx, mut http_cx) = (0u64, 0u64, 0u64);
    for (name, v) in stats {
        if let Some(prefix) = name
            .strip_prefix("http.")
            .and_then(|n| n.strip_suffix(".downstream_rq_active"))
        {
            if !own_http(prefix) {
                requests += v;
            }
        } else if let Some(prefix) = name
            .strip_prefix("http.")
            .and_then(|n| n.strip_suffix(".downstream_cx_active"))
        {
            if !own_http(prefix) {
                http_cx += v;
            }
        } else if let Some(addr) = name
            .strip_prefix("listener.")
            .and_then(|n| n.strip_suffix(".downstream_cx_active"))
        {
            if addr != "admin" && !addr.ends_with(&stats_suffix) {
                listener_cx += v;
            }
        }
    }
    requests + listener_cx.saturating_sub(http_cx)
}

/// Polls Envoy until [`active_work`] is 0 (seen once the admin answered) or
/// `limit` passes.
pub async fn wait_idle(admin: &Admin, stats_port: u16, limit: Duration) -> DrainOutcome {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match admin.stats("downstream_(cx|rq)_active$").await {
            Ok(stats) => {
                let active = active_work(&stats, stats_port);
                if active == 0 {
                    return DrainOutcome::Idle;
                }
                tracing::debug!(active, "draining: work in flight");
            }
            Err(error) => tracing::debug!(%error, "draining: admin stats unavailable"),
        }
        if tokio::time::Instant::now() >= deadline {
            return DrainOutcome::TimedOut;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn idle_keepalive_connections_do_not_count() {
        let s = stats(&[
            ("listener.127.0.0.1_8080.downstream_cx_active", 2),
            ("http.ingress.downstream_cx_active", 2),
            ("http.ingress.downstream_rq_active", 0),
        ]);
        assert_eq!(active_work(&s, 15090), 0);
    }

    #[test]
    fn requests_and_tcp_connections_count() {
        let s = stats(&[
            ("listener.127.0.0.1_8080.downstream_cx_active", 3),
            ("http.ingress.downstream_cx_active", 1),
            ("http.ingress.downstream_rq_active", 1),
        ]);
        assert_eq!(active_work(&s, 15090), 3);
    }

    #[test]
    fn own_traffic_does_not_count() {
        let s = stats(&[
            ("listener.admin.downstream_cx_active", 1),
            ("http.admin.downstream_rq_active", 1),
            ("listener.0.0.0.0_15090.downstream_cx_active", 1),
            ("http.stats.downstream_rq_active", 1),
        ]);
        assert_eq!(active_work(&s, 15090), 0);
    }
}
