//! The `noop` CNI plugin binary: everything happens in the library.
#![no_main]

cni::plugin_main!(noop::Plugin::default());
