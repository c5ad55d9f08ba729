//! ID lists from a directory (`--id-lists DIR`): one file per list, named as the list, one
//! unit id per line. They feed the front door's own `in_segment_list` conditions and are
//! served to server SDKs the way Statsig serves them: a manifest (`get_id_lists`) and one file
//! per list of `+<key>` lines, where a key is the first 8 characters of
//! base64(SHA-256(unit id)). SDKs fetch a file again, whole, when its `fileID` changes.
//!
//! Every door computes the same `fileID` (a digest of the file) and `creationTime` (the list
//! file's modification time) from the same list, so SDKs behind a load balancer see one
//! version whichever door answers (a file rewritten with unchanged members keeps its time on
//! the doors that saw it before, and costs core SDKs hopping between doors one download).
//! A file is served without a key, as Statsig's CDN serves them and as the Go SDK fetches
//! them: its 128-bit `fileID`, given only in the manifest (which needs a key), grants it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use ahash::AHashSet;
use bytes::Bytes;
use evaluator::IdLists;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// One list as SDKs download it.
#[derive(Debug)]
pub struct ListFile {
    /// Changes whenever the members change: 128 bits of the body's SHA-256, in hex.
    pub file_id: String,
    /// When these members were written (the list file's modification time, ms since the
    /// epoch, kept while the members do not change and moved forward when they do): SDKs
    /// ignore a manifest entry older than the file they hold.
    pub creation_time: u64,
    /// `+<key>\n` per member, keys sorted.
    pub body: Bytes,
}

/// Bytes per member in a list file: `+`, the 8-character key, `\n`.
const LINE: usize = 10;

/// Every list of one load: the files SDKs download and the evaluator's view of them.
#[derive(Debug, Default)]
pub struct IdListSet {
    /// List name → its file.
    pub files: BTreeMap<String, ListFile>,
    /// The same members, for the front door's own evaluation.
    pub lists: Arc<IdLists>,
}

impl IdListSet {
    /// Reads every list in `dir`: each regular file whose name does not start with `.` is a
    /// list of that name (write a new version under a dot-name, then rename it in place).
    /// Lines are trimmed; empty lines are skipped. A list whose members did not change since
    /// `previous` keeps its `fileID` and `creationTime`, so SDKs do not download it again.
    pub fn load(dir: &Path, previous: &IdListSet) -> Result<IdListSet, String> {
        let mut set = IdListSet::default();
        let mut lists = IdLists::default();
        for (name, path) in list_paths(dir)? {
            let io_error = |e: std::io::Error| format!("{}: {e}", path.display());
            let bytes = std::fs::read(&path).map_err(io_error)?;
            let modified = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .map_err(io_error)?;
            let text = std::str::from_utf8(&bytes)
                .map_err(|e| format!("{}: not UTF-8 text: {e}", path.display()))?;
            let keys: AHashSet<[u8; 8]> = text
                .lines()
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(evaluator::hash::id_list_key)
                .collect();
            let modified_ms = crate::rules::ms_since_epoch(modified);
            let file = ListFile::of(&keys, previous.files.get(&name), modified_ms);
            lists.insert_keys(&name, keys);
            set.files.insert(name, file);
        }
        set.lists = Arc::new(lists);
        Ok(set)
    }

    /// The `get_id_lists` manifest, file URLs under `base` (`scheme://host`).
    pub fn manifest(&self, base: &str) -> Value {
        let entries: Map<String, Value> = self
            .files
            .iter()
            .map(|(name, file)| {
                let entry = json!({
                    "name": name,
                    "size": file.body.len(),
                    "url": format!("{base}/v1/download_id_list_file/{}", file.file_id),
                    "creationTime": file.creation_time,
                    "fileID": file.file_id,
                });
                (name.clone(), entry)
            })
            .collect();
        Value::Object(entries)
    }

    /// The list file with this `fileID`.
    pub fn file(&self, file_id: &str) -> Option<&ListFile> {
        self.files.values().find(|f| f.file_id == file_id)
    }

    /// Members over all lists.
    pub fn members(&self) -> usize {
        self.files.values().map(|f| f.body.len() / LINE).sum()
    }
}

