//! Gates, dynamic configs, experiments, layers and segments over the console API: reads,
//! checked and compiled writes with `If-Match`, rules, overrides, experiment transitions,
//! versions and the audit log.

use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::{
    auth, body_object, commit, conflict, data, if_match, key_view, list_filters, paged, resource,
    with_etag, Answer, ConsoleError,
};
use crate::control::specs::{self, FieldError};
use crate::control::state::{Kind, State};
use crate::control::{self, Control};
use crate::http::{AppState, Decoded};
use crate::keys::{Access, KeyRecord};

fn entity_view(entry: &control::state::Entry, doc: &Value) -> Value {
    let mut view = specs::public_view(doc);
    view["version"] = entry.version.into();
    view["lastModifiedTime"] = entry.updated_at_ms.into();
    view["lastModifierID"] = entry.updated_by.clone().into();
    view
}

fn read_entity(control: &Control, kind: Kind, id: &str) -> Result<(Value, u64), ConsoleError> {
    let state = control.lock_state();
    let entry = state.get(kind, id).filter(|e| e.doc.is_some());
    let entry = entry.ok_or_else(|| ConsoleError::not_found(kind.as_str()))?;
    Ok((entry.doc.clone().unwrap_or_default(), entry.version))
}

/// The filters Statsig's entity lists take that Gatehouse keeps the fields for. An entity
/// is listed when it passes every filter named, a filter given several times by any of its
/// values.
const LIST_FILTERS: [&str; 7] = [
    "idType",
    "type",
    "status",
    "tags",
    "teamID",
    "creatorID",
    "targetAppID",
];

/// Whether an entity's `view` passes the list filter `filter=want`: the field equals it, or
/// (`tags`, `targetApps`) lists it.
fn has(view: &Value, filter: &str, want: &str) -> bool {
    let field = if filter == "targetAppID" {
        "targetApps"
    } else {
        filter
    };
    match &view[field] {
        Value::Array(items) => items.iter().any(|item| item == want),
        value => value == want,
    }
}

