//! A real browser for tests: Debian's `chromium`, headless, driven over
//! WebDriver (W3C JSON over HTTP, through the workspace's HTTP client) by a
//! `chromedriver` this process starts on a free loopback port and stops on
//! drop (by its PID). Just what page tests need: open a URL, run a script,
//! press keys, take a screenshot, read the browser's console log
//! (`goog:loggingPrefs`).
//!
//! ```text
//!  test ──► Browser::start() ──► chromedriver --port=N ──► chromium --headless
//!       ──► goto / execute / keys / screenshot / console_log
//! ```

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use rudder_http::{Client, Method};
use serde_json::{json, Value};

use crate::check_tool;

/// What a page test needs installed (`scripts/setup.sh` installs both).
pub fn check_browser() -> Result<(PathBuf, PathBuf), String> {
    let hint = "run scripts/setup.sh (apt: chromium chromium-driver)";
    Ok((
        check_tool("chromium", hint)?,
        check_tool("chromedriver", hint)?,
    ))
}

/// A headless Chromium session; the driver and the browser end on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: Client,
    runtime: tokio::runtime::Runtime,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width`×`height`.
    pub fn start(
        chromium: &std::path::Path,
        chromedriver: &std::path::Path,
        width: u32,
        height: u32,
    ) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(chromedriver)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting chromedriver");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            client: Client::new(Duration::from_secs(60)),
            runtime,
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while b.call(Method::GET, "/status", None).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-proxy-server", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", b._profile.path().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = b
            .call(Method::POST, "/session", Some(caps))
            .unwrap_or_else(|e| panic!("creating a Chromium session: {e}"));
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {v}"))
            .to_string();
        b
    }

    /// One WebDriver command: its `value`, or the WebDriver error.
    fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let headers = [("content-type".to_string(), "application/json".to_string())];
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let r = self
            .runtime
            .block_on(self.client.request(method, &url, &headers, body.into()))
            .map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&r.body)
            .map_err(|e| format!("{url}: HTTP {}: not JSON ({e}): {}", r.status, r.body))?;
        if r.status != 200 {
            return Err(format!("{url}: HTTP {}: {}", r.status, v["value"]));
        }
        Ok(v["value"].clone())
    }

    fn session_call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body)
            .unwrap_or_else(|e| panic!("WebDriver: {e}"))
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.session_call(Method::POST, "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page: its return value.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.session_call(
            Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Presses and releases each key (WebDriver key codes, e.g. `"\u{E004}"` for Tab).
    pub fn keys(&self, keys: &[&str]) {
        let actions: Vec<Value> = keys
            .iter()
            .flat_map(|k| {
                [
                    json!({"type": "keyDown", "value": k}),
                    json!({"type": "keyUp", "value": k}),
                ]
            })
            .collect();
        self.session_call(
            Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        );
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let v = self.session_call(Method::GET, "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 screenshot"))
            .expect("screenshot decodes")
    }

    /// The browser console's entries since the last call (`level`,
    /// `message`), from Chromium's log (`goog:loggingPrefs`).
    pub fn console_log(&self) -> Vec<Value> {
        self.session_call(Method::POST, "/se/log", Some(json!({"type": "browser"})))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = self.call(Method::DELETE, &path, None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The Tab key.
pub const TAB: &str = "\u{E004}";
