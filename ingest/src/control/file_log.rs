//! The single-node control log: one JSON [`Change`] per line in `<dir>/changes.jsonl`,
//! fsynced before the API answers. Chosen over an embedded database because the state is
//! small, written rarely, and already a log of changes: the same records the Kafka topic
//! carries, so both stores share one format and one replay path.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::state::Change;

/// The open log file.
#[derive(Debug)]
pub struct FileLog {
    file: File,
    path: PathBuf,
}

impl FileLog {
    /// Opens (or creates) the log under `dir` and returns it with every change it holds.
    /// A torn last line (a crash during a write, never acknowledged) is cut off; any other
    /// unreadable line is an error, so a damaged log is never half-applied.
    pub fn open(dir: &Path) -> Result<(FileLog, Vec<Change>), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join("changes.jsonl");
        let text = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut changes = Vec::new();
        for (n, line) in text[..complete].split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let change = serde_json::from_slice(line)
                .map_err(|e| format!("{} line {}: {e}", path.display(), n + 1))?;
            changes.push(change);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if complete < text.len() {
            tracing::warn!(
                bytes = text.len() - complete,
                "cutting a torn last line off the control log"
            );
            file.set_len(complete as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        if let Some(parent) = path.parent() {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        Ok((FileLog { file, path }, changes))
    }

    /// Appends one change and waits until it is on disk.
    pub fn append(&mut self, change: &Change) -> Result<(), String> {
        let mut line = serde_json::to_vec(change).map_err(|e| e.to_string())?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::{Kind, CHANGE_SCHEMA_VERSION};
    use super::*;

    fn change(id: &str) -> Change {
        Change {
            v: CHANGE_SCHEMA_VERSION,
            write_id: id.into(),
            kind: Kind::Gate,
            name: "g".into(),
            base: 0,
            doc: Some(serde_json::json!({"name": "g"})),
            actor: "k".into(),
            at_ms: 1,
            action: "create".into(),
            restate: false,
        }
    }

    #[test]
    fn replays_and_cuts_a_torn_tail() {
        let dir = std::env::temp_dir().join(format!("gatehouse-log-{}", uuid::Uuid::new_v4()));
        let (mut log, old) = FileLog::open(&dir).unwrap();
        assert!(old.is_empty());
        log.append(&change("a")).unwrap();
        log.append(&change("b")).unwrap();
        drop(log);
        let path = dir.join("changes.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"v":1,"write_id":"c","ki"#).unwrap();
        drop(f);

        let (mut log, replayed) = FileLog::open(&dir).unwrap();
        assert_eq!(replayed, vec![change("a"), change("b")]);
        log.append(&change("d")).unwrap();
        let (_, replayed) = FileLog::open(&dir).unwrap();
        assert_eq!(replayed.len(), 3);
        assert_eq!(replayed[2].write_id, "d");

        std::fs::write(&path, b"not json\n").unwrap();
        assert!(FileLog::open(&dir).unwrap_err().contains("line 1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
