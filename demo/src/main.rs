//! `demo`: see `demo --help`.

/// Counts allocations for `demo bench`'s `allocs_per_msg`.
#[global_allocator]
static ALLOCATOR: demo::CountingAlloc = demo::CountingAlloc;

fn main() {
    std::process::exit(demo::main());
}
