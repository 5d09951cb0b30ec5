//! What this binary is: the crate version and the source revision `build.rs` captured
//! (git commit, or `C2C_REVISION` in a container build, or `unknown`).

/// The crate version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The source revision, 12 hex digits of the git commit when built from a checkout.
pub const REVISION: &str = env!("C2C_BUILD_REVISION");

/// `--version`'s text after the program name: `0.1.0 (rev 0123456789ab)`.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (rev ",
    env!("C2C_BUILD_REVISION"),
    ")"
);
