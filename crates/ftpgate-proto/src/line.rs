//! Control-connection framing: bytes in, command lines out.
//!
//! Lines end in LF (CRLF or a bare LF are both accepted, as every mainstream server does).
//! Telnet IAC sequences are handled as RFC 854 says: `IAC IAC` is a literal 0xFF byte, option
//! negotiation (`IAC WILL/WONT/DO/DONT x`) and commands such as Interrupt Process and Data Mark
//! (sent by clients before ABOR) are removed. A line longer than the limit is dropped whole,
//! its tail included, and reported once as [`Decoded::TooLong`]; memory never grows past the limit.

use std::collections::VecDeque;

const IAC: u8 = 255;
const WILL: u8 = 251;
const DONT: u8 = 254;

/// One result of decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A complete line without its line ending.
    Line(Vec<u8>),
    /// A line longer than the limit was received and discarded.
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telnet {
    Data,
    Iac,
    Option,
}

/// Incremental decoder of control lines with a maximum line length.
#[derive(Debug)]
pub struct LineDecoder {
    max_line: usize,
    current: Vec<u8>,
    discarding: bool,
    telnet: Telnet,
    ready: VecDeque<Decoded>,
}

impl LineDecoder {
    /// A decoder that accepts lines of at most `max_line` bytes (line ending excluded).
    pub fn new(max_line: usize) -> Self {
        LineDecoder {
            max_line: max_line.max(1),
            current: Vec::new(),
            discarding: false,
            telnet: Telnet::Data,
            ready: VecDeque::new(),
        }
    }

    /// Feeds bytes received from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            match self.telnet {
                Telnet::Iac => {
                    self.telnet = Telnet::Data;
                    match byte {
                        IAC => self.push_byte(IAC),
                        WILL..=DONT => self.telnet = Telnet::Option,
                        // SE, NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, SB: no meaning here.
                        240..=250 => {}
                        // Not a Telnet command: the IAC was stray, the byte is data.
                        b'\n' => self.end_line(),
                        _ => self.push_byte(byte),
                    }
                }
                Telnet::Option => self.telnet = Telnet::Data,
                Telnet::Data => match byte {
                    IAC => self.telnet = Telnet::Iac,
                    b'\n' => self.end_line(),
                    _ => self.push_byte(byte),
                },
            }
        }
    }

    /// The next decoded line, if a whole one has arrived.
    pub fn next_line(&mut self) -> Option<Decoded> {
        self.ready.pop_front()
    }

    /// Whether any bytes are buffered: a partial line or decoded lines not yet taken.
    pub fn has_buffered(&self) -> bool {
        !self.current.is_empty() || !self.ready.is_empty() || self.discarding
    }

    /// Drops everything buffered (used at a TLS upgrade, where pipelined plaintext is an attack).
    pub fn clear(&mut self) {
        self.current.clear();
        self.ready.clear();
        self.discarding = false;
        self.telnet = Telnet::Data;
    }

    fn push_byte(&mut self, byte: u8) {
        if self.discarding {
            return;
        }
        // A trailing CR is part of the line ending, so allow one byte of slack for it.
        if self.current.len() > self.max_line {
            self.current = Vec::new();
            self.discarding = true;
            return;
        }
        self.current.push(byte);
    }

    fn end_line(&mut self) {
        if self.discarding {
            self.discarding = false;
            self.ready.push_back(Decoded::TooLong);
            return;
        }
        let mut line = std::mem::take(&mut self.current);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > self.max_line {
            self.ready.push_back(Decoded::TooLong);
        } else {
            self.ready.push_back(Decoded::Line(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(max: usize, input: &[u8]) -> Vec<Decoded> {
        let mut d = LineDecoder::new(max);
        d.feed(input);
        std::iter::from_fn(|| d.next_line()).collect()
    }

    fn line(s: &str) -> Decoded {
        Decoded::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn crlf_and_bare_lf_both_end_a_line() {
        assert_eq!(
            decode_all(100, b"USER a\r\nPASS b\n"),
            vec![line("USER a"), line("PASS b")]
        );
    }

    #[test]
    fn partial_line_waits_for_its_end() {
        let mut d = LineDecoder::new(100);
        d.feed(b"NO");
        assert_eq!(d.next_line(), None);
        assert!(d.has_buffered());
        d.feed(b"OP\r\n");
        assert_eq!(d.next_line(), Some(line("NOOP")));
        assert!(!d.has_buffered());
    }

    #[test]
    fn overlong_line_is_reported_once_and_its_tail_never_runs() {
        let mut input = b"STOR ".to_vec();
        input.extend(std::iter::repeat_n(b'a', 50));
        input.extend(b"\r\nDELE x\r\nNOOP\r\n");
        assert_eq!(
            decode_all(20, &input),
            vec![Decoded::TooLong, line("DELE x"), line("NOOP")]
        );
    }

    #[test]
    fn overlong_line_split_across_feeds_keeps_memory_bounded() {
        let mut d = LineDecoder::new(16);
        for _ in 0..1000 {
            d.feed(&[b'x'; 1024]);
            assert!(d.current.len() <= 17);
        }
        d.feed(b"\nNOOP\n");
        assert_eq!(d.next_line(), Some(Decoded::TooLong));
        assert_eq!(d.next_line(), Some(line("NOOP")));
    }

    #[test]
    fn line_of_exactly_the_limit_is_accepted() {
        assert_eq!(decode_all(4, b"NOOP\r\n"), vec![line("NOOP")]);
        assert_eq!(decode_all(4, b"NOOPS\r\n"), vec![Decoded::TooLong]);
    }

    #[test]
    fn telnet_interrupt_and_synch_before_abor_are_removed() {
        // IAC IP IAC DM ABOR, as clients send it (RFC 959 section 4.1.3).
        assert_eq!(
            decode_all(100, b"\xff\xf4\xff\xf2ABOR\r\n"),
            vec![line("ABOR")]
        );
    }

    #[test]
    fn doubled_iac_is_one_0xff_byte() {
        assert_eq!(
            decode_all(100, b"STOR a\xff\xffb\r\n"),
            vec![Decoded::Line(b"STOR a\xffb".to_vec())]
        );
    }

    #[test]
    fn a_stray_iac_does_not_swallow_the_line_end() {
        assert_eq!(
            decode_all(100, b"NOOP\xff\nPWD\r\n"),
            vec![line("NOOP"), line("PWD")]
        );
        assert_eq!(decode_all(100, b"A\xffB\r\n"), vec![line("AB")]);
    }

    #[test]
    fn option_negotiation_is_skipped() {
        assert_eq!(decode_all(100, b"\xff\xfb\x01NOOP\r\n"), vec![line("NOOP")]);
    }

    #[test]
    fn clear_drops_pipelined_bytes() {
        let mut d = LineDecoder::new(100);
        d.feed(b"USER x\r\nPASS y\r\nPAR");
        d.clear();
        assert_eq!(d.next_line(), None);
        assert!(!d.has_buffered());
    }
}
