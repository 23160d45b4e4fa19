//! Helpers for the real-namespace tests: namespaces with Drop guards, listeners
//! bound inside a namespace (setns from a dedicated thread), clients run as a
//! chosen UID/GID (`ip netns exec NS setpriv ... proxy-init probe`), and
//! normalised `iptables-save` output.
#![allow(dead_code)]

use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rudder_proxy_init::exec::Executor;
use rudder_proxy_init::rules::Family;
use rudder_proxy_init::verify::{accept_within, listen, original_dst};
use rudder_proxy_init::{Backend, SystemExecutor};

pub const BIN: &str = env!("CARGO_BIN_EXE_proxy-init");
/// The pod end and the peer end of the veth pair (198.18.0.0/15 is never routed).
pub const POD_V4: &str = "198.18.250.1";
pub const PEER_V4: &str = "198.18.250.2";
pub const POD_V6: &str = "2001:2:0:250::1";
pub const PEER_V6: &str = "2001:2:0:250::2";
/// An ordinary app user.
pub const APP_UID: u32 = 1000;

/// Whether the prerequisites are here. Missing ones skip the test with a message,
/// or fail it under CI=true.
pub fn ready(test: &str) -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".to_string());
    }
    for tool in ["ip", "setpriv"] {
        if !SystemExecutor.has(tool) {
            missing.push(tool.to_string());
        }
    }
    if backends().is_empty() {
        missing.push("iptables-nft or iptables-legacy tools".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    rudder_test_support::skip(test, &format!("needs {}", missing.join(", ")));
    false
}

/// Every backend whose tools (both families) are installed.
pub fn backends() -> Vec<Backend> {
    [Backend::Nft, Backend::Legacy]
        .into_iter()
        .filter(|b| b.missing(&SystemExecutor, &Family::ALL).is_none())
        .collect()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    out
}

fn must(cmd: &mut Command) {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A named network namespace with `lo` up, deleted on drop.
pub struct Netns {
    pub name: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Netns {
    pub fn new() -> Netns {
        let name = format!(
            "rudder-pi-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        must(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME args...`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        must(Command::new("ip").arg("-n").arg(&self.name).args(args));
    }

    /// `ip netns exec NAME program args...`.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args))
    }

    /// Runs proxy-init inside the namespace with `--iptables-backend backend`.
    pub fn proxy_init(&self, backend: Backend, args: &[&str]) -> Output {
        let mut all = vec!["--iptables-backend".to_string(), backend.to_string()];
        all.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        self.exec(BIN, &refs)
    }

    /// Like `proxy_init`, asserting success.
    pub fn apply(&self, backend: Backend, args: &[&str]) {
        let out = self.proxy_init(backend, args);
        assert!(
            out.status.success(),
            "proxy-init {args:?} ({backend}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Both families' nat tables, comments dropped and counters zeroed.
    pub fn save(&self, backend: Backend) -> String {
        let mut text = String::new();
        for family in Family::ALL {
            let out = self.exec(&backend.save(family), &["-t", "nat"]);
            assert!(
                out.status.success(),
                "{}: {}",
                backend.save(family),
                String::from_utf8_lossy(&out.stderr)
            );
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if line.starts_with('#') {
                    continue;
                }
                if line.starts_with(':') {
                    let kept: Vec<&str> = line.split_whitespace().take(2).collect();
                    text.push_str(&kept.join(" "));
                } else {
                    text.push_str(line);
                }
                text.push('\n');
            }
        }
        text
    }

    /// A listener bound inside this namespace. `addr` with an unspecified IP binds
    /// every address of that family (IPv6 v6-only).
    pub fn listen(&self, addr: SocketAddr) -> TcpListener {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            if addr.ip().is_unspecified() {
                listen(addr.ip(), addr.port()).expect("listen")
            } else {
                TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
            }
        })
        .join()
        .expect("listener thread")
    }

    /// Connects from this namespace as `uid`/`gid` (root: no setpriv) to `to` and
    /// sends `payload`; whether the connection was established.
    pub fn connect_as(&self, uid: u32, gid: u32, to: SocketAddr, payload: &str) -> bool {
        let to = to.to_string();
        let probe = [
            BIN,
            "probe",
            "--to",
            &to,
            "--payload",
            payload,
            "--timeout-ms",
            "2000",
        ];
        let out = if uid == 0 {
            self.exec(probe[0], &probe[1..])
        } else {
            let (u, g) = (format!("--reuid={uid}"), format!("--regid={gid}"));
            let mut args = vec![u.as_str(), g.as_str(), "--clear-groups"];
            args.extend(probe);
            self.exec("setpriv", &args)
        };
        out.status.success()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A pod namespace and a peer namespace joined by a veth pair, no default route.
pub struct Pair {
    pub pod: Netns,
    pub peer: Netns,
}

impl Pair {
    pub fn new() -> Pair {
        let pair = Pair {
            pod: Netns::new(),
            peer: Netns::new(),
        };
        pair.pod.ip(&[
            "link",
            "add",
            "rpi0",
            "type",
            "veth",
            "peer",
            "name",
            "rpi1",
            "netns",
            &pair.peer.name,
        ]);
        for (ns, dev, v4, v6) in [
            (&pair.pod, "rpi0", POD_V4, POD_V6),
            (&pair.peer, "rpi1", PEER_V4, PEER_V6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/30"), "dev", dev]);
            ns.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            ns.ip(&["link", "set", dev, "up"]);
        }
        pair
    }
}

pub fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse::<IpAddr>().expect("ip"), port)
}

/// The connection waiting on `listener` (bounded wait), as (SO_ORIGINAL_DST, payload).
pub fn arrival(listener: &TcpListener, wait: Duration) -> Option<(SocketAddr, String)> {
    let mut conn = accept_within(listener, wait).expect("accept")?;
    let orig = original_dst(&conn).expect("SO_ORIGINAL_DST");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut payload = String::new();
    conn.read_to_string(&mut payload).expect("read payload");
    Some((orig, payload))
}

/// Payload of a connection that arrived without redirection (no SO_ORIGINAL_DST check).
pub fn plain_arrival(listener: &TcpListener, wait: Duration) -> Option<String> {
    let mut conn = accept_within(listener, wait).expect("accept")?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut payload = String::new();
    conn.read_to_string(&mut payload).expect("read payload");
    Some(payload)
}

pub const WAIT: Duration = Duration::from_secs(5);
pub const NOW: Duration = Duration::ZERO;

/// Which of `listeners` got a connection first (polling, bounded by `wait`); the
/// connection is accepted and dropped.
pub fn first_arrival(listeners: &[&TcpListener], wait: Duration) -> Option<usize> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        for (i, l) in listeners.iter().enumerate() {
            if accept_within(l, Duration::ZERO).expect("accept").is_some() {
                return Some(i);
            }
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
