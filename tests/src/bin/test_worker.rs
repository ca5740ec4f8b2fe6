//! The worker's real entry point, as a process the tests can signal and kill.

fn main() -> std::process::ExitCode {
    worker::cli::main()
}
