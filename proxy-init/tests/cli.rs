//! The binary's flag handling: errors name the flag and value, env vars work,
//! `--help` lists the contract's flags. No root needed: `--dry-run` only reads.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_proxy-init");

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env("RUST_LOG", "off");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run proxy-init");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_values_name_the_flag_and_value_and_exit_2() {
    let cases: [(&[&str], &str); 6] = [
        (&["--proxy-port", "0"], "--proxy-port: invalid port \"0\""),
        (
            &["--inbound-capture-port", "70000"],
            "--inbound-capture-port: invalid port \"70000\"",
        ),
        (
            &["--exclude-inbound-ports", "15020,x"],
            "--exclude-inbound-ports: invalid port \"x\"",
        ),
        (
            &["--exclude-outbound-cidrs", "10.0.0.1/8"],
            "--exclude-outbound-cidrs: invalid CIDR \"10.0.0.1/8\"",
        ),
        (
            &["--include-outbound-cidrs", "10.0.0.0/40"],
            "--include-outbound-cidrs: invalid CIDR \"10.0.0.0/40\"",
        ),
        (
            &["--iptables-backend", "iptables"],
            "--iptables-backend: invalid value \"iptables\"",
        ),
    ];
    for (args, expected) in cases {
        let mut all = args.to_vec();
        all.push("--dry-run");
        let (code, stdout, stderr) = run(&all, &[]);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?} printed rules: {stdout}");
    }
}

#[test]
fn every_flag_is_also_an_environment_variable() {
    let env = [
        ("PROXY_INIT_PROXY_PORT", "15001"),
        ("PROXY_INIT_INBOUND_CAPTURE_PORT", "15006"),
        ("PROXY_INIT_PROXY_UID", "2102"),
        ("PROXY_INIT_EXCLUDE_OUTBOUND_CIDRS", "10.0.0.0/8"),
        ("PROXY_INIT_NO_IPV6", "true"),
    ];
    let (code, stdout, stderr) = run(&["--dry-run"], &env);
    assert_eq!(code, 0, "{stderr}");
    for expected in [
        "REDIRECT --to-ports 15001",
        "REDIRECT --to-ports 15006",
        "--uid-owner 2102",
        "-d 10.0.0.0/8",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("# ipv6"),
        "PROXY_INIT_NO_IPV6 ignored:\n{stdout}"
    );
    let (code, _, stderr) = run(&["--dry-run"], &[("PROXY_INIT_PROXY_PORT", "99999")]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--proxy-port: invalid port \"99999\""),
        "{stderr}"
    );
}

#[test]
fn help_lists_the_contract_flags() {
    let (code, stdout, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for flag in [
        "--proxy-port",
        "--inbound-capture-port",
        "--proxy-uid",
        "--proxy-gid",
        "--inbound-ports",
        "--exclude-inbound-ports",
        "--exclude-outbound-ports",
        "--include-outbound-cidrs",
        "--exclude-outbound-cidrs",
        "--dry-run",
        "--cleanup",
        "--iptables-backend",
        "PROXY_INIT_PROXY_PORT",
        "verify",
    ] {
        assert!(stdout.contains(flag), "--help lacks {flag}:\n{stdout}");
    }
}
