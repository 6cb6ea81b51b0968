//! Protobuf message <-> Kubernetes JSON, one value at a time.
//!
//! [`Json`] is implemented for every k8s-pb message we serve by the `message!` lines of
//! `generated.rs`, and by hand below for the scalars and for the few apimachinery types
//! whose JSON is not their protobuf shape (`Time`, `MicroTime`, `Duration`,
//! `IntOrString`, `Quantity`, `FieldsV1`, `RawExtension`). [`Field`] adds what a field
//! of a message is: optional, repeated or a map.
//!
//! Presence follows the Go types that produce and consume these bodies. Go's encoder
//! writes every non-pointer field, set or not; decoding and writing JSON drops the zero
//! ones (`omitempty`). So an optional string that arrives empty, a zero `Time`, and the
//! `0` or `false` of a field that is a non-pointer `omitempty` in Go (marked `omitzero`
//! in `generated.rs`) become absent. Any other `0` or `false` is kept: for a pointer
//! (`runAsUser: 0`, `automountServiceAccountToken: false`, `replicas: 0`) it is a value.
//! A field absent from the body is absent from the JSON, except the fields Kubernetes
//! requires (no `omitempty` in Go), which are written with their zero value as Go
//! writes them. (An empty Go `*string` is left out too: the one case where Go keeps what
//! this drops.)

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1::{Duration, FieldsV1, MicroTime, Time};
use k8s_pb::apimachinery::pkg::runtime::RawExtension;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value};

/// What is wrong with a value, and where (`spec.containers[0].ports[0].containerPort`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(message: impl Into<String>) -> FieldError {
        FieldError {
            path: String::new(),
            message: message.into(),
        }
    }

    /// The same error one level further out: `key` is a field name or `[i]`.
    pub fn at(mut self, key: &str) -> FieldError {
        if self.path.is_empty() || self.path.starts_with('[') {
            self.path = format!("{key}{}", self.path);
        } else {
            self.path = format!("{key}.{}", self.path);
        }
        self
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

pub type Result<T, E = FieldError> = std::result::Result<T, E>;

/// A value with a JSON form.
pub trait Json: Sized + Default {
    fn to_json(&self) -> Value;
    fn from_json(v: &Value) -> Result<Self>;
    /// Whether an optional field holding this is left out of the JSON.
    fn is_unset(&self) -> bool {
        false
    }
    /// Whether this is Go's zero value, which a non-pointer `omitempty` field leaves out.
    fn is_zero(&self) -> bool {
        self.is_unset()
    }
}

/// How a field's value is written when it is empty.
#[derive(Clone, Copy, PartialEq)]
pub enum Presence {
    /// Written as it is, absent when absent.
    Optional,
    /// Always written (no `omitempty` in Go), with its zero value when absent.
    Required,
    /// A non-pointer `omitempty` scalar in Go: its zero means unset and is left out.
    OmitZero,
}

/// A field of a message: `Option<T>`, `Vec<T>` or `BTreeMap<String, T>`.
pub trait Field: Sized {
    fn put(&self, presence: Presence) -> Option<Value>;
    fn take(v: Option<&Value>) -> Result<Self>;
}

impl<T: Json> Field for Option<T> {
    fn put(&self, presence: Presence) -> Option<Value> {
        let required = presence == Presence::Required;
        match self {
            Some(v) if presence == Presence::OmitZero && v.is_zero() => None,
            Some(v) if required || !v.is_unset() => Some(v.to_json()),
            Some(_) => None,
            None if required => Some(T::default().to_json()),
            None => None,
        }
    }
    fn take(v: Option<&Value>) -> Result<Self> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(v) => T::from_json(v).map(Some),
        }
    }
}

impl<T: Json> Field for Vec<T> {
    fn put(&self, presence: Presence) -> Option<Value> {
        if self.is_empty() && presence != Presence::Required {
            return None;
        }
        Some(Value::Array(self.iter().map(Json::to_json).collect()))
    }
    fn take(v: Option<&Value>) -> Result<Self> {
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| T::from_json(v).map_err(|e| e.at(&format!("[{i}]"))))
                .collect(),
            Some(other) => Err(expected("a list", other)),
        }
    }
}

impl<T: Json> Field for BTreeMap<String, T> {
    fn put(&self, presence: Presence) -> Option<Value> {
        if self.is_empty() && presence != Presence::Required {
            return None;
        }
        Some(Value::Object(
            self.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
        ))
    }
    fn take(v: Option<&Value>) -> Result<Self> {
        match v {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| Ok((k.clone(), T::from_json(v).map_err(|e| e.at(k))?)))
                .collect(),
            Some(other) => Err(expected("an object", other)),
        }
    }
}

