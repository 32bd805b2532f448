//! A tokio child under a real `node` parent: `tokio-child` (`#[tokio::main]`,
//! `ipc_fork::tokio::parent()`, every received handle converted to tokio's
//! types) driven by Node's `child_process`. Without `node` these tests say
//! so and pass, except under CI.

use std::path::PathBuf;

use integration_tests::have_node;

const TOKIO_CHILD: &str = env!("CARGO_BIN_EXE_tokio-child");

/// Runs `node tests/node/SCRIPT TOKIO_CHILD` and expects its PASS.
fn run_node(script: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("node")
        .join(script);
    let out = std::process::Command::new("node")
        .arg(script)
        .arg(TOKIO_CHILD)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
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
