//! Real-namespace tests: the built `proxy-init` binary writes rules into network
//! namespaces this test creates (a pod and a peer joined by a veth pair,
//! 198.18.250.0/30 and 2001:2:0:250::/64, no default route), and real TCP
//! connections show what is captured. Each test runs on every installed backend.
//! Needs root, `ip`, `setpriv` and the iptables tools: skipped otherwise, failed
//! under CI=true.

mod common;

use common::*;
use rudder_proxy_init::Backend;

#[test]
fn app_outbound_reaches_proxy_port_with_original_destination() {
    if !ready("app_outbound_reaches_proxy_port_with_original_destination") {
        return;
    }
    for backend in backends() {
        let p = Pair::new();
        p.pod.apply(backend, &[]);
        let proxy4 = p.pod.listen(sa("0.0.0.0", 15000));
        let proxy6 = p.pod.listen(sa("::", 15000));
        let local = p.pod.listen(sa("127.0.0.1", 5555));

        assert!(
            p.pod.connect_as(APP_UID, APP_UID, sa(PEER_V4, 4444), "v4"),
            "{backend}"
        );
        assert_eq!(
            arrival(&proxy4, WAIT),
            Some((sa(PEER_V4, 4444), "v4".into())),
            "{backend}"
        );

        assert!(
            p.pod.connect_as(APP_UID, APP_UID, sa(PEER_V6, 4444), "v6"),
            "{backend}"
        );
        assert_eq!(
            arrival(&proxy6, WAIT),
            Some((sa(PEER_V6, 4444), "v6".into())),
            "{backend}"
        );

        // 127.0.0.1 is never redirected.
        assert!(
            p.pod
                .connect_as(APP_UID, APP_UID, sa("127.0.0.1", 5555), "lo"),
            "{backend}"
        );
        assert_eq!(
            plain_arrival(&local, WAIT).as_deref(),
            Some("lo"),
            "{backend}"
        );
        assert!(
            arrival(&proxy4, NOW).is_none(),
            "{backend}: loopback was redirected"
        );
    }
}

#[test]
fn proxy_uid_and_gid_outbound_is_not_redirected() {
    if !ready("proxy_uid_and_gid_outbound_is_not_redirected") {
        return;
    }
    for backend in backends() {
        let p = Pair::new();
        p.pod.apply(backend, &[]);
        let proxy = p.pod.listen(sa("0.0.0.0", 15000));
        let upstream = p.peer.listen(sa(PEER_V4, 4444));

        assert!(
            p.pod.connect_as(1337, 1337, sa(PEER_V4, 4444), "uid"),
            "{backend}"
        );
        assert_eq!(
            plain_arrival(&upstream, WAIT).as_deref(),
            Some("uid"),
            "{backend}"
        );
        // Only the GID matches: still exempt.
        assert!(
            p.pod.connect_as(1001, 1337, sa(PEER_V4, 4444), "gid"),
            "{backend}"
        );
        assert_eq!(
            plain_arrival(&upstream, WAIT).as_deref(),
            Some("gid"),
            "{backend}"
        );
        assert!(
            arrival(&proxy, NOW).is_none(),
            "{backend}: proxy traffic was redirected"
        );

        // Control: the same connection from the app is captured.
        assert!(
            p.pod.connect_as(APP_UID, APP_UID, sa(PEER_V4, 4444), "app"),
            "{backend}"
        );
        assert_eq!(
            arrival(&proxy, WAIT).map(|a| a.1).as_deref(),
            Some("app"),
            "{backend}"
        );
        assert!(plain_arrival(&upstream, NOW).is_none(), "{backend}");
    }
}

/// Connects as the app to the peer's `port` and says where it landed.
fn lands(
    p: &Pair,
    proxy: &std::net::TcpListener,
    upstream: &std::net::TcpListener,
    port: u16,
) -> &'static str {
    assert!(p.pod.connect_as(APP_UID, APP_UID, sa(PEER_V4, port), "x"));
    match first_arrival(&[proxy, upstream], WAIT) {
        Some(0) => "proxy",
        Some(_) => "upstream",
        None => "nowhere",
    }
}

