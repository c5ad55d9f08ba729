//! The evaluation walk: rules in order, every condition of a rule evaluated (so every nested
//! gate's exposure is collected), first matching rule wins, pass percentage decides between
//! the rule's value and the default, layers hand over to the experiment they delegate to.
//!
//! The walk mirrors Statsig's core SDK step by step, including how nested evaluations share
//! one result, because its observable quirks (which rule id a nested unknown gate reports,
//! when undelegated exposures are recorded) are part of "the same answers".

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::condition::{compare, Condition, Kind};
use crate::country;
use crate::hash::unit_hash;
use crate::ruleset::{Rule, Ruleset, Spec, SpecKind};
use crate::ua;
use crate::user::User;
use crate::value::{DynValue, Val};

/// Nesting depth (nested gates, delegations, experiments read by `experiment_group`
/// conditions) past which a spec is answered as unsupported (a cycle, or abuse).
const MAX_NESTING: u16 = 300;

/// What an evaluation needs besides the ruleset.
#[derive(Debug, Clone, Copy)]
pub struct EvalContext<'a> {
    /// The user being evaluated.
    pub user: &'a User,
    /// Now, in ms since the epoch (`current_time` conditions); the caller owns the clock.
    pub now_ms: i64,
    /// The target app `target_app` conditions compare; None uses the ruleset's `app_id`.
    pub app_id: Option<&'a DynValue>,
}

/// A gate checked while evaluating another spec, reported with its exposure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecondaryExposure<'r> {
    /// The nested gate's name.
    pub gate: &'r str,
    /// Its value.
    pub gate_value: bool,
    /// The rule that decided it (`""` for an unknown gate).
    pub rule_id: &'r str,
    /// The gate's index in the ruleset (None: no such gate), so a response can write its
    /// precomputed hashed name without looking the name up again.
    pub(crate) gate_index: Option<u32>,
}

/// How a spec was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Evaluated.
    Recognized,
    /// No spec of that name: gate false, config `{}`, rule id `""`.
    Unrecognized,
    /// The spec uses a condition or operator this server cannot evaluate: answered as
    /// Statsig's core SDK does, with what the walk held when it met it (usually gate false,
    /// rule id `""`; a nested gate walked before leaves its value and rule id), and no value.
    Unsupported,
}

/// Everything an evaluation produces, borrowed from the ruleset (no copies on the hot path).
#[derive(Debug, Clone)]
pub struct Evaluation<'r> {
    /// Recognized, unrecognized or unsupported.
    pub outcome: Outcome,
    /// The gate value (for configs: whether the matched rule passed).
    pub bool_value: bool,
    /// The config / experiment / layer value; None answers `{}`. Borrowed from the ruleset,
    /// except a `useNewLayerEval` layer's, merged from several rules.
    pub json_value: Option<Cow<'r, Value>>,
    /// The deciding rule's id, `default`, `disabled`, or `""`.
    pub rule_id: &'r str,
    /// The experiment group's name, when the deciding rule has one.
    pub group_name: Option<&'r str>,
    /// The spec's unit type (`userID`, `stableID`, ...); `""` when unrecognized.
    pub id_type: &'r str,
    /// Nested gates checked, in order, deduplicated, `segment:` gates left out.
    pub secondary_exposures: Vec<SecondaryExposure<'r>>,
    /// Layers: the exposures gathered before handing over to the experiment.
    pub undelegated_secondary_exposures: Option<Vec<SecondaryExposure<'r>>>,
    /// The experiment's (or the allocated experiment's) explicit parameters.
    pub explicit_parameters: Option<&'r [Box<str>]>,
    /// Layers: the experiment the user was allocated to.
    pub config_delegate: Option<&'r str>,
    /// `useNewLayerEval` layers: the rule each parameter of the value came from
    /// (`default` for the layer's default), in the order they were set.
    pub parameter_rule_ids: Option<Vec<(&'r str, &'r str)>>,
    /// Whether the deciding rule is an experiment group.
    pub is_experiment_group: bool,
    /// The experiment's `isActive`.
    pub is_experiment_active: bool,
    /// The experiment's `hasSharedParams` (it lives in a layer).
    pub is_in_layer: bool,
    /// The spec's `version`.
    pub version: Option<i64>,
    /// Experiments whose group an `experiment_group` condition read, innermost first.
    /// Statsig's core SDK reads each with a get_experiment of its own, which logs a config
    /// exposure, so the caller logs one for each too.
    pub experiments_read: Vec<&'r str>,
    /// The spec a config mapping answered with (the `overrideConfigName` of the exposure),
    /// this spec's own or a nested gate's (the last one walked).
    pub override_config_name: Option<&'r str>,
}

impl<'r> Evaluation<'r> {
    fn unrecognized() -> Self {
        Evaluation {
            outcome: Outcome::Unrecognized,
            bool_value: false,
            json_value: None,
            rule_id: "",
            group_name: None,
            id_type: "",
            secondary_exposures: Vec::new(),
            undelegated_secondary_exposures: None,
            explicit_parameters: None,
            config_delegate: None,
            parameter_rule_ids: None,
            is_experiment_group: false,
            is_experiment_active: false,
            is_in_layer: false,
            version: None,
            experiments_read: Vec::new(),
            override_config_name: None,
        }
    }
}

