fn main() -> std::process::ExitCode {
    defender::cli::main()
}
