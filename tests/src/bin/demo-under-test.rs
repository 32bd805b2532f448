//! The `demo` program, built inside this package so its tests can run it.

fn main() {
    std::process::exit(demo::main());
}
