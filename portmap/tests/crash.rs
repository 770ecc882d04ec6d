//! portmap killed with SIGKILL at each of its side-effect steps (issue #15
//! §3, `cni::testing::crash`): the nft skeleton and element batches, the
//! upstream probe, route_localnet, the netns identity and index files. After
//! every kill DEL leaves no element, pod chain or state file, and a fresh
//! ADD and CHECK work; once with the plugin alone killed, once with its whole
//! process group (a runtime's timeout, background children included). Also:
//! the forked child that closes nfnetlink sockets in the background killed
//! as soon as it exists.

use cni::testing::crash::Spec;
use cni::testing::hostile::Stdin;
use cni::testing::privileged;

fn spec(group: bool) -> Spec {
    Spec {
        plugin_type: "portmap",
        binary: env!("CARGO_BIN_EXE_portmap"),
        stdin: Stdin::Fields(concat!(
            r#""capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":["#,
            r#"{"hostPort":8080,"containerPort":80,"protocol":"tcp"},"#,
            r#"{"hostPort":8053,"containerPort":53,"protocol":"udp"}]}"#
        )),
        check: true,
        group,
    }
}

#[test]
fn killed_at_every_step_del_leaves_nothing() {
    spec(false).test("killed_at_every_step_del_leaves_nothing");
}

#[test]
fn group_killed_at_every_step_del_leaves_nothing() {
    spec(true).test("group_killed_at_every_step_del_leaves_nothing");
}

#[test]
fn background_close_child_killed_early() {
    if !privileged("background_close_child_killed_early") {
        return;
    }
    let n = spec(false).run_child_killed("background close child");
    eprintln!("portmap: {n} background children killed");
}
