fn main() -> std::process::ExitCode {
    perfhost::cli::main()
}
