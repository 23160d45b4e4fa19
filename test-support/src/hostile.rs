//! Property tests over hostile input, run in the normal test suite: each
//! property gets a fixed number of generated cases (no time limit, no
//! persistence files, no forked processes), a failure is shrunk and reported
//! by proptest, and the number of cases tried is reported: printed (`cargo
//! test -- --nocapture` shows it) and appended to the file
//! `RUDDER_HOSTILE_FILE` names, which `scripts/test.sh` summarizes at the end.
//!
//! Strategies: [`mutated`] (real inputs with bytes deleted, inserted,
//! duplicated, truncated: what a bad editor save or a hostile client sends)
//! and [`json`] (arbitrary JSON whose object keys come from a list, so
//! generated objects reach deep into a schema instead of failing at its
//! first unknown field).

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::{
    prelude::*,
    strategy::ValueTree,
    test_runner::{Config, TestCaseError, TestRunner},
};
use serde_json::Value;

/// Runs `test` on `cases` values of `strategy`; panics with proptest's
/// shrunk counterexample on failure. Prints `hostile: NAME: N cases`.
pub fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let tried = AtomicU64::new(0);
    let result = runner.run(&strategy, |v| {
        tried.fetch_add(1, Ordering::Relaxed);
        test(v)
    });
    report(name, tried.load(Ordering::Relaxed));
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// `cases` values of `strategy`, without proptest's runner (no shrinking, no
/// panic hook of its own: for properties checked by a process-wide hook, such
/// as "no task of a server panicked"). Prints `hostile: NAME: N cases`.
pub fn samples<S: Strategy>(name: &str, cases: u32, strategy: S) -> Vec<S::Value> {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let out: Vec<S::Value> = (0..cases)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("the strategy generates")
                .current()
        })
        .collect();
    report(name, out.len() as u64);
    out
}

/// `hostile: NAME: N cases` on stdout and, one O_APPEND write, in
/// `RUDDER_HOSTILE_FILE` (if set).
fn report(name: &str, cases: u64) {
    use std::io::Write;
    let line = format!("hostile: {name}: {cases} cases");
    println!("{line}");
    if let Some(file) = std::env::var_os("RUDDER_HOSTILE_FILE").filter(|f| !f.is_empty()) {
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    }
}

/// Characters that matter to YAML, JSON, PEM and URLs, plus some that do not.
const NASTY: &[char] = &[
    ':', '-', '[', ']', '{', '}', '\'', '"', '#', '&', '*', '!', '|', '>', '%', '@', '`', ',', '?',
    '\n', '\t', ' ', '\\', '/', '=', '0', '9', 'a', 'Z', '.', '~', '\u{0}', 'é', '\u{feff}', '😀',
];

/// One edit of a text.
#[derive(Clone, Debug)]
enum Edit {
    Delete { at: f64, len: usize },
    Insert { at: f64, text: String },
    DuplicateLine { at: f64 },
    Truncate { at: f64 },
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = 0.0..1.0f64;
    prop_oneof![
        (at.clone(), 1..40usize).prop_map(|(at, len)| Edit::Delete { at, len }),
        (
            at.clone(),
            proptest::collection::vec(proptest::sample::select(NASTY), 1..12)
        )
            .prop_map(|(at, cs)| Edit::Insert {
                at,
                text: cs.into_iter().collect()
            }),
        at.clone().prop_map(|at| Edit::DuplicateLine { at }),
        at.prop_map(|at| Edit::Truncate { at }),
    ]
}

fn char_boundary(s: &str, at: f64) -> usize {
    let mut i = ((s.len() as f64) * at) as usize;
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i.min(s.len())
}

fn apply(mut s: String, e: &Edit) -> String {
    match e {
        Edit::Delete { at, len } => {
            let from = char_boundary(&s, *at);
            let mut to = (from + len).min(s.len());
            while !s.is_char_boundary(to) {
                to += 1;
            }
            s.replace_range(from..to, "");
        }
        Edit::Insert { at, text } => {
            let i = char_boundary(&s, *at);
            s.insert_str(i, text);
        }
        Edit::DuplicateLine { at } => {
            let i = char_boundary(&s, *at);
            let start = s[..i].rfind('\n').map_or(0, |p| p + 1);
            let end = s[i..].find('\n').map_or(s.len(), |p| i + p);
            let line = format!("{}\n", &s[start..end]);
            s.insert_str(start, &line);
        }
        Edit::Truncate { at } => {
            let i = char_boundary(&s, *at);
            s.truncate(i);
        }
    }
    s
}

/// One of `corpus`, with 1 to 6 random edits.
pub fn mutated(corpus: Vec<String>) -> impl Strategy<Value = String> {
    assert!(!corpus.is_empty(), "an empty corpus");
    (
        proptest::sample::select(corpus),
        proptest::collection::vec(edit(), 1..6),
    )
        .prop_map(|(text, edits)| edits.iter().fold(text, apply))
}

/// A leaf value: every JSON type, with edge cases (huge and negative
/// numbers, empty and long strings, durations and regexes gone wrong).
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(100),
            Just(101),
            Just(65536),
            Just(u32::MAX as i64 + 1)
        ]
        .prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just(String::new()),
            Just("*".to_string()),
            Just("5x".to_string()),
            Just("-3s".to_string()),
            Just("1.5s".to_string()),
            Just("[unclosed".to_string()),
            Just("a".repeat(70_000)),
            Just("default/reviews".to_string()),
            Just("reviews.default.svc.cluster.local".to_string()),
            Just("ISTIO_MUTUAL".to_string()),
            Just("10.0.0.0/8".to_string()),
            "[ -~]{0,24}",
        ]
        .prop_map(Value::String),
    ]
}

/// Arbitrary JSON up to `depth` levels, objects keyed from `keys` (and now
/// and then a key no schema has).
pub fn json(keys: &'static [&'static str], depth: u32) -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        9 => proptest::sample::select(keys).prop_map(String::from),
        1 => "[a-z]{1,8}",
    ];
    leaf().prop_recursive(depth, 256, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
