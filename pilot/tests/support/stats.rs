//! Statistical bounds for traffic splits.
//!
//! Envoy picks a weighted cluster at random per request, so the count of
//! requests landing on a destination of weight `p` out of `n` is
//! Binomial(n, p). A test asserts the count lies in the central interval that
//! holds it with probability 1 - 2·[`TAIL`]: `TAIL` is the one-sided
//! probability of a normal variable beyond 5 sigma, computed here from the
//! exact binomial distribution (the normal approximation is poor at p = 1%),
//! so a correct split fails about once in 1.7 million runs, and a wrong one
//! (99/1 served as 50/50, or as 100/0) fails every time.

/// One-sided tail probability of 5 sigma.
pub const TAIL: f64 = 2.87e-7;

/// `[lo, hi]` with P(X < lo) ≤ TAIL and P(X > hi) ≤ TAIL for X ~ Binomial(n, p).
pub fn binomial_bounds(n: u64, p: f64) -> (u64, u64) {
    assert!((0.0..=1.0).contains(&p), "probability {p}");
    if p == 0.0 {
        return (0, 0);
    }
    if p == 1.0 {
        return (n, n);
    }
    // log pmf(k), built up from pmf(0) = (1-p)^n (log space: pmf(0) underflows
    // f64 at n = 2000, p = 0.5).
    let ratio = (p / (1.0 - p)).ln();
    let mut log_pmf = Vec::with_capacity(n as usize + 1);
    let mut l = n as f64 * (1.0 - p).ln();
    for k in 0..=n {
        log_pmf.push(l);
        l += ((n - k) as f64).ln() - ((k + 1) as f64).ln() + ratio;
    }
    let pmf: Vec<f64> = log_pmf.iter().map(|l| l.exp()).collect();
    let mut lo = 0;
    let mut below = 0.0;
    while lo < n && below + pmf[lo as usize] <= TAIL {
        below += pmf[lo as usize];
        lo += 1;
    }
    let mut hi = n;
    let mut above = 0.0;
    while hi > 0 && above + pmf[hi as usize] <= TAIL {
        above += pmf[hi as usize];
        hi -= 1;
    }
    (lo, hi)
}

#[test]
fn bounds_match_the_normal_approximation_where_it_holds() {
    // 50/50 over 2000: sd = 22.4, 5 sigma = ±112.
    let (lo, hi) = binomial_bounds(2000, 0.5);
    assert!(
        (885..=892).contains(&lo) && (1108..=1115).contains(&hi),
        "{lo}..{hi}"
    );
    // 99/1 over 2000: mean 20; P(X = 0) = 0.99^2000 ≈ 2e-9, so at least 1.
    let (lo, hi) = binomial_bounds(2000, 0.01);
    assert!(
        (1..=3).contains(&lo) && (40..=50).contains(&hi),
        "{lo}..{hi}"
    );
    assert_eq!(binomial_bounds(10, 1.0), (10, 10));
}
