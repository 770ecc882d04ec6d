//! Privileged: the netns guard moves only the current thread and brings it
//! back, into a named netns or a new one of its own; a netlink socket opened for a netns (`cni::rtnl`) sees that netns'
//! links while the thread stays where it was; sysctls resolve in the thread's netns.
//! Every test builds its own throwaway netns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use cni::netns::{self, NetnsGuard, THREAD_NETNS};
use cni::rtnl::{link_name, Rtnl};
use cni::sysctl::{Sysctl, SysctlKey};
use cni::testing::{privileged, veth_pair, TestNetns};

fn inode(path: &str) -> (u64, u64) {
    let m = std::fs::metadata(path).unwrap();
    (m.dev(), m.ino())
}

#[test]
fn guard_enters_a_netns_and_restores_the_thread() {
    if !privileged("guard_enters_a_netns_and_restores_the_thread") {
        return;
    }
    let ns = TestNetns::new("ng");
    let before = inode(THREAD_NETNS);
    let target = inode(ns.path().to_str().unwrap());
    assert_ne!(before, target);
    assert!(!netns::is_current(&ns.path()).unwrap());
    // A thread started before the switch (threads started later inherit
    // the creator's netns, as clone(2) does).
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        wait.recv().unwrap();
        inode(THREAD_NETNS)
    });
    {
        let _guard = NetnsGuard::enter(&ns.path()).unwrap();
        assert_eq!(inode(THREAD_NETNS), target);
        assert!(netns::is_current(&ns.path()).unwrap());
        // Only this thread moved.
        go.send(()).unwrap();
        assert_eq!(other.join().unwrap(), before);
    }
    assert_eq!(inode(THREAD_NETNS), before);
    // leave() reports and restores too.
    let guard = NetnsGuard::enter(&ns.path()).unwrap();
    guard.leave().unwrap();
    assert_eq!(inode(THREAD_NETNS), before);
    // run_in hands back the closure's value.
    let seen = netns::run_in(&ns.path(), || inode(THREAD_NETNS)).unwrap();
    assert_eq!(seen, target);
    assert_eq!(inode(THREAD_NETNS), before);
}

#[test]
fn enter_new_gives_the_thread_an_empty_netns_of_its_own_and_restores_it() {
    if !privileged("enter_new_gives_the_thread_an_empty_netns_of_its_own_and_restores_it") {
        return;
    }
    let before = inode(THREAD_NETNS);
    let guard = NetnsGuard::enter_new().unwrap();
    let inside = inode(THREAD_NETNS);
    assert_ne!(inside, before);
    // Fresh: only loopback (and, on some kernels, fallback tunnels).
    let names: Vec<String> = Rtnl::open()
        .unwrap()
        .links()
        .unwrap()
        .iter()
        .filter_map(|l| link_name(l).map(str::to_string))
        .collect();
    assert!(names.contains(&"lo".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("veth")), "{names:?}");
    guard.leave().unwrap();
    assert_eq!(inode(THREAD_NETNS), before);
    // Dropping the guard restores the thread too.
    let again = NetnsGuard::enter_new().unwrap();
    assert_ne!(inode(THREAD_NETNS), before);
    drop(again);
    assert_eq!(inode(THREAD_NETNS), before);
}

#[test]
fn open_rejects_missing_paths_and_non_namespaces() {
    if !privileged("open_rejects_missing_paths_and_non_namespaces") {
        return;
    }
    let missing = netns::open(Path::new("/run/netns/cnt-does-not-exist")).unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    assert!(
        NetnsGuard::enter(Path::new("/run/netns/cnt-does-not-exist"))
            .unwrap_err()
            .is_not_found()
    );
    let file = std::env::temp_dir().join(format!("cnt-not-a-netns-{}", std::process::id()));
    std::fs::write(&file, "x").unwrap();
    let e = netns::open(&file).unwrap_err();
    std::fs::remove_file(&file).unwrap();
    assert!(matches!(e, netns::NetnsError::NotANamespace { .. }), "{e}");
    assert!(e.to_string().contains("not a network namespace file"));
    // The thread's own netns is a namespace file too.
    assert!(netns::is_current(Path::new(THREAD_NETNS)).unwrap());
}

#[test]
fn rtnl_socket_sees_its_netns_and_leaves_the_thread_alone() {
    if !privileged("rtnl_socket_sees_its_netns_and_leaves_the_thread_alone") {
        return;
    }
    let a = TestNetns::new("nla");
    let b = TestNetns::new("nlb");
    let (va, vb) = (
        cni::testing::unique_name("va"),
        cni::testing::unique_name("vb"),
    );
    veth_pair(&a, &va, &b, &vb);
    let before = inode(THREAD_NETNS);
    let session = Rtnl::open_in(&a.path()).unwrap();
    assert_eq!(
        inode(THREAD_NETNS),
        before,
        "thread left in the target netns"
    );

    let lo = session
        .link_by_name("lo")
        .unwrap()
        .expect("lo in a fresh netns");
    assert_eq!(lo.header.index, 1);
    assert_eq!(link_name(&lo), Some("lo"));
    let mine = session.link_by_name(&va).unwrap().expect("own veth end");
    assert_eq!(link_name(&mine), Some(va.as_str()));
    let by_index = session.link_by_index(mine.header.index).unwrap().unwrap();
    assert_eq!(link_name(&by_index), Some(va.as_str()));
    // The peer lives in the other netns.
    assert!(session.link_by_name(&vb).unwrap().is_none());
    assert!(session.link_by_index(999_999).unwrap().is_none());

    let other = Rtnl::open_in(&b.path()).unwrap();
    assert!(other.link_by_name(&vb).unwrap().is_some());
    assert!(other.link_by_name(&va).unwrap().is_none());
    assert_eq!(inode(THREAD_NETNS), before);
}

