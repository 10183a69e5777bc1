//! ELF files of an image, read lazily: only the ranges the headers point to are read, never a
//! whole binary.
//!
//! [`lazy`] tells ELF files from everything else (scripts, data) by their magic; [`dynamic`]
//! reads what the dynamic loader reads of one: the program interpreter (`PT_INTERP`) and the
//! dynamic section's `DT_NEEDED`, `DT_RPATH` and `DT_RUNPATH`. It goes through the program
//! headers, as the loader does, so it works on binaries without section headers, and it
//! never parses the symbol tables (tens of megabytes in an unstripped binary).

use object::elf::{self, FileHeader32, FileHeader64};
use object::read::StringTable;
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::read::{ReadCache, ReadCacheOps};
use object::{Endianness, FileKind};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Files larger than this are not read as ELF: nothing legitimate is near it, and a hostile
/// image must not make a reader allocate for it.
pub const SIZE_LIMIT: u64 = 512 << 20;

/// A file read lazily: the byte ranges asked for are read and kept.
pub type Lazy = ReadCache<PositionedFile>;

/// A file [`ReadCache`] reads with `pread`: it reads a range by seeking and reading, two
/// system calls per range through a plain `File`, where here the seek only moves a cursor
/// (an image's catalog reads a few ranges of each of thousands of executables).
#[derive(Debug)]
pub struct PositionedFile {
    file: File,
    position: u64,
}

impl ReadCacheOps for PositionedFile {
    fn len(&mut self) -> Result<u64, ()> {
        self.file.metadata().map(|m| m.len()).map_err(drop)
    }

    fn seek(&mut self, position: u64) -> Result<u64, ()> {
        self.position = position;
        Ok(position)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ()> {
        let read = self.file.read_at(buf, self.position).map_err(drop)?;
        self.position += read as u64;
        Ok(read)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ()> {
        self.file.read_exact_at(buf, self.position).map_err(drop)?;
        self.position += buf.len() as u64;
        Ok(())
    }
}

/// `file` ready to be read lazily, when it starts with the ELF magic; `None` for anything
/// else (only its first bytes are read to tell).
pub fn lazy(file: File) -> Option<Lazy> {
    let cache = ReadCache::new(PositionedFile { file, position: 0 });
    matches!(
        FileKind::parse(&cache),
        Ok(FileKind::Elf32 | FileKind::Elf64)
    )
    .then_some(cache)
}

/// What the dynamic loader needs of an ELF object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dynamic {
    /// `e_type`: [`elf::ET_EXEC`], [`elf::ET_DYN`] (a shared object or a position-independent
    /// executable), …
    pub file_type: u16,
    /// `e_machine` ([`elf::EM_X86_64`], [`elf::EM_AARCH64`], …).
    pub machine: u16,
    /// A 64-bit object.
    pub is_64: bool,
    /// `PT_INTERP`: the program interpreter (the dynamic loader) an executable names.
    pub interpreter: Option<String>,
    /// `DT_NEEDED`: the libraries it needs, by name, in order.
    pub needed: Vec<String>,
    /// `DT_RPATH`, split at `:`: searched first, also for the libraries those libraries need
    /// (unless the object has a `DT_RUNPATH`, which makes the loader ignore it).
    pub rpath: Vec<String>,
    /// `DT_RUNPATH`, split at `:`: searched after `LD_LIBRARY_PATH`, for this object's own
    /// needs only.
    pub runpath: Vec<String>,
}

impl Dynamic {
    /// Whether the loader ever loads it: an executable or a shared object, not a relocatable
    /// object (`.o`, a kernel module) or a core dump.
    pub fn is_loadable(&self) -> bool {
        matches!(elf::FileType(self.file_type), elf::ET_EXEC | elf::ET_DYN)
    }

