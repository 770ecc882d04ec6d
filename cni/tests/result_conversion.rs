//! Result conversion between every pair of spec versions (7×7 insta
//! snapshots of exactly what a plugin prints), lossless same-version
//! pass-through with unknown keys at every level, and the conversions the
//! spec does not allow. Pure: no privileges.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cni::error::to_indented;
use cni::{CniResult, CniVersion, ErrorCode};
use serde_json::{json, Value};

/// A dual-stack result with host and container interfaces, routes of both
/// families, DNS, every 1.1-only field, and unknown keys at every level.
fn rich_1_1() -> Value {
    json!({
        "cniVersion": "1.1.0",
        "interfaces": [
            {"name": "cni0", "mac": "0a:58:0a:16:00:01", "mtu": 1500},
            {"name": "veth1a2b3c4d", "mac": "aa:bb:cc:dd:ee:01"},
            {
                "name": "eth0", "mac": "0a:58:0a:16:00:05",
                "sandbox": "/var/run/netns/cni-1234", "mtu": 1450,
                "socketPath": "/run/vhost-user/eth0.sock", "pciID": "0000:00:1f.6",
                "x-iface": "kept"
            }
        ],
        "ips": [
            {"interface": 2, "address": "10.22.0.5/16", "gateway": "10.22.0.1"},
            {"interface": 2, "address": "fd00:22::5/64", "gateway": "fd00:22::1", "x-ip": 7},
            {"interface": 2, "address": "10.23.0.5/24"}
        ],
        "routes": [
            {"dst": "0.0.0.0/0", "gw": "10.22.0.1", "mtu": 1400, "advmss": 1360,
             "priority": 100, "table": 254, "scope": 0},
            {"dst": "198.18.0.0/15", "x-route": true},
            {"dst": "::/0", "gw": "fd00:22::1"}
        ],
        "dns": {
            "nameservers": ["10.22.0.1", "fd00:22::1"],
            "domain": "cluster.local",
            "search": ["default.svc.cluster.local", "svc.cluster.local"],
            "options": ["ndots:5"],
            "x-dns": "kept"
        },
        "x-top": {"nested": [1, 2]}
    })
}

/// The same network as a 0.1.0/0.2.0 runtime would have it: unknown keys in
/// the `ip4` block and in a route.
fn rich_legacy(version: CniVersion) -> Value {
    json!({
        "cniVersion": version.as_str(),
        "ip4": {
            "ip": "10.22.0.5/16",
            "gateway": "10.22.0.1",
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.22.0.1"},
                {"dst": "198.18.0.0/15", "x-route": true}
            ],
            "x-ip": "kept"
        },
        "ip6": {
            "ip": "fd00:22::5/64",
            "gateway": "fd00:22::1",
            "routes": [{"dst": "::/0", "gw": "fd00:22::1"}]
        },
        "dns": {
            "nameservers": ["10.22.0.1", "fd00:22::1"],
            "domain": "cluster.local",
            "search": ["default.svc.cluster.local"],
            "options": ["ndots:5"]
        },
        "x-top": "kept"
    })
}

/// The input fixture as a plugin of `version` would receive it.
fn fixture(version: CniVersion) -> Value {
    match version.layout() {
        cni::version::ResultLayout::Legacy => rich_legacy(version),
        _ => {
            let (r, _) = CniResult::from_value(&rich_1_1(), CniVersion::V1_1_0).unwrap();
            r.to_value(version).unwrap()
        }
    }
}

fn convert(input: &Value, to: CniVersion) -> Result<Value, cni::CniError> {
    let (r, _) = CniResult::from_value(input, CniVersion::V1_1_0)?;
    r.to_value(to)
}

fn snap_name(from: CniVersion, to: CniVersion) -> String {
    format!(
        "from_{}_to_{}",
        from.as_str().replace('.', "_"),
        to.as_str().replace('.', "_")
    )
}

#[test]
fn every_version_pair_is_snapshotted() {
    for &from in CniVersion::ALL {
        let input = fixture(from);
        let (_, labelled) = CniResult::from_value(&input, CniVersion::V1_1_0).unwrap();
        assert_eq!(labelled, from);
        for &to in CniVersion::ALL {
            let out = convert(&input, to).unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));
            assert_eq!(out["cniVersion"], to.as_str());
            insta::assert_snapshot!(snap_name(from, to), to_indented(&out));
        }
    }
}

#[test]
fn same_version_pass_through_is_lossless() {
    for &v in CniVersion::ALL {
        let input = fixture(v);
        assert_eq!(convert(&input, v).unwrap(), input, "{v}");
    }
    // And 1.1.0 carries everything of the rich fixture.
    assert_eq!(
        convert(&rich_1_1(), CniVersion::V1_1_0).unwrap(),
        rich_1_1()
    );
}

