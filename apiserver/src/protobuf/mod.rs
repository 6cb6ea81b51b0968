//! Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`), as the real
//! kubectl's `create <kind>` generators and client-go send it.
//!
//! A body is the magic `k8s\0` and a `runtime.Unknown` holding the object's
//! `apiVersion`/`kind` and the bytes of its typed message. The messages are k8s-pb's
//! (generated from Kubernetes' own `.proto` files); the API server keeps storing and
//! validating JSON, so a body is decoded into its k8s-pb message and turned into the
//! JSON Kubernetes would write for it, and a response goes the other way. How one
//! message maps to JSON is generated from k8s-pb and k8s-openapi together
//! (`generated.rs`, by the test in `codegen.rs`); the few types whose JSON is not their
//! message shape are written by hand in [`json`].
//!
//! The kinds with a protobuf form are listed once, in `codegen.rs`: a kind that arrives
//! later needs a line there, then `MINIK8S_REGENERATE=1 cargo test -p minik8s-apiserver
//! protobuf::codegen` writes its conversions and its entry in [`KINDS`]. Kinds not
//! listed (our own TaskSet, like a CRD in Kubernetes) are JSON only; so are lists of
//! them, while a list of a listed kind (`PodList`) has its protobuf form too.

#[cfg(test)]
mod codegen;
#[rustfmt::skip]
mod generated;
pub mod json;
#[cfg(test)]
mod tests;

/// The crates the messages come from, for clients and tests that speak protobuf too.
pub use {k8s_pb, prost};

use k8s_pb as pb;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;
use serde_json::Value;

use self::json::{FieldError, Json};
pub use generated::KINDS;

/// The media type of Kubernetes' protobuf encoding.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// What every protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// How one kind goes between its protobuf message and its JSON.
pub struct Codec {
    pub api_version: &'static str,
    pub kind: &'static str,
    decode: fn(&[u8]) -> Result<Value, DecodeError>,
    encode: fn(&Value) -> Result<Vec<u8>, FieldError>,
}

const fn codec<T: Message + Json>(api_version: &'static str, kind: &'static str) -> Codec {
    Codec {
        api_version,
        kind,
        decode: decode_message::<T>,
        encode: encode_message::<T>,
    }
}

/// The codec of a kind, if it has a protobuf form.
pub fn codec_for(api_version: &str, kind: &str) -> Option<&'static Codec> {
    KINDS
        .iter()
        .find(|c| c.api_version == api_version && c.kind == kind)
}

/// Why a protobuf body could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// Not a protobuf body at all, or a message that does not parse: `400`.
    #[error("the protobuf body is malformed: {0}")]
    Malformed(String),
    /// A well-formed body of a kind with no protobuf form here: `415`.
    #[error("no protobuf encoding is served for kind {kind} of {api_version}")]
    UnknownKind { api_version: String, kind: String },
    /// The message parsed, but a value in it has no JSON form (a bad time, say): `400`.
    #[error("the protobuf body has an invalid value: {0}")]
    Invalid(FieldError),
}

/// Reads a protobuf body into the object's JSON, `apiVersion` and `kind` included.
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    let rest = body.strip_prefix(MAGIC).ok_or_else(|| {
        DecodeError::Malformed("it does not start with the k8s\\0 prefix".to_string())
    })?;
    let unknown = Unknown::decode(rest)
        .map_err(|e| DecodeError::Malformed(format!("runtime.Unknown envelope: {e}")))?;
    if let Some(enc) = unknown
        .content_encoding
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        return Err(DecodeError::Malformed(format!(
            "contentEncoding {enc:?} is not supported"
        )));
    }
    let meta = unknown.type_meta.unwrap_or_default();
    let (api_version, kind) = (
        meta.api_version.unwrap_or_default(),
        meta.kind.unwrap_or_default(),
    );
    if kind.is_empty() {
        return Err(DecodeError::Malformed(
            "the envelope names no kind".to_string(),
        ));
    }
    let codec = codec_for(&api_version, &kind).ok_or(DecodeError::UnknownKind {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let mut obj = (codec.decode)(unknown.raw.as_deref().unwrap_or_default())?;
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(api_version));
        m.insert("kind".into(), Value::String(kind));
    }
    Ok(obj)
}

fn decode_message<T: Message + Json + Default>(raw: &[u8]) -> Result<Value, DecodeError> {
    let msg = T::decode(raw).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    Ok(msg.to_json())
}

fn encode_message<T: Message + Json>(obj: &Value) -> Result<Vec<u8>, FieldError> {
    Ok(T::from_json(obj)?.encode_to_vec())
}

/// Writes an object (or a list of objects of a kind in [`KINDS`]) as a protobuf body.
/// `None` when the kind has no protobuf form: the caller answers in JSON.
pub fn encode(obj: &Value) -> Option<Result<Vec<u8>, FieldError>> {
    let api_version = obj["apiVersion"].as_str()?;
    let kind = obj["kind"].as_str()?;
    let raw = if let Some(codec) = codec_for(api_version, kind) {
        (codec.encode)(obj)
    } else {
        let item_kind = kind.strip_suffix("List")?;
        let codec = codec_for(api_version, item_kind)?;
        encode_list(codec, obj)
    };
    Some(raw.map(|raw| envelope(api_version, kind, raw)))
}

/// Every Kubernetes list message is `metadata = 1` and `repeated items = 2`.
fn encode_list(codec: &Codec, list: &Value) -> Result<Vec<u8>, FieldError> {
    use pb::apimachinery::pkg::apis::meta::v1::ListMeta;
    let mut raw = Vec::new();
    let meta = ListMeta::from_json(&list["metadata"]).map_err(|e| e.at("metadata"))?;
    prost::encoding::message::encode(1, &meta, &mut raw);
    for (i, item) in list["items"].as_array().into_iter().flatten().enumerate() {
        let bytes = (codec.encode)(item).map_err(|e| e.at(&format!("items[{i}]")))?;
        prost::encoding::bytes::encode(2, &bytes, &mut raw);
    }
    Ok(raw)
}

/// A protobuf body: the `k8s\0` prefix and a `runtime.Unknown` around `raw`, the bytes
/// of the typed message.
pub fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_string()),
            kind: Some(kind.to_string()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    out.extend(unknown.encode_to_vec());
    out
}
