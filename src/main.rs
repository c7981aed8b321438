//! The `infersim` binary: a thin shell over the library.

fn main() {
    let code = infersim::cli::main_with_args(std::env::args().collect());
    std::process::exit(code);
}
