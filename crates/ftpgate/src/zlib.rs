//! MODE Z (draft-preston-ftpext-deflate): data connections carry a zlib stream (RFC 1950),
//! compressed and inflated with `flate2` a chunk at a time.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Compresses what a download sends.
pub(crate) struct Deflater {
    inner: Compress,
}

impl Deflater {
    pub(crate) fn new() -> Deflater {
        Deflater {
            inner: Compress::new(Compression::fast(), true),
        }
    }

    /// Appends the compressed form of `input` to `out` (`finish`: and the end of the stream).
    pub(crate) fn compress(&mut self, mut input: &[u8], out: &mut Vec<u8>, finish: bool) {
        let flush = if finish {
            FlushCompress::Finish
        } else {
            FlushCompress::None
        };
        loop {
            out.reserve(input.len() / 2 + 1024);
            let before = self.inner.total_in();
            let status = self.inner.compress_vec(input, out, flush);
            let used = usize::try_from(self.inner.total_in() - before).unwrap_or(input.len());
            input = &input[used..];
            match status {
                Ok(Status::StreamEnd) => return,
                Ok(_) if input.is_empty() && !finish => return,
                Ok(_) => {}
                // Compressing in memory cannot fail; stop rather than loop.
                Err(_) => return,
            }
        }
    }
}

/// Why an upload's zlib stream was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// Not a valid zlib stream.
    Corrupt,
    /// It inflates beyond the cap (a decompression bomb, or simply too large).
    TooLarge,
}

/// Inflates what an upload receives, within a cap on the inflated size and on the ratio of
/// inflated to compressed bytes, at most [`STEP`] bytes of output at a time so a bomb is caught
/// before it takes memory.
pub(crate) struct Inflater {
    inner: Decompress,
    max_inflated: u64,
    max_ratio: u64,
    ended: bool,
}

/// What to do after one call of [`Inflater::inflate`].
pub(crate) enum Progress {
    /// Call again: there is input left, or more output may be pending.
    More,
    /// This input is done.
    Done,
    /// No input used and no output made: the stream is broken.
    Stuck,
}

/// Most inflated bytes one call produces.
pub(crate) const STEP: usize = 256 * 1024;

/// Below this many inflated bytes the ratio is not checked (small files compress very well).
const RATIO_FLOOR: u64 = 1024 * 1024;

impl Inflater {
    pub(crate) fn new(max_inflated: u64, max_ratio: u64) -> Inflater {
        Inflater {
            inner: Decompress::new(true),
            max_inflated,
            max_ratio,
            ended: false,
        }
    }

    /// Replaces `out` with the next inflated bytes of `input` (at most [`STEP`]) and returns how
    /// many input bytes were used. Call again, with the rest of the input, while it uses input
    /// or fills `out`.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, InflateError> {
        // With no more input coming, ask for everything that is left (and the end of stream).
        let flush = if input.is_empty() {
            FlushDecompress::Finish
        } else {
            FlushDecompress::None
        };
        out.clear();
        if out.capacity() < STEP {
            out.reserve_exact(STEP);
        }
        let before = self.inner.total_in();
        let status = self
            .inner
            .decompress_vec(input, out, flush)
            .map_err(|_| InflateError::Corrupt)?;
        let used = usize::try_from(self.inner.total_in() - before).unwrap_or(input.len());
        let inflated = self.inner.total_out();
        if inflated > self.max_inflated
            || (inflated > RATIO_FLOOR
                && inflated > self.inner.total_in().saturating_mul(self.max_ratio))
        {
            return Err(InflateError::TooLarge);
        }
        if status == Status::StreamEnd {
            self.ended = true;
        }
        Ok(used)
    }

    /// After [`Inflater::inflate`] used `used` bytes and left `rest` and `out`: whether to call
    /// it again.
    pub(crate) fn progress(&self, used: usize, rest: &[u8], out: &[u8]) -> Progress {
        let full = out.len() >= STEP;
        if self.ended || (rest.is_empty() && !full) {
            Progress::Done
        } else if used == 0 && out.is_empty() {
            Progress::Stuck
        } else {
            Progress::More
        }
    }

    /// Whether the stream's end was read (an upload without it was cut short).
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }
}

/// Inflates all of `input`, handing each piece of output to `sink`.
#[cfg(test)]
pub(crate) fn inflate_all(
    inflater: &mut Inflater,
    mut input: &[u8],
    out: &mut Vec<u8>,
    mut sink: impl FnMut(&[u8]),
) -> Result<(), InflateError> {
    loop {
        let used = inflater.inflate(input, out)?;
        input = &input[used..];
        sink(out);
        match inflater.progress(used, input, out) {
            Progress::More => {}
            Progress::Done => return Ok(()),
            Progress::Stuck => return Err(InflateError::Corrupt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut d = Deflater::new();
        let mut out = Vec::new();
        for chunk in data.chunks(1000) {
            d.compress(chunk, &mut out, false);
        }
        d.compress(&[], &mut out, true);
        out
    }

    #[test]
    fn round_trip_in_pieces_of_any_size() {
        // Pieces that inflate to more than one output step, and tiny ones.
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 97) as u8).collect();
        let compressed = deflate(&data);
        assert!(compressed.len() < data.len() / 10);
        for piece in [7, 1460, 65536, 1 << 20] {
            let mut inflater = Inflater::new(u64::MAX, u64::MAX);
            let (mut out, mut all) = (Vec::new(), Vec::new());
            for chunk in compressed.chunks(piece) {
                inflate_all(&mut inflater, chunk, &mut out, |p| all.extend_from_slice(p)).unwrap();
            }
            assert!(inflater.ended(), "pieces of {piece}");
            assert!(all == data, "pieces of {piece}");
        }
    }

    #[test]
    fn bombs_and_garbage_are_refused() {
        let zeros = vec![0u8; 50 * 1024 * 1024];
        let bomb = deflate(&zeros);
        assert!(bomb.len() < 1_000_000);
        let mut out = Vec::new();
        let mut inflater = Inflater::new(10 * 1024 * 1024, u64::MAX);
        let mut total = 0;
        let result = inflate_all(&mut inflater, &bomb, &mut out, |p| total += p.len());
        assert_eq!(result, Err(InflateError::TooLarge));
        assert!(total <= 10 * 1024 * 1024, "stopped at the cap");
        assert!(out.capacity() <= 2 * STEP, "memory stays bounded");
        let mut inflater = Inflater::new(u64::MAX, 100);
        assert_eq!(
            inflate_all(&mut inflater, &bomb, &mut out, |_| {}),
            Err(InflateError::TooLarge)
        );
        let mut inflater = Inflater::new(u64::MAX, u64::MAX);
        assert_eq!(
            inflate_all(&mut inflater, b"definitely not zlib", &mut out, |_| {}),
            Err(InflateError::Corrupt)
        );
    }
}
