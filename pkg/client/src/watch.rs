//! Decoding a watch response: newline-delimited JSON events arriving in chunks that cut
//! anywhere — inside an event, inside a multi-byte character, or with several events in
//! one chunk. Lines are split on the `\n` byte, which never occurs inside a UTF-8
//! sequence, and each complete line is parsed as one event.

use bytes::Bytes;
use futures::stream::{self, BoxStream, Stream, StreamExt};
use minik8s_api::WatchEvent;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Splits a byte stream into lines. Each byte is looked at once.
#[derive(Debug, Default)]
pub struct LineDecoder {
    buf: Vec<u8>,
    /// Start of the first unreturned line.
    start: usize,
    /// Bytes before this (from `start`) are known to contain no newline.
    scanned: usize,
}

impl LineDecoder {
    pub fn new() -> LineDecoder {
        LineDecoder::default()
    }

    pub fn push(&mut self, chunk: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete line that is not blank, without its newline.
    pub fn next_line(&mut self) -> Option<&[u8]> {
        loop {
            let from = self.scanned.max(self.start);
            let Some(offset) = self.buf[from..].iter().position(|b| *b == b'\n') else {
                self.scanned = self.buf.len();
                return None;
            };
            let end = from + offset;
            let line_start = self.start;
            self.start = end + 1;
            self.scanned = self.start;
            if !self.buf[line_start..end].trim_ascii().is_empty() {
                return Some(&self.buf[line_start..end]);
            }
        }
    }

    /// What is left after the input ended: a last line without a newline, if not blank.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = self.buf[self.start..].trim_ascii().to_vec();
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        (!rest.is_empty()).then_some(rest)
    }
}

/// Decodes watch events from a byte stream. A line that is not an event becomes an
/// error item and decoding goes on; a transport error ends the stream after it is given.
pub fn decode_watch_stream<T, S>(bytes: S, context: String) -> BoxStream<'static, Result<T>>
where
    T: DeserializeOwned + Send + 'static,
    S: Stream<Item = Result<Bytes>> + Send + 'static,
{
    struct State<S> {
        bytes: std::pin::Pin<Box<S>>,
        decoder: LineDecoder,
        context: String,
        done: bool,
    }

    let state = State {
        bytes: Box::pin(bytes),
        decoder: LineDecoder::new(),
        context,
        done: false,
    };
    let decode = |line: &[u8], context: &str| -> Result<T> {
        serde_json::from_slice(line).map_err(|source| Error::Decode {
            context: context.to_string(),
            source,
        })
    };
    stream::unfold(state, move |mut state| async move {
        loop {
            if let Some(line) = state.decoder.next_line() {
                let item = decode(line, &state.context);
                return Some((item, state));
            }
            if state.done {
                let rest = state.decoder.finish()?;
                let item = decode(&rest, &state.context);
                return Some((item, state));
            }
            match state.bytes.next().await {
                Some(Ok(chunk)) => state.decoder.push(&chunk),
                Some(Err(e)) => {
                    state.done = true;
                    // What was cut off by the failure is not an event.
                    state.decoder.finish();
                    return Some((Err(e), state));
                }
                None => state.done = true,
            }
        }
    })
    .boxed()
}

