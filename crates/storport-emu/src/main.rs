//! The `storemu` command.

fn main() {
    eprintln!("storemu: the run command is not available in this build.");
    std::process::exit(64);
}
