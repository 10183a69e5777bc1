//! Go binaries: the build information the Go linker embeds (what `go version -m` prints).
//!
//! The linker writes a 32-byte header starting `\xff Go buildinf:` at a 16-byte boundary at
//! the start of the `.go.buildinfo` section (or, in binaries without section headers, of the
//! first writable non-executable segment). Byte 14 is the pointer size, byte 15 flags: with
//! bit 2 set (Go ≥ 1.18) the Go version and the module information follow the header as
//! varint-length-prefixed strings; without it (older Go) the header holds two pointers to Go
//! string headers (data pointer, length), in the byte order bit 1 of the flags gives.
//!
//! The module information is lines of tab-separated fields: `path` (the main package),
//! `mod` (the main module), `dep` (a dependency), `=>` (a replacement of the line before),
//! `build` (settings); `cmd/go` wraps it in 16 bytes of marker on each side.

use crate::fs::FileEntry;
use crate::package::{Catalog, Ecosystem, Package};
use crate::purl::Purl;
use object::{Endianness, Object, ObjectSection, ObjectSegment, ReadRef};

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER: usize = 32;
const ALIGN: usize = 16;
/// How far from the data start the header is looked for (as the Go toolchain does).
const SEARCH: u64 = 64 << 10;
/// No version or module list is near this long; a bigger length is a corrupt pointer.
const STRING_LIMIT: u64 = 16 << 20;
const FLAG_BIG_ENDIAN: u8 = 1;
const FLAG_INLINE_STRINGS: u8 = 2;

pub(crate) fn catalog_binary<'data, R: ReadRef<'data>>(
    elf: &object::File<'data, R>,
    file: &FileEntry,
    out: &mut Catalog,
) {
    let Some((go_version, modinfo)) = build_info(elf) else {
        return;
    };
    let package = |name: &str, version: &str, purl: Purl| Package {
        ecosystem: Ecosystem::Go,
        name: name.to_owned(),
        version: version.to_owned(),
        purl: purl.to_string(),
        licenses: Vec::new(),
        location: file.path.clone(),
        layer: file.layer,
    };
    // `go1.22.1`, or `go1.22.1 X:boringcrypto` with experiments.
    let go_version = go_version.split_whitespace().next().unwrap_or_default();
    out.packages.push(package(
        "stdlib",
        go_version,
        Purl::new(
            "golang",
            "stdlib",
            go_version.strip_prefix("go").unwrap_or(go_version),
        ),
    ));
    for module in modules(&modinfo) {
        let (namespace, name) = module.path.rsplit_once('/').unwrap_or(("", &module.path));
        let purl = Purl::new("golang", name, &module.version).namespace(namespace);
        out.packages
            .push(package(&module.path, &module.version, purl));
    }
}

/// The Go version and module information of a Go binary; `None` for any other.
fn build_info<'data, R: ReadRef<'data>>(elf: &object::File<'data, R>) -> Option<(String, String)> {
    let start = match elf.section_by_name(".go.buildinfo") {
        Some(section) => section.address(),
        None => elf
            .segments()
            .find(|segment| {
                let permissions = object::ObjectSegment::permissions(segment);
                permissions.writable() && !permissions.executable()
            })
            .map(|segment| object::ObjectSegment::address(&segment))?,
    };
    let data = read_memory(elf, start, SEARCH)?;
    let at = (0..data.len())
        .step_by(ALIGN)
        .find(|&at| data[at..].starts_with(MAGIC) && data.len() - at >= HEADER)?;
    let header = &data[at..at + HEADER];
    let header_address = start + at as u64;
    let pointer_size = usize::from(header[14]);
    let flags = header[15];
    let (version, modinfo) = if flags & FLAG_INLINE_STRINGS != 0 {
        let (version, next) = inline_string(elf, header_address + HEADER as u64)?;
        let (modinfo, _) = inline_string(elf, next)?;
        (version, modinfo)
    } else {
        if pointer_size != 4 && pointer_size != 8 {
            return None;
        }
        let endian = if flags & FLAG_BIG_ENDIAN != 0 {
            Endianness::Big
        } else {
            Endianness::Little
        };
        let pointer = |bytes: &[u8]| read_pointer(bytes, pointer_size, endian);
        let version = go_string(elf, pointer(&header[16..])?, pointer_size, endian)?;
        let modinfo = go_string(
            elf,
            pointer(&header[16 + pointer_size..])?,
            pointer_size,
            endian,
        )?;
        (version, modinfo)
    };
    if version.is_empty() {
        return None;
    }
    let modinfo = strip_markers(&modinfo).unwrap_or_default();
    Some((
        String::from_utf8_lossy(&version).into_owned(),
        String::from_utf8_lossy(modinfo).into_owned(),
    ))
}

/// A varint-length-prefixed string at `address`, and the address after it.
fn inline_string<'data, R: ReadRef<'data>>(
    elf: &object::File<'data, R>,
    address: u64,
) -> Option<(Vec<u8>, u64)> {
    let prefix = read_memory(elf, address, 10)?;
    let (length, used) = uvarint(prefix)?;
    if length > STRING_LIMIT {
        return None;
    }
    let start = address + used as u64;
    let bytes = read_exact(elf, start, length)?;
    Some((bytes.to_vec(), start + length))
}

