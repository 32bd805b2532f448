//! `demo`: see `demo --help`.

fn main() {
    std::process::exit(demo::main());
}