impl ListFile {
    fn of(keys: &AHashSet<[u8; 8]>, previous: Option<&ListFile>, modified_ms: u64) -> ListFile {
        let mut sorted: Vec<&[u8; 8]> = keys.iter().collect();
        sorted.sort_unstable();
        let mut body = Vec::with_capacity(sorted.len() * LINE);
        for key in sorted {
            body.push(b'+');
            body.extend_from_slice(key);
            body.push(b'\n');
        }
        let digest = Sha256::digest(&body);
        let file_id = crate::keys::hex(&digest[..16]);
        let creation_time = match previous {
            Some(p) if p.file_id == file_id => p.creation_time,
            // A file copied with an old time must still read as newer than what SDKs hold.
            Some(p) => modified_ms.max(p.creation_time + 1),
            None => modified_ms,
        };
        ListFile {
            file_id,
            creation_time,
            body: Bytes::from(body),
        }
    }
}

/// The list files in `dir`, by name.
fn list_paths(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            tracing::warn!(path = %entry.path().display(), "ID list file name is not UTF-8; skipped");
            continue;
        };
        if name.starts_with('.') || !entry.path().is_file() {
            continue;
        }
        paths.push((name, entry.path()));
    }
    paths.sort();
    Ok(paths)
}

/// What changes when a list file is written, renamed or removed.
pub fn dir_stamp(dir: &Path) -> Option<Vec<(String, SystemTime, u64)>> {
    let paths = list_paths(dir).ok()?;
    Some(
        paths
            .into_iter()
            .filter_map(|(name, path)| {
                let meta = std::fs::metadata(path).ok()?;
                Some((name, meta.modified().ok()?, meta.len()))
            })
            .collect(),
    )
}

/// What a `Range` header asks of a body.
#[derive(Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// All of it: no range, an unreadable one (which HTTP says to ignore), or an empty body
    /// (the core SDK fetches a new empty list from 0, and a refusal would fail its whole
    /// sync).
    Whole,
    /// Bytes `start..end`.
    Part(usize, usize),
    /// A range that starts past the end (416).
    Unsatisfiable,
}

