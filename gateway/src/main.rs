//! `gateway` binary; everything it does lives in [`gateway::cli`].

/// mimalloc: the request path allocates many small, short-lived buffers, which the
/// system allocator served at a measurable cost (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gateway::cli::main()
}
