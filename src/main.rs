//! The `infersim` binary: a thin shell over the library.

fn main() {
    // Rust ignores SIGPIPE, so printing to a closed pipe (`infersim list | head`)
    // panicked; with the default action the process ends quietly, as other command-
    // line tools do.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists; setting a
    // signal's disposition to its default has no other effect on the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let code = infersim::cli::main_with_args(std::env::args().collect());
    std::process::exit(code);
}
