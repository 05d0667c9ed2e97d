//! Login timing: an unknown user takes as long to refuse as a wrong password. In a test binary
//! of its own, so that no concurrent load skews one side of the comparison.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn unknown_users_take_as_long_as_wrong_passwords() {
    let mut options = Options::default();
    options.config.login_guard.ban_after_failures = 0;
    let server = TestServer::start_with(options);
    let attempt = |user: &str| {
        let mut raw = server.raw();
        raw.cmd(&format!("USER {user}"));
        let start = Instant::now();
        assert_eq!(raw.code("PASS not-the-password"), 530);
        start.elapsed()
    };
    // Alternate the two, so that any change in machine load hits both alike.
    let (mut unknown, mut known): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        unknown.push(attempt("no-such-user"));
        known.push(attempt(USER));
    }
    unknown.sort();
    known.sort();
    let (unknown, known) = (unknown[7], known[7]);
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "median unknown {unknown:?} vs wrong password {known:?}"
    );
}
