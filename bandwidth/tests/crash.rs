//! bandwidth killed with SIGKILL at each of its side-effect steps (issue
//! #15 §3, `cni::testing::crash`): qdiscs, filters and the IFB, each a
//! netlink send. After every kill DEL leaves no qdisc, filter or IFB, and a
//! fresh ADD and CHECK work.

use cni::testing::crash::Spec;
use cni::testing::hostile::Stdin;

#[test]
fn killed_at_every_step_del_leaves_nothing() {
    Spec {
        plugin_type: "bandwidth",
        binary: env!("CARGO_BIN_EXE_bandwidth"),
        stdin: Stdin::Fields(
            r#""ingressRate":1000000,"ingressBurst":100000,"egressRate":2000000,"egressBurst":200000"#,
        ),
        check: true,
        group: false,
    }
    .test("killed_at_every_step_del_leaves_nothing");
}
