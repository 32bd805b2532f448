//! Node's side: `demo/node/bench.js`, run with the `node` on `PATH`.

use std::path::PathBuf;

/// Node's benchmark script, written to a temporary file for the run.
pub(super) struct NodeScript {
    path: PathBuf,
}

impl NodeScript {
    /// Writes the script; `None` (and a warning) if that fails.
    pub fn write() -> Option<NodeScript> {
        let path = std::env::temp_dir().join(format!("ipc-demo-bench-{}.js", std::process::id()));
        match std::fs::write(&path, include_str!("../../node/bench.js")) {
            Ok(()) => Some(NodeScript { path }),
            Err(e) => {
                warn!("demo bench: cannot write Node's script, Node figures skipped: {e}");
                None
            }
        }
    }

    /// Runs the script with `args`: the numbers it printed, or `None`
    /// without a working `node`.
    pub fn run(&self, args: &[&str]) -> Option<Vec<f64>> {
        let out = std::process::Command::new("node")
            .arg(&self.path)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| numbers(&String::from_utf8_lossy(&out.stdout)))
            .filter(|v| !v.is_empty())
    }
}

impl Drop for NodeScript {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The numbers inside a JSON line like `{"secs":1.5}` or `{"us":[..]}`.
fn numbers(json: &str) -> Vec<f64> {
    json.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == '-'))
        .filter_map(|t| t.parse().ok())
        .collect()
}
