//! The Parquet sink: a Kafka consumer group that writes the front door's exposures and
//! events as Hive-partitioned Parquet (`<root>/<table>/dt=…/hour=…/…parquet`) for DuckDB,
//! pyarrow, Polars and Spark, with no event lost and none duplicated across crashes and
//! rebalances.
//!
//! - [`table`]: the tables' columns and the Arrow builders that fill them.
//! - [`layout`]: directories, file names, recovery listings.
//! - [`part_file`]: one file in progress, published atomically.
//! - [`engine`]: the bookkeeping that makes replays safe (Kafka-free, unit-tested).
//! - [`consumer`]: the consumer-group member around the engine.
//! - [`analyze`]: `gatehouse analyze` over the tables ([`stats`]: its distributions).

pub mod analyze;
pub mod consumer;
pub mod engine;
pub mod layout;
pub mod part_file;
pub mod stats;
pub mod table;

pub use consumer::{run, ConsumerOptions};
pub use engine::{Engine, SinkConfig, Stats};
