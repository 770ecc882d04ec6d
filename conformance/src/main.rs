//! `cni-conformance`: the command line lives in `conformance::cli`.

fn main() {
    std::process::exit(conformance::cli::main())
}