/// `/console/v1/{resource}/...`; `path` is what follows `v1`.
pub(super) async fn entity_route(
    state: &AppState,
    control: &std::sync::Arc<Control>,
    method: &Method,
    req: &Decoded,
    path: &[&str],
) -> Answer {
    let no_such = || ConsoleError::new(StatusCode::NOT_FOUND, "no such endpoint");
    let [res, rest @ ..] = path else {
        return Err(no_such());
    };
    let (kind, label) = resource(res).ok_or_else(no_such)?;
    let read = || auth(state, req, Access::ConsoleRead);
    let write = || auth(state, req, Access::ConsoleWrite);
    match (method.clone(), rest) {
        (Method::GET, []) => {
            read()?;
            let filters = list_filters(req, &LIST_FILTERS)?;
            let st = control.lock_state();
            let list: Vec<Value> = st
                .live(kind)
                .map(|(_, e, d)| entity_view(e, d))
                .filter(|view| {
                    filters.iter().all(|(name, _)| {
                        let mut wanted = filters.iter().filter(|(n, _)| n == name);
                        wanted.any(|(_, want)| has(view, name, want))
                    })
                })
                .collect();
            let listed = format!("{label}s listed successfully.");
            paged(req, path, &listed, list.len(), list.into_iter())
        }
        (Method::POST, []) => {
            let actor = write()?;
            let body = body_object(req)?;
            let name = body
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ConsoleError::invalid(vec![FieldError {
                        property: "name".into(),
                        error: "required".into(),
                    }])
                })?
                .to_owned();
            let base = match control.lock_state().get(kind, &name) {
                Some(e) if e.doc.is_some() => {
                    return Err(ConsoleError {
                        status: StatusCode::BAD_REQUEST,
                        message: "Name is already in use".into(),
                        errors: vec![FieldError {
                            property: "name".into(),
                            error: "already in use".into(),
                        }],
                    })
                }
                Some(e) => e.version,
                None => 0,
            };
            let doc = specs::normalize(kind, &name, &Value::Object(body), None)
                .map_err(ConsoleError::invalid)?;
            let done = Done::new(
                "create",
                StatusCode::CREATED,
                format!("{label} created successfully."),
            );
            write_entity(control, kind, &name, base, Some(doc), &actor.id, done).await
        }
        (Method::GET, [id]) => {
            read()?;
            let st = control.lock_state();
            let entry = st
                .get(kind, id)
                .filter(|e| e.doc.is_some())
                .ok_or_else(|| ConsoleError::not_found(label))?;
            let view = entity_view(entry, entry.doc.as_ref().unwrap_or(&Value::Null));
            Ok(with_etag(
                data(StatusCode::OK, &format!("{label} read successfully."), view),
                entry.version,
            ))
        }
        (Method::POST | Method::PUT | Method::PATCH, [id]) => {
            let done = Done::new(
                "update",
                StatusCode::OK,
                format!("{label} updated successfully."),
            );
            modify(control, req, &write()?, kind, id, done, |old| {
                let mut body = body_object(req)?;
                if *method == Method::PATCH {
                    // Partial update: the fields sent replace the stored ones.
                    let mut merged = specs::public_view(&old)
                        .as_object()
                        .cloned()
                        .unwrap_or_default();
                    merged.extend(body);
                    body = merged;
                }
                let new = specs::normalize(kind, id, &Value::Object(body), Some(&old))
                    .map_err(ConsoleError::invalid)?;
                if kind == Kind::Experiment {
                    return running_experiment_edit(control, id, &old, new).map(Some);
                }
                Ok(Some(new))
            })
            .await
        }
        (Method::DELETE, [id]) => {
            let done = Done::new(
                "delete",
                StatusCode::OK,
                format!("{label} deleted successfully."),
            );
            let actor = write()?;
            let used_by = specs::references(&control.lock_state(), kind, id);
            if !used_by.is_empty() {
                return Err(ConsoleError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "{} {id} is used by {}: remove those references first",
                        kind.as_str(),
                        used_by.join(", ")
                    ),
                ));
            }
            modify(control, req, &actor, kind, id, done, |_| Ok(None)).await
        }
        (Method::GET, [id, "versions"]) => {
            read()?;
            if control.lock_state().get(kind, id).is_none() {
                return Err(ConsoleError::not_found(label));
            }
            let listed = format!("{label} versions listed successfully.");
            audit_log(state, control, req, path, Some((kind, id)), &listed)
        }
        (Method::PUT | Method::POST, [id, action @ ("enable" | "disable")])
            if matches!(kind, Kind::Gate | Kind::DynamicConfig) =>
        {
            let done = Done::new(
                action,
                StatusCode::OK,
                format!("{label} updated successfully."),
            );
            modify(control, req, &write()?, kind, id, done, |mut doc| {
                doc["isEnabled"] = (*action == "enable").into();
                Ok(Some(doc))
            })
            .await
        }
        (Method::PUT | Method::POST, [id, action @ ("start" | "finish" | "abandon")])
            if kind == Kind::Experiment =>
        {
            let done = Done::new(
                action,
                StatusCode::OK,
                "Experiment updated successfully.".into(),
            );
            let actor = write()?;
            if *action == "finish" {
                ship_to_layer(control, req, id, &actor.id).await?;
            }
            modify(control, req, &actor, kind, id, done, |doc| {
                experiment_transition(control, doc, action, req).map(Some)
            })
            .await
        }
        (Method::POST, [id, "rules"])
            if matches!(kind, Kind::Gate | Kind::DynamicConfig | Kind::Segment) =>
        {
            let done = Done::new(
                "add_rule",
                StatusCode::CREATED,
                "Rule added successfully.".into(),
            );
            modify(control, req, &write()?, kind, id, done, |mut doc| {
                let rule = specs::one_rule(&req.json()?, "rule", &[], kind == Kind::DynamicConfig)
                    .map_err(ConsoleError::invalid)?;
                let rules = doc["rules"].as_array_mut().ok_or_else(|| {
                    ConsoleError::new(
                        StatusCode::BAD_REQUEST,
                        "this segment has no rules (id_list)",
                    )
                })?;
                for field in ["name", "id"] {
                    if rules.iter().any(|r| r[field] == rule[field]) {
                        return Err(ConsoleError::invalid(vec![FieldError {
                            property: field.into(),
                            error: format!("duplicate rule {field}"),
                        }]));
                    }
                }
                rules.push(rule);
                Ok(Some(doc))
            })
            .await
        }
        (Method::PATCH | Method::DELETE, [id, "rules", rule_id])
            if matches!(kind, Kind::Gate | Kind::DynamicConfig | Kind::Segment) =>
        {
            let delete = *method == Method::DELETE;
            let action = if delete { "delete_rule" } else { "update_rule" };
            let done = Done::new(action, StatusCode::OK, "Rule updated successfully.".into());
            modify(control, req, &write()?, kind, id, done, |mut doc| {
                let rules = doc["rules"]
                    .as_array_mut()
                    .ok_or_else(|| ConsoleError::not_found("Rule"))?;
                let index = rules
                    .iter()
                    .position(|r| r["id"] == *rule_id || r["name"] == *rule_id)
                    .ok_or_else(|| ConsoleError::not_found("Rule"))?;
                if delete {
                    rules.remove(index);
                } else {
                    let mut merged = rules[index].as_object().cloned().unwrap_or_default();
                    merged.extend(body_object(req)?);
                    merged.insert("id".into(), rules[index]["id"].clone());
                    let with_value = kind == Kind::DynamicConfig;
                    rules[index] = specs::one_rule(&Value::Object(merged), "rule", &[], with_value)
                        .map_err(ConsoleError::invalid)?;
                }
                Ok(Some(doc))
            })
            .await
        }
        (Method::GET, [id, "overrides"])
            if matches!(kind, Kind::Gate | Kind::DynamicConfig | Kind::Experiment) =>
        {
            read()?;
            let (doc, version) = read_entity(control, kind, id)?;
            let overrides = doc["overrides"].clone();
            Ok(with_etag(
                data(StatusCode::OK, "Overrides read successfully.", overrides),
                version,
            ))
        }
        (Method::POST | Method::PUT, [id, "overrides"])
            if matches!(kind, Kind::Gate | Kind::DynamicConfig | Kind::Experiment) =>
        {
            let done = Done::new(
                "overrides",
                StatusCode::OK,
                "Overrides updated successfully.".into(),
            );
            modify(control, req, &write()?, kind, id, done, |mut doc| {
                doc["overrides"] = if kind == Kind::Experiment {
                    experiment_overrides(&doc, &body_object(req)?)?
                } else {
                    pass_fail_overrides(&body_object(req)?)?
                };
                Ok(Some(doc))
            })
            .await
        }
        _ => Err(ConsoleError::new(StatusCode::NOT_FOUND, "no such endpoint")),
    }
}