/// Writes one field of a message into its JSON object.
pub fn put(out: &mut Map<String, Value>, key: &str, field: &impl Field, presence: Presence) {
    if let Some(v) = field.put(presence) {
        out.insert(key.to_string(), v);
    }
}

/// Writes an embedded struct's fields into its parent's JSON object.
pub fn put_inline<T: Json>(out: &mut Map<String, Value>, field: &Option<T>) {
    if let Some(Value::Object(m)) = field.as_ref().map(Json::to_json) {
        out.extend(m);
    }
}

/// Reads one field of a message from its JSON object.
pub fn take<F: Field>(obj: &Map<String, Value>, key: &str) -> Result<F> {
    F::take(obj.get(key)).map_err(|e| e.at(key))
}

pub fn object(v: &Value) -> Result<&Map<String, Value>> {
    v.as_object().ok_or_else(|| expected("an object", v))
}

fn expected(what: &str, got: &Value) -> FieldError {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    FieldError::new(format!("expected {what}, got {kind}"))
}

/// One `impl Json` per generated message: the field names in Rust and in JSON, which
/// fields Kubernetes requires, which are Go non-pointer `omitempty` scalars, and which are
/// Go structs embedded inline.
macro_rules! message {
    ($ty:path { $($field:ident : $json:tt $($req:ident)?),* $(,)? }) => {
        impl $crate::protobuf::json::Json for $ty {
            #[allow(unused_mut)]
            fn to_json(&self) -> serde_json::Value {
                let mut m = serde_json::Map::new();
                $( message!(@put m, &self.$field, $json $($req)?); )*
                serde_json::Value::Object(m)
            }
            #[allow(unused_variables)]
            fn from_json(v: &serde_json::Value) -> $crate::protobuf::json::Result<Self> {
                let o = $crate::protobuf::json::object(v)?;
                Ok(Self { $( $field: message!(@take o, v, $json), )* })
            }
        }
    };
    (@put $m:ident, $v:expr, inline) => {
        $crate::protobuf::json::put_inline(&mut $m, $v)
    };
    (@put $m:ident, $v:expr, $json:literal required) => {
        $crate::protobuf::json::put(&mut $m, $json, $v, $crate::protobuf::json::Presence::Required)
    };
    (@put $m:ident, $v:expr, $json:literal omitzero) => {
        $crate::protobuf::json::put(&mut $m, $json, $v, $crate::protobuf::json::Presence::OmitZero)
    };
    (@put $m:ident, $v:expr, $json:literal) => {
        $crate::protobuf::json::put(&mut $m, $json, $v, $crate::protobuf::json::Presence::Optional)
    };
    (@take $o:ident, $v:ident, inline) => {
        Some($crate::protobuf::json::Json::from_json($v)?)
    };
    (@take $o:ident, $v:ident, $json:literal) => {
        $crate::protobuf::json::take($o, $json)?
    };
}
pub(crate) use message;

impl Json for String {
    fn to_json(&self) -> Value {
        Value::String(self.clone())
    }
    fn from_json(v: &Value) -> Result<Self> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| expected("a string", v))
    }
    fn is_unset(&self) -> bool {
        self.is_empty()
    }
}

impl Json for bool {
    fn to_json(&self) -> Value {
        Value::Bool(*self)
    }
    fn is_zero(&self) -> bool {
        !*self
    }
    fn from_json(v: &Value) -> Result<Self> {
        v.as_bool().ok_or_else(|| expected("a boolean", v))
    }
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl Json for $t {
            fn to_json(&self) -> Value {
                Value::from(*self)
            }
            fn is_zero(&self) -> bool {
                *self == 0
            }
            fn from_json(v: &Value) -> Result<Self> {
                v.as_i64()
                    .and_then(|n| <$t>::try_from(n).ok())
                    .ok_or_else(|| match v {
                        Value::Number(n) => FieldError::new(format!(
                            "{n} is not a {}",
                            stringify!($t)
                        )),
                        other => expected("an integer", other),
                    })
            }
        }
    )*};
}
integer!(i32, i64);

impl Json for f64 {
    fn to_json(&self) -> Value {
        serde_json::Number::from_f64(*self).map_or(Value::Null, Value::Number)
    }
    fn from_json(v: &Value) -> Result<Self> {
        v.as_f64().ok_or_else(|| expected("a number", v))
    }
    fn is_zero(&self) -> bool {
        *self == 0.0
    }
}

