//! Property: whatever mix of `..`, absolute paths, symlinks (relative,
//! absolute, climbing) and hard links an archive holds, unpacking it writes
//! nothing outside the destination. All symlink targets stay inside one
//! temporary folder, so a bug would show up there, never on the host.

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use strata_cache::{extract_archive, unpack_layer};

#[derive(Debug, Clone)]
enum Kind {
    File,
    Dir,
    Symlink(&'static str),
    Link(String),
}

#[derive(Debug, Clone)]
struct Entry {
    path: String,
    kind: Kind,
}

/// `ARENA` and `OUTSIDE` are replaced by absolute paths at run time.
const TARGETS: &[&str] = &[
    "..",
    "../..",
    "../../..",
    "ARENA",
    "OUTSIDE",
    "a",
    "l",
    "../outside",
    "l/..",
    ".",
];

/// Path components, weighted towards the symlink name `l` so that writes
/// through symlinks are tried often.
fn component() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => Just("l"),
        3 => Just("a"),
        1 => Just("b"),
        1 => Just(".."),
        1 => Just("."),
        1 => Just("outside"),
    ]
}

fn path() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(component(), 1..4))
        .prop_map(|(abs, parts)| format!("{}{}", if abs { "/" } else { "" }, parts.join("/")))
}

fn entry() -> impl Strategy<Value = Entry> {
    let kind = prop_oneof![
        Just(Kind::File),
        Just(Kind::Dir),
        prop::sample::select(TARGETS).prop_map(Kind::Symlink),
        path().prop_map(Kind::Link),
    ];
    (path(), kind).prop_map(|(path, kind)| Entry { path, kind })
}

fn set_raw(field: &mut [u8], value: &str) -> bool {
    if value.len() > field.len() {
        return false;
    }
    field.fill(0);
    field[..value.len()].copy_from_slice(value.as_bytes());
    true
}

fn build(entries: &[Entry], arena: &Path, outside: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (kind, link) = match &e.kind {
            Kind::File => (tar::EntryType::Regular, None),
            Kind::Dir => (tar::EntryType::Directory, None),
            Kind::Symlink(t) => (
                tar::EntryType::Symlink,
                Some(
                    t.replace("ARENA", &arena.to_string_lossy())
                        .replace("OUTSIDE", &outside.to_string_lossy()),
                ),
            ),
            Kind::Link(t) => (tar::EntryType::Link, Some(t.clone())),
        };
        h.set_entry_type(kind);
        if !set_raw(&mut h.as_old_mut().name, &e.path) {
            continue;
        }
        if let Some(link) = link
            && !set_raw(&mut h.as_old_mut().linkname, &link)
        {
            continue;
        }
        h.set_mode(if kind.is_dir() { 0o555 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let data: &[u8] = if kind.is_file() { b"payload" } else { b"" };
        h.set_size(data.len() as u64);
        h.set_cksum();
        if b.append(&h, data).is_err() {
            continue;
        }
    }
    b.into_inner().unwrap_or_default()
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn nothing_escapes_the_destination(entries in prop::collection::vec(entry(), 1..10), add in any::<bool>()) {
        let tmp = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        // tmp/w/arena/{dest,outside}: climbing symlinks stay inside tmp.
        let arena = tmp.path().join("w/arena");
        let (dest, outside) = (arena.join("dest"), arena.join("outside"));
        fs::create_dir_all(&dest).map_err(|e| TestCaseError::fail(e.to_string()))?;
        fs::create_dir_all(outside.join("a")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        fs::write(outside.join("secret"), "s").map_err(|e| TestCaseError::fail(e.to_string()))?;

        let tar = build(&entries, &arena, &outside);
        // Errors are fine (hostile entries are refused); escapes are not.
        if add {
            let _ = extract_archive(tar.as_slice(), &dest, None, u64::MAX);
        } else {
            let _ = unpack_layer(tar.as_slice(), &dest);
        }

        prop_assert_eq!(names(tmp.path()), ["w"]);
        prop_assert_eq!(names(&tmp.path().join("w")), ["arena"]);
        prop_assert_eq!(names(&arena), ["dest", "outside"]);
        prop_assert_eq!(names(&outside), ["a", "secret"]);
        prop_assert!(names(&outside.join("a")).is_empty());
        let secret = fs::read_to_string(outside.join("secret")).ok();
        prop_assert_eq!(secret.as_deref(), Some("s"));
    }
}
