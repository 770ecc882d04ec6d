//! tuning's pure config parser (stdin + CNI_ARGS + ifname) and its DEL-side
//! dataDir reader: errors only, never a panic. The first line of the input
//! is CNI_ARGS, the rest stdin. Every accepted sysctl stays under net/.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (args, stdin) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let args = String::from_utf8_lossy(args);
    if let Ok(cfg) = tuning::config::Config::parse(stdin, &args, "eth0") {
        for s in &cfg.sysctls {
            let p = s.path.as_str();
            assert!(p.starts_with("net/") && !p.split('/').any(|c| c == ".." || c.is_empty()), "{p}");
        }
    }
    let _ = tuning::config::parse_data_dir(stdin);
});
