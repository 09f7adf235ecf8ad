//! hasher: serves `digest`, which takes {"text": string} and returns
//! {"digest": "<16 lowercase hex digits>"}, the 64-bit FNV-1a hash of the text's UTF-8 bytes.

mod fnv;

use logomesh::{json, Error, Plugin, Value};

fn digest(args: Value) -> Result<Value, Error> {
    let text = args
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid_argument("digest takes {\"text\": string}").with_details(json!({ "received": args })))?;
    Ok(json!({ "digest": fnv::hex_digest(text) }))
}

fn plugin() -> Plugin {
    let mut plugin = Plugin::new();
    plugin.method("digest", digest);
    plugin
}

fn main() -> Result<(), Error> {
    plugin().run()
}

#[cfg(test)]
mod tests {
    use super::*;
    use logomesh::testing::Harness;

    #[test]
    fn digest_through_a_fake_hub() {
        let mut hub = Harness::start(plugin()).unwrap();
        assert_eq!(hub.hello["methods"], json!(["digest"]));
        assert_eq!(hub.call("digest", json!({ "text": "" })).unwrap(), json!({ "digest": "cbf29ce484222325" }));
        assert_eq!(hub.call("digest", json!({ "text": "foobar" })).unwrap(), json!({ "digest": "85944171f73967e8" }));
        for bad in [json!({}), json!({ "text": 42 }), json!({ "text": null }), json!("foobar"), Value::Null] {
            let e = hub.call("digest", bad.clone()).unwrap_err();
            assert_eq!(e.code, "LM_INVALID_ARGUMENT", "{bad}");
        }
        hub.stop().unwrap();
    }
}
