//! Privileged test that portmap's first use in a fresh host netns is
//! race-free: many first ADDs at once (none finds the table, the state
//! directory or the lock file) all succeed and all their mappings exist,
//! then parallel DELs remove every one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

const FIRST_ADDS: usize = 16;
const BASE_PORT: usize = 7400;

#[test]
fn many_first_adds_at_once_on_a_fresh_host_netns_all_succeed() {
    if !cni::testing::privileged("many_first_adds_at_once_on_a_fresh_host_netns_all_succeed") {
        return;
    }
    let w = World::new();
    let pods: Vec<Pod> = (0..FIRST_ADDS).map(|i| w.pod(&format!("fu{i}"))).collect();
    let confs: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            portmap_conf(
                "1.1.0",
                Some(&p.prev),
                json!([{"hostPort": BASE_PORT + i, "containerPort": 80}]),
            )
        })
        .collect();
    let run_all = |command: &str| {
        std::thread::scope(|s| {
            let handles: Vec<_> = pods
                .iter()
                .zip(&confs)
                .map(|(p, c)| {
                    s.spawn(|| w.portmap(command, &p.id, &p.ns.path().display().to_string(), c))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        })
    };
    for run in run_all("ADD") {
        run.assert_ok();
    }
    let rules = w.nft_ruleset();
    for (i, p) in pods.iter().enumerate() {
        assert!(rules.contains(&format!("pmnet/{}/eth0", p.id)), "{rules}");
        assert!(rules.contains(&(BASE_PORT + i).to_string()), "{rules}");
        assert!(index_path(&w, &p.id).exists(), "no index for {}", p.id);
    }
    for run in run_all("DEL") {
        run.assert_ok();
    }
    let rules = w.nft_ruleset();
    for p in &pods {
        assert!(!rules.contains(&format!("pmnet/{}/eth0", p.id)), "{rules}");
        assert!(!index_path(&w, &p.id).exists(), "index of {} left", p.id);
    }
}
