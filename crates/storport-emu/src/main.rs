//! The `storemu` command: see [`storport_emu::cli`].

fn main() -> std::process::ExitCode {
    storport_emu::cli::main()
}