    /// Whether it is linked statically: no interpreter and nothing needed.
    pub fn is_static(&self) -> bool {
        self.interpreter.is_none() && self.needed.is_empty()
    }
}

/// Why an ELF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// It is another kind of object file.
    #[error("not an ELF file")]
    NotElf,
    /// Its headers are damaged or cut off.
    #[error("{0}")]
    Headers(#[from] object::read::Error),
    /// `DT_STRTAB` points at no byte of the file.
    #[error("its dynamic string table is outside the loaded segments")]
    StringTable,
    /// A `DT_NEEDED`, `DT_RPATH` or `DT_RUNPATH` entry names no string of the table.
    #[error("a dynamic entry names no string")]
    MissingString,
}

/// Reads the loader's view of the ELF object in `data`. `Err` when it is not ELF or its
/// headers are damaged (pointing outside the file, no string table for its dynamic section).
pub fn dynamic(data: &Lazy) -> Result<Dynamic, ElfError> {
    match FileKind::parse(data)? {
        FileKind::Elf32 => dynamic_of::<FileHeader32<Endianness>>(data),
        FileKind::Elf64 => dynamic_of::<FileHeader64<Endianness>>(data),
        _ => Err(ElfError::NotElf),
    }
}

fn dynamic_of<Elf: FileHeader<Endian = Endianness>>(data: &Lazy) -> Result<Dynamic, ElfError> {
    let header = Elf::parse(data)?;
    let endian = header.endian()?;
    let segments = header.program_headers(endian, data)?;
    let mut out = Dynamic {
        file_type: header.e_type(endian).0,
        machine: header.e_machine(endian).0,
        is_64: header.is_class_64(),
        ..Dynamic::default()
    };
    let mut entries: &[Elf::Dyn] = &[];
    for segment in segments {
        if let Some(interpreter) = segment.interpreter(endian, data)? {
            out.interpreter = Some(String::from_utf8_lossy(interpreter).into_owned());
        }
        if let Some(dynamic) = segment.dynamic(endian, data)? {
            entries = dynamic;
        }
    }
    // The loader stops at the first DT_NULL; what follows is padding.
    let entries = entries
        .iter()
        .take_while(|entry| entry.tag(endian) != elf::DT_NULL);
    let (mut table, mut table_size) = (None, None);
    for entry in entries.clone() {
        match entry.tag(endian) {
            elf::DT_STRTAB => table = Some(entry.val(endian)),
            elf::DT_STRSZ => table_size = Some(entry.val(endian)),
            _ => {}
        }
    }
    let strings = match (table, table_size) {
        (Some(address), Some(size)) => {
            let start = file_offset(segments, endian, address).ok_or(ElfError::StringTable)?;
            Some(StringTable::new(data, start, start.saturating_add(size)))
        }
        _ => None,
    };
    for entry in entries {
        let tag = entry.tag(endian);
        if !matches!(tag, elf::DT_NEEDED | elf::DT_RPATH | elf::DT_RUNPATH) {
            continue;
        }
        let text = strings
            .as_ref()
            .and_then(|strings| {
                let offset = u32::try_from(entry.val(endian)).ok()?;
                strings.get(offset).ok()
            })
            .ok_or(ElfError::MissingString)?;
        let text = String::from_utf8_lossy(text).into_owned();
        let paths = || text.split(':').map(str::to_owned).collect::<Vec<_>>();
        match tag {
            elf::DT_NEEDED => out.needed.push(text.clone()),
            elf::DT_RPATH => out.rpath.extend(paths()),
            _ => out.runpath.extend(paths()),
        }
    }
    Ok(out)
}

/// Where in the file the loaded byte at virtual `address` comes from: inside the file part of
/// a `PT_LOAD` segment.
fn file_offset<H: ProgramHeader<Endian = Endianness>>(
    segments: &[H],
    endian: Endianness,
    address: u64,
) -> Option<u64> {
    segments.iter().find_map(|segment| {
        if segment.p_type(endian) != elf::PT_LOAD {
            return None;
        }
        let within = address.checked_sub(segment.p_vaddr(endian).into())?;
        let offset: u64 = segment.p_offset(endian).into();
        (within < segment.p_filesz(endian).into()).then_some(offset + within)
    })
}

/// ELF objects for tests (the `test-support` feature): the smallest files the loader's view
/// can be read from.
#[cfg(any(test, feature = "test-support"))]
pub mod testing {
    use object::elf;

