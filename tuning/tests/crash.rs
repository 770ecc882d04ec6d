//! tuning killed with SIGKILL at each of its side-effect steps (issue #15
//! §3, `cni::testing::crash`): sysctl writes, link changes, the backup's
//! write, rename and removal. After every kill DEL restores the pod's
//! sysctls and link attributes and leaves no backup (nor temp file), and a
//! fresh ADD and CHECK work.

use cni::testing::crash::Spec;
use cni::testing::hostile::Stdin;

#[test]
fn killed_at_every_step_del_leaves_nothing() {
    Spec {
        plugin_type: "tuning",
        binary: env!("CARGO_BIN_EXE_tuning"),
        stdin: Stdin::Fields(
            r#""dataDir":"@DATADIR@","mtu":1400,"txQLen":500,"promisc":true,"mac":"02:fe:00:00:00:42","sysctl":{"net.ipv4.conf.eth0.arp_ignore":"1","net.core.somaxconn":"1000"}"#,
        ),
        check: true,
        group: false,
    }
    .test("killed_at_every_step_del_leaves_nothing");
}
