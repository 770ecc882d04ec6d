//! Link settings for the plugin binaries only (tests and libraries are
//! untouched), for start-up latency: a CNI plugin is a fresh process per
//! verb, and its dynamic-loader work was a third of an ADD's CPU time.
//! - `-no-pie`: no run-time relocation of ~14 000 pointers (the reference
//!   Go plugin is non-PIE too);
//! - `-lgcc_s` resolves to a linker script naming the static unwinder
//!   (`libgcc_eh.a`), so `libgcc_s.so.1` is not loaded at every start. If the
//!   script cannot be written the link falls back to the shared library.
//!
//! The shipped build (`scripts/build.sh`) goes further and links each plugin
//! statically; these settings keep plain `cargo build`s (tests, debug, a user's
//! own `cargo build --release`) close to it.
//!
//! Must not do anything else (no code generation, no environment probing).

fn main() {
    // Paths are relative to the package using this script (a sibling of build/).
    println!("cargo:rerun-if-changed=../build/plugin_link.rs");
    if let Ok(out) = std::env::var("OUT_DIR") {
        let script = std::path::Path::new(&out).join("libgcc_s.a");
        if std::fs::write(&script, "INPUT(-lgcc_eh)\n").is_ok() {
            println!("cargo:rustc-link-search=native={out}");
        }
    }
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
