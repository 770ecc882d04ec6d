//! The `loopback` CNI plugin binary: everything happens in the library.

fn main() {
    cni::skel::run(&loopback::Plugin)
}
