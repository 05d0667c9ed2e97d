//! TYPE A line-ending conversion, streamed chunk by chunk (RFC 959 section 3.1.1.1).
//!
//! Files are stored with the local convention (LF); on the wire, text uses CRLF. Sending turns
//! each LF that is not already preceded by CR into CRLF; receiving turns CRLF into LF and keeps
//! a lone CR. State carries across chunk boundaries, so a CRLF split between two reads still
//! converts correctly.

/// Converts stored text (LF) to wire text (CRLF).
#[derive(Debug, Default)]
pub struct AsciiEncoder {
    last_was_cr: bool,
}

impl AsciiEncoder {
    /// Appends the converted form of `input` to `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 16);
        for &b in input {
            if b == b'\n' && !self.last_was_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.last_was_cr = b == b'\r';
        }
    }
}

/// Converts wire text (CRLF) to stored text (LF).
#[derive(Debug, Default)]
pub struct AsciiDecoder {
    pending_cr: bool,
}

impl AsciiDecoder {
    /// Appends the converted form of `input` to `out`; a CR at the end of `input` is held
    /// until the next chunk shows whether an LF follows.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        for &b in input {
            if self.pending_cr {
                self.pending_cr = false;
                if b != b'\n' {
                    out.push(b'\r');
                }
            }
            if b == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(b);
            }
        }
    }

    /// Appends anything held back, at the end of the stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_chunks(chunks: &[&[u8]]) -> Vec<u8> {
        let mut e = AsciiEncoder::default();
        let mut out = Vec::new();
        for c in chunks {
            e.encode(c, &mut out);
        }
        out
    }

    fn decode_chunks(chunks: &[&[u8]]) -> Vec<u8> {
        let mut d = AsciiDecoder::default();
        let mut out = Vec::new();
        for c in chunks {
            d.decode(c, &mut out);
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn lf_becomes_crlf_once() {
        assert_eq!(encode_chunks(&[b"a\nb\r\nc\n"]), b"a\r\nb\r\nc\r\n");
        assert_eq!(encode_chunks(&[b"a\r", b"\nb\n"]), b"a\r\nb\r\n");
        assert_eq!(encode_chunks(&[b"\n\n"]), b"\r\n\r\n");
    }

    #[test]
    fn crlf_becomes_lf_across_chunks() {
        assert_eq!(decode_chunks(&[b"a\r\nb\r\n"]), b"a\nb\n");
        assert_eq!(decode_chunks(&[b"a\r", b"\nb"]), b"a\nb");
        assert_eq!(decode_chunks(&[b"a\rb\r"]), b"a\rb\r");
        assert_eq!(decode_chunks(&[b"a\r", b"\r\n"]), b"a\r\n");
    }

    #[test]
    fn round_trip_of_unix_text() {
        let text = b"line one\nline two\n\nlast";
        assert_eq!(decode_chunks(&[&encode_chunks(&[text])]), text);
    }
}
