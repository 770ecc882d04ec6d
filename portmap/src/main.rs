//! The `portmap` CNI plugin binary: everything happens in the library.
#![no_main]

cni::plugin_main!(portmap::Plugin);
