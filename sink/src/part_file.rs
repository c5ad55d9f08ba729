//! One Parquet file being written: the rows of one Kafka partition for one hour of one table.
//!
//! It is written under a temporary name and becomes visible only whole: footer written,
//! fsynced, checked against the published files for overlap, renamed, directory fsynced.

use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::time::Instant;

use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::layout::{sync_dir, FileName, Hour, Layout};
use crate::table::{Rows, Table};

/// Footer metadata keys: what a file covers, readable by any Parquet tool.
pub mod footer {
    /// Kafka topic.
    pub const TOPIC: &str = "gatehouse.kafka_topic";
    /// Kafka partition.
    pub const PARTITION: &str = "gatehouse.kafka_partition";
    /// First offset covered (the file holds this hour's messages of the range).
    pub const FIRST_OFFSET: &str = "gatehouse.first_offset";
    /// Last offset covered.
    pub const LAST_OFFSET: &str = "gatehouse.last_offset";
    /// Every offset of the partition below this one was published when this file was.
    pub const RESUME_OFFSET: &str = "gatehouse.resume_offset";
    /// The Kafka message schema version the rows were read with.
    pub const SCHEMA_VERSION: &str = "gatehouse.schema_version";
}

/// Rows buffered in Arrow builders before they are encoded into the row group.
const BATCH_ROWS: usize = 8192;
/// ... or this many message bytes, whichever comes first.
const BATCH_BYTES: usize = 4 << 20;

/// A file in progress.
pub struct PartFile {
    topic: String,
    partition: i32,
    table: Table,
    hour: Hour,
    first: i64,
    last: i64,
    records: u64,
    encoded_bytes: u64,
    row_group_memory: usize,
    opened: Instant,
    last_write: Instant,
    temp: PathBuf,
    rows: Rows,
    writer: ArrowWriter<File>,
}

/// Why a file was not published.
#[derive(Debug)]
pub enum PublishError {
    /// Its offset range overlaps a published file of the same partition and hour: publishing
    /// would duplicate rows (only possible when two sinks wrote one partition at once).
    Overlap(FileName),
    /// The disk said no.
    Io(io::Error),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::Overlap(other) => write!(f, "overlaps published {}", other.render()),
            PublishError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for PublishError {
    fn from(e: io::Error) -> Self {
        PublishError::Io(e)
    }
}

fn io_error(e: parquet::errors::ParquetError) -> io::Error {
    io::Error::other(e)
}

impl PartFile {
    /// Starts a file whose first row is at `first`.
    pub fn create(
        layout: &Layout,
        topic: &str,
        partition: i32,
        table: Table,
        hour: Hour,
        first: i64,
        props: &WriterProperties,
    ) -> io::Result<PartFile> {
        let temp = layout.temp_path(topic, partition, table, hour, first);
        let file = File::create(&temp)?;
        let writer =
            ArrowWriter::try_new(file, table.schema(), Some(props.clone())).map_err(io_error)?;
        let now = Instant::now();
        Ok(PartFile {
            topic: topic.to_owned(),
            partition,
            table,
            hour,
            first,
            last: first,
            records: 0,
            encoded_bytes: 0,
            row_group_memory: 0,
            opened: now,
            last_write: now,
            temp,
            rows: Rows::new(table),
            writer,
        })
    }

    /// The builders to append the next row to; call [`PartFile::wrote`] after.
    pub fn rows(&mut self) -> &mut Rows {
        &mut self.rows
    }

    /// Records that the row at `offset` was appended; encodes a batch when enough is buffered.
    pub fn wrote(&mut self, offset: i64) -> io::Result<()> {
        self.last = offset;
        self.records += 1;
        self.last_write = Instant::now();
        if self.rows.len() >= BATCH_ROWS || self.rows.approx_bytes() >= BATCH_BYTES {
            self.encode()?;
        }
        Ok(())
    }

    fn encode(&mut self) -> io::Result<()> {
        if !self.rows.is_empty() {
            self.writer.write(&self.rows.finish()).map_err(io_error)?;
            // Asking the writer walks every column: once per batch, not per row.
            self.encoded_bytes =
                (self.writer.bytes_written() + self.writer.in_progress_size()) as u64;
        }
        Ok(())
    }