#[test]
fn outbound_exclusions_and_includes_are_honoured() {
    if !ready("outbound_exclusions_and_includes_are_honoured") {
        return;
    }
    for backend in backends() {
        let p = Pair::new();
        let proxy = p.pod.listen(sa("0.0.0.0", 15000));
        let up4444 = p.peer.listen(sa(PEER_V4, 4444));
        let up4445 = p.peer.listen(sa(PEER_V4, 4445));

        p.pod.apply(backend, &["--exclude-outbound-ports", "4444"]);
        assert_eq!(
            lands(&p, &proxy, &up4444, 4444),
            "upstream",
            "{backend}: excluded port"
        );
        assert_eq!(
            lands(&p, &proxy, &up4445, 4445),
            "proxy",
            "{backend}: other port"
        );

        p.pod.apply(
            backend,
            &["--exclude-outbound-cidrs", "198.18.250.2/32,2001:db8::/32"],
        );
        assert_eq!(
            lands(&p, &proxy, &up4444, 4444),
            "upstream",
            "{backend}: excluded CIDR"
        );
        assert_eq!(
            lands(&p, &proxy, &up4445, 4445),
            "upstream",
            "{backend}: excluded CIDR"
        );

        p.pod
            .apply(backend, &["--include-outbound-cidrs", "10.0.0.0/8"]);
        assert_eq!(
            lands(&p, &proxy, &up4445, 4445),
            "upstream",
            "{backend}: not included"
        );

        p.pod
            .apply(backend, &["--include-outbound-cidrs", "198.18.250.0/30"]);
        assert_eq!(
            lands(&p, &proxy, &up4445, 4445),
            "proxy",
            "{backend}: included"
        );
    }
}

#[test]
fn inbound_to_included_ports_is_redirected() {
    if !ready("inbound_to_included_ports_is_redirected") {
        return;
    }
    for backend in backends() {
        let p = Pair::new();
        let proxy = p.pod.listen(sa("0.0.0.0", 15000));
        let inbound = p.pod.listen(sa("0.0.0.0", 15006));
        let app9090 = p.pod.listen(sa(POD_V4, 9090));
        let agent = p.pod.listen(sa(POD_V4, 15020));

        p.pod.apply(
            backend,
            &["--inbound-ports", "8080", "--inbound-capture-port", "15006"],
        );
        assert!(p.peer.connect_as(0, 0, sa(POD_V4, 8080), "in"), "{backend}");
        assert_eq!(
            arrival(&inbound, WAIT),
            Some((sa(POD_V4, 8080), "in".into())),
            "{backend}"
        );
        assert!(
            p.peer.connect_as(0, 0, sa(POD_V4, 9090), "other"),
            "{backend}"
        );
        assert_eq!(
            plain_arrival(&app9090, WAIT).as_deref(),
            Some("other"),
            "{backend}: unlisted port"
        );

        // Defaults: every inbound port to 15000 except 15020/15021/15090.
        p.pod.apply(backend, &[]);
        assert!(
            p.peer.connect_as(0, 0, sa(POD_V4, 9090), "all"),
            "{backend}"
        );
        assert_eq!(
            arrival(&proxy, WAIT),
            Some((sa(POD_V4, 9090), "all".into())),
            "{backend}"
        );
        assert!(
            p.peer.connect_as(0, 0, sa(POD_V4, 15020), "agent"),
            "{backend}"
        );
        assert_eq!(
            plain_arrival(&agent, WAIT).as_deref(),
            Some("agent"),
            "{backend}: excluded port"
        );
        assert!(
            arrival(&inbound, NOW).is_none() && arrival(&proxy, NOW).is_none(),
            "{backend}"
        );
    }
}

/// `ip -6 addr show dev lo` in the namespace.
fn lo_v6(ns: &Netns) -> String {
    String::from_utf8_lossy(&ns.exec("ip", &["-6", "addr", "show", "dev", "lo"]).stdout)
        .into_owned()
}

