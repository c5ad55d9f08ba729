//! Where files live under the sink's root, and what their names say.
//!
//! ```text
//! <root>/<table>/dt=YYYY-MM-DD/hour=HH/<topic>-<partition>-<first offset>-<last offset>.parquet
//! <root>/_inprogress/<topic>-<partition>-<table>-<hour>-<first offset>.tmp
//! ```
//!
//! A published file's name states the Kafka partition and the offset range it covers; with
//! the file's contents (one hour of one table) that is everything recovery needs, so the
//! data on disk, not the consumer group's commit, decides where a restarted sink resumes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Datelike, Timelike};

use crate::table::Table;

/// Milliseconds in an hour.
const HOUR_MS: i64 = 3_600_000;

/// One UTC hour (hours since the Unix epoch): the Hive partition `dt=…/hour=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hour(pub i64);

impl Hour {
    /// The hour a time in ms falls in.
    pub fn of_ms(ms: i64) -> Hour {
        Hour(ms.div_euclid(HOUR_MS))
    }

    /// The first ms of the hour.
    pub fn start_ms(self) -> i64 {
        self.0 * HOUR_MS
    }

    /// `dt=YYYY-MM-DD/hour=HH`.
    pub fn dir(self) -> String {
        match DateTime::from_timestamp_millis(self.start_ms()) {
            Some(t) => format!(
                "dt={:04}-{:02}-{:02}/hour={:02}",
                t.year(),
                t.month(),
                t.day(),
                t.hour()
            ),
            None => "dt=invalid/hour=00".into(),
        }
    }
}

/// What a published file's name says about its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    /// Kafka topic.
    pub topic: String,
    /// Kafka partition.
    pub partition: i32,
    /// First offset covered.
    pub first: i64,
    /// Last offset covered.
    pub last: i64,
}

impl FileName {
    /// Offsets are zero-padded so that names sort like offsets.
    pub fn render(&self) -> String {
        format!(
            "{}-{}-{:020}-{:020}.parquet",
            self.topic, self.partition, self.first, self.last
        )
    }

    /// Reads a name written by [`FileName::render`] (topics may contain `-`, so from the right).
    pub fn parse(name: &str) -> Option<FileName> {
        let stem = name.strip_suffix(".parquet")?;
        let mut parts = stem.rsplitn(4, '-');
        let last = parts.next()?.parse().ok()?;
        let first = parts.next()?.parse().ok()?;
        let partition = parts.next()?.parse().ok()?;
        let topic = parts.next()?.to_owned();
        Some(FileName {
            topic,
            partition,
            first,
            last,
        })
    }

    /// Whether two files' offset ranges share an offset.
    pub fn overlaps(&self, first: i64, last: i64) -> bool {
        self.first <= last && first <= self.last
    }
}

