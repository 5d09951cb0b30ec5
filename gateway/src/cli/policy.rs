//! `c2c-gateway policy check DIR --against RUNNING_DIR`: which of the changes from the
//! running policy need a restart. The list comes from [`crate::start_only`], the same
//! function the running gateway's reloader warns with.

use std::path::Path;

use c2c_tenancy::Policy;

use super::common::{load_policy, CliResult};

/// Prints the start-only settings in which `next` differs from the policy in `running`
/// (one per line after a header), or that there are none. Fails only if `running` is
/// not a valid policy directory.
pub fn print_start_only(next: &Policy, running: &Path) -> CliResult {
    let running_policy = load_policy(running)?;
    let keys = crate::start_only::changes(&running_policy.gateway, &next.gateway);
    if keys.is_empty() {
        println!(
            "no restart needed: every change from {} applies on reload",
            running.display()
        );
    } else {
        println!(
            "these changes from {} take effect only after a restart:",
            running.display()
        );
        for k in keys {
            println!("  {k}");
        }
    }
    Ok(())
}