/// [`decode_watch_stream`] for watch events.
pub(crate) fn watch_events<K, S>(
    bytes: S,
    context: String,
) -> BoxStream<'static, Result<WatchEvent<K>>>
where
    K: DeserializeOwned + Send + 'static,
    S: Stream<Item = Result<Bytes>> + Send + 'static,
{
    decode_watch_stream(bytes, context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn events_text() -> String {
        let events = [
            json!({"type": "ADDED", "object": {"kind": "Pod", "metadata": {"name": "héllo-wörld-日本", "resourceVersion": "1"}}}),
            json!({"type": "MODIFIED", "object": {"kind": "Pod", "metadata": {"name": "b", "resourceVersion": "2"}, "note": "✓✓✓ 🚀"}}),
            json!({"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "3"}}}),
            json!({"type": "DELETED", "object": {"kind": "Pod", "metadata": {"name": "c", "resourceVersion": "4"}}}),
            json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "code": 410, "reason": "Expired"}}),
        ];
        let mut text = String::new();
        for (i, e) in events.iter().enumerate() {
            text.push_str(&e.to_string());
            // Mixed line ends and a blank line: both occur in the wild.
            text.push_str(if i == 1 { "\r\n\n" } else { "\n" });
        }
        text
    }

    fn decode_chunks(chunks: Vec<Vec<u8>>) -> Vec<WatchEvent<Value>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let bytes = stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))));
            watch_events::<Value, _>(bytes, "test".into())
                .map(|e| e.unwrap())
                .collect()
                .await
        })
    }

    fn check(events: &[WatchEvent<Value>]) {
        let types: Vec<_> = events.iter().map(|e| e.type_name()).collect();
        assert_eq!(types, ["ADDED", "MODIFIED", "BOOKMARK", "DELETED", "ERROR"]);
        assert_eq!(
            events[0].object().unwrap()["metadata"]["name"],
            "héllo-wörld-日本"
        );
        assert_eq!(events[1].object().unwrap()["note"], "✓✓✓ 🚀");
        match &events[4] {
            WatchEvent::Error(status) => assert_eq!(status.code, Some(410)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn every_two_way_split() {
        let text = events_text().into_bytes();
        for cut in 0..=text.len() {
            let events = decode_chunks(vec![text[..cut].to_vec(), text[cut..].to_vec()]);
            check(&events);
        }
    }

    #[test]
    fn byte_by_byte_and_uneven_chunks() {
        let text = events_text().into_bytes();
        check(&decode_chunks(text.iter().map(|b| vec![*b]).collect()));
        // Deterministic pseudo-random chunk sizes from 1 to 17 bytes.
        for seed in 1u64..50 {
            let mut x = seed;
            let mut chunks = Vec::new();
            let mut rest = &text[..];
            while !rest.is_empty() {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let n = ((x >> 33) % 17 + 1) as usize;
                let n = n.min(rest.len());
                chunks.push(rest[..n].to_vec());
                rest = &rest[n..];
            }
            check(&decode_chunks(chunks));
        }
    }

    #[test]
    fn all_events_in_one_chunk_and_no_final_newline() {
        let text = events_text();
        check(&decode_chunks(vec![text.trim_end().as_bytes().to_vec()]));
    }

    #[test]
    fn a_bad_line_is_an_error_item_and_decoding_goes_on() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let items: Vec<Result<WatchEvent<Value>>> = rt.block_on(async {
            let text = "{\"type\":\"ADDED\",\"object\":{}}\nnot json\n{\"type\":\"DELETED\",\"object\":{}}\n{\"type\":\"ADD";
            let bytes = stream::iter([Ok(Bytes::from(text))]);
            watch_events(bytes, "GET /x".into()).collect().await
        });
        assert_eq!(items.len(), 4);
        assert!(matches!(items[0], Ok(WatchEvent::Added(_))));
        let err = items[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("GET /x"), "{err}");
        assert!(matches!(items[2], Ok(WatchEvent::Deleted(_))));
        // The server closed in the middle of an event.
        assert!(matches!(items[3], Err(Error::Decode { .. })));
    }

    #[test]
    fn line_decoder_compacts_its_buffer() {
        let mut d = LineDecoder::new();
        for i in 0..1000 {
            d.push(format!("line {i}\n").as_bytes());
            assert_eq!(d.next_line().unwrap(), format!("line {i}").as_bytes());
            assert!(d.next_line().is_none());
        }
        assert!(d.buf.len() < 64, "buffer grew to {}", d.buf.len());
        d.push(b"par");
        assert!(d.next_line().is_none());
        d.push(b"tial");
        assert_eq!(d.finish().unwrap(), b"partial");
    }
}
