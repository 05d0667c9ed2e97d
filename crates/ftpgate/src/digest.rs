//! Digests for HASH and the legacy X-commands, from RustCrypto's hashes and `crc32fast`.

use ftpgate_proto::HashAlgorithm;
use sha2::Digest as _;

/// A running digest of one of the algorithms HASH offers.
pub(crate) enum Digester {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
    Crc32(crc32fast::Hasher),
}

impl Digester {
    pub(crate) fn new(algorithm: HashAlgorithm) -> Digester {
        match algorithm {
            HashAlgorithm::Sha256 => Digester::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha512 => Digester::Sha512(sha2::Sha512::new()),
            HashAlgorithm::Sha1 => Digester::Sha1(sha1::Sha1::new()),
            HashAlgorithm::Md5 => Digester::Md5(md5::Md5::new()),
            HashAlgorithm::Crc32 => Digester::Crc32(crc32fast::Hasher::new()),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Digester::Sha256(h) => h.update(data),
            Digester::Sha512(h) => h.update(data),
            Digester::Sha1(h) => h.update(data),
            Digester::Md5(h) => h.update(data),
            Digester::Crc32(h) => h.update(data),
        }
    }

    /// The digest as lower-case hex.
    pub(crate) fn finish_hex(self) -> String {
        match self {
            Digester::Sha256(h) => hex(&h.finalize()),
            Digester::Sha512(h) => hex(&h.finalize()),
            Digester::Sha1(h) => hex(&h.finalize()),
            Digester::Md5(h) => hex(&h.finalize()),
            Digester::Crc32(h) => format!("{:08x}", h.finalize()),
        }
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(algorithm: HashAlgorithm, data: &[u8]) -> String {
        let mut d = Digester::new(algorithm);
        d.update(data);
        d.finish_hex()
    }

    #[test]
    fn known_answers() {
        assert_eq!(
            digest(HashAlgorithm::Sha256, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            digest(HashAlgorithm::Sha1, b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            digest(HashAlgorithm::Md5, b"abc"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(digest(HashAlgorithm::Crc32, b"123456789"), "cbf43926");
        assert!(digest(HashAlgorithm::Sha512, b"abc").starts_with("ddaf35a193617aba"));
    }
}
