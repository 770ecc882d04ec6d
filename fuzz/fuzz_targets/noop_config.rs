//! noop's config parser and debug-file selection (first line is CNI_ARGS).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (args, stdin) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    if let Ok(cfg) = noop::config::NoopConfig::parse(stdin) {
        let _ = cfg.debug_path(&String::from_utf8_lossy(args));
    }
});
