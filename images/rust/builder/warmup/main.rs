// Compiled once when the builder image is built, so that the crates every plugin depends
// on are already compiled when a plugin is.
use logomesh::{json, Error, Plugin, Value};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Warm {
    text: String,
}

fn main() -> Result<(), Error> {
    let mut plugin = Plugin::new();
    plugin.method("warm", |args: Value| {
        let w: Warm = logomesh::from_args(args)?;
        logomesh::to_result(w)
    });
    plugin.method_async("warm_async", |args: Value| async move { Ok(json!(args)) });
    if std::env::args().count() > 1 {
        plugin.run()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn warm() {
        let h = logomesh::testing::Harness::start(logomesh::Plugin::new()).unwrap();
        h.stop().unwrap();
    }
}
