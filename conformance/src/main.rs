//! `cni-conformance`: cnitool-compatible CLI, scenario suite, benchmarks.

fn main() {
    eprintln!("cni-conformance: not implemented yet");
    std::process::exit(1);
}
