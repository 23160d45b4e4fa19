//! The network: pods reach each other and the host's bridge address, and
//! nothing else; teardown and crash sweeps leave nothing behind.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use rudder_harness::{EchoConfig, HttpRequest, LoadSpec, Net, ProcessSpec};
use rudder_test_support::{check_netns, prerequisite};

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// PIDs whose network namespace is the one at `netns` (not zombies).
fn pids_in_netns(netns: &Path) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(netns) else {
        return Vec::new();
    };
    let want = format!("net:[{}]", meta.ino());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|l| l.as_os_str() == want.as_str())
        })
        .collect()
}

/// Alive = exists and not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
}

#[test]
fn two_pods_reach_each_other_and_the_host_over_the_bridge() {
    let Some(()) = prerequisite("two_pods_reach_each_other", check_netns()) else {
        return;
    };
    let net = Net::for_test("reach").unwrap();
    let a = net.add_pod("a").unwrap();
    let b = net.add_pod("b").unwrap();
    assert_ne!(a.ip(), b.ip());
    assert_eq!(net.pod("b").map(|p| p.ip()), Some(b.ip()));
    assert!(net.pod("c").is_none());
    assert!(matches!(
        net.add_pod("a"),
        Err(rudder_harness::NetError::Conflict(_))
    ));
    assert!(net.pod_cidr().contains(a.ip()) && net.pod_cidr().contains(b.ip()));
    assert_eq!(
        std::fs::read_to_string(format!(
            "/proc/sys/net/ipv4/conf/{}/forwarding",
            net.bridge()
        ))
        .unwrap()
        .trim(),
        "0"
    );

    let echo_a = a.start_echo(EchoConfig::new(9080, "from-a")).unwrap();
    let echo_b = b.start_echo(EchoConfig::new(9080, "from-b")).unwrap();
    let t = Duration::from_secs(5);
    let ab = a
        .http_get(&HttpRequest::get(echo_b.addr(), "/"), t)
        .unwrap();
    let ba = b
        .http_get(&HttpRequest::get(echo_a.addr(), "/"), t)
        .unwrap();
    assert_eq!(
        (ab.status, ab.body.as_str()),
        (Some(200), "from-b"),
        "{ab:?}"
    );
    assert_eq!(
        (ba.status, ba.body.as_str()),
        (Some(200), "from-a"),
        "{ba:?}"
    );
    // The echo server saw pod A's address as the peer: no NAT in between.
    assert_eq!(echo_b.requests()[0].peer.ip(), a.ip());

    // Pod -> host bridge address (where pilot listens), and host -> pod.
    let listener = TcpListener::bind((net.host_addr(), 0)).unwrap();
    let host_port = listener.local_addr().unwrap().port();
    let host_addr = net.host_addr();
    let sent = a
        .enter(move || {
            let mut s = TcpStream::connect_timeout(&SocketAddr::from((host_addr, host_port)), t)?;
            s.write_all(b"hello host")
        })
        .unwrap();
    sent.unwrap();
    let (mut conn, peer) = listener.accept().unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).unwrap();
    assert_eq!(
        (got.as_str(), peer.ip()),
        ("hello host", std::net::IpAddr::V4(a.ip()))
    );
    let from_host = TcpStream::connect_timeout(&echo_b.addr(), t);
    assert!(from_host.is_ok(), "host cannot reach pod b: {from_host:?}");
}

#[test]
fn a_pod_has_no_default_route_and_cannot_reach_outside_its_cidrs() {
    let Some(()) = prerequisite("no_default_route", check_netns()) else {
        return;
    };
    let net = Net::for_test("isolate").unwrap();
    let pod = net.add_pod("lonely").unwrap();
    let routes =
        String::from_utf8(pod.exec("ip", &["-4", "route", "show"]).unwrap().stdout).unwrap();
    assert!(
        !routes.lines().any(|l| l.starts_with("default")),
        "default route present:\n{routes}"
    );
    assert!(
        routes.contains(&format!("{} dev eth0", net.pod_cidr())),
        "no on-link pod route:\n{routes}"
    );
    assert!(
        routes.contains(&format!(
            "{} via {} dev eth0",
            net.service_cidr(),
            net.host_addr()
        )),
        "no service route via the host address:\n{routes}"
    );

    let outside = [
        Ipv4Addr::new(192, 0, 2, 1),
        Ipv4Addr::new(8, 8, 8, 8),
        Ipv4Addr::new(198, 20, 0, 1),
    ];
    let errors = pod
        .enter(|| {
            outside
                .iter()
                .map(|ip| {
                    TcpStream::connect_timeout(&SocketAddr::from((*ip, 80)), Duration::from_secs(2))
                })
                .map(|r| r.err().and_then(|e| e.raw_os_error()))
                .collect::<Vec<_>>()
        })
        .unwrap();
    assert_eq!(
        errors,
        vec![Some(nix::libc::ENETUNREACH); 3],
        "connections outside our CIDRs must fail with ENETUNREACH"
    );
}

