//! The name suffix of `create configmap|secret --append-hash`: kubectl's
//! `hash.ConfigMapHash` and `hash.SecretHash` — SHA-256 of a compact JSON encoding of the
//! kind, name and data (keys sorted, as Go's `json.Marshal` sorts a map), its first ten
//! hex digits with some made letters so that the suffix never reads as a word or number.

use serde_json::Value;

use crate::output::to_json;

/// `-` and the hash of a ConfigMap or Secret as built (`data` and `binaryData` as they
/// appear in the object, `type` for a Secret).
pub fn name_suffix(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default();
    let empty_map = Value::Object(Default::default());
    let empty_string = Value::String(String::new());
    let or = |value: &Value, default: &Value| match value {
        Value::Null => compact(default),
        v => compact(v),
    };
    let mut fields: Vec<(&str, String)> = vec![
        ("kind", compact(&object["kind"])),
        ("name", compact(&object["metadata"]["name"])),
        ("data", or(&object["data"], &empty_map)),
    ];
    if kind == "Secret" {
        fields.push(("type", or(&object["type"], &empty_string)));
    } else if object["binaryData"]
        .as_object()
        .is_some_and(|b| !b.is_empty())
    {
        fields.push(("binaryData", compact(&object["binaryData"])));
    }
    if let Some(immutable) = object["immutable"].as_bool() {
        fields.push(("immutable", immutable.to_string()));
    }
    fields.sort_by_key(|(k, _)| *k);
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", minik8s_api::gojson::string(k)))
        .collect();
    let encoded = format!("{{{}}}", body.join(","));
    let hex: String = sha256(encoded.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex[..10]
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

/// Go's `json.Marshal`: no spaces, keys sorted, `<`, `>` and `&` escaped, `\b` and `\f`
/// short (as Go 1.22 and later write them).
fn compact(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}:{}", minik8s_api::gojson::string(k), compact(v)))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(compact).collect();
            format!("[{}]", items.join(","))
        }
        Value::String(text) => minik8s_api::gojson::string(text),
        scalar => to_json(scalar).trim_end().to_string(),
    }
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 (FIPS 180-4), for the few bytes of a name hash.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (state, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *state = state.wrapping_add(v);
        }
    }
    let mut out = [0u8; 32];
    for (i, word) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_known_answers() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(
            hex(&sha256(long)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn suffixes_are_kubectls() {
        // As `kubectl create configmap cm --from-literal=k=v --append-hash` names it.
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}});
        assert_eq!(name_suffix(&cm), "4k8884k4bb");
        let secret = json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}});
        assert_eq!(name_suffix(&secret), "c54ghmfcdb");
    }
}
