//! Test-only fault injection: lets this crate's own kernel tests make one
//! step of an ADD fail as the kernel would, to prove the rollback. Compiled
//! in only with the `failpoints` feature, which nothing but this crate's
//! dev-dependency on itself enables, so release binaries (and any build
//! without this crate's tests) cannot be steered by the environment.
//! Knows no step's meaning: callers name their step.

/// The environment variable naming the step that must fail.
pub const ENV: &str = "BANDWIDTH_FAILPOINT";

/// True when the step `name` must fail now.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) -> bool {
    std::env::var(ENV).is_ok_and(|v| v == name)
}

/// Always false: failpoints are not compiled in.
#[cfg(not(feature = "failpoints"))]
pub fn hit(_name: &str) -> bool {
    false
}
