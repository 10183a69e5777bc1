//! Executable ELF files, handed to the catalogers that read what compilers embed in them:
//! Go's build information and `cargo auditable`'s dependency list.

use super::{golang, rust};
use crate::package::Catalog;
use crate::scan::Scan;
use stagecraft_imagefs::elf;

pub(crate) fn catalog(scan: &Scan, out: &mut Catalog) {
    for file in scan.files() {
        if file.mode & 0o111 == 0 || file.size > elf::SIZE_LIMIT {
            continue;
        }
        let Ok(handle) = scan.open(&file.path) else {
            continue;
        };
        // Reads go through a cache of the ranges asked for: the headers, then the few
        // sections and segments the catalogers look at, never the whole file. Most
        // executables in an image are scripts; only ELF files are parsed.
        let Some(cache) = elf::lazy(handle) else {
            continue;
        };
        let elf = match object::File::parse(&cache) {
            Ok(elf) => elf,
            Err(err) => {
                out.notes
                    .push(format!("ELF file {} not read: {err}", file.path.display()));
                continue;
            }
        };
        golang::catalog_binary(&elf, file, out);
        rust::catalog_binary(&elf, file, out);
    }
}

#[cfg(test)]
pub(crate) mod test_elf {
    //! Minimal ELF executables for the tests: each section gets a read-write loadable segment
    //! at its address, which is all the catalogers look at.

    /// One section: name, virtual address, contents.
    pub(crate) struct Section<'a> {
        pub(crate) name: &'a str,
        pub(crate) address: u64,
        pub(crate) data: Vec<u8>,
    }

    /// A little-endian 64-bit x86-64 executable with `sections`.
    pub(crate) fn elf64(sections: &[Section<'_>]) -> Vec<u8> {
        const EHDR: usize = 64;
        const PHDR: usize = 56;
        const SHDR: usize = 64;
        let align = |n: usize, to: usize| n.div_ceil(to) * to;
        let count = sections.len();
        let mut offsets = Vec::new();
        let mut cursor = align(EHDR + count * PHDR, 16);
        for section in sections {
            offsets.push(cursor);
            cursor = align(cursor + section.data.len(), 16);
        }
        let mut names = vec![0u8];
        let mut name_offsets = Vec::new();
        for name in sections
            .iter()
            .map(|s| s.name)
            .chain(std::iter::once(".shstrtab"))
        {
            name_offsets.push(names.len() as u32);
            names.extend_from_slice(name.as_bytes());
            names.push(0);
        }
        let names_offset = cursor;
        let section_headers = align(names_offset + names.len(), 8);

        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        push16(&mut out, 2); // ET_EXEC
        push16(&mut out, 62); // EM_X86_64
        push32(&mut out, 1);
        push64(&mut out, 0); // entry
        push64(&mut out, EHDR as u64);
        push64(&mut out, section_headers as u64);
        push32(&mut out, 0);
        push16(&mut out, EHDR as u16);
        push16(&mut out, PHDR as u16);
        push16(&mut out, count as u16);
        push16(&mut out, SHDR as u16);
        push16(&mut out, count as u16 + 2);
        push16(&mut out, count as u16 + 1);
        for (section, offset) in sections.iter().zip(&offsets) {
            push32(&mut out, 1); // PT_LOAD
            push32(&mut out, 6); // PF_R | PF_W
            push64(&mut out, *offset as u64);
            push64(&mut out, section.address);
            push64(&mut out, section.address);
            push64(&mut out, section.data.len() as u64);
            push64(&mut out, section.data.len() as u64);
            push64(&mut out, 16);
        }
        for (section, offset) in sections.iter().zip(&offsets) {
            out.resize(*offset, 0);
            out.extend_from_slice(&section.data);
        }
        out.resize(names_offset, 0);
        out.extend_from_slice(&names);
        out.resize(section_headers, 0);
        out.extend_from_slice(&[0; SHDR]);
        for (i, (section, offset)) in sections.iter().zip(&offsets).enumerate() {
            header(
                &mut out,
                name_offsets[i],
                1, // SHT_PROGBITS
                3, // SHF_WRITE | SHF_ALLOC
                section.address,
                *offset,
                section.data.len(),
            );
        }
        header(
            &mut out,
            name_offsets[count],
            3,
            0,
            0,
            names_offset,
            names.len(),
        );
        out
    }

    fn header(
        out: &mut Vec<u8>,
        name: u32,
        kind: u32,
        flags: u64,
        address: u64,
        offset: usize,
        size: usize,
    ) {
        push32(out, name);
        push32(out, kind);
        push64(out, flags);
        push64(out, address);
        push64(out, offset as u64);
        push64(out, size as u64);
        push32(out, 0);
        push32(out, 0);
        push64(out, 1);
        push64(out, 0);
    }

    fn push16(out: &mut Vec<u8>, value: u16) {
        out.extend_from_slice(&value.to_le_bytes());
    }

    fn push32(out: &mut Vec<u8>, value: u32) {
        out.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn push64(out: &mut Vec<u8>, value: u64) {
        out.extend_from_slice(&value.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::test_elf::{Section, elf64};
    use crate::catalogers::fixture::Fixture;

    #[test]
    fn scripts_plain_files_and_broken_elf_files() {
        let fixture = Fixture::new();
        fixture
            .executable("usr/bin/script", "#!/bin/sh\necho hi\n")
            .executable(
                "usr/bin/truncated",
                b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02",
            )
            // Not executable: never opened, even though it is an ELF file.
            .file(
                "usr/lib/data.so",
                elf64(&[Section {
                    name: ".data",
                    address: 0x1000,
                    data: vec![0; 64],
                }]),
            );
        let catalog = fixture.catalog();
        assert!(catalog.packages.is_empty());
        assert_eq!(catalog.notes.len(), 1, "{:?}", catalog.notes);
        assert!(catalog.notes[0].starts_with("ELF file /usr/bin/truncated not read"));
    }
}
