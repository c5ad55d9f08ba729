//! The sink's bookkeeping, free of Kafka: which file each message goes to, when files are
//! published, what is safe to commit, and where to resume after a restart or a rebalance.
//!
//! The rules that make "no event lost, none duplicated" hold across crashes:
//! - a message goes to the file of its (topic, partition, table, hour); such files never
//!   share a row, and a file is published whole or not at all ([`PartFile`]);
//! - a message whose offset is at or below the last offset of a published file of *its*
//!   (partition, table, hour) is already on disk and is skipped, so replaying any range
//!   never duplicates, whatever the cut points of the first run were;
//! - the offset committed to Kafka, and recorded as `resume_offset` in each published
//!   file's footer, is the lowest offset not yet on disk, so nothing is skipped that is not
//!   on disk. On assignment the sink resumes from the higher of the commit and the newest
//!   footers: the files are the truth, the commit only a shortcut.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ahash::AHashMap as HashMap;
use events::EnvelopeView;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::ColumnPath;
use std::collections::hash_map::Entry;

use crate::layout::{Hour, Layout};
use crate::part_file::{footer, PartFile, PublishError};
use crate::table::{Source, Table};

/// How files are cut and how much the sink may hold.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Root directory of the tables.
    pub root: PathBuf,
    /// A file is published once it is about this big...
    pub max_file_bytes: u64,
    /// ... or holds this many rows ...
    pub max_file_records: u64,
    /// ... or was started this long ago (the most data stays unpublished at low volume).
    pub max_file_age: Duration,
    /// Files open at once (one per partition × table × hour; each holds a descriptor); at
    /// the cap the least recently written one is published early. Keep it above
    /// 2 × partitions owned × hours receiving events, or files get small.
    pub max_open_files: usize,
    /// Rows are encoded into row groups of at most this many bytes.
    pub row_group_bytes: usize,
    /// Memory for rows not yet on disk, over all open files (Arrow builders plus the row
    /// group being encoded): above it the biggest files write their row group out early.
    /// This bounds memory whatever the number of open files.
    pub max_buffered_bytes: usize,
    /// Events up to this late (event time before the receive time) go to their own hour;
    /// later ones, and any more than an hour in the future, to the hour they were received.
    pub max_lateness: Duration,
    /// On a rebalance, open files of revoked partitions are published within this time;
    /// the rest are discarded (the next owner re-reads them).
    pub revoke_drain: Duration,
    /// zstd level.
    pub zstd_level: i32,
}

impl SinkConfig {
    /// Defaults: files of up to 128 MiB, 4M rows or 60 s; row groups ≤ 16 MiB; 512 open
    /// files; 256 MiB of buffered rows; 72 h of lateness.
    pub fn new(root: impl Into<PathBuf>) -> SinkConfig {
        SinkConfig {
            root: root.into(),
            max_file_bytes: 128 << 20,
            max_file_records: 4_000_000,
            max_file_age: Duration::from_secs(60),
            max_open_files: 512,
            row_group_bytes: 16 << 20,
            max_buffered_bytes: 256 << 20,
            max_lateness: Duration::from_secs(72 * 3600),
            revoke_drain: Duration::from_secs(20),
            zstd_level: 3,
        }
    }

    /// The Parquet writer settings every file of this sink uses.
    pub fn writer_properties(&self) -> io::Result<WriterProperties> {
        let level = ZstdLevel::try_new(self.zstd_level).map_err(io::Error::other)?;
        let mut builder = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_dictionary_enabled(true)
            .set_max_row_group_bytes(Some(self.row_group_bytes))
            .set_created_by(format!("gatehouse-sink {}", env!("CARGO_PKG_VERSION")));
        // Unique per row: a dictionary would only be built to be thrown away.
        for column in ["event_id", "payload", "kafka_offset"] {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
        Ok(builder.build())
    }
}

/// One Kafka message as the engine needs it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Producer timestamp, ms.
    pub timestamp_ms: Option<i64>,
    /// Message key.
    pub key: Option<&'a [u8]>,
    /// Message value (`None`: a tombstone, which is not a Gatehouse event).
    pub payload: Option<&'a [u8]>,
}

