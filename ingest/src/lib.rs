//! Gatehouse's front door: the Statsig-compatible HTTP API.
//!
//! A hyper server ([`http`]) authenticates API keys ([`keys`]), evaluates against the live,
//! atomically swapped ruleset ([`rules`]) and answers in Statsig's shapes ([`api`]), counting
//! everything for `/metrics` ([`metrics`]). Exposure and event delivery to Kafka is the next
//! piece of the front-door issue and is not wired yet.

pub mod api;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod rules;
