//! The `demo` program, built inside this package so its tests can run it.

/// As in `demo`'s own binary: `demo bench` counts allocations with it.
#[global_allocator]
static ALLOCATOR: demo::CountingAlloc = demo::CountingAlloc;

fn main() {
    std::process::exit(demo::main());
}
