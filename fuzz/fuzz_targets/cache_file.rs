//! The runtime's cache-file reader (libcni's cniCacheV1 and legacy bare
//! results): never a panic, and an entry it reads encodes and reads back.
#![no_main]
use std::path::Path;

use cni_runtime::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/fuzz/cache");
    if let Ok(entry) = decode(data, path, Some(("net", "ctr", "eth0"))) {
        let bytes = encode(&entry).expect("encode");
        decode(&bytes, path, None).expect("re-read of an encoded entry");
    }
});