#[test]
fn rerun_is_identical_changes_replace_cleanup_removes_and_dry_run_touches_nothing() {
    if !ready("rerun_is_identical_changes_replace_cleanup_removes_and_dry_run_touches_nothing") {
        return;
    }
    for backend in backends() {
        let ns = Netns::new();
        let empty = ns.save(backend);

        let dry = ns.proxy_init(backend, &["--dry-run"]);
        assert!(dry.status.success(), "{backend}");
        let text = String::from_utf8_lossy(&dry.stdout);
        assert!(
            text.contains("-j REDIRECT --to-ports 15000"),
            "{backend}: {text}"
        );
        assert_eq!(
            ns.save(backend),
            empty,
            "{backend}: --dry-run changed the tables"
        );

        assert!(
            !lo_v6(&ns).contains("::6/128"),
            "{backend}: --dry-run added ::6"
        );
        ns.apply(backend, &[]);
        let first = ns.save(backend);
        assert_eq!(
            first.matches("-j RUDDER_OUTPUT").count(),
            2,
            "{backend}: one jump per family\n{first}"
        );
        // The IPv6 source of inbound delivery is on lo, so Envoy can bind it.
        assert!(
            lo_v6(&ns).contains("inet6 ::6/128"),
            "{backend}: {}",
            lo_v6(&ns)
        );
        assert!(
            first
                .lines()
                .filter(|l| l.starts_with("-A"))
                .all(|l| l.contains("--comment \"rudder/")),
            "{backend}"
        );
        ns.apply(backend, &[]);
        assert_eq!(
            ns.save(backend),
            first,
            "{backend}: re-run changed the rules"
        );

        ns.apply(backend, &["--proxy-port", "15001", "--inbound-ports", "80"]);
        let other = ns.save(backend);
        assert!(
            other.contains("--to-ports 15001") && !other.contains("--to-ports 15000"),
            "{backend}\n{other}"
        );
        assert_eq!(
            other.matches("-j RUDDER_INBOUND").count(),
            first.matches("-j RUDDER_INBOUND").count(),
            "{backend}"
        );
        ns.apply(backend, &[]);
        assert_eq!(ns.save(backend), first, "{backend}: back to the defaults");

        // Our dry run of a re-run shows the deletions it would make, still touching nothing.
        let dry = ns.proxy_init(backend, &["--dry-run"]);
        assert!(
            String::from_utf8_lossy(&dry.stdout).contains("-D OUTPUT"),
            "{backend}"
        );
        assert_eq!(ns.save(backend), first, "{backend}");

        let out = ns.proxy_init(backend, &["--cleanup"]);
        assert!(
            out.status.success(),
            "{backend}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = ns.save(backend);
        assert!(
            !after.contains("RUDDER") && !after.contains("rudder/"),
            "{backend}\n{after}"
        );
        assert_eq!(after, empty, "{backend}");
    }
}

#[test]
fn verify_succeeds_with_rules_and_fails_without() {
    if !ready("verify_succeeds_with_rules_and_fails_without") {
        return;
    }
    for backend in backends() {
        let p = Pair::new();
        let target = sa(PEER_V4, 4444).to_string();
        let before = p
            .pod
            .exec(BIN, &["verify", "--to", &target, "--timeout-ms", "1000"]);
        assert!(
            !before.status.success(),
            "{backend}: verify passed without rules"
        );
        assert!(
            String::from_utf8_lossy(&before.stderr).contains("not intercepted"),
            "{backend}"
        );

        p.pod.apply(backend, &[]);
        let after = p.pod.exec(BIN, &["verify", "--to", &target]);
        let stdout = String::from_utf8_lossy(&after.stdout);
        assert!(
            after.status.success(),
            "{backend}: {}",
            String::from_utf8_lossy(&after.stderr)
        );
        assert!(
            stdout.contains("verify ok") && stdout.contains("uid 1337 not redirected"),
            "{backend}: {stdout}"
        );

        // Rules written for another proxy UID capture UID 1337's traffic: verify notices.
        p.pod
            .apply(backend, &["--proxy-uid", "4242", "--proxy-gid", "4242"]);
        let wrong = p.pod.exec(BIN, &["verify", "--to", &target]);
        assert!(
            !wrong.status.success(),
            "{backend}: verify missed a captured proxy UID"
        );
        assert!(
            String::from_utf8_lossy(&wrong.stderr).contains("proxy UID 1337"),
            "{backend}"
        );
    }
}

#[test]
fn auto_backend_picks_the_one_already_holding_rules() {
    if !ready("auto_backend_picks_the_one_already_holding_rules") || backends().len() < 2 {
        return;
    }
    let ns = Netns::new();
    ns.apply(Backend::Legacy, &[]);
    let legacy = ns.save(Backend::Legacy);
    let out = ns.exec(BIN, &["--iptables-backend", "auto"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ns.save(Backend::Legacy), legacy);
    assert!(
        !ns.save(Backend::Nft).contains("RUDDER"),
        "auto wrote to nft beside legacy rules"
    );
    let out = ns.exec(BIN, &["--cleanup"]);
    assert!(out.status.success());
    assert!(!ns.save(Backend::Legacy).contains("RUDDER"));
}
