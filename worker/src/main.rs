//! `worker` binary; everything it does lives in [`worker::cli`].

/// jemalloc: a batch allocates and frees thousands of small values (SeaORM's bound
/// values, log rows, parsed envelopes), and glibc's `malloc`/`free` took about a quarter
/// of the worker's CPU in a drain; with jemalloc its CPU per event went from 115-130 µs
/// to 96-102 in interleaved drains.
/// Not mimalloc, as the gateway uses: bodies of 1 MiB read on lapin's thread and freed
/// on tokio's kept its peak RSS at 889 MiB against glibc's 494 and jemalloc's 500-510
/// (BENCHMARKS.md: mimalloc in session 8, glibc and jemalloc in session 12).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    worker::cli::main()
}