#[test]
fn rtnl_socket_reports_a_missing_netns() {
    if !privileged("rtnl_socket_reports_a_missing_netns") {
        return;
    }
    let e = Rtnl::open_in(Path::new("/run/netns/cnt-gone-away")).unwrap_err();
    assert!(e.is_netns_missing(), "{e}");
    let cni_err: cni::CniError = e.into();
    assert_eq!(cni_err.code, cni::ErrorCode::Internal);
    assert!(cni_err.msg.contains("/run/netns/cnt-gone-away"));
}

#[test]
fn sysctls_resolve_in_the_threads_netns() {
    if !privileged("sysctls_resolve_in_the_threads_netns") {
        return;
    }
    let ns = TestNetns::new("sy");
    let key = SysctlKey::parse("net.ipv4.conf.IFNAME.forwarding", "lo").unwrap();
    netns::run_in(&ns.path(), || {
        let s = Sysctl::default();
        assert_eq!(s.read(&key).unwrap(), "0");
        s.write(&key, "1").unwrap();
        assert_eq!(s.read(&key).unwrap(), "1");
    })
    .unwrap();
    let seen = ns.exec(&["cat", "/proc/sys/net/ipv4/conf/lo/forwarding"]);
    assert_eq!(seen.trim(), "1");
}

/// The descriptors of process `pid`, as their link targets.
fn fds_of(pid: u32) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|t| t.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Fields of `/proc/<pid>/stat` after the command name (field 3 is [0]).
fn stat_of(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    rest.split_whitespace().map(str::to_string).collect()
}

#[test]
fn a_background_close_leaves_the_socket_to_a_child_holding_nothing_else() {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use cni::netlink::netfilter::Nfnl;
    use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE};
    use netlink_packet_netfilter::nftables::{NfTablesMessage, TableAttribute, TableMessage};
    use netlink_packet_netfilter::NetfilterProtoFamily;

    if !privileged("a_background_close_leaves_the_socket_to_a_child_holding_nothing_else") {
        return;
    }
    let ns = TestNetns::new("nc");
    // Commits in the netns all along keep the child waiting for a quiet
    // grace period (at most 8 of them), long enough to look at it.
    let stop = Arc::new(AtomicBool::new(false));
    let (started, committing) = std::sync::mpsc::channel();
    let committer = {
        let (path, stop) = (ns.path(), stop.clone());
        std::thread::spawn(move || {
            let nf = Nfnl::open_in(&path).unwrap();
            let table = || TableMessage {
                attributes: vec![TableAttribute::Name("cnt_closing".into())],
            };
            let mut commits = 0u32;
            while !stop.load(Ordering::Relaxed) {
                for op in [
                    NfTablesMessage::NewTable(table()),
                    NfTablesMessage::DeleteTable(table()),
                ] {
                    nf.nftables_batch(
                        NetfilterProtoFamily::Inet,
                        vec![(op, NLM_F_CREATE | NLM_F_ACK)],
                    )
                    .unwrap();
                    commits += 1;
                }
                let _ = started.send(());
            }
            commits
        })
    };
    committing.recv().unwrap();
    // The socket held also is the lower descriptor: the child probes the
    // one closed, whatever the order of the descriptors it keeps.
    let kept = Nfnl::open_in(&ns.path()).unwrap();
    let nf = Nfnl::open_in(&ns.path()).unwrap();
    // Bound to the kernel (a request was sent), as every verb's socket is.
    nf.nftables_generation().unwrap();
    let link = |fd: i32| {
        std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .unwrap()
            .display()
            .to_string()
    };
    let (sock, other) = (link(nf.as_raw_fd()), link(kept.as_raw_fd()));
    let (fd, me) = (nf.as_raw_fd(), std::process::id());
    nf.close_in_background_holding(&[kept.as_raw_fd()]);
    drop(kept);
    // Ours are closed (the number may be reused by then: not by this socket).
    assert_ne!(
        std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .map(|t| t.display().to_string())
            .ok(),
        Some(sock.clone())
    );
    let child = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| stat_of(*pid).get(1) == Some(&me.to_string()) && fds_of(*pid).contains(&sock))
        .expect("a child of this process holds the socket");
    // It holds the two sockets and nothing else (no stdout, no pipe, no
    // lock of the caller's), in a session of its own, at nice 10.
    let mut want = vec![sock.clone(), other];
    want.sort();
    // (It closes the rest first thing: wait for that.)
    let since = std::time::Instant::now();
    while fds_of(child) != want && since.elapsed() < std::time::Duration::from_secs(2) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(fds_of(child), want);
    let stat = stat_of(child);
    assert_eq!(stat[3], child.to_string(), "session id: {stat:?}");
    assert_eq!(stat[16], "10", "nice: {stat:?}");
    stop.store(true, Ordering::Relaxed);
    assert!(committer.join().unwrap() > 0);
    // Once the netns is quiet it exits, with status 0.
    let pid = nix::unistd::Pid::from_raw(child as i32);
    let status = nix::sys::wait::waitpid(pid, None).unwrap();
    assert_eq!(status, nix::sys::wait::WaitStatus::Exited(pid, 0));
}
