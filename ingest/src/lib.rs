//! The front door (not built yet: see the open front-door issue and README "Status").
//!
//! Will hold the hyper server: API-key auth, the Statsig endpoints, the hot-swapped
//! `evaluator::Ruleset`, and the Kafka producer of exposures and events.
