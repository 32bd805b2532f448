//! ipc-net