/// The sink's root directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// A layout under `root` (created when missing).
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Layout> {
        let root = root.into();
        fs::create_dir_all(root.join(INPROGRESS))?;
        Ok(Layout { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one hour of one table.
    pub fn hour_dir(&self, table: Table, hour: Hour) -> PathBuf {
        self.root.join(table.dir()).join(hour.dir())
    }

    /// A new temporary path for a file being written (invisible to readers: other
    /// directory, other extension).
    pub fn temp_path(
        &self,
        topic: &str,
        partition: i32,
        table: Table,
        hour: Hour,
        first: i64,
    ) -> PathBuf {
        // Unique per writer, so that a zombie sink still writing a partition never shares a
        // temp file with its new owner.
        static WRITERS: AtomicU64 = AtomicU64::new(0);
        let writer = WRITERS.fetch_add(1, Ordering::Relaxed);
        self.root.join(INPROGRESS).join(format!(
            "{topic}-{partition}-{}-{}-{first}.{}-{writer}.tmp",
            table.dir(),
            hour.0,
            std::process::id(),
        ))
    }

    /// The published files of one Kafka partition in one hour of one table.
    pub fn published(
        &self,
        table: Table,
        hour: Hour,
        topic: &str,
        partition: i32,
    ) -> io::Result<Vec<FileName>> {
        files_of(&self.hour_dir(table, hour), topic, partition)
    }

    /// The published files of a partition in the newest hour of each table that has any:
    /// the last ones written in the normal course, whose footers say where to resume.
    pub fn newest_published(&self, topic: &str, partition: i32) -> io::Result<Vec<PathBuf>> {
        let mut found = Vec::new();
        for table in Table::ALL {
            let table_dir = self.root.join(table.dir());
            'hours: for day in sorted_subdirs(&table_dir)?.into_iter().rev() {
                for hour in sorted_subdirs(&day)?.into_iter().rev() {
                    let files = files_of(&hour, topic, partition)?;
                    if !files.is_empty() {
                        found.extend(files.iter().map(|f| hour.join(f.render())));
                        break 'hours;
                    }
                }
            }
        }
        Ok(found)
    }

    /// Deletes the temporary files a previous owner of this partition left behind (a crash
    /// or kill): only the current owner writes a partition, so they are orphans.
    pub fn remove_temps(&self, topic: &str, partition: i32) -> io::Result<usize> {
        let prefix = format!("{topic}-{partition}-");
        let mut removed = 0;
        for entry in fs::read_dir(self.root.join(INPROGRESS))? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // `prefix` alone would also match topic `{topic}-{partition}`: check what follows.
            let is_ours = name.strip_prefix(&prefix).is_some_and(|rest| {
                Table::ALL
                    .iter()
                    .any(|t| rest.starts_with(&format!("{}-", t.dir())))
            });
            if is_ours && name.ends_with(".tmp") {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

const INPROGRESS: &str = "_inprogress";

/// A directory's entries; `None` when it does not exist (yet).
fn read_dir_if_exists(dir: &Path) -> io::Result<Option<fs::ReadDir>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn files_of(dir: &Path, topic: &str, partition: i32) -> io::Result<Vec<FileName>> {
    let Some(entries) = read_dir_if_exists(dir)? else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        if let Some(file) = entry.file_name().to_str().and_then(FileName::parse) {
            if file.topic == topic && file.partition == partition {
                files.push(file);
            }
        }
    }
    Ok(files)
}

fn sorted_subdirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(entries) = read_dir_if_exists(dir)? else {
        return Ok(Vec::new());
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            dirs.push(entry.path());
        }
    }
    // `dt=YYYY-MM-DD` and `hour=HH` are zero-padded: name order is time order.
    dirs.sort();
    Ok(dirs)
}

/// fsyncs a directory so that a rename or a new entry in it survives a power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_and_names() {
        let hour = Hour::of_ms(1_700_000_000_000);
        assert_eq!(hour.dir(), "dt=2023-11-14/hour=22");
        assert_eq!(Hour::of_ms(-1).dir(), "dt=1969-12-31/hour=23");
        let name = FileName {
            topic: "gatehouse.exposures-v2".into(),
            partition: 11,
            first: 5,
            last: 70,
        };
        let text = name.render();
        assert_eq!(
            text,
            "gatehouse.exposures-v2-11-00000000000000000005-00000000000000000070.parquet"
        );
        assert_eq!(FileName::parse(&text), Some(name.clone()));
        assert_eq!(FileName::parse("x.parquet"), None);
        assert!(name.overlaps(70, 80) && name.overlaps(0, 5) && !name.overlaps(71, 90));
    }

    #[test]
    fn temps_are_removed_for_their_partition_only() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path()).unwrap();
        let mine = layout.temp_path("t", 1, Table::Events, Hour(5), 10);
        let other_partition = layout.temp_path("t", 12, Table::Events, Hour(5), 10);
        let other_topic = layout.temp_path("t-1", 2, Table::Events, Hour(5), 10);
        for p in [&mine, &other_partition, &other_topic] {
            fs::write(p, b"x").unwrap();
        }
        assert_eq!(layout.remove_temps("t", 1).unwrap(), 1);
        assert!(!mine.exists() && other_partition.exists() && other_topic.exists());
    }
}
