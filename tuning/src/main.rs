//! The `tuning` CNI plugin binary: reads the host-side allowlist settings from
//! the environment once; everything else happens in the library.

fn main() {
    cni::skel::run(&tuning::Plugin::from_process_env())
}