/// The bytes of the Go string whose header (data pointer, length) is at `address`.
fn go_string<'data, R: ReadRef<'data>>(
    elf: &object::File<'data, R>,
    address: u64,
    pointer_size: usize,
    endian: Endianness,
) -> Option<Vec<u8>> {
    let header = read_exact(elf, address, 2 * pointer_size as u64)?;
    let data = read_pointer(header, pointer_size, endian)?;
    let length = read_pointer(&header[pointer_size..], pointer_size, endian)?;
    if length > STRING_LIMIT {
        return None;
    }
    Some(read_exact(elf, data, length)?.to_vec())
}

fn read_exact<'data, R: ReadRef<'data>>(
    elf: &object::File<'data, R>,
    address: u64,
    size: u64,
) -> Option<&'data [u8]> {
    if size == 0 {
        return Some(&[]);
    }
    read_memory(elf, address, size).filter(|bytes| bytes.len() as u64 == size)
}

fn read_pointer(bytes: &[u8], size: usize, endian: Endianness) -> Option<u64> {
    let bytes = bytes.get(..size)?;
    Some(match (size, endian) {
        (4, Endianness::Little) => u64::from(u32::from_le_bytes(bytes.try_into().ok()?)),
        (4, Endianness::Big) => u64::from(u32::from_be_bytes(bytes.try_into().ok()?)),
        (8, Endianness::Little) => u64::from_le_bytes(bytes.try_into().ok()?),
        (8, Endianness::Big) => u64::from_be_bytes(bytes.try_into().ok()?),
        _ => return None,
    })
}

/// An unsigned LEB128 varint (Go's `binary.Uvarint`) and the bytes it took.
fn uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The module information without `cmd/go`'s 16-byte markers; `None` when they are not
/// there (a binary built outside module mode has none).
fn strip_markers(modinfo: &[u8]) -> Option<&[u8]> {
    let len = modinfo.len();
    (len >= 33 && modinfo[len - 17] == b'\n').then(|| &modinfo[16..len - 16])
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Module {
    path: String,
    version: String,
}

/// A replacement by a directory (`=> ../fork`) rather than a module.
fn is_local_path(path: &str) -> bool {
    path.starts_with("./") || path.starts_with("../") || path.starts_with('/')
}

/// The main module and the dependencies, replacements applied: a replaced module is the
/// replacement, except that a directory replacing it keeps the module's path (a directory
/// is no package name) with the version Go gives the directory, `(devel)`.
fn modules(modinfo: &str) -> Vec<Module> {
    let mut modules: Vec<Module> = Vec::new();
    for line in modinfo.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["mod" | "dep", path, version, ..] => modules.push(Module {
                path: (*path).to_owned(),
                version: (*version).to_owned(),
            }),
            ["mod" | "dep", path] => modules.push(Module {
                path: (*path).to_owned(),
                version: String::new(),
            }),
            ["=>", path, rest @ ..] => {
                let Some(replaced) = modules.last_mut() else {
                    continue;
                };
                if !is_local_path(path) {
                    replaced.path = (*path).to_owned();
                }
                replaced.version = rest.first().copied().unwrap_or_default().to_owned();
            }
            _ => {}
        }
    }
    modules
}