impl Ruleset {
    /// Evaluates the gate `name`.
    pub fn check_gate<'r>(&'r self, name: &str, ctx: &EvalContext<'_>) -> Evaluation<'r> {
        self.evaluate(SpecKind::Gate, name, ctx)
    }

    /// Evaluates the dynamic config or experiment `name`.
    pub fn get_config<'r>(&'r self, name: &str, ctx: &EvalContext<'_>) -> Evaluation<'r> {
        self.evaluate(SpecKind::Config, name, ctx)
    }

    /// Evaluates the layer `name`.
    pub fn get_layer<'r>(&'r self, name: &str, ctx: &EvalContext<'_>) -> Evaluation<'r> {
        self.evaluate(SpecKind::Layer, name, ctx)
    }

    /// Evaluates one spec of any table.
    pub fn evaluate<'r>(
        &'r self,
        kind: SpecKind,
        name: &str,
        ctx: &EvalContext<'_>,
    ) -> Evaluation<'r> {
        match self.lookup(kind, name) {
            Some(idx) => self.evaluate_index(kind, idx, ctx),
            None => Evaluation::unrecognized(),
        }
    }

    pub(crate) fn evaluate_index<'r>(
        &'r self,
        kind: SpecKind,
        idx: u32,
        ctx: &EvalContext<'_>,
    ) -> Evaluation<'r> {
        self.evaluate_reusing(kind, idx, ctx, &mut Scratch::default())
    }

    /// [`Ruleset::evaluate_index`] with buffers left by earlier evaluations.
    pub(crate) fn evaluate_reusing<'r>(
        &'r self,
        kind: SpecKind,
        idx: u32,
        ctx: &EvalContext<'_>,
        scratch: &mut Scratch<'r>,
    ) -> Evaluation<'r> {
        let spec = self.spec(kind, idx);
        let (finished, st, _) = self.walk(spec, ctx, scratch, 0, Vec::new());
        if spec.mapping_only && st.override_config.is_none() && finished.is_ok() {
            return Evaluation::unrecognized();
        }
        if finished.is_err() {
            return Evaluation {
                outcome: Outcome::Unsupported,
                id_type: &spec.id_type,
                ..Evaluation::unrecognized()
            };
        }
        if st.unsupported {
            // What the walk held when it met the unsupported condition, as the core SDK
            // answers: a nested gate walked before it leaves its value and rule id.
            return Evaluation {
                outcome: Outcome::Unsupported,
                bool_value: st.bool_value,
                rule_id: st.rule_id.unwrap_or(""),
                id_type: &spec.id_type,
                secondary_exposures: dedupe(st.secondary),
                undelegated_secondary_exposures: st.undelegated.map(dedupe),
                experiments_read: st.experiments_read,
                override_config_name: st.override_config,
                ..Evaluation::unrecognized()
            };
        }
        Evaluation {
            outcome: Outcome::Recognized,
            bool_value: st.bool_value,
            json_value: match st.merged {
                Some(merged) => Some(Cow::Owned(merged)),
                None => st.json_value.map(Cow::Borrowed),
            },
            rule_id: st.rule_id.unwrap_or(""),
            group_name: st.group_name,
            id_type: st.id_type.unwrap_or(""),
            secondary_exposures: dedupe(st.secondary),
            undelegated_secondary_exposures: st.undelegated.map(dedupe),
            explicit_parameters: st.explicit_parameters,
            config_delegate: st.config_delegate,
            parameter_rule_ids: st.parameter_rule_ids,
            is_experiment_group: st.is_experiment_group,
            is_experiment_active: st.is_experiment_active,
            is_in_layer: st.is_in_layer,
            version: st.version,
            experiments_read: st.experiments_read,
            override_config_name: st.override_config,
        }
    }

    /// Walks `spec` from a fresh result. `depth` is the nesting of the walks this one runs
    /// inside (an experiment read by an `experiment_group` condition), counted against
    /// [`MAX_NESTING`] with the walk's own; `reading` the experiments those walks read, handed
    /// back for reuse. Inlined: the state it returns is large, and a move of it shows as
    /// memcpy in a gate check's profile.
    #[inline(always)]
    fn walk<'r>(
        &'r self,
        spec: &'r Spec,
        ctx: &EvalContext<'_>,
        scratch: &mut Scratch<'r>,
        depth: u16,
        reading: Vec<u32>,
    ) -> (Result<(), TooDeep>, State<'r>, Vec<u32>) {
        scratch.memo.clear();
        scratch.secondary.clear();
        let mut walk = Walk {
            rs: self,
            ctx,
            st: State {
                secondary: std::mem::take(&mut scratch.secondary),
                ..State::default()
            },
            nesting: 0,
            mapping_hops: 0,
            delegating: false,
            depth,
            reading,
            memo: std::mem::take(&mut scratch.memo),
            leaves: std::mem::take(&mut scratch.leaves),
        };
        let finished = walk.evaluate(spec);
        scratch.memo = walk.memo;
        scratch.leaves = walk.leaves;
        (finished, walk.st, walk.reading)
    }
}

