//! Sending demo traffic from inside a client pod and measuring the split.
//!
//! The client runs in this process, on a thread that `setns`es into the
//! client pod's network namespace (so its connections are the pod's: DNAT
//! rules for an unmeshed client, capture to Envoy for a meshed one). Host
//! names resolve as the pod's `/etc/hosts` would (the runner record has the
//! same VIP table). Each answer is classified by the first `<key>-<version>`
//! token in its body, e.g. `reviews-v3` in productpage's answer.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};
use rudder_harness::{load, HttpRequest, LoadReport, LoadSpec};
use serde::Serialize;

/// Sending traffic failed (not: a request failed, which is counted).
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// The URL is not `http://host[:port][/path]`.
    #[error("URL {0:?}: expected http://HOST[:PORT][/PATH]")]
    Url(String),
    /// A header is not `Name: value`.
    #[error("header {0:?}: expected \"Name: value\"")]
    Header(String),
    /// The host name is not a Service the client pod can resolve.
    #[error("{host}: not a Service name pod {pod} can resolve (try NAME.NAMESPACE)")]
    Resolve {
        /// The host.
        host: String,
        /// The client pod.
        pod: String,
    },
    /// Entering the pod failed.
    #[error("cannot enter network namespace {path}: {message}")]
    Enter {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// A parsed `http://host:port/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// Host name or IP.
    pub host: String,
    /// Port (default 80).
    pub port: u16,
    /// Path with query (default `/`).
    pub path: String,
}