/// An offset to commit: everything of the partition below it is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The next offset to read.
    pub offset: i64,
}

/// Counters (logged periodically and at exit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages received from Kafka.
    pub messages: u64,
    /// Rows appended to files (including dead letters).
    pub rows: u64,
    /// Unreadable messages written to the dead-letter table.
    pub dead_letters: u64,
    /// Messages skipped because a published file already holds them (a replay).
    pub already_published: u64,
    /// Files published.
    pub files_published: u64,
    /// Rows in published files.
    pub rows_published: u64,
    /// Bytes of published files.
    pub bytes_published: u64,
    /// Files dropped unpublished (revoke drain time exceeded, or a publish error on revoke).
    pub files_discarded: u64,
    /// Row groups written out early to keep within the memory budget.
    pub row_groups_flushed_early: u64,
    /// Files open now (gauge).
    pub open_files: u64,
    /// Partitions held now (gauge).
    pub partitions: u64,
}

impl Stats {
    /// The Prometheus text exposition of these counters (`gatehouse_sink_*`).
    pub fn render_prometheus(&self) -> String {
        let rows = [
            ("messages_total", "counter", self.messages),
            ("rows_total", "counter", self.rows),
            ("dead_letters_total", "counter", self.dead_letters),
            ("already_published_total", "counter", self.already_published),
            ("files_published_total", "counter", self.files_published),
            ("rows_published_total", "counter", self.rows_published),
            ("bytes_published_total", "counter", self.bytes_published),
            ("files_discarded_total", "counter", self.files_discarded),
            (
                "row_groups_flushed_early_total",
                "counter",
                self.row_groups_flushed_early,
            ),
            ("open_files", "gauge", self.open_files),
            ("partitions", "gauge", self.partitions),
        ];
        rows.iter()
            .map(|(name, kind, value)| {
                format!("# TYPE gatehouse_sink_{name} {kind}\ngatehouse_sink_{name} {value}\n")
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PartitionKey {
    topic: u16,
    partition: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileKey {
    part: PartitionKey,
    table: Table,
    hour: Hour,
}

struct PartitionState {
    /// Offsets below this are on disk (from files and commits at assignment).
    resume: i64,
    /// One past the last offset handled.
    position: i64,
    /// The last offset committed (or found at assignment).
    committed: i64,
    /// Whether a seek to `resume` was asked for already.
    seek_asked: bool,
    /// Last published offset per table and hour, read from the directory on first use.
    published_last: HashMap<(Table, Hour), i64>,
}

/// The sink minus Kafka: feed it messages, ticks and rebalances; it writes files and says
/// what to commit.
pub struct Engine {
    config: SinkConfig,
    layout: Layout,
    props: WriterProperties,
    topics: Vec<String>,
    partitions: HashMap<PartitionKey, PartitionState>,
    files: HashMap<FileKey, PartFile>,
    stats: Stats,
}

/// Rows between two checks of the memory budget (the check walks the open files).
const BUDGET_CHECK_EVERY: u64 = 1024;

/// Future event times are trusted up to this much clock skew.
const MAX_FUTURE_MS: i64 = 3_600_000;

impl Engine {
    /// An engine writing under `config.root`.
    pub fn new(config: SinkConfig) -> io::Result<Engine> {
        Ok(Engine {
            layout: Layout::new(&config.root)?,
            props: config.writer_properties()?,
            config,
            topics: Vec::new(),
            partitions: HashMap::new(),
            files: HashMap::new(),
            stats: Stats::default(),
        })
    }

    /// The counters so far, with the gauges filled in.
    pub fn stats(&self) -> Stats {
        Stats {
            open_files: self.files.len() as u64,
            partitions: self.partitions.len() as u64,
            ..self.stats.clone()
        }
    }

    /// Files open now.
    pub fn open_files(&self) -> usize {
        self.files.len()
    }

    fn partition_key(&mut self, topic: &str, partition: i32) -> PartitionKey {
        let id = match self.topics.iter().position(|t| t == topic) {
            Some(id) => id,
            None => {
                self.topics.push(topic.to_owned());
                self.topics.len() - 1
            }
        };
        PartitionKey {
            topic: u16::try_from(id).expect("fewer than 65536 topics"),
            partition,
        }
    }

    /// Takes ownership of a partition: removes a previous owner's temp files and returns the
    /// offset to resume from: everything below it is on disk, says the newest files' footers.
    /// (Kafka delivers from the group's commit; [`Engine::on_message`] asks for a seek when
    /// that is behind the files, and skips what is on disk either way.)
    pub fn assign(&mut self, topic: &str, partition: i32) -> io::Result<i64> {
        let key = self.partition_key(topic, partition);
        if let Some(state) = self.partitions.get(&key) {
            return Ok(state.position);
        }
        let removed = self.layout.remove_temps(topic, partition)?;
        let resume = self.resume_from_files(topic, partition)?;
        tracing::info!(
            topic,
            partition,
            resume,
            removed_temps = removed,
            "partition assigned"
        );
        self.partitions.insert(
            key,
            PartitionState {
                resume,
                position: resume,
                // Unknown: the first commit states what the files say, even when the
                // group's commit was behind them.
                committed: -1,
                seek_asked: false,
                published_last: HashMap::new(),
            },
        );
        Ok(resume)
    }

    fn resume_from_files(&self, topic: &str, partition: i32) -> io::Result<i64> {
        let mut resume = 0;
        for path in self.layout.newest_published(topic, partition)? {
            let reader = SerializedFileReader::new(std::fs::File::open(&path)?)
                .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
            let offset = reader
                .metadata()
                .file_metadata()
                .key_value_metadata()
                .and_then(|kvs| kvs.iter().find(|kv| kv.key == footer::RESUME_OFFSET))
                .and_then(|kv| kv.value.as_deref()?.parse::<i64>().ok());
            resume = resume.max(offset.unwrap_or(0));
        }
        Ok(resume)
    }

    /// Files one message. `Ok(Some(offset))`: the message was on disk already and so is
    /// everything below `offset`: seek there (asked once per assignment). An error is fatal
    /// for this sink process (disk full, or another process wrote the same partition):
    /// nothing past the last commit is lost, and a restart resumes from the files.
    pub fn on_message(&mut self, message: Message<'_>) -> io::Result<Option<i64>> {
        let part = self.partition_key(message.topic, message.partition);
        if !self.partitions.contains_key(&part) {
            self.assign(message.topic, message.partition)?;
        }
        self.stats.messages += 1;
        let payload = message.payload.unwrap_or_default();
        let parsed = match message.payload {
            Some(payload) => EnvelopeView::parse(payload),
            None => Err("empty message (tombstone)".into()),
        };
        let (table, hour) = match &parsed {
            Ok(env) if env.exposure.is_some() => (Table::Exposures, self.hour_of(env)),
            Ok(env) => (Table::Events, self.hour_of(env)),
            // The broker's timestamp keeps a replayed dead letter in the same hour.
            Err(_) => (
                Table::DeadLetters,
                Hour::of_ms(message.timestamp_ms.unwrap_or(0)),
            ),
        };

        let state = self.partitions.get_mut(&part).expect("assigned above");
        if message.offset < state.resume {
            self.stats.already_published += 1;
            let first_ask = !std::mem::replace(&mut state.seek_asked, true);
            return Ok(first_ask.then_some(state.resume));
        }
        let published_last = match state.published_last.entry((table, hour)) {
            Entry::Occupied(last) => *last.get(),
            Entry::Vacant(slot) => {
                let files = self
                    .layout
                    .published(table, hour, message.topic, message.partition)?;
                *slot.insert(files.iter().map(|f| f.last).max().unwrap_or(-1))
            }
        };
        if message.offset <= published_last {
            state.position = state.position.max(message.offset + 1);
            self.stats.already_published += 1;
            return Ok(None);
        }

        let key = FileKey { part, table, hour };
        let (max_bytes, max_records) = (self.config.max_file_bytes, self.config.max_file_records);
        let file = self.file_for(key, message)?;
        let source = Source {
            topic: message.topic,
            partition: message.partition,
            offset: message.offset,
            timestamp_ms: message.timestamp_ms,
        };
        match &parsed {
            Ok(env) => file.rows().push_envelope(env, source, payload.len()),
            Err(error) => file
                .rows()
                .push_dead_letter(message.key, payload, error, source),
        }
        file.wrote(message.offset)?;
        let full = file.size_estimate() >= max_bytes || file.records() >= max_records;
        // Only now is the message in a file: a file published earlier in this call (an
        // eviction) must not claim it is on disk.
        let state = self.partitions.get_mut(&part).expect("assigned above");
        state.position = state.position.max(message.offset + 1);
        self.stats.rows += 1;
        if parsed.is_err() {
            self.stats.dead_letters += 1;
        }
        if full {
            self.publish(key)?;
        }
        if self.stats.rows.is_multiple_of(BUDGET_CHECK_EVERY) {
            self.enforce_memory_budget()?;
        }
        Ok(None)
    }

    /// Bytes held in memory for rows not yet on disk, over all open files.
    pub fn buffered_bytes(&self) -> usize {
        self.files.values().map(PartFile::buffered_bytes).sum()
    }

    /// Writes the row groups of the biggest files out until the buffered bytes are under
    /// half the budget (files stay open: only their memory is released).
    fn enforce_memory_budget(&mut self) -> io::Result<()> {
        let budget = self.config.max_buffered_bytes;
        let mut total = self.buffered_bytes();
        if total <= budget {
            return Ok(());
        }
        let mut sizes: Vec<(usize, FileKey)> = self
            .files
            .iter()
            .map(|(k, f)| (f.buffered_bytes(), *k))
            .collect();
        sizes.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
        for (size, key) in sizes {
            if total <= budget / 2 {
                break;
            }
            self.files
                .get_mut(&key)
                .expect("listed above")
                .flush_row_group()?;
            total -= size;
            self.stats.row_groups_flushed_early += 1;
        }
        Ok(())
    }

    fn hour_of(&self, env: &EnvelopeView<'_>) -> Hour {
        let lateness = self.config.max_lateness.as_millis() as i64;
        let received = env.received_at_ms;
        if env.event_time_ms < received.saturating_sub(lateness)
            || env.event_time_ms > received.saturating_add(MAX_FUTURE_MS)
        {
            Hour::of_ms(received)
        } else {
            Hour::of_ms(env.event_time_ms)
        }
    }

    fn file_for(&mut self, key: FileKey, message: Message<'_>) -> io::Result<&mut PartFile> {
        if !self.files.contains_key(&key) {
            if self.files.len() >= self.config.max_open_files {
                let coldest = self
                    .files
                    .iter()
                    .min_by_key(|(_, f)| f.last_write())
                    .map(|(k, _)| *k)
                    .expect("at the cap, so not empty");
                self.publish(coldest)?;
            }
            let file = PartFile::create(
                &self.layout,
                message.topic,
                message.partition,
                key.table,
                key.hour,
                message.offset,
                &self.props,
            )?;
            self.files.insert(key, file);
        }
        Ok(self.files.get_mut(&key).expect("inserted above"))
    }

    /// The lowest offset of a partition not on disk: below its open files and its position.
    fn resume_offset(&self, part: PartitionKey) -> Option<i64> {
        let state = self.partitions.get(&part)?;
        let open = self
            .files
            .iter()
            .filter(|(k, _)| k.part == part)
            .map(|(_, f)| f.first());
        Some(open.fold(state.position, i64::min))
    }

    fn publish(&mut self, key: FileKey) -> io::Result<()> {
        let file = self.files.remove(&key).expect("publishing an open file");
        let resume = self.resume_offset(key.part).unwrap_or(0);
        match file.publish(&self.layout, resume) {
            Ok(published) => {
                self.stats.files_published += 1;
                self.stats.rows_published += published.records;
                self.stats.bytes_published += published.bytes;
                if let Some(state) = self.partitions.get_mut(&key.part) {
                    state
                        .published_last
                        .insert((published.table, published.hour), published.last);
                }
                tracing::debug!(path = %published.path.display(), records = published.records, "published");
                Ok(())
            }
            Err(PublishError::Io(e)) => Err(e),
            Err(overlap) => Err(io::Error::other(format!(
                "not publishing a file of {} partition {}: {overlap} (was another sink writing this partition?)",
                self.topics[key.part.topic as usize], key.part.partition
            ))),
        }
    }

    /// Publishes files that reached their age limit.
    pub fn tick(&mut self) -> io::Result<()> {
        let max_age = self.config.max_file_age;
        let old: Vec<FileKey> = self
            .files
            .iter()
            .filter(|(_, f)| f.opened().elapsed() >= max_age)
            .map(|(k, _)| *k)
            .collect();
        for key in old {
            self.publish(key)?;
        }
        Ok(())
    }

    /// Offsets that moved since the last call: commit them.
    pub fn take_commits(&mut self) -> Vec<Commit> {
        let parts: Vec<PartitionKey> = self.partitions.keys().copied().collect();
        parts
            .into_iter()
            .filter_map(|part| self.take_commit(part, i64::MAX))
            .collect()
    }

    /// The commit for a partition, never past `cap` (the first offset of a file discarded).
    fn take_commit(&mut self, part: PartitionKey, cap: i64) -> Option<Commit> {
        let offset = self.resume_offset(part)?.min(cap);
        let state = self.partitions.get_mut(&part)?;
        (offset > state.committed).then(|| {
            state.committed = offset;
            Commit {
                topic: self.topics[part.topic as usize].clone(),
                partition: part.partition,
                offset,
            }
        })
    }

    /// Gives partitions up (a rebalance or shutdown): publishes their open files within the
    /// drain time, discards the rest, and returns the final commits.
    pub fn revoke(&mut self, partitions: &[(String, i32)]) -> Vec<Commit> {
        let deadline = Instant::now() + self.config.revoke_drain;
        let parts: Vec<PartitionKey> = partitions
            .iter()
            .map(|(topic, partition)| self.partition_key(topic, *partition))
            .collect();
        let keys: Vec<FileKey> = self
            .files
            .keys()
            .filter(|k| parts.contains(&k.part))
            .copied()
            .collect();
        let mut caps: HashMap<PartitionKey, i64> = HashMap::new();
        for key in keys {
            let first = self.files[&key].first();
            if Instant::now() >= deadline {
                let file = self.files.remove(&key).expect("listed above");
                tracing::warn!(
                    partition = key.part.partition,
                    "revoke drain time exceeded: discarding an open file"
                );
                file.discard();
            } else if let Err(e) = self.publish(key) {
                tracing::error!("on revoke: {e}; the next owner re-reads it");
            } else {
                continue;
            }
            self.stats.files_discarded += 1;
            let cap = caps.entry(key.part).or_insert(first);
            *cap = (*cap).min(first);
        }
        let commits = parts
            .iter()
            .filter_map(|part| self.take_commit(*part, caps.get(part).copied().unwrap_or(i64::MAX)))
            .collect();
        for part in &parts {
            self.partitions.remove(part);
        }
        commits
    }

    /// One past the last offset handled in a partition (`None`: not held).
    pub fn position(&mut self, topic: &str, partition: i32) -> Option<i64> {
        let key = self.partition_key(topic, partition);
        self.partitions.get(&key).map(|s| s.position)
    }

    /// Every partition held now.
    pub fn assigned(&self) -> Vec<(String, i32)> {
        self.partitions
            .keys()
            .map(|k| (self.topics[k.topic as usize].clone(), k.partition))
            .collect()
    }

    /// Abandons every open file without publishing (after a fatal error: what is on disk
    /// stays consistent, and a restart re-reads the rest).
    pub fn abandon(&mut self) {
        for (_, file) in self.files.drain() {
            file.discard();
        }
        self.partitions.clear();
    }
}