/// Buffers an evaluation leaves for the next one, so a response that evaluates every spec
/// (initialize) allocates them once rather than per spec.
#[derive(Default)]
pub(crate) struct Scratch<'r> {
    secondary: Vec<SecondaryExposure<'r>>,
    memo: Vec<NestedGate<'r>>,
    leaves: LeafMemo,
}

/// A nested gate already evaluated in a walk: name, value, rule id, and the config mapping it
/// answered through.
type NestedGate<'r> = (&'r str, bool, Option<&'r str>, Option<&'r str>);

/// A user's leaf-condition results and pass-percentage draws, kept across the evaluations of
/// one user (an initialize walks the same nested gates again for every spec that checks
/// them). Both depend only on the user, the clock and the ruleset, so reusing them changes no
/// answer; the walk itself, with every side effect of Statsig's evaluation order, is
/// unchanged. Empty tables mean no memo: a single evaluation must not allocate.
#[derive(Default)]
struct LeafMemo {
    /// By index into [`Ruleset::conditions`].
    conditions: Vec<Option<bool>>,
    /// By [`Rule::slot`].
    passes: Vec<Option<bool>>,
}

impl<'r> Scratch<'r> {
    /// Scratch for evaluating many specs for one user and context: leaf results are kept
    /// between the evaluations.
    pub(crate) fn for_one_user(rs: &Ruleset) -> Self {
        Scratch {
            leaves: LeafMemo {
                conditions: vec![None; rs.conditions.len()],
                passes: vec![None; rs.rule_count],
            },
            ..Scratch::default()
        }
    }

    /// Takes back the exposure list of an evaluation that is done with.
    pub(crate) fn recycle(&mut self, eval: Evaluation<'r>) {
        self.secondary = eval.secondary_exposures;
    }
}

/// Adds the parameters of `from` that `value` does not have yet, noting the rule they came
/// from.
fn add_parameters<'r>(
    value: &mut Map<String, Value>,
    sources: &mut Vec<(&'r str, &'r str)>,
    from: Option<&'r Map<String, Value>>,
    rule_id: &'r str,
) {
    for (name, v) in from.into_iter().flatten() {
        if !value.contains_key(name) {
            value.insert(name.clone(), v.clone());
            sources.push((name, rule_id));
        }
    }
}

/// Keeps the first of each (gate, value, rule) triple, in order.
fn dedupe(mut list: Vec<SecondaryExposure<'_>>) -> Vec<SecondaryExposure<'_>> {
    // Lists are short (a few nested gates): a scan of the kept prefix beats building a hash
    // set, which an initialize would otherwise do for most of its specs.
    const SCAN_UP_TO: usize = 32;
    if list.len() > SCAN_UP_TO {
        let mut seen = ahash::AHashSet::with_capacity(list.len());
        list.retain(|e| seen.insert(*e));
    } else {
        let mut kept = 0;
        for i in 0..list.len() {
            let e = list[i];
            if !list[..kept].contains(&e) {
                list[kept] = e;
                kept += 1;
            }
        }
        list.truncate(kept);
    }
    list
}

/// The walk's running result, shared by nested evaluations as in Statsig's core SDK.
#[derive(Default)]
struct State<'r> {
    bool_value: bool,
    json_value: Option<&'r Value>,
    rule_id: Option<&'r str>,
    group_name: Option<&'r str>,
    group_value: Option<&'r DynValue>,
    is_experiment_group: bool,
    is_experiment_active: bool,
    is_in_layer: bool,
    explicit_parameters: Option<&'r [Box<str>]>,
    config_delegate: Option<&'r str>,
    secondary: Vec<SecondaryExposure<'r>>,
    undelegated: Option<Vec<SecondaryExposure<'r>>>,
    unsupported: bool,
    id_type: Option<&'r str>,
    version: Option<i64>,
    named: bool,
    experiments_read: Vec<&'r str>,
    /// A `useNewLayerEval` layer's value, and where each parameter came from.
    merged: Option<Value>,
    parameter_rule_ids: Option<Vec<(&'r str, &'r str)>>,
    /// The target of the last config mapping that answered.
    override_config: Option<&'r str>,
}

/// Nesting went past [`MAX_NESTING`].
struct TooDeep;

struct Walk<'r, 'c> {
    rs: &'r Ruleset,
    ctx: &'c EvalContext<'c>,
    st: State<'r>,
    nesting: u16,
    /// Config mappings followed from one spec to the next, counted against [`MAX_NESTING`].
    mapping_hops: u16,
    /// The next spec walked is a layer's delegate (which shares the layer's result).
    delegating: bool,
    /// The nesting of the walks this one runs inside.
    depth: u16,
    /// Experiments being read by `experiment_group` conditions, outermost first.
    reading: Vec<u32>,
    /// Nested gates already evaluated in this walk.
    memo: Vec<NestedGate<'r>>,
    leaves: LeafMemo,
}

