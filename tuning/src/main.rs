//! The `tuning` CNI plugin binary: everything happens in the library.

fn main() {
    cni::skel::run(&tuning::Plugin)
}
