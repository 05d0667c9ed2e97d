//! The buffer an upload fills with one part's bytes: an anonymous memory mapping of its own.
//!
//! Parts are 5 MiB and up. Whether a heap allocation of that size gets a mapping of its own
//! depends on glibc's mmap threshold, which starts at 128 KiB but rises to the size of any
//! larger block freed: once something freed a bigger block (the daemon's quick-start user has
//! its password hashed at start, freeing 19 MiB of argon2 memory), part buffers come from the
//! per-thread arenas and stay resident there once freed, each thread keeping its own. An
//! upload with 4 parts of 8 MiB in flight then peaked at 91 MiB of resident memory instead of
//! 73. A mapping is returned to the system the moment the last reference to it goes, so an
//! upload holds at most (parts in flight + 1) part buffers, and nothing once it is over,
//! whatever the allocator did before. Within an upload, buffers are reused from part to part
//! (see `MultipartUpload::collect_one`).

use std::sync::Arc;

use bytes::Bytes;
use ftpgate_core::{StorageError, StorageErrorKind};
use memmap2::{MmapMut, MmapOptions};

/// A growable byte buffer in an anonymous mapping (empty ones map nothing).
#[derive(Default)]
pub(crate) struct PartBuffer {
    map: Option<MmapMut>,
    len: usize,
}

impl PartBuffer {
    /// An empty buffer with room for `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Result<PartBuffer, StorageError> {
        if capacity == 0 {
            return Ok(PartBuffer::default());
        }
        let map = MmapOptions::new().len(capacity).map_anon().map_err(|e| {
            StorageError::new(
                StorageErrorKind::Local,
                format!("cannot allocate a buffer of {capacity} bytes for an upload part: {e}"),
            )
        })?;
        Ok(PartBuffer {
            map: Some(map),
            len: 0,
        })
    }

    pub(crate) fn capacity(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        self.map.as_ref().map_or(&[], |m| &m[..self.len])
    }

    /// Appends `data`, growing the mapping (by copying) if it has no room.
    pub(crate) fn extend_from_slice(&mut self, data: &[u8]) -> Result<(), StorageError> {
        let needed = self.len + data.len();
        if needed > self.capacity() {
            let mut grown = PartBuffer::with_capacity(needed.max(self.capacity() * 2))?;
            grown.extend_from_slice(self.as_slice())?;
            *self = grown;
        }
        if let Some(map) = self.map.as_mut() {
            map[self.len..needed].copy_from_slice(data);
            self.len = needed;
        }
        Ok(())
    }

    /// The bytes, shared without a copy, and a handle that gives the buffer back (see
    /// [`Shared::reclaim`]) once every `Bytes` made of it is gone.
    pub(crate) fn share(self) -> (Bytes, Shared) {
        let len = self.len;
        let Some(map) = self.map else {
            return (Bytes::new(), Shared(None));
        };
        let map = Arc::new(map);
        let bytes = Bytes::from_owner(View {
            map: Arc::clone(&map),
            len,
        });
        (bytes, Shared(Some(map)))
    }
}

/// The owner behind a part's `Bytes`: the mapping and how much of it holds the part.
struct View {
    map: Arc<MmapMut>,
    len: usize,
}

impl AsRef<[u8]> for View {
    fn as_ref(&self) -> &[u8] {
        &self.map[..self.len]
    }
}

/// A shared part buffer, to be reused once the request that sent it is done with it.
pub(crate) struct Shared(Option<Arc<MmapMut>>);

impl Shared {
    /// The buffer again, emptied, if nothing else holds it any more; otherwise it is freed when
    /// the last holder lets go.
    pub(crate) fn reclaim(self) -> Option<PartBuffer> {
        let map = Arc::try_unwrap(self.0?).ok()?;
        Some(PartBuffer {
            map: Some(map),
            len: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_shares_and_comes_back() {
        let mut buffer = PartBuffer::with_capacity(4).unwrap();
        buffer.extend_from_slice(b"abc").unwrap();
        buffer.extend_from_slice(b"defgh").unwrap();
        assert_eq!(buffer.as_slice(), b"abcdefgh");
        assert!(buffer.capacity() >= 8);
        let (bytes, shared) = buffer.share();
        assert_eq!(&bytes[..], b"abcdefgh");
        let clone = bytes.clone();
        drop(bytes);
        // A request still holding the bytes keeps the buffer from being reused.
        let (again, shared) = {
            let (b, s) = PartBuffer::with_capacity(1).unwrap().share();
            drop(b);
            (s.reclaim(), shared)
        };
        assert!(again.is_some());
        assert!(shared.reclaim().is_none());
        assert_eq!(&clone[..], b"abcdefgh");
    }

    #[test]
    fn reclaimed_when_the_bytes_are_gone() {
        let mut buffer = PartBuffer::with_capacity(16).unwrap();
        buffer.extend_from_slice(b"part").unwrap();
        let (bytes, shared) = buffer.share();
        drop(bytes);
        let back = shared.reclaim().unwrap();
        assert!(back.is_empty());
        assert_eq!(back.capacity(), 16);
    }

    #[test]
    fn empty_buffers_map_nothing() {
        let (bytes, shared) = PartBuffer::default().share();
        assert!(bytes.is_empty());
        assert!(shared.reclaim().is_none());
    }
}
