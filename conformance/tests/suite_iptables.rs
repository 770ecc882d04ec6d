//! Every scenario that chains portmap, with our portmap's iptables backend
//! forced into each conflist (`--portmap-backend iptables`); a binary of
//! its own, so that no other suite run shares the host while it checks
//! that the host is unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite_support;

use suite_support::{assert_passes, options};

/// The scenarios but `portmap`, whose iptables run is `portmap-iptables`
/// in the suite.
#[test]
fn portmap_scenarios_pass_with_the_iptables_backend_forced() {
    if !cni::testing::privileged("portmap_scenarios_pass_with_the_iptables_backend_forced") {
        return;
    }
    let mut opts = options();
    opts.portmap_backend = Some("iptables".into());
    let only = opts.only.take();
    let mut passed = 0;
    for name in [
        "chain",
        "del-without-cache",
        "parallel-pods",
        "interleavings",
        "gc",
        "status",
    ] {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        opts.only = Some(name.into());
        passed += assert_passes(&opts);
    }
    assert!(passed > 0 || only.is_some(), "nothing passed");
}
