//! The gateway's real entry point, as a process the tests can signal.

fn main() -> std::process::ExitCode {
    gateway::cli::main()
}
