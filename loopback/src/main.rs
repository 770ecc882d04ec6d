//! The `loopback` CNI plugin binary: everything happens in the library.
#![no_main]

cni::plugin_main!(loopback::Plugin);
