//! The part of SPDY/3.1 that Kubernetes' port-forward streams use (moby's `spdystream`, as
//! client-go speaks it): frames, and header blocks compressed by one zlib stream per
//! direction with SPDY's preset dictionary. No flow control: `spdystream` neither sends
//! nor honours window updates.

use bytes::{Buf, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// SPDY/3's header dictionary, as the specification lists it.
const DICTIONARY: &[u8] = include_bytes!("spdy3_dictionary.bin");

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 1;
/// The largest frame payload accepted (SPDY lengths are 24 bits).
const MAX_LENGTH: usize = (1 << 24) - 1;

/// `RST_STREAM` status: the stream is no longer needed.
pub const CANCEL: u32 = 5;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Ping(u32),
    GoAway {
        last_stream_id: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Vec<u8>,
    },
    /// Frames the port-forward streams need nothing from (settings, window updates,
    /// headers).
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SPDY frame of {0} bytes is too large")]
    TooLarge(usize),
    #[error("SPDY version {0} is not supported")]
    Version(u16),
    #[error("malformed SPDY frame: {0}")]
    Malformed(&'static str),
    #[error("SPDY header block: {0}")]
    Zlib(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads frames from what arrived; keeps the header decompressor of one connection.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            inflate: Decompress::new(true),
        }
    }
}

impl Decoder {
    /// The next whole frame of `buf`, taken off it; `None` until one has arrived.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let length = usize::from(buf[5]) << 16 | usize::from(buf[6]) << 8 | usize::from(buf[7]);
        if buf.len() < 8 + length {
            return Ok(None);
        }
        let head: [u8; 8] = buf[..8].try_into().expect("eight bytes");
        buf.advance(8);
        let payload = buf.split_to(length);
        let flags = head[4];
        let fin = flags & FLAG_FIN != 0;
        if head[0] & 0x80 == 0 {
            let stream_id = u32::from_be_bytes(head[..4].try_into().expect("four bytes"));
            return Ok(Some(Frame::Data {
                stream_id,
                fin,
                data: payload.to_vec(),
            }));
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(Error::Version(version));
        }
        let word = |at: usize| -> Result<u32> {
            payload
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes(b.try_into().expect("four bytes")) & 0x7fff_ffff)
                .ok_or(Error::Malformed("frame too short"))
        };
        Ok(Some(match u16::from_be_bytes([head[2], head[3]]) {
            SYN_STREAM => {
                let stream_id = word(0)?;
                let block = payload.get(10..).ok_or(Error::Malformed("SYN_STREAM"))?;
                Frame::SynStream {
                    stream_id,
                    fin,
                    headers: self.headers(block)?,
                }
            }
            SYN_REPLY => {
                let stream_id = word(0)?;
                Frame::SynReply {
                    stream_id,
                    fin,
                    headers: self.headers(&payload[4..])?,
                }
            }
            RST_STREAM => Frame::RstStream {
                stream_id: word(0)?,
                status: word(4)?,
            },
            PING => Frame::Ping(word(0)?),
            GOAWAY => Frame::GoAway {
                last_stream_id: word(0)?,
            },
            _ => Frame::Other,
        }))
    }

    fn headers(&mut self, block: &[u8]) -> Result<Vec<(String, String)>> {
        let mut plain = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        loop {
            if plain.capacity() == plain.len() {
                plain.reserve(plain.len().max(256));
            }
            let before = self.inflate.total_in();
            let result = self
                .inflate
                .decompress_vec(input, &mut plain, FlushDecompress::Sync);
            let used = usize::try_from(self.inflate.total_in() - before).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            match result {
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| Error::Zlib(e.to_string()))?;
                }
                Err(e) => return Err(Error::Zlib(e.to_string())),
                Ok(Status::StreamEnd) => break,
                Ok(_) if input.is_empty() && plain.len() < plain.capacity() => break,
                Ok(_) => {}
            }
        }
        parse_headers(&plain)
    }
}

fn parse_headers(mut block: &[u8]) -> Result<Vec<(String, String)>> {
    let count = read_len(&mut block)?;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name = read_text(&mut block)?;
        // Several values of one name are joined by NUL bytes.
        let value = read_text(&mut block)?;
        headers.push((name.to_ascii_lowercase(), value));
    }
    Ok(headers)
}

fn read_text(block: &mut &[u8]) -> Result<String> {
    let n = read_len(block)?;
    if block.len() < n {
        return Err(Error::Malformed("header block too short"));
    }
    let s = String::from_utf8_lossy(&block[..n]).into_owned();
    *block = &block[n..];
    Ok(s)
}

