//! Any bytes as an SDK request body: every decoding (gzip, zstd, se=1) within limits, then the
//! log_event batch validation, must end in a value or a clear error, never a panic.
#![no_main]

use bytes::Bytes;
use ingest::http::{decode_body, BodyEncoding};
use ingest::logging::{envelopes_from_batch, Origin};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, raw)) = data.split_first() else { return };
    let encoding = BodyEncoding {
        content_encoding: ["", "gzip", "zstd", "identity", "br"][selector as usize % 5],
        gz_param: selector & 0x10 != 0,
        statsig_encoded: selector & 0x20 != 0,
    };
    let Ok(body) = decode_body(Bytes::copy_from_slice(raw), &encoding, 1 << 20) else { return };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&body) else { return };
    let origin = Origin {
        key_id: "k".into(),
        sdk_type: None,
        sdk_version: None,
        received_at_ms: 0,
    };
    let _ = envelopes_from_batch(&map, &origin);
});
