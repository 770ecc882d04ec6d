//! portmap's pure config parser: any bytes give a Config or a code-7 error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = portmap::config::parse(data) {
        assert_eq!(e.code, cni::ErrorCode::InvalidNetworkConfig, "{e:?}");
    }
});