/// `bytes`: base64 in JSON, as Go's `[]byte`.
impl Json for Vec<u8> {
    fn to_json(&self) -> Value {
        Value::String(BASE64.encode(self))
    }
    fn from_json(v: &Value) -> Result<Self> {
        let s = v.as_str().ok_or_else(|| expected("a base64 string", v))?;
        BASE64
            .decode(s)
            .map_err(|e| FieldError::new(format!("invalid base64 data: {e}")))
    }
}

impl<T: Json> Json for Box<T> {
    fn to_json(&self) -> Value {
        (**self).to_json()
    }
    fn from_json(v: &Value) -> Result<Self> {
        T::from_json(v).map(Box::new)
    }
    fn is_unset(&self) -> bool {
        (**self).is_unset()
    }
}

fn timestamp(seconds: i64, nanos: i32) -> Result<jiff::Timestamp> {
    jiff::Timestamp::new(seconds, nanos)
        .map_err(|e| FieldError::new(format!("invalid time {seconds}s {nanos}ns: {e}")))
}

fn parse_time(v: &Value) -> Result<jiff::Timestamp> {
    let s = v.as_str().ok_or_else(|| expected("an RFC 3339 time", v))?;
    s.parse::<jiff::Timestamp>()
        .map_err(|e| FieldError::new(format!("invalid time {s:?}: {e}")))
}

/// `metav1.Time`: seconds and nanoseconds on the wire, RFC 3339 to the second in JSON.
impl Json for Time {
    fn to_json(&self) -> Value {
        let seconds = self.seconds.unwrap_or(0);
        match timestamp(seconds, 0) {
            Ok(t) => Value::String(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            Err(_) => Value::Null,
        }
    }
    fn from_json(v: &Value) -> Result<Self> {
        let t = parse_time(v)?;
        Ok(Time {
            seconds: Some(t.as_second()),
            nanos: Some(0),
        })
    }
    /// Go's zero `Time` is written as `null`.
    fn is_unset(&self) -> bool {
        self.seconds.unwrap_or(0) == 0 && self.nanos.unwrap_or(0) == 0
    }
}

/// `metav1.MicroTime`: as `Time`, with microseconds in JSON.
impl Json for MicroTime {
    fn to_json(&self) -> Value {
        let (seconds, nanos) = (self.seconds.unwrap_or(0), self.nanos.unwrap_or(0));
        match timestamp(seconds, nanos / 1000 * 1000) {
            Ok(t) => Value::String(t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
            Err(_) => Value::Null,
        }
    }
    fn from_json(v: &Value) -> Result<Self> {
        let t = parse_time(v)?;
        Ok(MicroTime {
            seconds: Some(t.as_second()),
            nanos: Some(t.subsec_nanosecond() / 1000 * 1000),
        })
    }
    fn is_unset(&self) -> bool {
        self.seconds.unwrap_or(0) == 0 && self.nanos.unwrap_or(0) == 0
    }
}

/// `metav1.Duration`: nanoseconds on the wire, Go's `1h2m3s` in JSON.
impl Json for Duration {
    fn to_json(&self) -> Value {
        Value::String(go_duration(self.duration.unwrap_or(0)))
    }
    fn from_json(v: &Value) -> Result<Self> {
        let s = v.as_str().ok_or_else(|| expected("a duration", v))?;
        parse_go_duration(s)
            .map(|n| Duration { duration: Some(n) })
            .ok_or_else(|| FieldError::new(format!("invalid duration {s:?}")))
    }
}

/// Go's `time.Duration.String()`.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (unit, div) = if n < 1_000 {
            ("ns", 1)
        } else if n < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", fraction(n, div));
    }
    let (h, rest) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
    let (m, s) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let mut out = sign.to_string();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", fraction(s, 1_000_000_000)));
    out
}

/// `n / div` with the fraction's trailing zeros left out, as Go prints it.
fn fraction(n: u64, div: u64) -> String {
    let (whole, frac) = (n / div, n % div);
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    let n = total.round() as i64;
    Some(if neg { -n } else { n })
}

