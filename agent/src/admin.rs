//! A small HTTP/1.1 client, and Envoy's admin API on top of it.
//!
//! The agent only ever talks plain HTTP to loopback (Envoy's admin port, its
//! own readiness port for `agent wait`), one request per connection, with a
//! timeout on every call: a wedged Envoy must never wedge the agent.

use std::{collections::BTreeMap, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why an HTTP call failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not `http://HOST:PORT/PATH`.
    #[error("URL {0:?} is not of the form http://HOST[:PORT]/PATH")]
    BadUrl(String),
    /// Connecting, sending or reading failed.
    #[error("{method} {url}: {reason}")]
    Io {
        /// Method.
        method: Method,
        /// URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No answer in time.
    #[error("{method} {url}: no answer within {timeout:?}")]
    Timeout {
        /// Method.
        method: Method,
        /// URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// Envoy answered with an unexpected status.
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        /// URL.
        url: String,
        /// Status code.
        status: u16,
        /// Body (trimmed).
        body: String,
    },
}

/// A response: status and body as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Body, lossily decoded.
    pub body: String,
}

/// One request on its own connection.
pub async fn request(
    method: Method,
    url: &str,
    timeout: Duration,
) -> Result<HttpResponse, HttpError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| HttpError::BadUrl(url.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(HttpError::BadUrl(url.to_string()));
    }
    let host = uri
        .host()
        .ok_or_else(|| HttpError::BadUrl(url.to_string()))?
        .to_string();
    let port = uri.port_u16().unwrap_or(80);
    let io_err = |reason: String| HttpError::Io {
        method: method.clone(),
        url: url.to_string(),
        reason,
    };
    let call = async {
        let host_port = format!(
            "{}:{port}",
            host.trim_start_matches('[').trim_end_matches(']')
        );
        let stream = TcpStream::connect(host_port)
            .await
            .map_err(|e| io_err(e.to_string()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| io_err(e.to_string()))?;
        let conn = tokio::spawn(conn);
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .body(Empty::<Bytes>::new())
            .map_err(|e| io_err(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| io_err(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| io_err(e.to_string()))?
            .to_bytes();
        conn.abort();
        Ok(HttpResponse {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| HttpError::Timeout {
            method: method.clone(),
            url: url.to_string(),
            timeout,
        })?
}

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
