//! pilot's benchmark (prints numbers; not a test):
//! `cargo run --release -p rudder-pilot --example bench [-- ITERATIONS]`.
//!
//! ```text
//!  synthetic YAML ─► load_str ─► Store (validate) ─► build_snapshot ─► Snapshot ─► Generator::generate(proxy)
//!  (1000 Services,    parse        fill                ▲ timed          ▲ RSS         ▲ cold / warm / floor
//!   3000 Pods, ...)
//! ```
//!
//! Unlike pilot/xds's `genbench` (model fixtures built in code), this one
//! starts from the YAML objects a user would write, so the snapshot build
//! time is the registry's real work (compiling Services, Pods, selectors into
//! endpoints, DestinationRules and VirtualServices). The mesh has the same
//! shape as genbench's: 10 namespaces, 1000 Services with an HTTP port (every
//! 10th also a TCP port), 3 versions each (3000 ready Pods), a
//! DestinationRule with subsets v1..v3 per Service, and 300 VirtualServices
//! (90/10 v1/v2, every third with `end-user: jason` → v3).
//!
//! Reported medians over ITERATIONS (default 11):
//! - snapshot build: `build_snapshot` over the store's objects;
//! - cold: a fresh `Generator`, then one proxy's full config (CDS/EDS/LDS/RDS);
//! - warm: another proxy of the same namespace on a `Generator` that already
//!   served one (shared resources reused, what pilot does per proxy);
//! - floor: prost-encoding the same resources, measured in the same run.
//!
//! Memory is the resident-set growth read from `/proc/self/statm` (no counting
//! allocator: our crates forbid `unsafe`): for the parsed objects in the store,
//! and for one built snapshot held alive beside them.

use std::{
    fmt::Write as _,
    sync::Arc,
    time::{Duration, Instant},
};

use prost::Message;
use rudder_model::{NodeId, NodeMetadata, Snapshot};
use rudder_registry::{build::build_snapshot, load::load_str, Store};
use rudder_xds::{check_consistency, Generator, ProxyResources, TypeUrl};

const NAMESPACES: usize = 10;
const SERVICES: usize = 1000;
const VIRTUAL_SERVICES: usize = 300;

fn pod_ip(n: usize) -> String {
    format!("198.18.{}.{}", n / 250, n % 250 + 1)
}

/// The mesh as one multi-document YAML text.
fn mesh_yaml() -> String {
    let mut y = String::new();
    for n in 0..NAMESPACES {
        let _ = write!(
            y,
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{n}}}\n---\n"
        );
    }
    for i in 0..SERVICES {
        let ns = format!("ns{}", i % NAMESPACES);
        let name = format!("svc{i}");
        let vip = format!("198.19.{}.{}", i / 250, i % 250 + 1);
        let tcp = if i % 10 == 0 {
            ", {name: tcp-redis, port: 6379, targetPort: 6379}"
        } else {
            ""
        };
        let _ = write!(
            y,
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  clusterIP: {vip}\n  selector: {{app: {name}}}\n  ports: [{{name: http, port: 9080, targetPort: 9080}}{tcp}]\n---\n"
        );
        for v in 1..=3 {
            let _ = write!(
                y,
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}-v{v}, namespace: {ns}, labels: {{app: {name}, version: v{v}}}}}\nspec: {{serviceAccountName: {name}}}\nstatus:\n  phase: Running\n  podIP: {ip}\n  conditions: [{{type: Ready, status: \"True\"}}]\n---\n",
                ip = pod_ip(i * 3 + v)
            );
        }
        let _ = write!(
            y,
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: {name}\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n  - {{name: v3, labels: {{version: v3}}}}\n---\n"
        );
        if i < VIRTUAL_SERVICES {
            let _ = write!(y, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  hosts: [{name}]\n  http:\n");
            if i % 3 == 0 {
                let _ = write!(
                    y,
                    "  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]\n    route: [{{destination: {{host: {name}, subset: v3}}}}]\n"
                );
            }
            let _ = write!(
                y,
                "  - route:\n    - {{destination: {{host: {name}, subset: v1}}, weight: 90}}\n    - {{destination: {{host: {name}, subset: v2}}, weight: 10}}\n---\n"
            );
        }
    }
    y
}

/// Resident set size in bytes (`/proc/self/statm`, second field, in pages).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed(), out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn encode_all(r: &ProxyResources) -> usize {
    r.by_type
        .values()
        .flat_map(|m| m.values())
        .map(|res| res.body.encode_to_vec().len())
        .sum()
}

/// The sidecar of pod `svc<i>-v<v>`, resolved from the store as pilot does.
fn proxy(snapshot: &Snapshot, i: usize, v: usize) -> rudder_model::Proxy {
    let node = NodeId::sidecar(
        pod_ip(i * 3 + v).parse().expect("ip"),
        &format!("svc{i}-v{v}"),
        &format!("ns{}", i % NAMESPACES),
    );
    rudder_xds::resolve_proxy(snapshot, node, &NodeMetadata::default())
}