    /// One entry of the dynamic section.
    #[derive(Debug, Clone, Copy)]
    pub enum Entry<'a> {
        /// `DT_NEEDED`.
        Needed(&'a str),
        /// `DT_RPATH`.
        Rpath(&'a str),
        /// `DT_RUNPATH`.
        Runpath(&'a str),
    }

    /// A little-endian x86-64 `ET_DYN` object (a shared library, or a position-independent
    /// program when it has an interpreter): `PT_INTERP` (when given), one `PT_LOAD` of the
    /// whole file at address 0x1000, and `PT_DYNAMIC` with `entries`, whose strings are in a
    /// table after them. No section headers, as after `sstrip`.
    pub fn elf64(interpreter: Option<&str>, entries: &[Entry<'_>]) -> Vec<u8> {
        const EHDR: u64 = 64;
        const PHDR: u64 = 56;
        const BASE: u64 = 0x1000;
        let phnum: u64 = 2 + u64::from(interpreter.is_some());
        let interp_at = EHDR + phnum * PHDR;
        let interp = interpreter.map(|i| format!("{i}\0")).unwrap_or_default();
        let mut strings = vec![0u8];
        let mut dynamic = Vec::new();
        for entry in entries {
            let (tag, text) = match entry {
                Entry::Needed(text) => (elf::DT_NEEDED, text),
                Entry::Rpath(text) => (elf::DT_RPATH, text),
                Entry::Runpath(text) => (elf::DT_RUNPATH, text),
            };
            dynamic.push((tag.0 as u64, strings.len() as u64));
            strings.extend_from_slice(text.as_bytes());
            strings.push(0);
        }
        let dynamic_at = (interp_at + interp.len() as u64).next_multiple_of(8);
        let strings_at = dynamic_at + (dynamic.len() as u64 + 3) * 16;
        dynamic.push((elf::DT_STRTAB.0 as u64, BASE + strings_at));
        dynamic.push((elf::DT_STRSZ.0 as u64, strings.len() as u64));
        dynamic.push((0, 0));
        let total = strings_at + strings.len() as u64;

        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        out.extend_from_slice(&3u16.to_le_bytes()); // ET_DYN
        out.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&EHDR.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // no section headers
        out.extend_from_slice(&0u32.to_le_bytes());
        for half in [EHDR as u16, PHDR as u16, phnum as u16, 64, 0, 0] {
            out.extend_from_slice(&half.to_le_bytes());
        }
        let mut segment = |kind: u32, offset: u64, size: u64| {
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&4u32.to_le_bytes());
            for value in [offset, BASE + offset, BASE + offset, size, size, 8] {
                out.extend_from_slice(&value.to_le_bytes());
            }
        };
        if interpreter.is_some() {
            segment(3, interp_at, interp.len() as u64);
        }
        segment(1, 0, total);
        segment(2, dynamic_at, (dynamic.len() * 16) as u64);
        out.extend_from_slice(interp.as_bytes());
        out.resize(dynamic_at as usize, 0);
        for (tag, value) in dynamic {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&strings);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Entry, elf64};
    use super::*;
    use std::io::Write;

    fn read(bytes: &[u8]) -> Option<Result<Dynamic, ElfError>> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        lazy(file).map(|data| dynamic(&data))
    }

    #[test]
    fn reads_the_loaders_view_without_section_headers() {
        let bytes = elf64(
            Some("/lib64/ld-linux-x86-64.so.2"),
            &[
                Entry::Needed("libssl.so.3"),
                Entry::Needed("libc.so.6"),
                Entry::Runpath("$ORIGIN/../lib:/opt/lib"),
            ],
        );
        let dynamic = read(&bytes).unwrap().unwrap();
        assert_eq!(
            dynamic.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(dynamic.needed, ["libssl.so.3", "libc.so.6"]);
        assert_eq!(dynamic.runpath, ["$ORIGIN/../lib", "/opt/lib"]);
        assert!(dynamic.rpath.is_empty());
        assert_eq!(
            (dynamic.file_type, dynamic.machine, dynamic.is_64),
            (3, 62, true)
        );
        assert!(!dynamic.is_static() && dynamic.is_loadable());
    }

    #[test]
    fn static_objects_and_other_files() {
        let dynamic = read(&elf64(None, &[])).unwrap().unwrap();
        assert!(dynamic.is_static());
        assert!(read(b"#!/bin/sh\necho hi\n").is_none());
        assert!(read(b"").is_none());
        // The magic alone, headers cut off: an ELF file that cannot be read.
        assert!(
            read(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0")
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn reads_a_real_dynamically_linked_program() {
        // The test binary itself: dynamically linked on every platform the tests run on.
        let me = File::open(std::env::current_exe().unwrap()).unwrap();
        let dynamic = dynamic(&lazy(me).unwrap()).unwrap();
        assert!(dynamic.interpreter.is_some(), "{dynamic:?}");
        assert!(
            dynamic.needed.iter().any(|n| n.starts_with("libc.")),
            "{dynamic:?}"
        );
    }
}
