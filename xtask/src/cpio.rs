//! A writer for the `newc` cpio format, the format of a Linux initramfs.
//!
//! The format (Documentation/driver-api/early-userspace/buffer-format.rst)
//! is a sequence of entries, each a 110-byte ASCII header, the NUL-terminated
//! name padded to 4 bytes, and the data padded to 4 bytes, closed by an entry
//! named `TRAILER!!!`. Writing it takes a few dozen lines, fewer than wiring
//! a general archive crate to write device nodes with fixed owners, so it is
//! written here.

use std::io::{self, Write};

/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

/// Builds an archive in memory; every entry is owned by root.
#[derive(Default)]
pub struct Archive {
    bytes: Vec<u8>,
    next_ino: u32,
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory.
    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(name, S_IFDIR | 0o755, (0, 0), &[])
    }

    /// Adds a regular file with permission bits `perm`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> &mut Self {
        self.entry(name, S_IFREG | (perm & 0o7777), (0, 0), data)
    }

    /// Adds a character device node `major:minor`.
    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> &mut Self {
        self.entry(name, S_IFCHR | (perm & 0o7777), (major, minor), &[])
    }

    /// The bytes written so far (the trailer adds a little more).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when nothing was added yet.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> &mut Self {
        self.next_ino += 1;
        let fields = [
            self.next_ino,
            mode,
            0,                                       // uid
            0,                                       // gid
            if mode & S_IFDIR != 0 { 2 } else { 1 }, // nlink
            0,                                       // mtime: fixed, so the archive is reproducible
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check (unused by newc)
        ];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
        self
    }

    fn pad(&mut self) {
        while self.bytes.len() % 4 != 0 {
            self.bytes.push(0);
        }
    }

    /// Closes the archive and writes it out.
    pub fn finish(mut self, out: &mut impl Write) -> io::Result<()> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        out.write_all(&self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(header: &[u8], index: usize) -> u32 {
        let start = 6 + 8 * index;
        u32::from_str_radix(std::str::from_utf8(&header[start..start + 8]).unwrap(), 16).unwrap()
    }

    #[test]
    fn headers_names_and_data_are_laid_out_as_newc() {
        let mut a = Archive::new();
        a.file("init", 0o755, b"hello");
        let mut out = Vec::new();
        a.finish(&mut out).unwrap();
        assert_eq!(&out[..6], b"070701");
        assert_eq!(field(&out, 1), S_IFREG | 0o755);
        assert_eq!(field(&out, 6), 5, "file size");
        assert_eq!(field(&out, 11), 5, "name size includes the NUL");
        // 110-byte header + "init\0" = 115, padded to 116; data follows.
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(&out[116..121], b"hello");
        // The next header starts at the next multiple of 4.
        assert_eq!(&out[124..130], b"070701");
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(out.len() % 4, 0);
    }

    #[test]
    fn device_nodes_carry_their_numbers() {
        let mut a = Archive::new();
        a.char_device("dev/console", 0o600, 5, 1);
        let mut out = Vec::new();
        a.finish(&mut out).unwrap();
        assert_eq!(field(&out, 1), S_IFCHR | 0o600);
        assert_eq!((field(&out, 9), field(&out, 10)), (5, 1));
    }
}
