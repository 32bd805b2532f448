//! `demo worker [normal|special]`: the docs' `child.js`, for any parent
//! that speaks Node's channel protocol.

use ipc_core::json::RawJson;
use ipc_fork::Event;
use ipc_net::Received;

use crate::common::{role_reply, Serving, CHILD_REPLY};

/// Serves `"server"` handles with `handled by child`, answers `"socket"`
/// handles with the role line, echoes every other message. When the
/// parent disconnects (or goes away) it drains: stops accepting, answers
/// the connections in hand, and exits.
pub fn run(role: &str) -> i32 {
    let mut parent = match ipc_fork::parent() {
        Ok(p) => p,
        Err(e) => {
            warn!("demo worker: {e}");
            return 2;
        }
    };
    let mut serving = match Serving::new() {
        Ok(s) => s,
        Err(e) => {
            warn!("demo worker: {e}");
            return 1;
        }
    };
    let reply = role_reply(role);
    // The message's text, kept after the message is released so the echo
    // can be sent; reused, so echoing does not allocate.
    let mut text = String::new();
    loop {
        let handle = match parent.recv() {
            Ok(Event::Message(msg, handle)) => {
                text.clear();
                text.push_str(msg.as_str());
                handle
            }
            Ok(Event::Internal(..) | Event::Fate(_)) => continue,
            Ok(Event::Disconnect | Event::Exit(_)) => {
                serving.stop();
                return 0;
            }
            Err(e) if !e.is_fatal() => {
                warn!("demo worker: {e}");
                continue;
            }
            Err(e) => {
                warn!("demo worker: {e}");
                return 1;
            }
        };
        match (text.as_str(), handle) {
            ("\"server\"", Some(Ok(Received::Server(server)))) => {
                serving.serve(server, CHILD_REPLY);
            }
            ("\"socket\"", Some(Ok(Received::Socket(socket)))) => {
                crate::linger::answer(socket, reply.as_bytes());
            }
            // A client that reset its connection before the hand-off: it
            // is gone, nothing to answer (and it is no fault to log per
            // client).
            ("\"socket\"", Some(Err(ipc_net::HandleError::NotConnected))) => {}
            (_, Some(Err(e))) => warn!("demo worker: refused a handle with {text}: {e}"),
            (_, Some(Ok(_))) => warn!("demo worker: unexpected handle with {text}"),
            (_, None) => {
                // Echo: the text arrived as valid JSON.
                let echo = RawJson::new(&text).expect("received JSON is valid");
                if let Err(e) = parent.send(&echo) {
                    warn!("demo worker: {e}");
                }
            }
        }
    }
}