impl<'r> Walk<'r, '_> {
    fn evaluate(&mut self, spec: &'r Spec) -> Result<(), TooDeep> {
        let delegated = std::mem::take(&mut self.delegating);
        if !spec.mappings.is_empty() && self.apply_mapping(spec, delegated)? {
            return Ok(());
        }
        if spec.mapping_only {
            // A name no spec has: nothing walked, nothing finalized, and (the mapping rules
            // having been walked on a result of their own) no rule id.
            self.st.rule_id = None;
            return Ok(());
        }
        let st = &mut self.st;
        if !st.named {
            st.named = true;
            st.id_type = Some(&spec.id_type);
            st.version = spec.version;
        }
        if let Some(active) = spec.is_active {
            st.is_experiment_active = active;
        }
        if let Some(shared) = spec.has_shared_params {
            st.is_in_layer = shared;
        }
        if let Some(explicit) = &spec.explicit_parameters {
            st.explicit_parameters = Some(explicit);
        }
        if spec.new_layer_eval {
            return self.new_layer_eval(spec);
        }

        for rule in &spec.rules {
            self.evaluate_rule(rule)?;
            if self.st.unsupported {
                return Ok(());
            }
            if !self.st.bool_value {
                continue;
            }
            if self.evaluate_delegate(rule)? {
                self.finalize();
                return Ok(());
            }
            let passed = self.pass_percentage(rule, spec);
            let st = &mut self.st;
            if passed {
                st.bool_value = rule.return_bool;
                st.json_value = Some(&rule.return_value);
            } else {
                st.bool_value = spec.default_bool;
                st.json_value = Some(&spec.default_value);
            }
            st.rule_id = Some(&rule.id);
            st.group_name = rule.group_name.as_deref();
            st.group_value = rule.group_value.as_ref();
            st.is_experiment_group = rule.is_experiment_group.unwrap_or(false);
            st.is_experiment_active = spec.is_active.unwrap_or(false);
            self.finalize();
            return Ok(());
        }

        let st = &mut self.st;
        st.bool_value = spec.default_bool;
        st.json_value = Some(&spec.default_value);
        st.rule_id = Some(if spec.enabled { "default" } else { "disabled" });
        self.finalize();
        Ok(())
    }

    /// A layer with `useNewLayerEval`, as statsig-python-core 0.24.0 evaluates it: every rule
    /// whose conditions and pass percentage pass adds the parameters not set yet; a rule
    /// delegating to an experiment counts only if it is the first rule to pass (its rule id,
    /// group and experiment then describe the answer); the layer's default fills in the
    /// rest. Exposures of every rule walked are kept, a skipped
    /// delegate's included (they stay in the shared result until the next rule's are taken).
    fn new_layer_eval(&mut self, spec: &'r Spec) -> Result<(), TooDeep> {
        let mut passed_a_rule = false;
        let mut passed = false;
        let mut rule_id = "default";
        let mut delegate = None;
        let mut group = (None, None);
        let mut is_experiment_group = false;
        let mut explicit = None;
        let mut secondary = Vec::new();
        let mut undelegated = Vec::new();
        let mut value = Map::new();
        let mut sources = Vec::new();
        for rule in &spec.rules {
            self.evaluate_rule(rule)?;
            undelegated.extend_from_slice(&self.st.secondary);
            secondary.append(&mut self.st.secondary);
            if self.st.unsupported {
                self.st.secondary = secondary;
                self.st.undelegated = Some(undelegated);
                return Ok(());
            }
            if !self.st.bool_value || !self.pass_percentage(rule, spec) {
                continue;
            }
            if self.evaluate_delegate(rule)? {
                if passed_a_rule {
                    continue;
                }
                // None: the experiment was unsupported, and so is the layer.
                let Some(delegated) = self.st.json_value else {
                    continue;
                };
                // The first rule to pass: no parameter is set yet.
                add_parameters(&mut value, &mut sources, delegated.as_object(), &rule.id);
                secondary.append(&mut self.st.secondary);
                let st = &self.st;
                passed = st.bool_value;
                delegate = st.config_delegate;
                group = (st.group_name, st.group_value);
                rule_id = &rule.id;
                is_experiment_group = rule.is_experiment_group.unwrap_or(false);
                explicit = st.explicit_parameters;
            } else {
                passed = self.st.bool_value;
                add_parameters(
                    &mut value,
                    &mut sources,
                    rule.return_value.as_object(),
                    &rule.id,
                );
            }
            passed_a_rule = true;
        }
        add_parameters(
            &mut value,
            &mut sources,
            spec.default_value.as_object(),
            "default",
        );
        let st = &mut self.st;
        st.bool_value = passed;
        st.config_delegate = delegate;
        (st.group_name, st.group_value) = group;
        st.rule_id = Some(rule_id);
        st.json_value = None;
        st.merged = Some(Value::Object(value));
        st.parameter_rule_ids = Some(sources);
        st.is_experiment_group = is_experiment_group;
        st.is_experiment_active = spec.is_active.unwrap_or(false);
        st.explicit_parameters = explicit;
        st.secondary = secondary;
        st.undelegated = Some(undelegated);
        self.finalize();
        Ok(())
    }

    /// Config mappings from `spec`, as statsig-python-core 0.24.0 applies them before the
    /// spec's own rules: the first mapping rule (past its start time) whose conditions pass
    /// (their nested gates are no exposures of this spec) and whose pass percentage (hashed
    /// with this spec's salt) lets the user through hands the evaluation to the mapping's
    /// target, walked in this one's place. A target not in the payload ends that mapping.
    /// Returns whether a target answered.
    ///
    /// The core SDK clears its result after walking a mapping rule. A nested gate has a
    /// result of its own there, but a layer's delegate shares the layer's: mapping rules
    /// walked for a delegated experiment clear what the layer held (its exposures, the
    /// nesting), and the experiment is then finished as a top-level evaluation.
    fn apply_mapping(&mut self, spec: &'r Spec, delegated: bool) -> Result<bool, TooDeep> {
        for mapping in &spec.mappings {
            for (start_ms, rule) in &mapping.rules {
                let Some(rule) = rule.as_ref().filter(|_| *start_ms <= self.ctx.now_ms) else {
                    continue;
                };
                let outer = std::mem::take(&mut self.st);
                let nesting = self.nesting;
                let walked = self.evaluate_rule(rule);
                let matched = self.st.bool_value && !self.st.unsupported;
                if delegated {
                    self.st = State::default();
                    self.nesting = 0;
                } else {
                    self.st = outer;
                    self.nesting = nesting;
                }
                walked?;
                if !matched || !self.pass_percentage(rule, spec) {
                    continue;
                }
                let Some(target) = mapping.target.map(|idx| self.rs.spec(mapping.kind, idx)) else {
                    break;
                };
                // A mapping to a spec mapped back would never end.
                self.mapping_hops += 1;
                if self.depth + self.nesting + self.mapping_hops > MAX_NESTING {
                    return Err(TooDeep);
                }
                let previous = self.st.override_config.replace(&mapping.new_name);
                self.evaluate(target)?;
                self.mapping_hops -= 1;
                if target.mapping_only && self.st.override_config == Some(&*mapping.new_name) {
                    // The target is itself only a mapping, and none of its own applied.
                    self.st.override_config = previous;
                    break;
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Closes one (possibly nested) evaluation; at the top, records the undelegated exposures.
    fn finalize(&mut self) {
        if self.nesting > 0 {
            self.nesting -= 1;
            return;
        }
        let st = &mut self.st;
        if !st.secondary.is_empty() && st.undelegated.is_none() {
            st.undelegated = Some(st.secondary.clone());
        }
    }

    fn enter_nested(&mut self) -> Result<(), TooDeep> {
        self.nesting += 1;
        self.st.bool_value = false;
        self.st.json_value = None;
        if self.depth + self.nesting > MAX_NESTING {
            return Err(TooDeep);
        }
        Ok(())
    }

    fn evaluate_rule(&mut self, rule: &'r Rule) -> Result<(), TooDeep> {
        let mut all_pass = true;
        for cond in &rule.conditions {
            let Some(idx) = *cond else {
                self.st.unsupported = true;
                return Ok(());
            };
            let idx = idx as usize;
            match self.leaves.conditions.get(idx).copied().flatten() {
                Some(known) => self.st.bool_value = known,
                None => {
                    let condition = &self.rs.conditions[idx];
                    self.evaluate_condition(condition)?;
                    if condition.is_leaf() {
                        if let Some(slot) = self.leaves.conditions.get_mut(idx) {
                            *slot = Some(self.st.bool_value);
                        }
                    }
                }
            }
            if !self.st.bool_value {
                all_pass = false;
            }
        }
        self.st.bool_value = all_pass;
        Ok(())
    }

    fn evaluate_delegate(&mut self, rule: &'r Rule) -> Result<bool, TooDeep> {
        let Some((name, Some(idx))) = &rule.config_delegate else {
            return Ok(false);
        };
        let delegate = self.rs.spec(SpecKind::Config, *idx);
        if delegate.mapping_only {
            return Ok(false);
        }
        self.st.undelegated = Some(self.st.secondary.clone());
        self.enter_nested()?;
        self.delegating = true;
        self.evaluate(delegate)?;
        self.st.explicit_parameters = delegate.explicit_parameters.as_deref();
        self.st.config_delegate = Some(name);
        Ok(true)
    }

    fn pass_percentage(&mut self, rule: &Rule, spec: &Spec) -> bool {
        if rule.pass_percentage >= 100.0 {
            return true;
        }
        if rule.pass_percentage <= 0.0 {
            return false;
        }
        let slot = self.leaves.passes.get_mut(rule.slot as usize);
        if let Some(&mut Some(known)) = slot {
            return known;
        }
        let user = self.ctx.user;
        let unit = user.unit_id_str(&rule.id_type.value, &rule.id_type.lower);
        let hash = unit_hash(&[&spec.salt, &rule.salt, unit]);
        let passed = ((hash % 10_000) as f64) < rule.pass_percentage * 100.0;
        if let Some(slot) = slot {
            *slot = Some(passed);
        }
        passed
    }

    fn evaluate_condition(&mut self, cond: &'r Condition) -> Result<(), TooDeep> {
        let user = self.ctx.user;
        let country_buf;
        let ua_buf;
        let value = match &cond.kind {
            Kind::ExperimentGroup(experiment) => {
                self.experiment_group(cond, *experiment)?.map(Val::Dyn)
            }
            Kind::Public => {
                self.st.bool_value = true;
                return Ok(());
            }
            Kind::NestedGate { name, gate, negate } => {
                return self.evaluate_nested_gate(name, *gate, *negate);
            }
            Kind::Unsupported => {
                self.st.unsupported = true;
                return Ok(());
            }
            Kind::UserField => user.field(cond.field.as_ref()).map(Val::Dyn),
            Kind::EnvironmentField => self.environment_value(cond).map(Val::Dyn),
            Kind::IpBased => match user.field(cond.field.as_ref()) {
                Some(v) => Some(Val::Dyn(v)),
                None => {
                    country_buf = country::value_from_ip(user, cond.field.as_ref());
                    country_buf.as_ref().map(Val::Dyn)
                }
            },
            Kind::UaBased => match user.field(cond.field.as_ref()) {
                Some(v) => Some(Val::Dyn(v)),
                None => {
                    ua_buf = ua::value_from_user_agent(user, cond.field.as_ref());
                    ua_buf.as_ref().map(Val::Dyn)
                }
            },
            Kind::CurrentTime => Some(Val::Clock(self.ctx.now_ms)),
            Kind::UserBucket(salt) => {
                let unit = user.unit_id_str(&cond.id_type.value, &cond.id_type.lower);
                Some(Val::Bucket(unit_hash(&[salt, unit]) % 1000))
            }
            Kind::TargetApp => self.ctx.app_id.or(self.rs.app_id.as_ref()).map(Val::Dyn),
            Kind::UnitId => user
                .unit_id(&cond.id_type.value, &cond.id_type.lower)
                .map(Val::Dyn),
        }
        .unwrap_or(Val::Missing);

        let Some(op) = cond.op else {
            self.st.unsupported = true;
            return Ok(());
        };
        let rs = self.rs;
        self.st.bool_value = compare(op, value, &cond.target, &|list, id| {
            rs.id_lists.contains(list, id)
        });
        Ok(())
    }

    fn evaluate_nested_gate(
        &mut self,
        name: &'r str,
        gate: Option<u32>,
        negate: bool,
    ) -> Result<(), TooDeep> {
        if let Some(&(_, value, rule_id, mapped)) = self.memo.iter().find(|g| g.0 == name) {
            self.st.bool_value = value;
            self.st.rule_id = rule_id;
            if mapped.is_some() {
                self.st.override_config = mapped;
            }
        } else {
            let outer_mapping = self.st.override_config.take();
            self.enter_nested()?;
            match gate {
                Some(idx) => self.evaluate(self.rs.spec(SpecKind::Gate, idx))?,
                // The core SDK walks a nested gate on a result of its own: an unknown one
                // leaves no rule id.
                None => self.st.rule_id = None,
            }
            let mapped = self.st.override_config;
            if mapped.is_none() {
                self.st.override_config = outer_mapping;
            }
            if self.st.unsupported {
                return Ok(());
            }
            self.memo
                .push((name, self.st.bool_value, self.st.rule_id, mapped));
        }
        // The core SDK records no exposure without a rule id (an unknown gate, a name only
        // mappings have, none of which applied, or a rule whose id is empty).
        if !name.starts_with("segment:") && self.st.rule_id.is_some_and(|id| !id.is_empty()) {
            let st = &mut self.st;
            st.secondary.push(SecondaryExposure {
                gate: name,
                gate_value: st.bool_value,
                rule_id: st.rule_id.unwrap_or(""),
                gate_index: gate,
            });
        }
        if negate {
            self.st.bool_value = !self.st.bool_value;
        }
        Ok(())
    }

    /// The user's group in the experiment an `experiment_group` condition names. Statsig's
    /// core SDK reads it with a get_experiment of its own, so the experiment is walked from a
    /// fresh result (its nested gates are not this spec's secondary exposures) and noted for
    /// the config exposure that call logs. An experiment already being read further out (a
    /// cycle) has no group, as in the core SDK's client initialize (its get_experiment
    /// recurses until the stack overflows).
    fn experiment_group(
        &mut self,
        cond: &'r Condition,
        experiment: Option<u32>,
    ) -> Result<Option<&'r DynValue>, TooDeep> {
        let Some(name) = &cond.field else {
            return Ok(None);
        };
        let mut group = None;
        if let Some(idx) = experiment {
            if self.reading.contains(&idx) {
                return Ok(None);
            }
            let depth = self.depth + self.nesting + 1;
            if depth > MAX_NESTING {
                return Err(TooDeep);
            }
            let spec = self.rs.spec(SpecKind::Config, idx);
            let mut reading = std::mem::take(&mut self.reading);
            reading.push(idx);
            let (finished, inner, mut reading) =
                self.rs
                    .walk(spec, self.ctx, &mut Scratch::default(), depth, reading);
            reading.pop();
            self.reading = reading;
            finished?;
            self.st.experiments_read.extend(inner.experiments_read);
            if !inner.unsupported {
                group = inner.group_value;
            }
        }
        self.st.experiments_read.push(&name.value);
        Ok(group)
    }

    /// `statsigEnvironment[field]`, else the ruleset's `default_environment`.
    fn environment_value(&self, cond: &Condition) -> Option<&DynValue> {
        let field = cond.field.as_ref()?;
        let defaults = &self.rs.default_environment;
        self.ctx
            .user
            .environment
            .get(&*field.value)
            .or_else(|| defaults.get(&*field.value))
            .or_else(|| defaults.get(&*field.lower))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ruleset() -> Ruleset {
        let gate = |cond: &str| {
            json!({"salt": "s", "enabled": true, "defaultValue": false, "idType": "userID",
                   "rules": [{"id": "r", "passPercentage": 100, "returnValue": true,
                              "idType": "userID", "conditions": [cond]}]})
        };
        let mut rs = Ruleset::from_value(json!({
            "time": 1, "app_id": "web",
            "condition_map": {
                "list": {"type": "unit_id", "operator": "in_segment_list",
                         "targetValue": "beta_list", "idType": "userID"},
                "app": {"type": "target_app", "operator": "any", "targetValue": ["ios"],
                        "idType": "userID"}
            },
            "feature_gates": {"in_list": gate("list"), "ios_only": gate("app")}
        }))
        .unwrap();
        let mut lists = crate::IdLists::default();
        lists.insert_ids("beta_list", ["u1", "u2"]);
        rs.set_id_lists(std::sync::Arc::new(lists));
        rs
    }

    /// Runs `f` with the context of the user `user_id`, at time 0.
    fn with_user<'r>(
        user_id: &str,
        app: Option<&DynValue>,
        f: impl FnOnce(&EvalContext<'_>) -> Evaluation<'r>,
    ) -> Evaluation<'r> {
        let user = User::from_json(&json!({ "userID": user_id })).unwrap();
        f(&EvalContext {
            user: &user,
            now_ms: 0,
            app_id: app,
        })
    }

    fn check(rs: &Ruleset, gate: &str, user_id: &str, app: Option<&DynValue>) -> bool {
        with_user(user_id, app, |ctx| rs.check_gate(gate, ctx)).bool_value
    }

    #[test]
    fn dedupe_keeps_the_first_of_each_in_order_short_and_long() {
        let names: Vec<String> = (0..50).map(|i| format!("g{i}")).collect();
        for len in [0, 1, 2, 5, 32, 33, 120] {
            let list: Vec<SecondaryExposure<'_>> = (0..len)
                .map(|i: usize| SecondaryExposure {
                    gate: &names[(i * 7) % 11 + (i / 40)],
                    gate_value: i.is_multiple_of(3),
                    rule_id: "r",
                    gate_index: None,
                })
                .collect();
            let mut expected = Vec::new();
            for e in &list {
                if !expected.contains(e) {
                    expected.push(*e);
                }
            }
            assert_eq!(dedupe(list), expected, "length {len}");
        }
    }

    #[test]
    fn id_lists_match_hashed_unit_ids() {
        let rs = ruleset();
        assert!(check(&rs, "in_list", "u1", None));
        assert!(!check(&rs, "in_list", "u3", None));
    }

    fn experiment_group_ruleset() -> Ruleset {
        let experiment = |reads: &str| {
            json!({"salt": "s", "enabled": true, "defaultValue": {}, "idType": "userID",
                   "rules": [{"id": "in", "passPercentage": 100, "returnValue": {"v": 1},
                              "idType": "userID", "groupName": "Test", "conditions": [reads]}]})
        };
        let reads = |experiment: &str| {
            json!({"type": "experiment_group", "operator": "any", "targetValue": ["Test"],
                   "field": experiment, "idType": "userID"})
        };
        Ruleset::from_value(json!({
            "time": 1,
            "condition_map": {"public": {"type": "public"}, "reads_base": reads("base"),
                              "reads_middle": reads("middle"), "reads_missing": reads("missing")},
            "dynamic_configs": {"base": experiment("public"), "middle": experiment("reads_base")},
            "feature_gates": {
                "top": {"salt": "s", "enabled": true, "defaultValue": false, "idType": "userID",
                        "rules": [{"id": "r", "passPercentage": 100, "returnValue": true,
                                   "idType": "userID",
                                   "conditions": ["reads_middle", "reads_missing"]}]}}
        }))
        .unwrap()
    }

    #[test]
    fn nested_gates_without_a_rule_id_leave_no_exposure() {
        // As statsig-python-core 0.24.0 records them (probed): an unknown gate and a gate
        // decided by a rule with an empty id are walked but not reported.
        let rs = Ruleset::from_value(json!({
            "time": 1,
            "condition_map": {
                "public": {"type": "public"},
                "known": {"type": "pass_gate", "targetValue": "known"},
                "unknown": {"type": "fail_gate", "targetValue": "unknown"},
                "empty": {"type": "pass_gate", "targetValue": "empty_id"}},
            "feature_gates": {
                "known": {"salt": "s", "enabled": true, "defaultValue": false, "rules": [
                    {"id": "k", "passPercentage": 100, "returnValue": true, "conditions": ["public"]}]},
                "empty_id": {"salt": "s", "enabled": true, "defaultValue": false, "rules": [
                    {"id": "", "passPercentage": 100, "returnValue": true, "conditions": ["public"]}]},
                "top": {"salt": "s", "enabled": true, "defaultValue": false, "rules": [
                    {"id": "t", "passPercentage": 100, "returnValue": true,
                     "conditions": ["known", "unknown", "empty"]}]}}
        }))
        .unwrap();
        let top = with_user("u1", None, |ctx| rs.check_gate("top", ctx));
        assert_eq!((top.bool_value, top.rule_id), (true, "t"));
        let reported: Vec<_> = top.secondary_exposures.iter().map(|e| e.gate).collect();
        assert_eq!(reported, ["known"]);
    }

    #[test]
    fn config_mappings_that_loop_are_unsupported_not_a_stack_overflow() {
        let gate = json!({"salt": "s", "enabled": true, "defaultValue": false, "rules": []});
        let rs = Ruleset::from_value(json!({
            "time": 1,
            "condition_map": {"public": {"type": "public"}},
            "feature_gates": {"a": gate, "b": gate},
            "override_rules": {"everyone": {"id": "everyone", "passPercentage": 100,
                                            "conditions": ["public"]}},
            "overrides": {
                "a": [{"new_config_name": "b", "rules": [{"rule_name": "everyone"}]}],
                "b": [{"new_config_name": "a", "rules": [{"rule_name": "everyone"}]}]}
        }))
        .unwrap();
        let a = with_user("u1", None, |ctx| rs.check_gate("a", ctx));
        assert_eq!((a.outcome, a.bool_value), (Outcome::Unsupported, false));
    }

    #[test]
    fn experiment_group_reads_each_experiment_innermost_first() {
        let rs = experiment_group_ruleset();
        let top = with_user("u1", None, |ctx| rs.check_gate("top", ctx));
        // middle's group is Test (it read base's Test); "missing" has no group: "any" fails.
        assert_eq!((top.bool_value, top.rule_id), (false, "default"));
        assert_eq!(top.experiments_read, ["base", "middle", "missing"]);
        assert!(top.secondary_exposures.is_empty(), "not a nested gate");
        let middle = with_user("u1", None, |ctx| rs.get_config("middle", ctx));
        assert_eq!(middle.group_name, Some("Test"));
        assert_eq!(middle.experiments_read, ["base"]);
    }

    #[test]
    fn a_cycle_of_experiment_reads_has_no_group_where_it_closes() {
        // As statsig-python-core 0.24.0's client initialize answers it: "cycle" read from
        // the top walk has no group inside (already being read), so its first rule fails and
        // its second, public one gives "Test"; the top walk's read then sees "Test".
        let rs = Ruleset::from_value(json!({
            "time": 1,
            "condition_map": {
                "public": {"type": "public"},
                "reads_self": {"type": "experiment_group", "operator": "any",
                               "targetValue": ["Test"], "field": "cycle", "idType": "userID"}},
            "dynamic_configs": {"cycle": {
                "salt": "s", "enabled": true, "defaultValue": {"v": "default"}, "idType": "userID",
                "rules": [
                    {"id": "r_in", "passPercentage": 100, "returnValue": {"v": "in"},
                     "idType": "userID", "conditions": ["reads_self"]},
                    {"id": "r_test", "passPercentage": 100, "returnValue": {"v": "test"},
                     "idType": "userID", "groupName": "Test", "conditions": ["public"]}]}}
        }))
        .unwrap();
        let e = with_user("u1", None, |ctx| rs.get_config("cycle", ctx));
        assert_eq!((e.outcome, e.rule_id), (Outcome::Recognized, "r_in"));
        assert_eq!(e.json_value.as_deref(), Some(&json!({"v": "in"})));
        assert_eq!(e.experiments_read, ["cycle"]);
    }

    #[test]
    fn a_deep_chain_of_experiment_reads_is_unsupported_not_a_stack_overflow() {
        // 400 experiments, each reading the next: deeper than the nesting bound.
        let mut conditions = serde_json::Map::new();
        let mut configs = serde_json::Map::new();
        for i in 0..400 {
            conditions.insert(
                format!("c{i}"),
                json!({"type": "experiment_group", "operator": "any", "targetValue": ["G"],
                       "field": format!("e{}", i + 1), "idType": "userID"}),
            );
            configs.insert(
                format!("e{i}"),
                json!({"salt": "s", "enabled": true, "defaultValue": {}, "idType": "userID",
                       "rules": [{"id": "r", "passPercentage": 100, "returnValue": {},
                                  "idType": "userID", "groupName": "G",
                                  "conditions": [format!("c{i}")]}]}),
            );
        }
        let rs = Ruleset::from_value(
            json!({"time": 1, "condition_map": conditions, "dynamic_configs": configs}),
        )
        .unwrap();
        // On a stack the size of a tokio worker's.
        let outcome = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let e = with_user("u1", None, |ctx| rs.get_config("e0", ctx));
                (e.outcome, e.experiments_read.len())
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(outcome, (Outcome::Unsupported, 0));
    }

    #[test]
    fn the_callers_target_app_overrides_the_payloads() {
        let rs = ruleset();
        assert!(!check(&rs, "ios_only", "u1", None), "payload app_id is web");
        let ios = DynValue::from_text("ios");
        assert!(check(&rs, "ios_only", "u1", Some(&ios)));
    }
}
