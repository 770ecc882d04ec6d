//! The skel's whole parse path (environment checks, NetConf, name, version,
//! prevResult) with a plugin that does nothing: loopback has no fields of
//! its own, so this is loopback's config parser. Output is always a result
//! or a spec error JSON, exit 0 or 1.
#![no_main]
use std::collections::HashMap;

use cni::{CniError, Reply, Request};
use libfuzzer_sys::fuzz_target;

struct Inert;

impl cni::Plugin for Inert {
    fn about(&self) -> String {
        "fuzz".into()
    }
    fn add(&self, req: &Request) -> Result<Reply, CniError> {
        Ok(req.prev_result.clone().map(Reply::Result).unwrap_or(Reply::Empty))
    }
    fn check(&self, _req: &Request) -> Result<Reply, CniError> {
        Ok(Reply::Empty)
    }
    fn del(&self, _req: &Request) -> Result<Reply, CniError> {
        Ok(Reply::Empty)
    }
}

fuzz_target!(|data: &[u8]| {
    let (command, stdin) = match data.first() {
        Some(b) => (["ADD", "CHECK", "DEL", "GC", "STATUS", "VERSION"][*b as usize % 6], &data[1..]),
        None => ("ADD", data),
    };
    let env: HashMap<String, String> = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "fuzz"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_NETNS", "/nonexistent/fuzz"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = cni::skel::run_with(&Inert, &env, stdin, &mut out, &mut err);
    assert!(code == 0 || code == 1, "exit {code}");
    if code == 1 {
        let v: serde_json::Value = serde_json::from_slice(&out).expect("error JSON");
        assert!(v["code"].is_u64() && v["msg"].is_string(), "{v}");
        assert!(!v["msg"].as_str().unwrap_or("").contains("panicked"), "{v}");
    }
});
