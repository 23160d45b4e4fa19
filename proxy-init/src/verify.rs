//! `proxy-init verify`: prove, from inside the namespace, that the rules work
//! (as linkerd's proxy-init validator does).
//!
//! ```text
//!   this process (not the proxy UID) ──connect──► 198.18.255.254:4444
//!        nat OUTPUT ─► RUDDER_OUTPUT ─► RUDDER_REDIRECT ─► REDIRECT :15000
//!   listener on :15000 accepts it; SO_ORIGINAL_DST must say 198.18.255.254:4444
//!   child as the proxy UID/GID ──connect──► same target: must NOT reach :15000
//! ```
//!
//! The target never needs to exist: a redirected connection never leaves the
//! namespace. It does need a route, because `connect()` fails with ENETUNREACH
//! before nat OUTPUT runs when there is none.

use std::io::{ErrorKind, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream,
};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    self, sockopt, AddressFamily, SockFlag, SockProtocol, SockType, SockaddrStorage,
};

/// Default target: a reserved benchmarking address (RFC 2544) nobody serves.
pub const DEFAULT_TARGET: &str = "198.18.255.254:4444";

/// Verification found the rules not working, or could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Could not set up the listener.
    #[error("cannot listen on port {port}: {error} (run verify before Envoy starts, as root in the pod's namespace)")]
    Listen { port: u16, error: std::io::Error },
    /// The probe connection failed before any redirect could happen.
    #[error("connecting to {target} failed: {error}{hint}")]
    Connect {
        target: SocketAddr,
        error: std::io::Error,
        hint: &'static str,
    },
    /// The connection went somewhere, but not to the proxy port.
    #[error("connection to {target} was not redirected: nothing arrived on port {port} within {timeout:?}")]
    NotRedirected {
        target: SocketAddr,
        port: u16,
        timeout: Duration,
    },
    /// It arrived, but the original destination was lost.
    #[error("connection arrived on port {port} but SO_ORIGINAL_DST is {got}, expected {target}")]
    WrongOriginalDst {
        target: SocketAddr,
        got: SocketAddr,
        port: u16,
    },
    /// The proxy's own traffic was captured too (Envoy would loop into itself).
    #[error("a connection from the proxy UID {uid} to {target} was redirected to port {port}: the proxy's own traffic must not be captured")]
    ProxyCaptured {
        uid: u32,
        target: SocketAddr,
        port: u16,
    },
    /// The proxy-UID probe could not be started.
    #[error("cannot run the probe as UID {uid} ({program}): {error}")]
    Probe {
        uid: u32,
        program: String,
        error: std::io::Error,
    },
    /// Verify runs as the proxy UID, so it cannot tell captured from exempt.
    #[error("verify runs as UID {0}, the proxy UID, whose traffic is never captured: run it as another user (root)")]
    RunningAsProxy(u32),
    /// A socket call failed.
    #[error("{what}: {error}")]
    Socket {
        what: &'static str,
        error: nix::Error,
    },
    /// Other I/O.
    #[error("{what}: {error}")]
    Io {
        what: &'static str,
        error: std::io::Error,
    },
}

/// What `verify` checks.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The port the rules redirect outbound traffic to.
    pub proxy_port: u16,
    /// The exempt proxy UID/GID.
    pub proxy_uid: u32,
    /// See `proxy_uid`.
    pub proxy_gid: u32,
    /// Where to connect.
    pub target: SocketAddr,
    /// Safety bound for each connection attempt and for waiting on the listener.
    pub timeout: Duration,
    /// This binary, run as the proxy UID for the exemption check (`probe` mode).
    pub probe_program: PathBuf,
}

/// Reads `SO_ORIGINAL_DST` (IPv4) or `IP6T_SO_ORIGINAL_DST` (IPv6): where a
/// REDIRECTed connection was headed before nat rewrote it.
pub fn original_dst(stream: &TcpStream) -> Result<SocketAddr, VerifyError> {
    let local = stream.local_addr().map_err(|error| VerifyError::Io {
        what: "local address",
        error,
    })?;
    let what = "getsockopt(SO_ORIGINAL_DST)";
    Ok(if local.is_ipv4() {
        let sa = socket::getsockopt(stream, sockopt::OriginalDst)
            .map_err(|error| VerifyError::Socket { what, error })?;
        SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)),
            u16::from_be(sa.sin_port),
        ))
    } else {
        let sa = socket::getsockopt(stream, sockopt::Ip6tOriginalDst)
            .map_err(|error| VerifyError::Socket { what, error })?;
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(sa.sin6_addr.s6_addr),
            u16::from_be(sa.sin6_port),
            sa.sin6_flowinfo,
            sa.sin6_scope_id,
        ))
    })
}

