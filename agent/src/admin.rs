//! Envoy's admin API, on the shared HTTP client (`rudder-http`).
//!
//! The agent only ever talks plain HTTP to loopback (Envoy's admin port, its
//! own readiness port for `agent wait`), one request per connection, with a
//! timeout on every call: a wedged Envoy must never wedge the agent.

use std::{collections::BTreeMap, time::Duration};

use hyper::Method;
/// The one HTTP client (`rudder-http`); re-exported where the agent's
/// callers have always found it.
pub use rudder_http::{request, HttpError, HttpResponse};

/// Envoy's admin interface on `127.0.0.1:<port>`.
#[derive(Clone, Copy, Debug)]
pub struct Admin {
    port: u16,
    timeout: Duration,
}

impl Admin {
    /// Admin on loopback `port`, each call bounded by `timeout`.
    pub fn new(port: u16, timeout: Duration) -> Self {
        Self { port, timeout }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn ok(&self, method: Method, path: &str) -> Result<String, HttpError> {
        let url = self.url(path);
        let r = request(method, &url, self.timeout).await?;
        if r.status != 200 {
            return Err(HttpError::Status {
                url,
                status: r.status,
                body: r.body.trim().to_string(),
            });
        }
        Ok(r.body)
    }

    /// The server state from `/ready`: `LIVE`, `PRE_INITIALIZING`,
    /// `INITIALIZING`, `DRAINING`. Envoy answers 503 for all but `LIVE`, so
    /// the body is returned whatever the status.
    pub async fn state(&self) -> Result<String, HttpError> {
        let r = request(Method::GET, &self.url("/ready"), self.timeout).await?;
        Ok(r.body.trim().to_string())
    }

    /// Counters and gauges whose names match the regex `filter`.
    pub async fn stats(&self, filter: &str) -> Result<BTreeMap<String, u64>, HttpError> {
        let body = self
            .ok(
                Method::GET,
                &format!("/stats?usedonly=false&filter={}", encode_query(filter)),
            )
            .await?;
        Ok(parse_stats(&body))
    }

    /// Envoy's Prometheus exposition.
    pub async fn prometheus(&self) -> Result<String, HttpError> {
        self.ok(Method::GET, "/stats/prometheus").await
    }

    /// `GET /config_dump` (read-only), with `query` (already encoded, e.g.
    /// `resource=dynamic_active_clusters&include_eds`) appended when not empty.
    pub async fn config_dump(&self, query: &str) -> Result<HttpResponse, HttpError> {
        let path = if query.is_empty() {
            "/config_dump".to_string()
        } else {
            format!("/config_dump?{query}")
        };
        request(Method::GET, &self.url(&path), self.timeout).await
    }

    /// `GET /certs` (read-only): the certificates Envoy holds, with serial
    /// numbers and validity.
    pub async fn certs(&self) -> Result<String, HttpError> {
        self.ok(Method::GET, "/certs").await
    }

    /// `GET /clusters?format=json` (read-only): each upstream host with its
    /// health and outlier-detection state.
    pub async fn clusters(&self) -> Result<String, HttpError> {
        self.ok(Method::GET, "/clusters?format=json").await
    }

    /// `POST /drain_listeners?graceful`: every listener (inbound and
    /// outbound) enters its graceful drain period, so in-flight requests
    /// finish and keep-alive clients are told to reconnect.
    pub async fn drain_listeners(&self) -> Result<(), HttpError> {
        self.ok(Method::POST, "/drain_listeners?graceful")
            .await
            .map(drop)
    }
}

/// Parses admin `/stats` text (`name: value` lines); histograms and other
/// non-integer lines are skipped.
pub fn parse_stats(body: &str) -> BTreeMap<String, u64> {
    body.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Percent-encodes a query value (admin filters are regexes).
fn encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_text_parses() {
        let s =
            parse_stats("cluster_manager.cds.update_success: 3\nserver.state: 0\nx: P0(nan,1)\n");
        assert_eq!(s.get("cluster_manager.cds.update_success"), Some(&3));
        assert_eq!(s.get("server.state"), Some(&0));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn query_encoding() {
        assert_eq!(encode_query("^a\\.b$"), "%5Ea%5C.b%24");
    }

    #[tokio::test]
    async fn bad_urls_and_refused_connections() {
        let e = request(Method::GET, "ftp://x/", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, HttpError::BadUrl(_)));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = request(
            Method::GET,
            &format!("http://127.0.0.1:{port}/"),
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains(&port.to_string()), "{e}");
    }
}