#[test]
fn up_then_down_restores_the_original() {
    for &from in CniVersion::ALL {
        for &via in CniVersion::ALL.iter().filter(|v| **v > from) {
            let input = fixture(from);
            let up = convert(&input, via).unwrap();
            let down = convert(&up, from).unwrap();
            // Legacy blocks only hold the first address of a family; the
            // fixture has exactly those, so nothing is lost either way.
            assert_eq!(down, input, "{from} -> {via} -> {from}");
        }
    }
}

#[test]
fn layouts_have_their_distinguishing_keys() {
    let rich = rich_1_1();
    let v02 = convert(&rich, CniVersion::V0_2_0).unwrap();
    assert_eq!(v02["ip4"]["ip"], "10.22.0.5/16");
    assert_eq!(v02["ip6"]["ip"], "fd00:22::5/64");
    assert_eq!(v02["ip4"]["routes"].as_array().unwrap().len(), 2);
    assert_eq!(v02["ip6"]["routes"].as_array().unwrap().len(), 1);
    assert!(v02.get("interfaces").is_none() && v02.get("ips").is_none());
    // 1.1-only route fields do not reach a legacy route.
    assert_eq!(
        v02["ip4"]["routes"][0],
        json!({"dst": "0.0.0.0/0", "gw": "10.22.0.1"})
    );

    let v04 = convert(&rich, CniVersion::V0_4_0).unwrap();
    let versions: Vec<&str> = v04["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| ip["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["4", "6", "4"]);
    assert!(v04["interfaces"][0].get("mtu").is_none());
    assert!(v04["interfaces"][2].get("socketPath").is_none());
    assert!(v04["routes"][0].get("advmss").is_none());
    assert_eq!(v04["interfaces"][2]["x-iface"], "kept");

    let v10 = convert(&rich, CniVersion::V1_0_0).unwrap();
    assert!(v10["ips"][0].get("version").is_none());
    assert!(v10["interfaces"][2].get("pciID").is_none());
    assert!(v10["routes"][0].get("table").is_none());

    let v11 = convert(&v04, CniVersion::V1_1_0).unwrap();
    assert!(v11["ips"][0].get("version").is_none());
}

#[test]
fn results_without_addresses_cannot_become_legacy() {
    let mut no_ips = rich_1_1();
    no_ips.as_object_mut().unwrap().remove("ips");
    for &from in CniVersion::SINCE_0_3_0 {
        let (r, _) = CniResult::from_value(&no_ips, CniVersion::V1_1_0).unwrap();
        let input = r.to_value(from).unwrap();
        for to in [CniVersion::V0_1_0, CniVersion::V0_2_0] {
            let e = convert(&input, to).unwrap_err();
            assert_eq!(e.code, ErrorCode::IncompatibleVersion);
            assert_eq!(
                e.msg, "cannot convert: no valid IP addresses",
                "{from} -> {to}"
            );
        }
        for &to in CniVersion::SINCE_0_3_0 {
            assert!(convert(&input, to).is_ok(), "{from} -> {to}");
        }
    }
}

#[test]
fn an_empty_result_is_an_empty_legacy_result() {
    for to in [CniVersion::V0_1_0, CniVersion::V0_2_0] {
        let out = CniResult::default().to_value(to).unwrap();
        assert_eq!(out, json!({"cniVersion": to.as_str(), "dns": {}}));
        // And it reads back.
        let (r, v) = CniResult::from_value(&out, CniVersion::V1_1_0).unwrap();
        assert_eq!((r, v), (CniResult::default(), to));
    }
}

#[test]
fn fields_newer_than_the_label_are_kept_as_unknown_keys() {
    // A 1.0.0 result carrying 1.1 keys (Go's 1.0 struct has them): a 1.0.0
    // pass-through keeps them; the typed fields stay unset.
    let input = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mtu": 9000, "pciID": "0000:01:00.0"}],
        "routes": [{"dst": "0.0.0.0/0", "table": 100}]
    });
    let (r, _) = CniResult::from_value(&input, CniVersion::V1_1_0).unwrap();
    assert_eq!(r.interfaces[0].mtu, None);
    assert_eq!(r.interfaces[0].extra["mtu"], 9000);
    assert_eq!(convert(&input, CniVersion::V1_0_0).unwrap(), input);
    let v11 = convert(&input, CniVersion::V1_1_0).unwrap();
    assert_eq!(v11["interfaces"][0]["mtu"], 9000);
    assert_eq!(v11["routes"][0]["table"], 100);
    // A 1.1.0 label types them.
    let mut as_11 = input.clone();
    as_11["cniVersion"] = "1.1.0".into();
    let (r, _) = CniResult::from_value(&as_11, CniVersion::V1_1_0).unwrap();
    assert_eq!(r.interfaces[0].mtu, Some(9000));
    assert_eq!(r.routes[0].table, Some(100));
}

