//! `worker` binary; everything it does lives in [`worker::cli`].

/// mimalloc: a batch builds and drops thousands of small values (statement parameters,
/// log rows, parsed payloads); the system allocator's `malloc`/`free` were about a
/// third of the worker's CPU in a profile of a drain (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    worker::cli::main()
}