fn id_list(value: &Value) -> Option<&Vec<Value>> {
    value.as_array().filter(|l| l.iter().all(Value::is_string))
}

/// Gate and config overrides: `{passingUserIDs, failingUserIDs}`.
fn pass_fail_overrides(body: &Map<String, Value>) -> Result<Value, ConsoleError> {
    let mut overrides = json!({"passingUserIDs": [], "failingUserIDs": []});
    for (field, ids) in body {
        match (field.as_str(), id_list(ids)) {
            ("passingUserIDs" | "failingUserIDs", Some(list)) => {
                overrides[field] = list.clone().into()
            }
            _ => {
                return Err(ConsoleError::invalid(vec![FieldError {
                    property: field.clone(),
                    error: "passingUserIDs and failingUserIDs: lists of user ids".into(),
                }]))
            }
        }
    }
    Ok(overrides)
}

/// Experiment overrides: `{userIDOverrides: [{groupID: group name, ids: [...]}]}`.
fn experiment_overrides(doc: &Value, body: &Map<String, Value>) -> Result<Value, ConsoleError> {
    let invalid = |property: String, error: &str| {
        ConsoleError::invalid(vec![FieldError {
            property,
            error: error.into(),
        }])
    };
    if let Some(field) = body.keys().find(|k| *k != "userIDOverrides") {
        return Err(invalid(field.clone(), "unknown field"));
    }
    let list = match body.get("userIDOverrides") {
        Some(Value::Array(list)) => list,
        _ => {
            return Err(invalid(
                "userIDOverrides".into(),
                "a list of {groupID, ids}",
            ))
        }
    };
    for (i, entry) in list.iter().enumerate() {
        let group = entry["groupID"].as_str().unwrap_or_default();
        if !doc["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["name"] == group))
        {
            let error = "the name of one of the experiment's groups";
            return Err(invalid(format!("userIDOverrides[{i}].groupID"), error));
        }
        if id_list(&entry["ids"]).is_none() {
            return Err(invalid(
                format!("userIDOverrides[{i}].ids"),
                "a list of user ids",
            ));
        }
    }
    Ok(json!({"userIDOverrides": list}))
}

/// An edit of a running experiment keeps its units where they are: its layer, unit type and
/// group sizes are fixed (any of them would bucket units anew: 409), and a changed allocation
/// grows or shrinks its range of the layer's buckets from the same start, so the units
/// inside stay inside; a range that would run into another experiment's is refused (409).
fn running_experiment_edit(
    control: &Control,
    id: &str,
    old: &Value,
    mut new: Value,
) -> Result<Value, ConsoleError> {
    if old["status"] != "active" {
        return Ok(new);
    }
    let sizes = |doc: &Value| -> Vec<f64> {
        let groups = doc["groups"].as_array().into_iter().flatten();
        groups.map(|g| g["size"].as_f64().unwrap_or(0.0)).collect()
    };
    let moved = if new["layerID"] != old["layerID"] {
        Some("layerID")
    } else if new["idType"] != old["idType"] {
        Some("idType")
    } else if sizes(&new) != sizes(old) {
        Some("groups[].size")
    } else {
        None
    };
    let refuse = |why: String| ConsoleError::new(StatusCode::CONFLICT, why);
    if let Some(field) = moved {
        return Err(refuse(format!(
            "{field} of a running experiment is fixed: changing it would move units between \
             groups (change allocation instead, or finish it and start another)"
        )));
    }
    let (Some(layer), Some([lo, _])) = (old["layerID"].as_str(), specs::layer_range(old)) else {
        return Ok(new);
    };
    let hi = lo + specs::allocated_buckets(&new);
    let free = control
        .lock_state()
        .layer_buckets_free(layer, [lo, hi], Some(id));
    if hi > 1000 || !free {
        return Err(refuse(format!(
            "layer {layer} has no free buckets {lo}..{hi} for this experiment to grow into"
        )));
    }
    new["_layerBuckets"] = json!([lo, hi]);
    Ok(new)
}

/// Finishing a layered experiment without a targeting gate ships its launched group as
/// Statsig does: the layer's parameters take the group's values as their defaults (a
/// `ship` change of the layer, in its versions and the audit log), so `get_layer` serves
/// them to everyone from then on. A targeted experiment ships to the units that pass its
/// gate, through the experiment alone. Does nothing when `finish` will be refused. The layer
/// is written first: should the experiment's change then fail, a retried `finish` completes
/// the decision (the layer already holds the group's values).
async fn ship_to_layer(
    control: &std::sync::Arc<Control>,
    req: &Decoded,
    id: &str,
    actor: &str,
) -> Result<(), ConsoleError> {
    let (experiment, _) = read_entity(control, Kind::Experiment, id)?;
    let Some(layer) = experiment["layerID"].as_str() else {
        return Ok(());
    };
    if experiment["status"] != "active" || !experiment["targetingGateID"].is_null() {
        return Ok(());
    }
    let launched = body_object(req)?
        .get("launchedGroupID")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut groups = experiment["groups"].as_array().into_iter().flatten();
    let Some(group) = groups.find(|g| g["name"].as_str() == launched.as_deref()) else {
        return Ok(());
    };
    let (mut layer_doc, version) = read_entity(control, Kind::Layer, layer)?;
    let mut shipped = false;
    for p in layer_doc["parameters"].as_array_mut().into_iter().flatten() {
        if let Some(value) = p["name"]
            .as_str()
            .and_then(|n| group["parameterValues"].get(n))
        {
            shipped |= p["defaultValue"] != *value;
            p["defaultValue"] = value.clone();
        }
    }
    if shipped {
        let change = control::change(Kind::Layer, layer, version, Some(layer_doc), actor, "ship");
        check_compiles(control, &change)?;
        commit(control, change).await?;
    }
    Ok(())
}

/// `start` (setup → active; a layered experiment takes a free share of its layer),
/// `finish` (active → decision_made, body `{"launchedGroupID": group name}`), `abandon`.
fn experiment_transition(
    control: &Control,
    mut doc: Value,
    action: &str,
    req: &Decoded,
) -> Result<Value, ConsoleError> {
    let status = doc["status"].as_str().unwrap_or("setup").to_owned();
    let refuse = |why: String| ConsoleError::new(StatusCode::CONFLICT, why);
    match action {
        "start" => {
            if status != "setup" {
                return Err(refuse(format!(
                    "only an experiment in setup can start; this one is {status}"
                )));
            }
            if let Some(layer) = doc["layerID"].as_str() {
                let state = control.lock_state();
                if state
                    .get(Kind::Layer, layer)
                    .is_none_or(|e| e.doc.is_none())
                {
                    return Err(ConsoleError::invalid(vec![FieldError {
                        property: "layerID".into(),
                        error: format!("no layer named {layer}"),
                    }]));
                }
                let taken = state.layer_ranges(layer, None);
                let size = specs::allocated_buckets(&doc);
                let range = specs::free_range(&taken, size).ok_or_else(|| {
                    refuse(format!(
                        "layer {layer} has no free {}% left",
                        size as f64 / 10.0
                    ))
                })?;
                doc["_layerBuckets"] = json!(range);
            }
            doc["status"] = "active".into();
        }
        "finish" => {
            if status != "active" {
                return Err(refuse(format!(
                    "only an active experiment can finish; this one is {status}"
                )));
            }
            let body = body_object(req)?;
            let group = body
                .get("launchedGroupID")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !doc["groups"]
                .as_array()
                .is_some_and(|g| g.iter().any(|g| g["name"] == group))
            {
                return Err(ConsoleError::invalid(vec![FieldError {
                    property: "launchedGroupID".into(),
                    error: "the name of one of the experiment's groups".into(),
                }]));
            }
            doc["status"] = "decision_made".into();
            doc["launchedGroupID"] = group.into();
        }
        _ => {
            if matches!(status.as_str(), "decision_made" | "abandoned") {
                return Err(refuse(format!("the experiment is already {status}")));
            }
            doc["status"] = "abandoned".into();
        }
    }
    Ok(doc)
}

/// What a successful write is recorded as and answered with.
struct Done<'a> {
    action: &'a str,
    status: StatusCode,
    message: String,
}

