//! `cni-install`: see the library's documentation.

fn main() {
    std::process::exit(installer::main())
}
