//! The fixed header shared by every replog file (segments, checkpoint,
//! epoch history, index files): an 8-byte magic, a `u32` format version at
//! byte 8, the file's own fields, and a CRC-32 of everything before it in
//! the header's last four bytes.
//!
//! ```text
//!  0      [u8; 8] magic (names the kind of file)
//!  8      u32     version
//! 12..n-4         fields of that kind of file
//! n-4     u32     CRC-32 of bytes 0..n-4
//! ```

use super::{read_u32, write_u32};
use crate::error::Damage;

/// Stamps `magic`, `version` and the CRC into `header`, whose fields
/// (bytes `12..len-4`) the caller has written.
pub(crate) fn seal(header: &mut [u8], magic: &[u8; 8], version: u32) {
    let crc_at = header.len() - 4;
    header[0..8].copy_from_slice(magic);
    write_u32(header, 8, version);
    let crc = crc32fast::hash(&header[..crc_at]);
    write_u32(header, crc_at, crc);
}

/// Checks a header of `len` bytes at the start of `bytes` against `magic`,
/// its CRC, and the `version` this build reads, in that order (so a newer
/// file with an intact header reports [`Damage::UnknownVersion`]). Returns
/// the header's bytes.
pub(crate) fn check<'a>(bytes: &'a [u8], len: usize, magic: &[u8; 8], version: u32) -> Result<&'a [u8], Damage> {
    let header = bytes.get(..len).ok_or(Damage::Truncated)?;
    if header[0..8] != *magic {
        return Err(Damage::BadMagic);
    }
    let crc_at = len - 4;
    let stored = read_u32(header, crc_at);
    let computed = crc32fast::hash(&header[..crc_at]);
    if stored != computed {
        return Err(Damage::ChecksumMismatch { stored, computed });
    }
    let found = read_u32(header, 8);
    if found != version {
        return Err(Damage::UnknownVersion { version: found });
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 8] = *b"TESTMAG\0";

    #[test]
    fn round_trip_and_each_check() {
        let mut header = [0u8; 32];
        header[12] = 7;
        seal(&mut header, &MAGIC, 3);
        assert_eq!(check(&header, 32, &MAGIC, 3), Ok(&header[..]));
        assert_eq!(check(&header[..31], 32, &MAGIC, 3), Err(Damage::Truncated));
        assert_eq!(check(&header, 32, b"OTHERMG\0", 3), Err(Damage::BadMagic));
        assert_eq!(
            check(&header, 32, &MAGIC, 2),
            Err(Damage::UnknownVersion { version: 3 })
        );
        let mut flipped = header;
        flipped[12] ^= 1;
        assert!(matches!(
            check(&flipped, 32, &MAGIC, 3),
            Err(Damage::ChecksumMismatch { .. })
        ));
    }
}