impl Done<'_> {
    fn new(action: &str, status: StatusCode, message: String) -> Done<'_> {
        Done {
            action,
            status,
            message,
        }
    }
}

/// Reads an entity, lets `edit` turn its document into the new one (`None` deletes), and
/// writes that based on the version read, or on the caller's `If-Match`.
async fn modify(
    control: &std::sync::Arc<Control>,
    req: &Decoded,
    actor: &std::sync::Arc<KeyRecord>,
    kind: Kind,
    id: &str,
    done: Done<'_>,
    edit: impl FnOnce(Value) -> Result<Option<Value>, ConsoleError>,
) -> Answer {
    let (doc, version) = read_entity(control, kind, id)?;
    let doc = edit(doc)?;
    let base = if_match(req)?.unwrap_or(version);
    write_entity(control, kind, id, base, doc, &actor.id, done).await
}

/// Compiles the ruleset as it would be with the change, then writes it.
async fn write_entity(
    control: &std::sync::Arc<Control>,
    kind: Kind,
    name: &str,
    base: u64,
    doc: Option<Value>,
    actor: &str,
    done: Done<'_>,
) -> Answer {
    let change = control::change(kind, name, base, doc, actor, done.action);
    check_compiles(control, &change)?;
    let version = commit(control, change.clone()).await?;
    let view = match &change.doc {
        Some(doc) => {
            let st = control.lock_state();
            match st.get(kind, name) {
                Some(entry) => entity_view(entry, doc),
                None => specs::public_view(doc),
            }
        }
        None => json!({"id": name}),
    };
    Ok(with_etag(data(done.status, &done.message, view), version))
}

