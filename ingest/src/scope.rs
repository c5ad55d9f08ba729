//! What one key may see of the ruleset: a key bound to a target app gets only the specs and
//! parameter stores listing that app (`targetAppIDs`), with `app_id` set; a key limited to environments gets
//! only the rules enabled for them, with `default_environment` set (Statsig's per-app and
//! per-environment keys). Bodies are built once per ruleset version and scope.

use serde_json::Value;

use crate::keys::KeyRecord;

/// A key's view of the ruleset.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The key's target app.
    pub app: Option<String>,
    /// The key's environments, lowercased (empty: all).
    pub environments: Vec<String>,
}

impl Scope {
    /// The key's scope, or None when it sees everything.
    pub fn of(key: &KeyRecord) -> Option<Scope> {
        if key.target_app.is_none() && key.environments.is_empty() {
            return None;
        }
        Some(Scope {
            app: key.target_app.clone(),
            environments: key.environments.iter().map(|e| e.to_lowercase()).collect(),
        })
    }

    /// Whether a spec (or a parameter store: the same rule) is served to this scope.
    fn keeps_spec(&self, spec: &Value) -> bool {
        let Some(app) = &self.app else {
            return true;
        };
        spec["targetAppIDs"]
            .as_array()
            .is_some_and(|apps| apps.iter().any(|a| a == app.as_str()))
    }

    /// Whether a rule is enabled for one of the scope's environments: a rule limited by an
    /// `environment_field tier any [...]` condition must name one of them.
    fn keeps_rule(&self, rule: &Value) -> bool {
        if self.environments.is_empty() {
            return true;
        }
        rule["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|c| {
                let limits_tier = c["type"] == "environment_field"
                    && c["field"]
                        .as_str()
                        .is_some_and(|f| f.eq_ignore_ascii_case("tier"))
                    && matches!(c["operator"].as_str(), Some("any" | "any_case_sensitive"));
                !limits_tier
                    || c["targetValue"].as_array().is_some_and(|tiers| {
                        tiers.iter().any(|t| {
                            t.as_str()
                                .is_some_and(|t| self.environments.contains(&t.to_lowercase()))
                        })
                    })
            })
    }

    /// A v1 payload cut down to this scope.
    pub fn filter(&self, mut payload: Value) -> Value {
        let mut dropped = Vec::new();
        for list in ["feature_gates", "dynamic_configs", "layer_configs"] {
            if let Some(specs) = payload[list].as_array_mut() {
                specs.retain(|spec| {
                    let keep = self.keeps_spec(spec);
                    if !keep {
                        dropped.extend(spec["name"].as_str().map(str::to_owned));
                    }
                    keep
                });
                for spec in specs.iter_mut() {
                    if let Some(rules) = spec["rules"].as_array_mut() {
                        // A layer no longer delegates to an experiment the scope lost.
                        rules.retain(|r| {
                            self.keeps_rule(r)
                                && r["configDelegate"]
                                    .as_str()
                                    .is_none_or(|d| !dropped.iter().any(|x| x == d))
                        });
                    }
                }
            }
        }
        if let Some(layers) = payload["layers"].as_object_mut() {
            for members in layers.values_mut() {
                if let Some(list) = members.as_array_mut() {
                    list.retain(|m| m.as_str().is_none_or(|m| !dropped.iter().any(|x| x == m)));
                }
            }
        }
        if let Some(stores) = payload["param_stores"].as_object_mut() {
            stores.retain(|_, store| self.keeps_spec(store));
        }
        if let Some(app) = &self.app {
            payload["app_id"] = app.as_str().into();
        }
        if let Some(first) = self.environments.first() {
            payload["default_environment"] = first.as_str().into();
        }
        payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn apps_and_environments_cut_the_payload() {
        let env_rule = |tiers: Value| json!({"id": "r", "conditions": [{"type": "environment_field", "field": "tier", "operator": "any", "targetValue": tiers}]});
        let payload = json!({
            "feature_gates": [
                {"name": "web_only", "targetAppIDs": ["web"], "rules": [env_rule(json!(["staging"])), env_rule(json!(["production"])), {"id": "all", "conditions": []}]},
                {"name": "ios_only", "targetAppIDs": ["ios"], "rules": []},
                {"name": "no_app", "rules": []}
            ],
            "dynamic_configs": [], "layer_configs": [], "layers": {},
            "param_stores": {"web_store": {"targetAppIDs": ["web"], "parameters": {}},
                             "no_app_store": {"parameters": {}}}
        });
        let scope = Scope {
            app: Some("web".into()),
            environments: vec!["staging".into()],
        };
        let cut = scope.filter(payload.clone());
        let names: Vec<&str> = cut["feature_gates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web_only"]);
        let rules: Vec<&Value> = cut["feature_gates"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(
            rules.len(),
            2,
            "the production-only rule is gone: {rules:?}"
        );
        assert_eq!(
            cut["param_stores"],
            json!({"web_store": {"targetAppIDs": ["web"], "parameters": {}}})
        );
        assert_eq!(cut["app_id"], "web");
        assert_eq!(cut["default_environment"], "staging");

        let env_only = Scope {
            app: None,
            environments: vec!["production".into()],
        };
        assert_eq!(
            env_only.filter(payload)["feature_gates"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }
}