fn read_len(block: &mut &[u8]) -> Result<usize> {
    if block.len() < 4 {
        return Err(Error::Malformed("header block too short"));
    }
    let n = u32::from_be_bytes(block[..4].try_into().expect("four bytes"));
    *block = &block[4..];
    Ok(n as usize)
}

/// Writes frames; keeps the header compressor of one connection.
pub struct Encoder {
    deflate: Compress,
    primed: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            deflate: Compress::new(Compression::default(), true),
            primed: false,
        }
    }
}

impl Encoder {
    pub fn encode(&mut self, frame: &Frame) -> Result<Vec<u8>> {
        let (kind, flags, body) = match frame {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                if data.len() > MAX_LENGTH {
                    return Err(Error::TooLarge(data.len()));
                }
                let mut out = Vec::with_capacity(8 + data.len());
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.push(if *fin { FLAG_FIN } else { 0 });
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
                return Ok(out);
            }
            Frame::SynStream {
                stream_id,
                fin,
                headers,
            } => {
                let mut body = stream_id.to_be_bytes().to_vec();
                body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
                body.extend(self.headers(headers)?);
                (SYN_STREAM, *fin, body)
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => {
                let mut body = stream_id.to_be_bytes().to_vec();
                body.extend(self.headers(headers)?);
                (SYN_REPLY, *fin, body)
            }
            Frame::RstStream { stream_id, status } => {
                let mut body = stream_id.to_be_bytes().to_vec();
                body.extend_from_slice(&status.to_be_bytes());
                (RST_STREAM, false, body)
            }
            Frame::Ping(id) => (PING, false, id.to_be_bytes().to_vec()),
            Frame::GoAway { last_stream_id } => {
                let mut body = last_stream_id.to_be_bytes().to_vec();
                body.extend_from_slice(&0u32.to_be_bytes());
                (GOAWAY, false, body)
            }
            Frame::Other => return Ok(Vec::new()),
        };
        let mut out = Vec::with_capacity(8 + body.len());
        out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.push(if flags { FLAG_FIN } else { 0 });
        out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        out.extend(body);
        Ok(out)
    }

    fn headers(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>> {
        if !self.primed {
            self.deflate
                .set_dictionary(DICTIONARY)
                .map_err(|e| Error::Zlib(e.to_string()))?;
            self.primed = true;
        }
        let mut plain = (headers.len() as u32).to_be_bytes().to_vec();
        for (name, value) in headers {
            for s in [name.to_ascii_lowercase().as_str(), value.as_str()] {
                plain.extend_from_slice(&(s.len() as u32).to_be_bytes());
                plain.extend_from_slice(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut input = plain.as_slice();
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| Error::Zlib(e.to_string()))?;
            let used = usize::try_from(self.deflate.total_in() - before).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            // A sync flush is whole once it left room to spare.
            if input.is_empty() && out.capacity() - out.len() >= 64 {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn frames_round_trip_through_one_compression_context() {
        let mut encoder = Encoder::default();
        let mut decoder = Decoder::default();
        let frames = [
            Frame::SynStream {
                stream_id: 1,
                fin: false,
                headers: headers(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynStream {
                stream_id: 3,
                fin: false,
                headers: headers(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream_id: 3,
                fin: false,
                headers: Vec::new(),
            },
            Frame::Data {
                stream_id: 3,
                fin: true,
                data: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            },
            Frame::RstStream {
                stream_id: 1,
                status: CANCEL,
            },
            Frame::Ping(7),
            Frame::GoAway { last_stream_id: 3 },
        ];
        let mut wire = BytesMut::new();
        for f in &frames {
            wire.extend_from_slice(&encoder.encode(f).unwrap());
        }
        // Arriving a byte at a time changes nothing.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire {
            buf.extend_from_slice(&[b]);
            while let Some(f) = decoder.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn the_header_compressor_starts_from_the_spdy_dictionary() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert!(DICTIONARY.starts_with(b"\0\0\0\x07options"));
        let mut encoder = Encoder::default();
        let block = encoder.headers(&headers(&[("port", "80")])).unwrap();
        // zlib header with FDICT set, then the dictionary's Adler-32.
        assert_eq!(block[1] & 0x20, 0x20);
        let (mut a, mut b) = (1u32, 0u32);
        for byte in DICTIONARY {
            a = (a + u32::from(*byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(block[2..6], (b << 16 | a).to_be_bytes());
    }
}