#[test]
fn unlabelled_results_take_the_assumed_version() {
    let input = json!({"ip4": {"ip": "10.0.0.2/24"}});
    let (r, v) = CniResult::from_value(&input, CniVersion::V0_2_0).unwrap();
    assert_eq!(v, CniVersion::V0_2_0);
    assert_eq!(r.ips[0].address.to_string(), "10.0.0.2/24");
    let input = json!({"cniVersion": "", "ips": [{"address": "10.0.0.2/24"}]});
    let (_, v) = CniResult::from_value(&input, CniVersion::V1_0_0).unwrap();
    assert_eq!(v, CniVersion::V1_0_0);
}

#[test]
fn upstream_loopback_quirk_output_is_read() {
    // Upstream loopback prints a 1.x layout labelled 0.2.0 / 0.3.1.
    for label in ["0.2.0", "0.3.1"] {
        let input = json!({
            "cniVersion": label,
            "interfaces": [{"mac": "00:00:00:00:00:00", "name": "lo", "sandbox": "/var/run/netns/x"}],
            "ips": [{"address": "127.0.0.1/8", "interface": 0}, {"address": "::1/128", "interface": 0}]
        });
        let (r, _) = CniResult::from_value(&input, CniVersion::V1_1_0).unwrap();
        assert_eq!(r.interfaces[0].name, "lo");
        assert_eq!(r.ips.len(), 2);
    }
}

#[test]
fn malformed_results_are_decode_errors() {
    for (bad, code) in [
        (json!([]), ErrorCode::Decode),
        (json!({"cniVersion": 4}), ErrorCode::Decode),
        (
            json!({"cniVersion": "0.9.0"}),
            ErrorCode::IncompatibleVersion,
        ),
        (json!({"ips": [{"address": "10.0.0.2"}]}), ErrorCode::Decode),
        (
            json!({"ips": [{"address": "10.0.0.2/24", "interface": -1}]}),
            ErrorCode::Decode,
        ),
        (json!({"interfaces": [{"mac": "aa"}]}), ErrorCode::Decode),
        (
            json!({"cniVersion": "0.2.0", "ip4": {"gateway": "10.0.0.1"}}),
            ErrorCode::Decode,
        ),
        (json!({"routes": [{"dst": "default"}]}), ErrorCode::Decode),
    ] {
        let e = CniResult::from_value(&bad, CniVersion::V1_0_0).unwrap_err();
        assert_eq!(e.code, code, "{bad}: {e}");
    }
}

/// Found by fuzzing (`fuzz/artifacts/result_conversion/crash-dadd1df8…`): a
/// key unknown at the parsed version but defined by another layout (`ip6`
/// as an array in a 0.3.0 result; `ips` as a string in a 0.2.0 one) was
/// copied into that layout's output, which then did not parse back. Every
/// conversion of such a result must parse back at its version.
#[test]
fn unknown_keys_named_like_another_layouts_fields_never_break_a_conversion() {
    let fuzzed = br#"{"cniVerinterfaces": [{"name": "eth0", "sandbox": "/x"}], "ip6": [{"version": "4", "address": "10.1.0.2/24", "lntrsion":  0}]}"#;
    // …and a 1.0.0 interface's `mtu` that is a string (crash-07855733…).
    let fuzzed_mtu = json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "veth1", "mtu": "ba:67:11:22:33:44"}],
        "routes": [{"dst": "0.0.0.0/0", "table": "main"}]});
    let mut inputs = vec![
        (
            CniVersion::ALL[2],
            serde_json::from_slice::<Value>(fuzzed).unwrap(),
        ),
        (CniVersion::V1_0_0, fuzzed_mtu),
        // …and a 0.2.0 ip4 block's unknown `address` (crash-fd77ae91…).
        (
            CniVersion::V0_2_0,
            json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.1/24", "address": "10.#1.0.1"}}),
        ),
    ];
    for from in CniVersion::ALL {
        for key in ["ip4", "ip6", "ips", "interfaces", "routes", "dns"] {
            for junk in [json!([{"x": 1}]), json!("junk"), json!(7), json!({"ip": 5})] {
                let mut v = fixture(*from);
                if v.get(key).is_none() {
                    v[key] = junk;
                    inputs.push((*from, v));
                }
            }
        }
    }
    let mut checked = 0;
    for (from, input) in &inputs {
        let Ok((result, _)) = CniResult::from_value(input, *from) else {
            continue;
        };
        for to in CniVersion::ALL {
            if let Ok(out) = result.to_value(*to) {
                CniResult::from_value(&out, *to)
                    .unwrap_or_else(|e| panic!("{from} → {to}: {out} does not parse back: {e:?}"));
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "only {checked} conversions checked");
}
