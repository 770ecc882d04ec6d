//! The `noop` CNI plugin binary: everything happens in the library.

fn main() {
    cni::skel::run(&noop::Plugin::default())
}