/// A write is refused (400) when the evaluator would not compile it, would skip a spec
/// because of it, or when it names a gate, segment or layer that does not exist.
fn check_compiles(control: &Control, change: &control::state::Change) -> Result<(), ConsoleError> {
    let mut candidate: State = control.lock_state().clone();
    if let control::state::Outcome::Conflict { current } = candidate.apply(change) {
        return Err(conflict(current));
    }
    let compiled = control
        .rules()
        .try_overlay(&specs::overlay(&candidate))
        .map_err(|e| {
            ConsoleError::new(
                StatusCode::BAD_REQUEST,
                format!("the ruleset would not compile: {e}"),
            )
        })?;
    if let Some(warning) = compiled
        .ruleset
        .warnings()
        .iter()
        .find(|w| w.contains(&change.name))
    {
        return Err(ConsoleError::new(
            StatusCode::BAD_REQUEST,
            format!("refused: {warning}"),
        ));
    }
    // A name no spec has would evaluate as unrecognized (a gate false, a targeting gate
    // failing everyone): a typo, named here instead of found in the experiment's results.
    let gates: Vec<&str> = compiled.ruleset.names(evaluator::SpecKind::Gate).collect();
    let missing: Vec<FieldError> = change
        .doc
        .iter()
        .flat_map(specs::named_by)
        .filter(|(_, kind, name)| match kind {
            Kind::Gate => !gates.contains(&name.as_str()),
            Kind::Segment => !gates.contains(&format!("segment:{name}").as_str()),
            _ => candidate.get(*kind, name).is_none_or(|e| e.doc.is_none()),
        })
        .map(|(property, kind, name)| FieldError {
            property,
            error: format!("no {} named {name}", kind.as_str()),
        })
        .collect();
    if !missing.is_empty() {
        return Err(ConsoleError::invalid(missing));
    }
    Ok(())
}

/// A page of accepted changes, newest first: of the whole audit log, or one entity's
/// versions. Only the page's changes are rendered, however long the log.
pub(super) fn audit_log(
    state: &AppState,
    control: &Control,
    req: &Decoded,
    path: &[&str],
    entity: Option<(Kind, &str)>,
    message: &str,
) -> Answer {
    auth(state, req, Access::ConsoleRead)?;
    list_filters(req, &[])?;
    let st = control.lock_state();
    let changes = || {
        st.audit()
            .rev()
            .filter(|c| entity.is_none_or(|(k, n)| c.kind == k && c.name == n))
    };
    let entries = changes().map(|c| {
        // Key documents hold a digest: show the key's public view instead.
        let doc = match (c.kind, &c.doc) {
            (Kind::Key, Some(doc)) => key_view(doc, None, false),
            (_, Some(doc)) => specs::public_view(doc),
            (_, None) => Value::Null,
        };
        json!({"kind": c.kind.as_str(), "id": c.name, "action": c.action, "version": c.base + 1,
                   "actor": c.actor, "time": c.at_ms, "data": doc})
    });
    paged(req, path, message, changes().count(), entries)
}
