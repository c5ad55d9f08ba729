//! Gatehouse's rules engine: Statsig-compatible evaluation of feature gates, dynamic configs,
//! experiments and layers.
//!
//! Pure: no I/O, no clock (the caller passes `now`), no threads. A [`Ruleset`] is compiled once
//! from a `download_config_specs` payload (v1 or v2 shape) and then shared read-only; each
//! evaluation borrows from it and allocates nothing unless nested gates add exposures.
//! Answers match Statsig's core SDK (`statsig-python-core`, `statsig-rust`): see
//! `tests/conformance.rs` and the vectors recorded from the official SDKs.

mod condition;
mod country;
mod eval;
pub mod hash;
mod id_lists;
mod initialize;
mod param_store;
mod ruleset;
pub mod ua;
mod user;
mod value;

pub use country::lookup as country_of_ip;
pub use eval::{EvalContext, Evaluation, Outcome, SecondaryExposure};
pub use id_lists::IdLists;
pub use initialize::{HashAlgorithm, InitializeRequest};
pub use ruleset::{Ruleset, RulesetError, SpecKind};
pub use user::{User, UserError};
pub use value::DynValue;
