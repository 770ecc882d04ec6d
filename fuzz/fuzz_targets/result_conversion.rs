//! Result conversion: a result parsed at one version converts to every
//! other version or fails with an error, never a panic; whatever it
//! produces parses back at that version.
#![no_main]
use cni::{CniResult, CniVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let all = CniVersion::ALL;
    let assumed = all[*first as usize % all.len()];
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let Ok((result, _)) = CniResult::from_value(&value, assumed) else {
        return;
    };
    for v in all {
        if let Ok(out) = result.to_value(*v) {
            if let Err(e) = CniResult::from_value(&out, *v) {
                panic!("{v} output does not parse back: {e:?}\n{out}");
            }
        }
    }
});
