//! Bounded HTTP/1.1 load loops inside pods, on the shared client
//! (`rudder-http`).
//!
//! Each request's outcome (status, body, headers, or the error) is recorded,
//! so a test can count how traffic split between upstreams and assert that
//! none failed. Keep-alive is optional: with it the loop reuses one connection
//! until the server closes it (as Envoy does while draining), then reconnects,
//! the way a real keep-alive client behaves.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rudder_http::{Client, Method, Options};
use tokio::time::{timeout_at, Instant};

use crate::pod::{Pod, PodError};

/// One request to send (repeatedly, in a load loop).
#[derive(Clone, Debug)]
pub struct HttpRequest {
    /// Where to connect (an IP, not a name: pods have no DNS).
    pub addr: SocketAddr,
    /// Method, e.g. `GET`.
    pub method: String,
    /// Path and query, e.g. `/reviews/1`.
    pub path: String,
    /// `Host` header; defaults to `addr`.
    pub host: Option<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

impl HttpRequest {
    /// `GET path` to `addr`.
    pub fn get(addr: SocketAddr, path: impl Into<String>) -> HttpRequest {
        HttpRequest {
            addr,
            method: "GET".into(),
            path: path.into(),
            host: None,
            headers: Vec::new(),
        }
    }

    /// Sets the `Host` header (how Envoy picks the virtual host).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What happened to one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Response status, if a response arrived.
    pub status: Option<u16>,
    /// Response body (lossy UTF-8).
    pub body: String,
    /// Response headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Why no complete response arrived.
    pub error: Option<String>,
}

impl Outcome {
    /// First value of response header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A response with a 2xx status.
    pub fn is_success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// A bounded load loop: `count` requests, all within `timeout`.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// The request to repeat.
    pub request: HttpRequest,
    /// How many requests.
    pub count: usize,
    /// Bound on the whole loop; requests not sent by then are recorded as errors.
    pub timeout: Duration,
    /// Reuse connections (HTTP/1.1 keep-alive) instead of one per request.
    pub keep_alive: bool,
}

impl LoadSpec {
    /// `count` keep-alive requests within 30 s.
    pub fn new(request: HttpRequest, count: usize) -> LoadSpec {
        LoadSpec {
            request,
            count,
            timeout: Duration::from_secs(30),
            keep_alive: true,
        }
    }
}

/// Outcomes of a load loop, in order.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// One entry per request.
    pub outcomes: Vec<Outcome>,
    /// Connections that carried a response (1 for an unbroken keep-alive loop).
    pub connections: usize,
}

impl LoadReport {
    /// Number of 2xx responses.
    pub fn successes(&self) -> usize {
        self.outcomes.iter().filter(|o| o.is_success()).count()
    }

    /// Requests that got no response, or a non-2xx one.
    pub fn failures(&self) -> Vec<&Outcome> {
        self.outcomes.iter().filter(|o| !o.is_success()).collect()
    }

    /// How many successful responses carried each body (e.g. upstream names).
    pub fn by_body(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for o in self.outcomes.iter().filter(|o| o.is_success()) {
            *out.entry(o.body.clone()).or_insert(0) += 1;
        }
        out
    }
}

/// Runs the load loop in the current (async) context: usable inside
/// [`Pod::run`] or on the host.
pub async fn load(spec: &LoadSpec) -> LoadReport {
    let deadline = Instant::now() + spec.timeout;
    let mut report = LoadReport::default();
    let req = &spec.request;
    let Ok(method) = Method::from_bytes(req.method.as_bytes()) else {
        report.outcomes = vec![
            Outcome {
                error: Some(format!("bad request: method {:?}", req.method)),
                ..Outcome::default()
            };
            spec.count
        ];
        return report;
    };
    let client = Client::with_options(Options {
        keep_alive: spec.keep_alive,
        ..Options::new(spec.timeout)
    });
    let url = format!("http://{}{}", req.addr, req.path);
    let host = req.host.clone().unwrap_or_else(|| req.addr.to_string());
    let mut headers = vec![("host".to_string(), host)];
    headers.extend(req.headers.iter().cloned());
    if !spec.keep_alive {
        headers.push(("connection".into(), "close".into()));
    }
    let mut connections = BTreeSet::new();
    for _ in 0..spec.count {
        if Instant::now() >= deadline {
            report.outcomes.push(Outcome {
                error: Some("not sent: load loop timed out".into()),
                ..Outcome::default()
            });
            continue;
        }
        let exchange = client.request(method.clone(), &url, &headers, Bytes::new());
        let outcome = match timeout_at(deadline, exchange).await {
            Err(_) => Outcome {
                error: Some("timed out waiting for the response".into()),
                ..Outcome::default()
            },
            Ok(Err(e)) => Outcome {
                error: Some(e.to_string()),
                ..Outcome::default()
            },
            Ok(Ok(r)) => {
                connections.extend(r.local_addr);
                Outcome {
                    status: Some(r.status),
                    body: r.body,
                    headers: r.headers,
                    error: None,
                }
            }
        };
        report.outcomes.push(outcome);
    }
    report.connections = connections.len();
    report
}

/// Sends one request (new connection) with a time bound.
pub async fn get(request: &HttpRequest, timeout: Duration) -> Outcome {
    let spec = LoadSpec {
        request: request.clone(),
        count: 1,
        timeout,
        keep_alive: false,
    };
    load(&spec).await.outcomes.pop().unwrap_or_default()
}

impl Pod {
    /// Runs a bounded load loop from inside this pod.
    pub fn http_load(&self, spec: &LoadSpec) -> Result<LoadReport, PodError> {
        self.run(|| load(spec))
    }

    /// Sends one request from inside this pod.
    pub fn http_get(&self, request: &HttpRequest, timeout: Duration) -> Result<Outcome, PodError> {
        self.run(|| get(request, timeout))
    }
}
