//! Gatehouse's front door: the Statsig-compatible HTTP API.
//!
//! A hyper server ([`http`]) authenticates API keys ([`keys`]), evaluates against the live,
//! atomically swapped ruleset ([`rules`], with the ID lists of [`id_lists`]) and answers in Statsig's shapes ([`api`]), counting
//! everything for `/metrics` ([`metrics`]). Events and exposures become schema envelopes
//! ([`logging`], schema in the `events` crate) delivered to Kafka ([`producer`], reaching
//! the brokers as [`kafka_connection`] says), optionally deduplicated ([`dedupe`]). Keys and rules are managed over the console API
//! ([`console`]), whose state every front door replays from one log ([`control`]).

pub mod api;
pub mod console;
pub mod control;
pub mod cors;
pub mod dedupe;
pub mod http;
pub mod id_lists;
pub mod kafka_connection;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod producer;
pub mod rules;
pub mod scope;