/// Up to `size` bytes of the loaded image at virtual `address` (less when its segment ends
/// sooner): what a pointer inside the program points to.
fn read_memory<'data, R: ReadRef<'data>>(
    elf: &object::File<'data, R>,
    address: u64,
    size: u64,
) -> Option<&'data [u8]> {
    elf.segments().find_map(|segment| {
        let offset = address.checked_sub(segment.address())?;
        let (_, file_size) = segment.file_range();
        let available = file_size.checked_sub(offset).filter(|n| *n > 0)?;
        segment
            .data_range(address, available.min(size))
            .ok()
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogers::binary::test_elf::{Section, elf64, push64};
    use crate::catalogers::fixture::{Fixture, row};

    const MODINFO: &str = "path\texample.com/app/cmd/server\n\
        mod\texample.com/app\t(devel)\t\n\
        dep\tgolang.org/x/text\tv0.14.0\th1:abc=\n\
        dep\texample.com/forked\tv1.0.0\th1:def=\n\
        =>\texample.com/fork\tv1.0.1-fix\th1:ghi=\n\
        dep\texample.com/local\tv0.0.0\n\
        =>\t../local\t(devel)\t\n\
        dep\texample.com/unversioned\tv0.1.0\n\
        =>\t/abs/dir\n\
        build\t-compiler=gc\n\
        build\tGOOS=linux\n";

    /// `cmd/go`'s markers around the module information.
    fn wrapped(modinfo: &str) -> Vec<u8> {
        [b"0123456789abcdef", modinfo.as_bytes(), b"fedcba9876543210"].concat()
    }

    fn varint(mut n: usize, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    /// The Go ≥ 1.18 layout: strings right after the header.
    fn inline_blob(version: &str, modinfo: &[u8]) -> Vec<u8> {
        let mut blob = MAGIC.to_vec();
        blob.extend([8, FLAG_INLINE_STRINGS]);
        blob.resize(HEADER, 0);
        for string in [version.as_bytes(), modinfo] {
            varint(string.len(), &mut blob);
            blob.extend_from_slice(string);
        }
        blob
    }

    fn expected_rows() -> Vec<(String, String, String)> {
        vec![
            row(
                "example.com/app",
                "(devel)",
                "pkg:golang/example.com/app@%28devel%29",
            ),
            row(
                "example.com/fork",
                "v1.0.1-fix",
                "pkg:golang/example.com/fork@v1.0.1-fix",
            ),
            row(
                "example.com/local",
                "(devel)",
                "pkg:golang/example.com/local@%28devel%29",
            ),
            row(
                "example.com/unversioned",
                "",
                "pkg:golang/example.com/unversioned",
            ),
            row(
                "golang.org/x/text",
                "v0.14.0",
                "pkg:golang/golang.org/x/text@v0.14.0",
            ),
            row("stdlib", "go1.22.5", "pkg:golang/stdlib@1.22.5"),
        ]
    }

    #[test]
    fn inline_build_info_in_its_section() {
        let mut fixture = Fixture::new();
        let binary = elf64(&[Section {
            name: ".go.buildinfo",
            address: 0x4000,
            data: inline_blob("go1.22.5 X:loopvar", &wrapped(MODINFO)),
        }]);
        fixture.executable("usr/local/bin/server", binary);
        fixture.layer("/usr/local", 3);
        assert_eq!(fixture.found(Ecosystem::Go), expected_rows());
        let catalog = fixture.catalog();
        assert!(catalog.packages.iter().all(|p| p.layer == Some(3)));
    }

    #[test]
    fn header_found_in_the_first_writable_segment_at_an_aligned_offset() {
        let fixture = Fixture::new();
        // The magic at an unaligned offset is not the header; the aligned copy is.
        let mut data = vec![0u8; 5];
        data.extend_from_slice(MAGIC);
        data.resize(48, 0);
        data.extend(inline_blob("go1.22.5", &wrapped(MODINFO)));
        let binary = elf64(&[Section {
            name: ".noptrdata",
            address: 0x8000,
            data,
        }]);
        fixture.executable("app", binary);
        assert_eq!(fixture.found(Ecosystem::Go), expected_rows());
    }

    #[test]
    fn pointer_format_of_older_go() {
        let fixture = Fixture::new();
        let strings_at = 0x9000u64;
        let version = b"go1.22.5";
        let modinfo = wrapped(MODINFO);
        // Two string headers (pointer, length), then the bytes they point to.
        let mut strings = Vec::new();
        let version_at = strings_at + 32;
        let modinfo_at = version_at + version.len() as u64;
        for (at, len) in [(version_at, version.len()), (modinfo_at, modinfo.len())] {
            push64(&mut strings, at);
            push64(&mut strings, len as u64);
        }
        strings.extend_from_slice(version);
        strings.extend_from_slice(&modinfo);
        let mut header = MAGIC.to_vec();
        header.extend([8, 0]);
        push64(&mut header, strings_at);
        push64(&mut header, strings_at + 16);
        let binary = elf64(&[
            Section {
                name: ".go.buildinfo",
                address: 0x4000,
                data: header,
            },
            Section {
                name: ".rodata",
                address: strings_at,
                data: strings,
            },
        ]);
        fixture.executable("bin/old", binary);
        assert_eq!(fixture.found(Ecosystem::Go), expected_rows());
    }

    #[test]
    fn without_module_information_only_the_standard_library() {
        let fixture = Fixture::new();
        let binary = elf64(&[Section {
            name: ".go.buildinfo",
            address: 0x4000,
            data: inline_blob("go1.16", b""),
        }]);
        fixture.executable("bin/gopath-built", binary);
        assert_eq!(
            fixture.found(Ecosystem::Go),
            vec![row("stdlib", "go1.16", "pkg:golang/stdlib@1.16")]
        );
    }

    #[test]
    fn corrupt_lengths_and_pointers_are_not_followed() {
        let fixture = Fixture::new();
        let mut blob = MAGIC.to_vec();
        blob.extend([8, FLAG_INLINE_STRINGS]);
        blob.resize(HEADER, 0);
        varint(1 << 40, &mut blob);
        let mut old = MAGIC.to_vec();
        old.extend([8, 0]);
        push64(&mut old, 0xdead_0000);
        push64(&mut old, 0xdead_0010);
        for (name, data) in [("a", blob), ("b", old)] {
            fixture.executable(
                name,
                elf64(&[Section {
                    name: ".go.buildinfo",
                    address: 0x4000,
                    data,
                }]),
            );
        }
        assert!(fixture.catalog().packages.is_empty());
    }
}
