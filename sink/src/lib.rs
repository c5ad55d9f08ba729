//! The Parquet sink (not built yet: see the open sink issue and README "Status").
//!
//! Will hold the Kafka consumer group that writes exposures and events to partitioned Parquet.
