//! CNI_ARGS parsing and the owner tag: no panics; a parsed string's pairs
//! have non-empty keys and no ';' or '='.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(args) = cni::args::CniArgs::parse(&s) {
        for (k, v) in args.pairs() {
            assert!(!k.is_empty() && !k.contains([';', '=']) && !v.contains([';', '=']));
        }
        let _ = args.ignore_unknown();
        let _ = args.check_known(&["K8S_POD_NAME"]);
        let _ = args.get_bool("IgnoreUnknown");
    }
    let _ = cni::args::Owner::parse_tag(&s);
});