/// Parses the YAML and fills a store with its objects (each validated);
/// returns both times, the object count and the store.
fn fill_store(yaml: &str) -> (Duration, Duration, usize, Store) {
    let (parse, loaded) = time(|| load_str(yaml, "bench.yaml", "bench"));
    assert!(
        loaded.problems.is_empty() && loaded.rejected.is_empty(),
        "synthetic YAML is valid: {:?}",
        loaded.problems
    );
    let objects = loaded.objects.len();
    let mut store = Store::new();
    let (fill, diags) = time(|| {
        loaded
            .objects
            .into_iter()
            .flat_map(|o| store.apply(o))
            .count()
    });
    assert_eq!(diags, 0, "synthetic objects validate cleanly");
    (parse, fill, objects, store)
}

/// Generation times over `iterations` proxies. Cold: a fresh Generator per
/// run; warm: proxies of ns0 on one Generator after a first proxy of ns0
/// filled its caches.
struct Generation {
    cold: Vec<Duration>,
    warm: Vec<Duration>,
    floor: Vec<Duration>,
    first_proxy: Duration,
    /// The last warm proxy's resources.
    res: ProxyResources,
}

fn generation(snapshot: &Arc<Snapshot>, iterations: usize) -> Generation {
    let mut cold = Vec::new();
    for k in 0..iterations {
        let p = proxy(snapshot, (k * 10) % SERVICES, 2);
        cold.push(time(|| Generator::new(snapshot.clone()).generate(&p)).0);
    }
    let g = Generator::new(snapshot.clone());
    let (first_proxy, _) = time(|| g.generate(&proxy(snapshot, 0, 1)));
    let mut warm = Vec::new();
    let mut floor = Vec::new();
    let mut last = None;
    for k in 0..iterations {
        let p = proxy(snapshot, (k * 10 + 10) % SERVICES, 2);
        let (d, res) = time(|| g.generate(&p));
        warm.push(d);
        floor.push(time(|| encode_all(&res)).0);
        last = Some(res);
    }
    let res = last.expect("at least one iteration");
    Generation {
        cold,
        warm,
        floor,
        first_proxy,
        res,
    }
}

/// The snapshot build times: the first, then `iterations - 1` more, each
/// checked to give the same version.
fn rebuilds(
    store: &Store,
    snapshot: &Snapshot,
    first_build: Duration,
    iterations: usize,
) -> Vec<Duration> {
    let mut builds = vec![first_build];
    for _ in 1..iterations {
        let (d, s) = time(|| build_snapshot(store.objects(), vec![]));
        assert_eq!(s.version, snapshot.version, "deterministic build");
        builds.push(d);
    }
    builds
}

fn print_medians(
    iterations: usize,
    builds: Vec<Duration>,
    cold: Vec<Duration>,
    warm: Vec<Duration>,
    floor: Vec<Duration>,
    first_proxy: Duration,
) {
    println!("medians over {iterations} runs:");
    println!(
        "  snapshot build (store -> Snapshot):        {:8.2} ms",
        ms(median(builds))
    );
    println!(
        "  generation, cold (fresh Generator):        {:8.2} ms",
        ms(median(cold))
    );
    println!(
        "  generation, warm (shared resources reused): {:7.3} ms",
        ms(median(warm))
    );
    println!(
        "  floor (prost-encode the same resources):   {:8.3} ms",
        ms(median(floor))
    );
    println!(
        "  first proxy on a fresh Generator:          {:8.2} ms (single run)",
        ms(first_proxy)
    );
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(11)
        .max(1);
    let yaml = mesh_yaml();

    let rss0 = rss_bytes();
    let (parse, fill, objects, store) = fill_store(&yaml);
    let rss_store = rss_bytes();
    let (first_build, snapshot) = time(|| Arc::new(build_snapshot(store.objects(), vec![])));
    let rss_model = rss_bytes();
    assert!(
        snapshot.diagnostics.is_empty(),
        "{:?}",
        &snapshot.diagnostics[..snapshot.diagnostics.len().min(3)]
    );

    let builds = rebuilds(&store, &snapshot, first_build, iterations);

    let Generation {
        cold,
        warm,
        floor,
        first_proxy,
        res,
    } = generation(&snapshot, iterations);
    check_consistency(&res).expect("generated resources are consistent");
    let count = |t| res.of(t).map_or(0, |m| m.len());

    println!(
        "input: {objects} objects ({} MB of YAML): {} namespaces, {} services, {} pods, {} destination rules, {} virtual services",
        format_args!("{:.1}", mb(yaml.len() as u64)),
        snapshot.namespaces.len(),
        snapshot.services.len(),
        snapshot.workloads.len(),
        snapshot.destination_rules.all().count(),
        snapshot.route_tables.len()
    );
    println!(
        "yaml parse: {:.1} ms; store fill (validate {objects} objects): {:.1} ms",
        ms(parse),
        ms(fill)
    );
    println!(
        "per proxy: {} clusters, {} EDS, {} listeners, {} route configs, {:.2} MB encoded",
        count(TypeUrl::Cluster),
        count(TypeUrl::Endpoint),
        count(TypeUrl::Listener),
        count(TypeUrl::Route),
        mb(encode_all(&res) as u64)
    );
    print_medians(iterations, builds, cold, warm, floor, first_proxy);
    println!(
        "memory (RSS growth): store with {objects} objects {:.1} MB; snapshot (model) {:.1} MB",
        mb(rss_store.saturating_sub(rss0)),
        mb(rss_model.saturating_sub(rss_store))
    );
}
