//! Every on-disk constant in one place. The byte layouts these describe are
//! drawn in `docs/format.md`; each offset here is derived from the ones
//! before it so the two cannot drift apart silently.

// ---------------------------------------------------------------------------
// Log files (the WAL and the MANIFEST share this framing)
// ---------------------------------------------------------------------------

/// Log files are cut into blocks of this size; a fragment never crosses one.
pub(crate) const LOG_BLOCK_SIZE: usize = 32 * 1024;
/// Fragment header: crc32 (4) | payload length (2) | fragment type (1).
pub(crate) const LOG_HEADER_SIZE: usize = 4 + 2 + 1;

/// Fragment types. 0 never appears in a written header: zero bytes are
/// block padding or space the file system allocated but never filled.
pub(crate) const FRAGMENT_FULL: u8 = 1;
pub(crate) const FRAGMENT_FIRST: u8 = 2;
pub(crate) const FRAGMENT_MIDDLE: u8 = 3;
pub(crate) const FRAGMENT_LAST: u8 = 4;

/// The first record of every log file: magic (8) | version (4) | kind (1) | file number (8).
pub(crate) const LOG_MAGIC: u64 = u64::from_le_bytes(*b"STRATLOG");
pub(crate) const LOG_FORMAT_VERSION: u32 = 1;
pub(crate) const LOG_HEADER_RECORD_SIZE: usize = 8 + 4 + 1 + 8;
pub(crate) const LOG_KIND_WAL: u8 = 1;
pub(crate) const LOG_KIND_MANIFEST: u8 = 2;

// ---------------------------------------------------------------------------
// Write batches (the WAL record payload)
// ---------------------------------------------------------------------------

/// Batch header: first sequence number (8) | op count (4).
pub(crate) const BATCH_HEADER_SIZE: usize = 8 + 4;

// ---------------------------------------------------------------------------
// Internal keys
// ---------------------------------------------------------------------------

/// Namespace id prefix of every stored key: u32 big-endian, so namespaces sort apart.
pub(crate) const NS_PREFIX_SIZE: usize = 4;
/// Trailer after the user key: u64 little-endian, `sequence << 8 | kind`.
pub(crate) const TRAILER_SIZE: usize = 8;

/// Value kinds stored in the low byte of the trailer.
pub(crate) const KIND_DELETE: u8 = 0;
pub(crate) const KIND_PUT: u8 = 1;
/// A put whose value starts with an 8-byte little-endian expiry (ms since the Unix epoch).
pub(crate) const KIND_PUT_TTL: u8 = 2;
/// The highest kind: a lookup key with it sorts before every entry of the same sequence.
pub(crate) const KIND_SEEK: u8 = 0xff;
/// Bytes of expiry at the front of a `KIND_PUT_TTL` value.
pub(crate) const EXPIRY_SIZE: usize = 8;

/// Sequence numbers use the top 56 bits of the trailer.
pub(crate) const MAX_SEQUENCE: u64 = (1 << 56) - 1;

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

/// Largest user key accepted (the empty key is allowed).
pub(crate) const MAX_KEY_SIZE: usize = 64 * 1024;
/// Largest value accepted.
pub(crate) const MAX_VALUE_SIZE: usize = 1 << 30;

// ---------------------------------------------------------------------------
// Sorted string tables
// ---------------------------------------------------------------------------

/// Block trailer: compression type (1) | crc32 of block bytes and type byte (4).
pub(crate) const BLOCK_TRAILER_SIZE: usize = 1 + 4;
pub(crate) const COMPRESSION_NONE: u8 = 0;
pub(crate) const COMPRESSION_LZ4: u8 = 1;
pub(crate) const COMPRESSION_SNAPPY: u8 = 2;

/// A block handle in the footer: offset (8) | size (8), size excluding the trailer.
pub(crate) const FOOTER_HANDLE_SIZE: usize = 8 + 8;
pub(crate) const FOOTER_INDEX_OFFSET: usize = 0;
pub(crate) const FOOTER_FILTER_OFFSET: usize = FOOTER_INDEX_OFFSET + FOOTER_HANDLE_SIZE;
pub(crate) const FOOTER_PROPS_OFFSET: usize = FOOTER_FILTER_OFFSET + FOOTER_HANDLE_SIZE;
pub(crate) const FOOTER_VERSION_OFFSET: usize = FOOTER_PROPS_OFFSET + FOOTER_HANDLE_SIZE;
pub(crate) const FOOTER_CRC_OFFSET: usize = FOOTER_VERSION_OFFSET + 4;
pub(crate) const FOOTER_MAGIC_OFFSET: usize = FOOTER_CRC_OFFSET + 4;
pub(crate) const FOOTER_SIZE: usize = FOOTER_MAGIC_OFFSET + 8;
pub(crate) const SST_MAGIC: u64 = u64::from_le_bytes(*b"STRATSST");
pub(crate) const SST_FORMAT_VERSION: u32 = 1;