/// Parses an `http://` URL.
pub fn parse_url(url: &str) -> Result<Url, TrafficError> {
    let bad = || TrafficError::Url(url.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, path) = rest
        .find('/')
        .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?),
        None => (authority, 80),
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Url {
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

/// Parses `Name: value`.
pub fn parse_header(h: &str) -> Result<(String, String), TrafficError> {
    let (k, v) = h
        .split_once(':')
        .ok_or_else(|| TrafficError::Header(h.to_string()))?;
    let k = k.trim();
    if k.is_empty() || k.contains(char::is_whitespace) {
        return Err(TrafficError::Header(h.to_string()));
    }
    Ok((k.to_string(), v.trim().to_string()))
}

/// What to send.
#[derive(Clone, Debug)]
pub struct Traffic {
    /// `/run/netns/<client>`; `None`: from the host itself (e.g. into the
    /// ingress gateway, whose pod address the bridge routes).
    pub netns: Option<PathBuf>,
    /// Where to connect (the VIP and port).
    pub addr: SocketAddr,
    /// Host header (`name:port`, as curl would send).
    pub host: String,
    /// Path.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// How many requests in total.
    pub count: usize,
    /// How many keep-alive connections send them side by side.
    pub concurrency: usize,
    /// Bound on the whole run.
    pub timeout: Duration,
}

/// Sends `t` from inside the client pod; returns every outcome.
pub fn send(t: &Traffic) -> Result<LoadReport, TrafficError> {
    let enter_err = |message: String| TrafficError::Enter {
        path: t.netns.clone().unwrap_or_default(),
        message,
    };
    let file = match &t.netns {
        Some(path) => Some(File::open(path).map_err(|e| enter_err(e.to_string()))?),
        None => None,
    };
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(file) = &file {
                setns(file, CloneFlags::CLONE_NEWNET).map_err(|e| enter_err(e.to_string()))?;
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| enter_err(e.to_string()))?;
            let mut request = HttpRequest::get(t.addr, t.path.clone()).host(t.host.clone());
            for (k, v) in &t.headers {
                request = request.header(k.clone(), v.clone());
            }
            let lanes = t.concurrency.clamp(1, t.count.max(1));
            let specs: Vec<LoadSpec> = (0..lanes)
                .map(|i| {
                    let n = t.count / lanes + usize::from(i < t.count % lanes);
                    LoadSpec {
                        timeout: t.timeout,
                        ..LoadSpec::new(request.clone(), n)
                    }
                })
                .collect();
            let reports = rt.block_on(futures::future::join_all(specs.iter().map(load)));
            let mut all = LoadReport::default();
            for r in reports {
                all.outcomes.extend(r.outcomes);
                all.connections += r.connections;
            }
            Ok(all)
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// The measured split.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Split {
    /// Requests sent.
    pub total: usize,
    /// 2xx answers.
    pub succeeded: usize,
    /// Successful answers per `<key>-<version>` (`other` when the body has none).
    pub versions: BTreeMap<String, usize>,
    /// Failures by status or error, e.g. `503` or `connect ...: refused`.
    pub failures: BTreeMap<String, usize>,
}

/// The first `<key>-<word>` token of `body` (word = letters and digits).
pub fn version_token(body: &str, key: &str) -> Option<String> {
    let needle = format!("{key}-");
    let mut from = 0;
    while let Some(i) = body[from..].find(&needle) {
        let start = from + i;
        let boundary = body[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '-');
        let word: String = body[start + needle.len()..]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        if boundary && !word.is_empty() {
            return Some(format!("{needle}{word}"));
        }
        from = start + needle.len();
    }
    None
}

/// Classifies a load report by version token `key`.
pub fn split(report: &LoadReport, key: &str) -> Split {
    let mut s = Split {
        total: report.outcomes.len(),
        ..Split::default()
    };
    for o in &report.outcomes {
        if o.is_success() {
            s.succeeded += 1;
            *s.versions
                .entry(version_token(&o.body, key).unwrap_or_else(|| "other".into()))
                .or_default() += 1;
        } else {
            let why = match (&o.error, o.status) {
                (Some(e), _) => e.clone(),
                (None, Some(st)) => {
                    format!("HTTP {st}: {}", o.body.lines().next().unwrap_or("").trim())
                }
                (None, None) => "no answer".into(),
            };
            *s.failures.entry(why).or_default() += 1;
        }
    }
    s
}

/// The split in plain language, one line per version:
///
/// ```text
///   reviews-v1  98.9%  (1978)
///   reviews-v3   1.1%  (22)
/// 2000 requests, 2000 succeeded
/// ```
pub fn format_split(s: &Split) -> String {
    let width = s.versions.keys().map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    for (v, n) in &s.versions {
        let pct = if s.succeeded == 0 {
            0.0
        } else {
            100.0 * *n as f64 / s.succeeded as f64
        };
        out.push_str(&format!("  {v:<width$}  {pct:5.1}%  ({n})\n"));
    }
    out.push_str(&format!("{} requests, {} succeeded", s.total, s.succeeded));
    if s.failures.is_empty() {
        out.push('\n');
    } else {
        out.push_str(&format!(", {} failed:\n", s.total - s.succeeded));
        for (why, n) in &s.failures {
            out.push_str(&format!("  {n} × {why}\n"));
        }
    }
    out
}

/// Where `url` points for a client: the VIP from `resolve`, or a literal IP.
pub fn target(url: &Url, resolve: impl Fn(&str) -> Option<Ipv4Addr>) -> Option<SocketAddr> {
    let ip = url.host.parse().ok().or_else(|| resolve(&url.host))?;
    Some(SocketAddr::from((ip, url.port)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rudder_harness::Outcome;

    #[test]
    fn urls_and_headers() {
        assert_eq!(
            parse_url("http://productpage:9080/x?y").unwrap(),
            Url {
                host: "productpage".into(),
                port: 9080,
                path: "/x?y".into()
            }
        );
        assert_eq!(
            parse_url("http://a.b").unwrap(),
            Url {
                host: "a.b".into(),
                port: 80,
                path: "/".into()
            }
        );
        assert!(
            parse_url("https://a").is_err()
                && parse_url("http://a:0/").is_err()
                && parse_url("http://:80").is_err()
        );
        assert_eq!(
            parse_header("end-user: jason").unwrap(),
            ("end-user".into(), "jason".into())
        );
        assert!(parse_header("no colon").is_err());
    }

    #[test]
    fn tokens_need_a_word_boundary() {
        let body = "productpage-v1\ndetails: details-v1\nreviews: reviews-v3 (red stars, ratings-v1 5/5)\n";
        assert_eq!(
            version_token(body, "reviews").as_deref(),
            Some("reviews-v3")
        );
        assert_eq!(
            version_token("myreviews-v9 reviews-v2", "reviews").as_deref(),
            Some("reviews-v2")
        );
        assert_eq!(version_token("reviews: none", "reviews"), None);
    }

    #[test]
    fn split_counts_versions_and_failures_and_formats_them() {
        let ok = |b: &str| Outcome {
            status: Some(200),
            body: b.into(),
            ..Outcome::default()
        };
        let mut outcomes = vec![ok("reviews-v1"); 989];
        outcomes.extend(vec![ok("x reviews-v3"); 11]);
        outcomes.push(Outcome {
            status: Some(503),
            body: "no healthy upstream".into(),
            ..Outcome::default()
        });
        outcomes.push(Outcome {
            error: Some("connect: refused".into()),
            ..Outcome::default()
        });
        let s = split(
            &LoadReport {
                outcomes,
                connections: 1,
            },
            "reviews",
        );
        assert_eq!((s.total, s.succeeded), (1002, 1000));
        assert_eq!(s.versions["reviews-v1"], 989);
        assert_eq!(s.failures["HTTP 503: no healthy upstream"], 1);
        let text = format_split(&s);
        assert_eq!(
            text,
            "  reviews-v1   98.9%  (989)\n  reviews-v3    1.1%  (11)\n1002 requests, 1000 succeeded, 2 failed:\n  1 × HTTP 503: no healthy upstream\n  1 × connect: refused\n"
        );
    }
}
