//! A tokio child under a real `node` parent: `tokio-child` (`#[tokio::main]`,
//! `ipc_fork::tokio::parent()`, every received handle converted to tokio's
//! types) driven by Node's `child_process`. Without `node` these tests say
//! so and pass, except under CI.

use integration_tests::have_node;

const TOKIO_CHILD: &str = env!("CARGO_BIN_EXE_tokio-child");

/// Runs `node tests/node/SCRIPT TOKIO_CHILD` and expects its PASS.
fn run_node(script: &str) {
    integration_tests::node_script_passes(script, &[TOKIO_CHILD]);
}

/// The same script that drives `test-child echo`: messages, a server, a
/// UDP socket and a held socket, getConnections() and close().
#[test]
fn node_parent_drives_a_tokio_child() {
    if have_node() {
        run_node("parent-of-rust.js");
    }
}

/// Sockets converted to tokio streams keep Node's getConnections() right
/// as they come and go, and close() completes once the last is dropped.
#[test]
fn node_get_connections_follows_a_tokio_childs_sockets() {
    if have_node() {
        run_node("parent-of-tokio.js");
    }
}