#[test]
fn echo_in_one_pod_counts_a_bounded_keep_alive_load_from_another() {
    let Some(()) = prerequisite("echo_load", check_netns()) else {
        return;
    };
    let net = Net::for_test("echo").unwrap();
    let server = net.add_pod("reviews-v2").unwrap();
    let client = net.add_pod("productpage").unwrap();
    let echo = server
        .start_echo(EchoConfig::new(9080, "reviews-v2").echo_header("end-user"))
        .unwrap();
    let request = HttpRequest::get(echo.addr(), "/reviews/1")
        .host("reviews:9080")
        .header("end-user", "jason");
    let spec = LoadSpec {
        timeout: Duration::from_secs(20),
        ..LoadSpec::new(request.clone(), 50)
    };
    let report = client.http_load(&spec).unwrap();
    assert_eq!(report.successes(), 50, "failures: {:?}", report.failures());
    assert_eq!(report.by_body().get("reviews-v2"), Some(&50));
    assert_eq!(
        report.connections, 1,
        "keep-alive should reuse one connection"
    );
    assert_eq!(report.outcomes[0].header("x-echo-end-user"), Some("jason"));
    assert_eq!(echo.count(), 50);
    let seen = &echo.requests()[0];
    assert_eq!(
        (seen.path.as_str(), seen.host.as_str()),
        ("/reviews/1", "reviews:9080")
    );

    // Steering headers: status and delay.
    let failing = client
        .http_get(
            &request.clone().header("x-echo-status", "503"),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(failing.status, Some(503));
    let slow = client
        .http_get(
            &request.header("x-echo-delay-ms", "3000"),
            Duration::from_millis(300),
        )
        .unwrap();
    assert!(
        slow.status.is_none() && slow.error.is_some(),
        "a bounded request must time out: {slow:?}"
    );
}

#[test]
fn teardown_removes_namespaces_links_bridge_processes_and_state() {
    let Some(()) = prerequisite("teardown", check_netns()) else {
        return;
    };
    let net = Net::for_test("teardown").unwrap();
    let pods = [net.add_pod("one").unwrap(), net.add_pod("two").unwrap()];
    let sleeper = pods[0]
        .spawn(ProcessSpec::new("sleep").arg("600").user(1000, 1000))
        .unwrap();
    let pid = sleeper.pid() as i32;
    sleeper.detach();
    let bridge = net.bridge().to_string();
    let dir = net.state_dir().to_path_buf();
    assert!(alive(pid) && link_exists(&bridge) && dir.join("state.json").exists());
    net.teardown().unwrap();
    assert!(!alive(pid), "process {pid} survived teardown");
    for pod in &pods {
        assert!(!pod.netns_path().exists(), "{} survived", pod.netns());
        assert!(
            !link_exists(pod.host_veth()),
            "{} survived",
            pod.host_veth()
        );
    }
    assert!(!link_exists(&bridge), "bridge {bridge} survived");
    assert!(!dir.exists(), "state dir {} survived", dir.display());
    let routes = String::from_utf8(
        std::process::Command::new("ip")
            .args(["-4", "route"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        !routes.contains(&bridge),
        "host routes still name {bridge}:\n{routes}"
    );
}

#[test]
fn sweep_after_a_crash_removes_exactly_what_the_record_lists() {
    let Some(()) = prerequisite("sweep", check_netns()) else {
        return;
    };
    let net = Net::for_test("crash").unwrap();
    let bystander = Net::for_test("bystander").unwrap();
    let pod = net.add_pod("victim").unwrap();
    let other = bystander.add_pod("keep").unwrap();
    // A process tree in which one member escapes into its own session (as an
    // agent's Envoy might): the group kill misses it, the netns scan does not.
    let tree = pod
        .spawn(
            ProcessSpec::new("sh")
                .args(["-c", "setsid sleep 600 & exec sleep 600"])
                .user(1000, 1000),
        )
        .unwrap();
    tree.detach();
    let base_id = 900_000 + u64::from(std::process::id() % 10_000);
    let shm = rudder_harness::shm_path(base_id);
    std::fs::write(&shm, b"left by a crashed envoy").unwrap();
    net.record_base_id(base_id).unwrap();
    let netns = pod.netns_path();
    let mut pids = Vec::new();
    for _ in 0..100 {
        pids = pids_in_netns(&netns);
        if pids.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        pids.len() >= 2,
        "expected the process tree in the pod: {pids:?}"
    );
    let (dir, bridge, veth) = (
        net.state_dir().to_path_buf(),
        net.bridge().to_string(),
        pod.host_veth().to_string(),
    );

    // Simulated crash: no Drop runs.
    std::mem::forget(pod);
    std::mem::forget(net);
    assert!(link_exists(&bridge) && netns.exists());

    Net::sweep(&dir).unwrap();
    assert!(
        pids.iter().all(|&p| !alive(p)),
        "processes survived the sweep: {pids:?}"
    );
    assert!(!netns.exists() && !link_exists(&veth) && !link_exists(&bridge));
    assert!(
        !shm.exists(),
        "Envoy shared memory {} survived",
        shm.display()
    );
    assert!(!dir.exists());
    // The other instance is untouched.
    assert!(other.netns_path().exists() && link_exists(bystander.bridge()));
    assert!(
        Net::sweep(&dir).is_err(),
        "a second sweep has no record to act on"
    );
}

#[test]
fn a_panicking_test_still_tears_down() {
    let Some(()) = prerequisite("panic_teardown", check_netns()) else {
        return;
    };
    let made = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let net = Net::for_test("panic").unwrap();
        let pod = net.add_pod("p").unwrap();
        // A handle that never runs its Drop: only the instance's teardown can stop it.
        let leaked = pod.spawn(ProcessSpec::new("sleep").arg("600")).unwrap();
        let pid = leaked.pid();
        std::mem::forget(leaked);
        *made.lock().unwrap() = Some((
            net.bridge().to_string(),
            pod.netns_path(),
            net.state_dir().to_path_buf(),
            pid,
        ));
        panic!("test failure inside the harness");
    });
    assert!(result.is_err());
    let (bridge, netns, dir, pid) = made.lock().unwrap().take().unwrap();
    assert!(!link_exists(&bridge) && !netns.exists() && !dir.exists());
    assert!(!alive(pid as i32));
}