/// Listens on `port` on every address of `family_of`'s family. IPv6 listeners are
/// v6-only so a separate IPv4 listener on the same port can coexist.
pub fn listen(family_of: IpAddr, port: u16) -> Result<TcpListener, VerifyError> {
    let err = |error: nix::Error| VerifyError::Listen {
        port,
        error: std::io::Error::from(error),
    };
    let (family, addr) = match family_of {
        IpAddr::V4(_) => (
            AddressFamily::Inet,
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        ),
        IpAddr::V6(_) => (
            AddressFamily::Inet6,
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
        ),
    };
    let fd = socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Tcp,
    )
    .map_err(err)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(err)?;
    if family == AddressFamily::Inet6 {
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(err)?;
    }
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(addr),
    )
    .map_err(err)?;
    socket::listen(&fd, socket::Backlog::new(64).map_err(err)?).map_err(err)?;
    Ok(TcpListener::from(fd))
}

/// Waits up to `timeout` for a connection on `listener` (polling, bounded).
pub fn accept_within(
    listener: &TcpListener,
    timeout: Duration,
) -> Result<Option<TcpStream>, VerifyError> {
    let io = |error| VerifyError::Io {
        what: "accept",
        error,
    };
    listener.set_nonblocking(true).map_err(io)?;
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).map_err(io)?;
                return Ok(Some(stream));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(io(e)),
        }
    }
}

/// Connects to `target` within `timeout` and writes `payload`.
pub fn probe(
    target: SocketAddr,
    timeout: Duration,
    payload: &[u8],
) -> Result<TcpStream, VerifyError> {
    let connect_err = |error: std::io::Error| {
        let hint = match error.raw_os_error() {
            Some(nix::libc::ENETUNREACH) => {
                " (no route: connect() fails before nat OUTPUT runs; pick a --to address the namespace has a route to)"
            }
            Some(nix::libc::ECONNREFUSED | nix::libc::EHOSTUNREACH | nix::libc::ETIMEDOUT) => {
                " (the connection was not intercepted: are the capture rules in place?)"
            }
            _ if error.kind() == ErrorKind::TimedOut => {
                " (the connection was not intercepted: are the capture rules in place?)"
            }
            _ => "",
        };
        VerifyError::Connect {
            target,
            error,
            hint,
        }
    };
    let mut stream = TcpStream::connect_timeout(&target, timeout).map_err(connect_err)?;
    stream.write_all(payload).map_err(connect_err)?;
    Ok(stream)
}

/// Runs the check; `Ok` carries a one-line summary.
pub fn verify(opts: &VerifyOptions) -> Result<String, VerifyError> {
    let uid = nix::unistd::geteuid().as_raw();
    if uid == opts.proxy_uid {
        return Err(VerifyError::RunningAsProxy(uid));
    }
    let port = opts.proxy_port;
    let listener = listen(opts.target.ip(), port)?;
    let token = format!("rudder-verify-{}", std::process::id());
    let _client = probe(opts.target, opts.timeout, token.as_bytes())?;
    let Some(mut conn) = accept_within(&listener, opts.timeout)? else {
        return Err(VerifyError::NotRedirected {
            target: opts.target,
            port,
            timeout: opts.timeout,
        });
    };
    let got = original_dst(&conn)?;
    if got != opts.target {
        return Err(VerifyError::WrongOriginalDst {
            target: opts.target,
            got,
            port,
        });
    }
    let mut buf = vec![0u8; token.len()];
    let io = |error| VerifyError::Io {
        what: "reading the probe's bytes",
        error,
    };
    conn.set_read_timeout(Some(opts.timeout)).map_err(io)?;
    conn.read_exact(&mut buf).map_err(io)?;
    if buf != token.as_bytes() {
        return Err(VerifyError::NotRedirected {
            target: opts.target,
            port,
            timeout: opts.timeout,
        });
    }
    let mut summary = format!(
        "verify ok: connection from uid {uid} to {} arrived on port {port} with SO_ORIGINAL_DST {got}",
        opts.target
    );
    if uid == 0 {
        check_proxy_exempt(opts, &listener)?;
        summary.push_str(&format!("; uid {} not redirected", opts.proxy_uid));
    } else {
        summary.push_str("; proxy-uid check skipped (needs root)");
    }
    Ok(summary)
}

/// Runs `probe` as the proxy UID/GID and checks nothing arrives on the listener.
fn check_proxy_exempt(opts: &VerifyOptions, listener: &TcpListener) -> Result<(), VerifyError> {
    let program = opts.probe_program.display().to_string();
    let probe_err = |error| VerifyError::Probe {
        uid: opts.proxy_uid,
        program: program.clone(),
        error,
    };
    let output = Command::new(&opts.probe_program)
        .args(["probe", "--to", &opts.target.to_string()])
        .arg(format!("--timeout-ms={}", opts.timeout.as_millis()))
        .uid(opts.proxy_uid)
        .gid(opts.proxy_gid)
        .output()
        .map_err(probe_err)?;
    tracing::debug!(
        code = ?output.status.code(),
        stdout = %String::from_utf8_lossy(&output.stdout).trim(),
        "proxy-uid probe finished"
    );
    // The probe has exited: a redirected connection would already sit in the
    // listener's accept queue, so a zero wait is a complete check.
    if accept_within(listener, Duration::ZERO)?.is_some() {
        return Err(VerifyError::ProxyCaptured {
            uid: opts.proxy_uid,
            target: opts.target,
            port: opts.proxy_port,
        });
    }
    Ok(())
}