/// `intstr.IntOrString`: a tagged pair on the wire, a bare number or string in JSON.
impl Json for IntOrString {
    fn to_json(&self) -> Value {
        if self.r#type == Some(1) {
            Value::String(self.str_val.clone().unwrap_or_default())
        } else {
            Value::from(self.int_val.unwrap_or(0))
        }
    }
    fn from_json(v: &Value) -> Result<Self> {
        match v {
            Value::String(s) => Ok(IntOrString {
                r#type: Some(1),
                int_val: Some(0),
                str_val: Some(s.clone()),
            }),
            Value::Number(_) => Ok(IntOrString {
                r#type: Some(0),
                int_val: Some(i32::from_json(v)?),
                str_val: Some(String::new()),
            }),
            other => Err(expected("an integer or a string", other)),
        }
    }
}

/// `resource.Quantity`: its canonical string either way.
impl Json for Quantity {
    fn to_json(&self) -> Value {
        Value::String(self.string.clone().unwrap_or_default())
    }
    fn from_json(v: &Value) -> Result<Self> {
        match v {
            Value::String(s) => Ok(Quantity {
                string: Some(s.clone()),
            }),
            // Kubernetes reads a bare number as a quantity too.
            Value::Number(n) => Ok(Quantity {
                string: Some(n.to_string()),
            }),
            other => Err(expected("a quantity", other)),
        }
    }
}

/// Raw JSON on the wire, the same JSON inline: `FieldsV1` and `RawExtension`.
fn raw_to_json(raw: Option<&Vec<u8>>) -> Value {
    raw.and_then(|r| serde_json::from_slice(r).ok())
        .unwrap_or(Value::Null)
}

fn json_to_raw(v: &Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(v).unwrap_or_default())
}

impl Json for FieldsV1 {
    fn to_json(&self) -> Value {
        raw_to_json(self.raw.as_ref())
    }
    fn from_json(v: &Value) -> Result<Self> {
        Ok(FieldsV1 {
            raw: json_to_raw(v),
        })
    }
}

impl Json for RawExtension {
    fn to_json(&self) -> Value {
        raw_to_json(self.raw.as_ref())
    }
    fn from_json(v: &Value) -> Result<Self> {
        Ok(RawExtension {
            raw: json_to_raw(v),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_are_rfc3339() {
        let t = Time {
            seconds: Some(1_700_000_000),
            nanos: Some(0),
        };
        assert_eq!(t.to_json(), json!("2023-11-14T22:13:20Z"));
        assert_eq!(Time::from_json(&t.to_json()).unwrap(), t);
        assert!(Time::default().is_unset());

        let m = MicroTime {
            seconds: Some(1_700_000_000),
            nanos: Some(123_456_000),
        };
        assert_eq!(m.to_json(), json!("2023-11-14T22:13:20.123456Z"));
        assert_eq!(MicroTime::from_json(&m.to_json()).unwrap(), m);
        assert!(Time::from_json(&json!("yesterday")).is_err());
    }

    #[test]
    fn durations_print_as_go_does() {
        for (nanos, text) in [
            (0, "0s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (2_000_000, "2ms"),
            (-5_000_000_000, "-5s"),
        ] {
            let d = Duration {
                duration: Some(nanos),
            };
            assert_eq!(d.to_json(), json!(text));
            assert_eq!(Duration::from_json(&json!(text)).unwrap(), d, "{text}");
        }
    }

    #[test]
    fn int_or_string_and_quantity() {
        let named = IntOrString::from_json(&json!("http")).unwrap();
        assert_eq!(named.r#type, Some(1));
        assert_eq!(named.to_json(), json!("http"));
        let number = IntOrString::from_json(&json!(8080)).unwrap();
        assert_eq!((number.r#type, number.int_val), (Some(0), Some(8080)));
        assert_eq!(number.to_json(), json!(8080));
        assert!(IntOrString::from_json(&json!(true)).is_err());
        assert_eq!(
            Quantity::from_json(&json!("64Mi")).unwrap().to_json(),
            "64Mi"
        );
    }

    #[test]
    fn bytes_are_base64_and_errors_name_the_field() {
        let data: BTreeMap<String, Vec<u8>> = Field::take(Some(&json!({"k": "aGk="}))).unwrap();
        assert_eq!(data["k"], b"hi");
        assert_eq!(data.put(Presence::Optional), Some(json!({"k": "aGk="})));
        let err = <BTreeMap<String, Vec<u8>> as Field>::take(Some(&json!({"k": "%%"})))
            .unwrap_err()
            .at("data");
        assert_eq!(err.path, "data.k");
        let err = <Vec<i32> as Field>::take(Some(&json!([1, "x"]))).unwrap_err();
        assert_eq!(err.path, "[1]");
    }
}