/// Filter block tail: probes per key (1) | line count (4). Lines are 64 bytes.
pub(crate) const FILTER_LINE_BYTES: usize = 64;
pub(crate) const FILTER_TAIL_SIZE: usize = 1 + 4;

// ---------------------------------------------------------------------------
// File names
// ---------------------------------------------------------------------------

// Export dump (docs/format.md, "Export dump").
pub(crate) const DUMP_MAGIC: u64 = u64::from_le_bytes(*b"STRATDMP");
pub(crate) const DUMP_FORMAT_VERSION: u32 = 1;
/// magic, version, flags, sequence, creation time, crc32 of the rest.
pub(crate) const DUMP_HEADER_SIZE: usize = 8 + 4 + 4 + 8 + 8 + 4;
/// Payload length, crc32 of the payload.
pub(crate) const DUMP_RECORD_HEADER_SIZE: usize = 4 + 4;
pub(crate) const DUMP_RECORD_NAMESPACE: u8 = 1;
pub(crate) const DUMP_RECORD_ENTRY: u8 = 2;
pub(crate) const DUMP_RECORD_END: u8 = 3;

pub(crate) const CURRENT_FILE: &str = "CURRENT";
pub(crate) const LOCK_FILE: &str = "LOCK";
pub(crate) const MANIFEST_PREFIX: &str = "MANIFEST-";
pub(crate) const WAL_SUFFIX: &str = ".wal";
pub(crate) const SST_SUFFIX: &str = ".sst";
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// What a file in the database directory is, judged by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Current,
    Lock,
    Manifest(u64),
    Wal(u64),
    Table(u64),
    Temp,
}

pub(crate) fn wal_name(number: u64) -> String {
    format!("{number:06}{WAL_SUFFIX}")
}

pub(crate) fn table_name(number: u64) -> String {
    format!("{number:06}{SST_SUFFIX}")
}

pub(crate) fn manifest_name(number: u64) -> String {
    format!("{MANIFEST_PREFIX}{number:06}")
}

pub(crate) fn temp_name(number: u64) -> String {
    format!("{number:06}{TEMP_SUFFIX}")
}

/// Classifies a directory entry; `None` for names strata-kv never writes.
pub(crate) fn parse_file_name(name: &str) -> Option<FileKind> {
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if name == CURRENT_FILE {
        Some(FileKind::Current)
    } else if name == LOCK_FILE {
        Some(FileKind::Lock)
    } else if let Some(n) = name.strip_prefix(MANIFEST_PREFIX) {
        number(n).map(FileKind::Manifest)
    } else if let Some(n) = name.strip_suffix(WAL_SUFFIX) {
        number(n).map(FileKind::Wal)
    } else if let Some(n) = name.strip_suffix(SST_SUFFIX) {
        number(n).map(FileKind::Table)
    } else if name.ends_with(TEMP_SUFFIX) {
        Some(FileKind::Temp)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        assert_eq!(parse_file_name(&wal_name(7)), Some(FileKind::Wal(7)));
        assert_eq!(
            parse_file_name(&table_name(123456789)),
            Some(FileKind::Table(123456789))
        );
        assert_eq!(
            parse_file_name(&manifest_name(3)),
            Some(FileKind::Manifest(3))
        );
        assert_eq!(parse_file_name(&temp_name(3)), Some(FileKind::Temp));
        assert_eq!(parse_file_name("CURRENT"), Some(FileKind::Current));
        assert_eq!(parse_file_name("notes.txt"), None);
        assert_eq!(parse_file_name(".wal"), None);
        assert_eq!(parse_file_name("12a.sst"), None);
    }

    #[test]
    fn footer_layout_is_64_bytes() {
        assert_eq!(FOOTER_SIZE, 64);
        assert_eq!(FOOTER_MAGIC_OFFSET, 56);
    }
}