impl ByteRange {
    /// Reads `Range: bytes=START-[END]` against a body of `len` bytes.
    pub fn of(header: Option<&str>, len: usize) -> ByteRange {
        let Some((start, end)) = header
            .and_then(|h| h.trim().strip_prefix("bytes="))
            .and_then(|spec| spec.split_once('-'))
        else {
            return ByteRange::Whole;
        };
        let Ok(start) = start.trim().parse::<usize>() else {
            return ByteRange::Whole;
        };
        let end = match end.trim() {
            "" => len,
            end => match end.parse::<usize>() {
                Ok(end) if end >= start => (end + 1).min(len),
                _ => return ByteRange::Whole,
            },
        };
        match len {
            0 => ByteRange::Whole,
            _ if start >= len => ByteRange::Unsatisfiable,
            _ => ByteRange::Part(start, end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of list files, removed when the returned guard drops.
    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-lists-")
            .tempdir()
            .unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn a_list_file_holds_sorted_unique_keys_of_trimmed_ids() {
        let guard = dir_with(&[("beta", "u2\n u1 \r\n\nu2\n"), (".beta.tmp", "x\n")]);
        let dir = guard.path();
        let set = IdListSet::load(dir, &IdListSet::default()).unwrap();
        assert_eq!(set.files.keys().collect::<Vec<_>>(), ["beta"]);
        let mut keys = [
            evaluator::hash::id_list_key("u1"),
            evaluator::hash::id_list_key("u2"),
        ];
        keys.sort();
        let expected: Vec<u8> = keys
            .iter()
            .flat_map(|k| [&b"+"[..], k, b"\n"].concat())
            .collect();
        assert_eq!(set.files["beta"].body, expected);
        assert_eq!(set.members(), 2);
        assert!(set.lists.contains("beta", "u1") && !set.lists.contains("beta", "u3"));
    }

    #[test]
    fn unchanged_members_keep_their_file_id_and_time_and_changed_ones_do_not() {
        let guard = dir_with(&[("a", "u1\nu2\n"), ("b", "u3\n")]);
        let dir = guard.path();
        let first = IdListSet::load(dir, &IdListSet::default()).unwrap();
        std::fs::write(dir.join("a"), "u2\nu1\n").unwrap();
        std::fs::write(dir.join("b"), "u3\nu4\n").unwrap();
        // Stamped a second later: a file's time may come from the kernel's coarse clock (a
        // 4 ms tick at HZ=250), so a rewrite soon after can carry the first version's time.
        let later = SystemTime::now() + std::time::Duration::from_secs(1);
        let b = std::fs::File::options().write(true).open(dir.join("b"));
        b.unwrap().set_modified(later).unwrap();
        let second = IdListSet::load(dir, &first).unwrap();
        assert_eq!(second.files["a"].file_id, first.files["a"].file_id);
        assert_eq!(
            second.files["a"].creation_time,
            first.files["a"].creation_time
        );
        assert_ne!(second.files["b"].file_id, first.files["b"].file_id);
        assert!(second.files["b"].creation_time > first.files["b"].creation_time);
        // A door started now serves the same versions (for `a`, rewritten with the same
        // members, the same file at a later time: core SDKs would fetch it once more).
        let other_door = IdListSet::load(dir, &IdListSet::default()).unwrap();
        let (ours, theirs) = (&second.files["b"], &other_door.files["b"]);
        assert_eq!(
            (&ours.file_id, ours.creation_time),
            (&theirs.file_id, theirs.creation_time)
        );
        assert_eq!(other_door.files["a"].file_id, second.files["a"].file_id);
        // New members written with an old time still read as newer.
        std::fs::write(dir.join("b"), "u5\n").unwrap();
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(dir.join("b"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let third = IdListSet::load(dir, &second).unwrap();
        assert_eq!(
            third.files["b"].creation_time,
            second.files["b"].creation_time + 1
        );
        let manifest = second.manifest("http://h:1");
        let b = &second.files["b"];
        assert_eq!(
            manifest["b"],
            json!({"name": "b", "size": b.body.len(), "fileID": b.file_id,
                   "creationTime": b.creation_time,
                   "url": format!("http://h:1/v1/download_id_list_file/{}", b.file_id)})
        );
        assert!(std::ptr::eq(second.file(&b.file_id).unwrap(), b));
    }

    #[test]
    fn bad_input_names_the_file() {
        let guard = dir_with(&[("bin", "")]);
        let dir = guard.path();
        std::fs::write(dir.join("bin"), [0xff, 0xfe]).unwrap();
        let error = IdListSet::load(dir, &IdListSet::default()).unwrap_err();
        assert!(error.contains("bin") && error.contains("UTF-8"), "{error}");
        let missing = IdListSet::load(&dir.join("nope"), &IdListSet::default());
        assert!(missing.unwrap_err().contains("nope"));
    }

    #[test]
    fn byte_ranges() {
        use ByteRange::*;
        assert_eq!(ByteRange::of(None, 10), Whole);
        assert_eq!(ByteRange::of(Some("bytes=0-"), 10), Part(0, 10));
        assert_eq!(ByteRange::of(Some("bytes=4-"), 10), Part(4, 10));
        assert_eq!(ByteRange::of(Some("bytes=2-5"), 10), Part(2, 6));
        assert_eq!(ByteRange::of(Some("bytes=2-50"), 10), Part(2, 10));
        assert_eq!(ByteRange::of(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(ByteRange::of(Some("bytes=0-"), 0), Whole);
        for ignored in ["items=0-", "bytes=x-", "bytes=5-2", "bytes=-5", "bytes=1"] {
            assert_eq!(ByteRange::of(Some(ignored), 10), Whole, "{ignored}");
        }
        // Whatever is asked, a part lies inside the body and is never empty.
        for len in 0..12 {
            for start in 0..14 {
                for end in 0..14 {
                    for header in [format!("bytes={start}-"), format!("bytes={start}-{end}")] {
                        match ByteRange::of(Some(&header), len) {
                            Part(s, e) => assert!(s == start && s < e && e <= len, "{header}"),
                            Unsatisfiable => assert!(len > 0 && start >= len, "{header}"),
                            Whole => {}
                        }
                    }
                }
            }
        }
    }
}
