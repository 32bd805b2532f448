//! ipc-fork
