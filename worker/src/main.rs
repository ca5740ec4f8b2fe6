//! `worker` binary; everything it does lives in [`worker::cli`].

fn main() -> std::process::ExitCode {
    worker::cli::main()
}
