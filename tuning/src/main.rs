//! The `tuning` CNI plugin binary: reads the host-side allowlist settings from
//! the environment once; everything else happens in the library.
#![no_main]

cni::plugin_main!(tuning::Plugin::from_process_env());
