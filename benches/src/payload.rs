//! Bytes per session for each codec this build has. Adding a codec is one line in `codecs`.

use store::{codec::Codec, codec::MessagePackCodec, Id, Record};

fn codecs() -> Vec<(&'static str, Box<dyn Codec>)> {
    vec![
        ("MessagePack", Box::new(MessagePackCodec)),
        // ("JSON", Box::new(store::codec::JsonCodec)),
    ]
}

/// The records measured: the bench's own session, an empty one, and bigger ones.
fn records(template: &Record) -> Vec<(&'static str, Record)> {
    let mut empty = template.clone();
    empty.data.clear();
    let mut twenty = template.clone();
    for n in 0..20 {
        twenty.data.insert(
            format!("key_{n:02}"),
            serde_json::json!(format!("value number {n}")),
        );
    }
    let mut blob = template.clone();
    blob.data
        .insert("blob".into(), serde_json::json!("x".repeat(4096)));
    vec![
        ("empty session", empty),
        ("bench session (4 keys)", template.clone()),
        ("24 keys", twenty),
        ("4 KiB string", blob),
    ]
}

/// Per record: its label and the bytes each codec wrote.
pub type Sizes = Vec<(String, Vec<(String, usize)>)>;

/// (record, [(codec, bytes)]) for every record and codec.
pub fn measure(template: &Record) -> Result<Sizes, String> {
    let mut rows = Vec::new();
    for (label, mut record) in records(template) {
        record.id = Id(i128::MAX);
        let mut sizes = Vec::new();
        for (name, codec) in codecs() {
            let bytes = codec
                .encode(&(&record).into())
                .map_err(|err| err.to_string())?;
            sizes.push((name.to_owned(), bytes.len()));
        }
        rows.push((label.to_owned(), sizes));
    }
    Ok(rows)
}
