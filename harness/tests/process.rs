//! Processes in pods: the right user, the right network namespace, and
//! private per-pod mounts.

use std::path::Path;
use std::time::Duration;

use rudder_harness::{Net, Pod, ProcessSpec};
use rudder_test_support::{check_netns, prerequisite};

/// Waits (bounded) until the process has exec'd its final program `comm`
/// (nsenter and setpriv exec in turn, under the same PID).
fn wait_for_comm(pid: u32, comm: &str) {
    for _ in 0..250 {
        if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("process {pid} never became {comm}");
}

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in status"));
    line[field.len()..]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn netns_inode(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("net:[{}]", std::fs::metadata(path).unwrap().ino())
}

#[test]
fn spawned_process_runs_as_1337_in_the_pods_network_namespace() {
    let Some(()) = prerequisite("spawn_as_1337", check_netns()) else {
        return;
    };
    let net = Net::for_test("uid").unwrap();
    let pod = net.add_pod("proxy").unwrap();
    let process = pod
        .spawn(
            ProcessSpec::new("sleep")
                .arg("600")
                .user(1337, 1337)
                .env("POD_NAME", "proxy"),
        )
        .unwrap();
    let pid = process.pid();
    wait_for_comm(pid, "sleep");
    assert_eq!(status_field(pid, "Uid:"), "1337 1337 1337 1337");
    assert_eq!(status_field(pid, "Gid:"), "1337 1337 1337 1337");
    assert_eq!(
        status_field(pid, "Groups:"),
        "",
        "supplementary groups must be cleared"
    );
    assert_eq!(
        status_field(pid, "CapEff:"),
        "0000000000000000",
        "no capabilities left"
    );
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_eq!(ns.to_str().unwrap(), netns_inode(&pod.netns_path()));
    assert_ne!(ns, std::fs::read_link("/proc/self/ns/net").unwrap());
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ.split('\0').any(|e| e == "POD_NAME=proxy"),
        "{environ:?}"
    );
    assert!(
        !environ.contains("CARGO_"),
        "the test's environment must not leak into pods"
    );
    // The PID is recorded in the state directory for crash sweeps.
    let state = rudder_harness::StateRecord::load(net.state_dir()).unwrap();
    assert!(state
        .processes
        .iter()
        .any(|p| p.pid == pid as i32 && p.pod == "proxy"));

    // Dropping the handle stops the process and forgets its record.
    drop(process);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} survived its handle"
    );
    let state = rudder_harness::StateRecord::load(net.state_dir()).unwrap();
    assert!(state.processes.is_empty());
}

/// Runs `script` in `pod` as UID 1000 with the pod's own files mounted, and
/// returns what it printed.
fn run_with_mounts(pod: &Pod, hosts: &Path, pod_files: &Path, script: &str) -> String {
    let process = pod
        .spawn(
            ProcessSpec::new("sh")
                .args(["-c", script])
                .user(1000, 1000)
                .mount(hosts, "/etc/hosts")
                .mount(pod_files, "/etc/rudder/pod"),
        )
        .unwrap();
    let status = process
        .wait_timeout(Duration::from_secs(10))
        .expect("script finished");
    let log = process.read_log();
    assert!(status.success(), "script failed ({status}): {log}");
    log
}

#[test]
fn per_pod_mounts_are_private_to_the_pod() {
    let Some(()) = prerequisite("per_pod_mounts", check_netns()) else {
        return;
    };
    let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    let net = Net::for_test("mounts").unwrap();
    let mut setups = Vec::new();
    for name in ["alpha", "beta"] {
        let pod = net.add_pod(name).unwrap();
        let hosts = pod.dir().join("hosts");
        std::fs::write(
            &hosts,
            format!("127.0.0.1 localhost\n{} {name}\n", pod.ip()),
        )
        .unwrap();
        let files = pod.dir().join("podinfo");
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join("labels"), format!("app=\"{name}\"\n")).unwrap();
        setups.push((pod, hosts, files));
    }
    let beta_labels = setups[1].2.join("labels");
    for (i, (pod, hosts, files)) in setups.iter().enumerate() {
        let other = &setups[1 - i].0;
        let script = format!(
            "cat /etc/hosts /etc/rudder/pod/labels; \
             if cat {} 2>/dev/null; then echo LEAK; else echo HIDDEN; fi",
            beta_labels.display()
        );
        let log = run_with_mounts(pod, hosts, files, &script);
        assert!(
            log.contains(&format!("{} {}", pod.ip(), pod.name())),
            "pod {} sees {log}",
            pod.name()
        );
        assert!(log.contains(&format!("app=\"{}\"", pod.name())), "{log}");
        assert!(
            !log.contains(other.name()),
            "pod {} sees {}'s files: {log}",
            pod.name(),
            other.name()
        );
        // The state root (every pod's files) is hidden: files are visible only
        // through the pod's own mounts, even its own directory is not.
        assert!(
            log.trim_end().ends_with("HIDDEN"),
            "pod {} can read beta's files: {log}",
            pod.name()
        );
    }
    assert_eq!(
        std::fs::read_to_string("/etc/hosts").unwrap(),
        host_hosts,
        "the host's /etc/hosts changed"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("rudder-hidden") && !mounts.contains("/etc/rudder/pod"),
        "mounts leaked to the host"
    );
}

/// A checkout under `/tmp` while the pod gets its own `/tmp`: the program's
/// directory and the working directory stay visible at their host paths, the
/// rest of the covered directory is the pod's, and the host sees no mount.
#[test]
fn program_and_working_dir_under_a_covered_directory_stay_visible() {
    let Some(()) = prerequisite("kept_dirs", check_netns()) else {
        return;
    };
    let net = Net::for_test("keep").unwrap();
    let pod = net.add_pod("app").unwrap();
    // The host directory the pod's mount covers, like /tmp, with a "checkout" in it.
    let covered_dir = std::env::temp_dir().join(format!("rudder-keep-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&covered_dir);
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let covered = Cleanup(covered_dir);
    let covered = &covered.0;
    let bin = covered.as_path().join("checkout/target/debug");
    let work = covered.as_path().join("checkout/samples/app");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(covered.as_path().join("host-only"), "host\n").unwrap();
    std::fs::write(work.join("data.txt"), "sample data\n").unwrap();
    let prog = bin.join("prog");
    std::fs::write(
        &prog,
        format!(
            "#!/bin/sh\ncat {}/data.txt; cat data.txt; ls {}; echo pod-file > {}/own\n",
            work.display(),
            covered.as_path().display(),
            covered.as_path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let pod_tmp = pod.dir().join("tmp");
    std::fs::create_dir_all(&pod_tmp).unwrap();

    let process = pod
        .spawn(
            ProcessSpec::new(&prog)
                .cwd(&work)
                .mount(&pod_tmp, covered.as_path()),
        )
        .unwrap();
    let status = process
        .wait_timeout(Duration::from_secs(10))
        .expect("program finished");
    let log = process.read_log();
    assert!(
        status.success(),
        "the program under the covered directory did not run ({status}): {log}"
    );
    assert_eq!(
        log.matches("sample data").count(),
        2,
        "absolute and relative paths in the working dir: {log}"
    );
    assert!(
        !log.contains("host-only"),
        "the covered directory is the pod's own: {log}"
    );
    assert_eq!(
        std::fs::read_to_string(pod_tmp.join("own")).unwrap(),
        "pod-file\n",
        "writes land in the pod's directory"
    );
    assert!(
        !covered.as_path().join("own").exists(),
        "the host's directory is untouched"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&covered.as_path().display().to_string()),
        "mounts leaked to the host"
    );
}
