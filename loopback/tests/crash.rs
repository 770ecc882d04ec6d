//! loopback killed with SIGKILL at each of its side-effect steps (issue #15
//! §3, `cni::testing::crash`): after every kill DEL leaves the pod's `lo`
//! as a clean ADD + DEL does, and a fresh ADD works.

use cni::testing::crash::Spec;
use cni::testing::hostile::Stdin;

#[test]
fn killed_at_every_step_del_leaves_nothing() {
    Spec {
        plugin_type: "loopback",
        binary: env!("CARGO_BIN_EXE_loopback"),
        stdin: Stdin::Fields(""),
        check: true,
        group: false,
    }
    .test("killed_at_every_step_del_leaves_nothing");
}
