//! A libcni-equivalent runtime and the scenario suite (work in progress).