    /// Bytes the file will roughly take: encoded so far plus what is buffered (messages
    /// shrink about 4x in the first encoding step; exact once encoded).
    pub fn size_estimate(&self) -> u64 {
        self.encoded_bytes + self.rows.approx_bytes() as u64 / 4
    }

    /// Memory held for rows not yet on disk: the Arrow builders and the row group being
    /// encoded (as of the last encoded batch).
    pub fn buffered_bytes(&self) -> usize {
        self.rows.approx_bytes() + self.row_group_memory
    }

    /// Encodes the buffered rows and writes the row group out, releasing its memory.
    pub fn flush_row_group(&mut self) -> io::Result<()> {
        self.encode()?;
        self.writer.flush().map_err(io_error)?;
        self.row_group_memory = 0;
        self.encoded_bytes = self.writer.bytes_written() as u64;
        Ok(())
    }

    /// Rows appended.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The first offset covered.
    pub fn first(&self) -> i64 {
        self.first
    }

    /// When the file was started.
    pub fn opened(&self) -> Instant {
        self.opened
    }

    /// When a row was last appended.
    pub fn last_write(&self) -> Instant {
        self.last_write
    }

    /// Makes the file visible (see the module doc). `resume_offset` is recorded in the footer.
    pub fn publish(
        mut self,
        layout: &Layout,
        resume_offset: i64,
    ) -> Result<Published, PublishError> {
        let result = self.finish_and_rename(layout, resume_offset);
        if result.is_err() {
            let _ = fs::remove_file(&self.temp);
        }
        result
    }

    fn finish_and_rename(
        &mut self,
        layout: &Layout,
        resume_offset: i64,
    ) -> Result<Published, PublishError> {
        self.encode()?;
        for (key, value) in [
            (footer::TOPIC, self.topic.clone()),
            (footer::PARTITION, self.partition.to_string()),
            (footer::FIRST_OFFSET, self.first.to_string()),
            (footer::LAST_OFFSET, self.last.to_string()),
            (footer::RESUME_OFFSET, resume_offset.to_string()),
            (footer::SCHEMA_VERSION, events::SCHEMA_VERSION.to_string()),
        ] {
            self.writer
                .append_key_value_metadata(KeyValue::new(key.to_owned(), value));
        }
        self.writer.finish().map_err(io_error)?;
        self.writer.inner().sync_all()?;

        let dir = layout.hour_dir(self.table, self.hour);
        if !dir.exists() {
            fs::create_dir_all(&dir)?;
            // New `dt=`/`hour=` entries must survive a crash too.
            for ancestor in dir.ancestors().skip(1).take(2) {
                sync_dir(ancestor)?;
            }
        }
        let published = layout.published(self.table, self.hour, &self.topic, self.partition)?;
        if let Some(other) = published
            .into_iter()
            .find(|f| f.overlaps(self.first, self.last))
        {
            return Err(PublishError::Overlap(other));
        }
        let name = FileName {
            topic: self.topic.clone(),
            partition: self.partition,
            first: self.first,
            last: self.last,
        };
        let path = dir.join(name.render());
        fs::rename(&self.temp, &path)?;
        sync_dir(&dir)?;
        Ok(Published {
            path,
            table: self.table,
            hour: self.hour,
            records: self.records,
            bytes: self.writer.bytes_written() as u64,
            last: self.last,
        })
    }

    /// Drops the file: nothing of it becomes visible, and its offsets stay uncommitted.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.temp);
    }

    /// The partition's key.
    pub fn partition(&self) -> (&str, i32) {
        (&self.topic, self.partition)
    }
}

/// A file made visible.
#[derive(Debug)]
pub struct Published {
    /// Where it is.
    pub path: PathBuf,
    /// Its table.
    pub table: Table,
    /// Its hour.
    pub hour: Hour,
    /// Rows in it.
    pub records: u64,
    /// Its size.
    pub bytes: u64,
    /// The last offset it covers.
    pub last: i64,
}
