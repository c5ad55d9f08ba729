"""Deterministic generator of a Statsig ruleset (v1 shape) and of the users to evaluate it with.

The ruleset exercises every condition type and operator Gatehouse supports, in the spec
shapes Statsig's console generates: plain gates, segments, holdouts, nested gate chains,
dynamic configs, experiments (prestart / layerAssignment / targeting / user_bucket groups)
and layers whose rules delegate to experiments. `to_v2` turns it into the dcs-v2 shape
(maps keyed by name, `condition_map`, `experiment_to_layer`) that Statsig's core SDK reads.
"""

import copy
import hashlib
import json
import random

TIME = 1767225600000  # 2026-01-01T00:00:00Z, the ruleset's lcut
PAST_MS = 1577836800000  # 2020-01-01
FUTURE_MS = 4102444800000  # 2100-01-01
APP_ID = "app-web"

PCTS = [0, 0.5, 10, 50, 100, 100, 100]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.n = 0

    def uid(self, prefix):
        self.n += 1
        return f"{prefix}{self.n}_{self.r.randrange(16**6):06x}"


def cond(ctype, operator=None, target=None, field=None, id_type="userID", additional=None):
    return {
        "type": ctype,
        "targetValue": target,
        "operator": operator,
        "field": field,
        "additionalValues": additional or {},
        "isDeviceBased": False,
        "idType": id_type,
    }


def leaf_conditions(g):
    """Every (type, operator) pair with targets chosen so that typical users land on both sides."""
    r = g.r
    return [
        cond("public"),
        cond("user_field", "any", ["US", "ca", "Fr"], "country"),
        cond("user_field", "none", ["US", "ca"], "country"),
        cond("user_field", "any", ["gold", "Silver"], "plan"),
        cond("user_field", "any_case_sensitive", ["gold", "Silver"], "plan"),
        cond("user_field", "none_case_sensitive", ["gold", "Silver"], "plan"),
        cond("user_field", "any", [1, 2, 3, "4"], "level"),
        cond("user_field", "any", ["u1", "u2", "u3", "42"], "userID"),
        cond("user_field", "gt", 5, "level"),
        cond("user_field", "gte", "5", "LEVEL"),
        cond("user_field", "lt", 3.5, "level"),
        cond("user_field", "lte", 7, "score"),
        cond("user_field", "version_gt", "1.2.0", "appVersion"),
        cond("user_field", "version_gte", "2.0", "appVersion"),
        cond("user_field", "version_lt", "1.10.3-beta", "appVersion"),
        cond("user_field", "version_lte", "3", "app_version"),
        cond("user_field", "version_eq", "2.0.0", "appVersion"),
        cond("user_field", "version_neq", "2.0.0", "appVersion"),
        cond("user_field", "str_starts_with_any", ["ADMIN", "test"], "email"),
        cond("user_field", "str_ends_with_any", ["@example.com", "@Statsig.IO"], "email"),
        cond("user_field", "str_contains_any", ["+", "qa"], "Email"),
        cond("user_field", "str_contains_none", ["spam", "bot"], "email"),
        cond("user_field", "str_matches", r"^[a-m].*@", "email"),
        cond("user_field", "str_matches", r"\d{3}", "locale"),
        cond("user_field", "str_matches", r"(unclosed", "email"),
        cond("user_field", "eq", "fr_FR", "locale"),
        cond("user_field", "neq", "en_US", "locale"),
        cond("user_field", "eq", None, "plan"),
        cond("user_field", "eq", 7, "level"),
        cond("user_field", "eq", True, "beta"),
        cond("user_field", "neq", False, "beta"),
        cond("user_field", "before", FUTURE_MS, "signup"),
        cond("user_field", "after", "2023-06-01T00:00:00Z", "signup"),
        cond("user_field", "on", 1704067200000, "signup"),
        cond("user_field", "array_contains_any", ["a", "b"], "tags"),
        cond("user_field", "array_contains_none", ["spam"], "tags"),
        cond("user_field", "array_contains_all", ["a", "c"], "tags"),
        cond("user_field", "not_array_contains_all", ["a", "c"], "tags"),
        cond("user_field", "array_contains_any", [1, 2], "nums"),
        cond("user_field", "any", ["secret"], "vip"),
        cond("user_field", "str_contains_any", [""], "nickname"),
        cond("user_field", "any", [""], "nickname"),
        cond("user_field", "gt", 10, "email"),
        cond("environment_field", "any", ["production"], "tier"),
        cond("environment_field", "none", ["development"], "tier"),
        cond("environment_field", "any", ["staging", "development"], "tier"),
        cond("current_time", "after", PAST_MS),
        cond("current_time", "before", FUTURE_MS),
        cond("current_time", "before", PAST_MS),
        cond("user_bucket", "lt", r.choice([100, 250, 500, 900]), None, "userID",
             {"salt": g.uid("bucket")}),
        cond("user_bucket", "gte", 500, None, "userID", {"salt": g.uid("bucket")}),
        cond("user_bucket", "any", [1, 5, 7, 11, 13, 17, 19, 23, 29, 31] + list(range(100, 400)),
             None, "userID", {"salt": g.uid("bucket")}),
        cond("user_bucket", "none", list(range(0, 500)), None, "stableID", {"salt": g.uid("bucket")}),
        cond("unit_id", "any", ["c1", "C2", "c3", "u1"], None, "companyID"),
        cond("unit_id", "none", ["c1", "c2"], None, "companyID"),
        cond("unit_id", "any", ["s-1", "s-2", "s-3"], None, "stableID"),
        cond("unit_id", "str_starts_with_any", ["u"], None, "userID"),
        cond("ip_based", "any", ["US", "DE"], "country"),
        cond("ip_based", "none", ["US"], "country"),
        cond("ua_based", "any", ["Android", "iOS"], "os_name"),
        cond("ua_based", "any", ["Chrome", "Firefox"], "browser_name"),
        cond("ua_based", "version_gte", "10", "os_version"),
        cond("target_app", "any", [APP_ID]),
        cond("target_app", "none", [APP_ID]),
    ]


def rule(g, conditions, pct=None, return_value=True, id_type="userID", group_name=None, **extra):
    rid = g.uid("rule")
    out = {
        "name": rid,
        "groupName": group_name,
        "passPercentage": g.r.choice(PCTS) if pct is None else pct,
        "conditions": conditions,
        "returnValue": return_value,
        "id": rid,
        "salt": g.r.choice([rid, g.uid("rsalt"), ""]),
        "idType": id_type,
    }
    out.update(extra)
    return out


def spec(g, name, stype, entity, rules, default, id_type="userID", enabled=True, **extra):
    out = {
        "name": name,
        "type": stype,
        "salt": g.uid("salt"),
        "enabled": enabled,
        "defaultValue": default,
        "rules": rules,
        "isDeviceBased": id_type == "stableID",
        "idType": id_type,
        "entity": entity,
        "version": g.r.randrange(1, 20),
    }
    out.update(extra)
    return out


def build(seed=7):
    g = Gen(seed)
    r = g.r
    leaves = leaf_conditions(g)
    gates, configs, layers_out, layers_map = [], [], [], {}

    holdout = spec(g, "global_holdout", "feature_gate", "holdout",
                   [rule(g, [cond("public")], pct=2)], False)
    gates.append(holdout)
    segment = spec(g, "segment:beta_users", "feature_gate", "segment",
                   [rule(g, [cond("user_field", "any", ["gold", "platinum"], "plan")], pct=100),
                    rule(g, [cond("unit_id", "any", ["c1", "c3"], None, "companyID")], pct=100)], False)
    gates.append(segment)

    plain = []
    for i in range(40):
        rules = []
        for _ in range(r.randint(1, 3)):
            rules.append(rule(g, [copy.deepcopy(r.choice(leaves)) for _ in range(r.randint(1, 3))]))
        gid = r.choice(["userID"] * 5 + ["stableID", "companyID"])
        for ru in rules:
            ru["idType"] = gid
        gate = spec(g, f"gate_{i}", "feature_gate", "feature_gate", rules, False, gid,
                    enabled=(i % 13 != 5))
        if i % 9 == 0:
            gate["targetAppIDs"] = [APP_ID]
        gates.append(gate)
        plain.append(gate["name"])

    # Nested gates: chains, segments, holdouts, unknown gates, both polarities.
    nested = []
    for i in range(16):
        kids = []
        for _ in range(r.randint(1, 3)):
            target = r.choice(plain + nested + ["segment:beta_users", "global_holdout", "no_such_gate"])
            kids.append(cond(r.choice(["pass_gate", "fail_gate"]), None, target))
        if i % 4 == 0:
            kids.append(copy.deepcopy(r.choice(leaves)))
        rules = [rule(g, kids)]
        if i % 3 == 0:
            rules.insert(0, rule(g, [cond("pass_gate", None, "global_holdout")], pct=0))
        gates.append(spec(g, f"nested_{i}", "feature_gate", "feature_gate", rules, False))
        nested.append(f"nested_{i}")
    gates.append(spec(g, "multi_gate", "feature_gate", "feature_gate",
                      [rule(g, [cond("multi_pass_gate", None, ["gate_1", "gate_2"])], pct=100)], False))
    gates.append(spec(g, "depends_on_multi", "feature_gate", "feature_gate",
                      [rule(g, [cond("pass_gate", None, "multi_gate")], pct=100)], False))
    gates.append(spec(g, "unknown_operator", "feature_gate", "feature_gate",
                      [rule(g, [cond("user_field", "glob", ["*"], "email")], pct=100)], False))

    for i in range(12):
        rules = [rule(g, [copy.deepcopy(r.choice(leaves))], return_value={"color": r.choice(["red", "blue"]), "n": i})
                 for _ in range(r.randint(1, 3))]
        configs.append(spec(g, f"config_{i}", "dynamic_config", "dynamic_config", rules,
                            {"color": "grey", "n": -1}, enabled=(i != 4)))

    def experiment(name, layer_salt=None, active=True, explicit=None, segments=None, targeting=None):
        exp_salt = g.uid("salt")
        default = {"button": "default", "size": 1}
        rules = [rule(g, [cond("pass_gate", None, "global_holdout")], pct=100, return_value=default)]
        rules[0]["id"] = rules[0]["name"] = g.uid("holdout")
        rules.append(rule(g, [cond("unit_id", "any", ["u7", "u8"], None, "userID")], pct=100,
                          return_value={"button": "override", "size": 9}, group_name="Test",
                          isExperimentGroup=False))
        rules[-1]["id"] = f"{rules[-1]['id']}:id_override"
        if not active:
            rules.append(rule(g, [cond("public")], pct=100, return_value=default))
            rules[-1]["id"] = rules[-1]["name"] = "prestart"
        if layer_salt is not None:
            rules.append(rule(g, [cond("user_bucket", "none", segments, None, "userID", {"salt": layer_salt})],
                              pct=100, return_value=default))
            rules[-1]["id"] = rules[-1]["name"] = "layerAssignment"
        if targeting:
            rules.append(rule(g, [cond("fail_gate", None, targeting)], pct=100, return_value=default))
            rules[-1]["id"] = rules[-1]["name"] = "targetingGate"
        groups = ["Control", "Test", "Test 2"][: r.randint(2, 3)]
        bound = 0
        for gi, gname in enumerate(groups):
            bound = 1000 if gi == len(groups) - 1 else bound + 1000 // len(groups)
            rules.append(rule(g, [cond("user_bucket", "lt", bound, None, "userID", {"salt": exp_salt})],
                              pct=100, return_value={"button": gname.lower(), "size": gi + 2},
                              group_name=gname, isExperimentGroup=True))
        return spec(g, name, "dynamic_config", "experiment", rules, default, salt=exp_salt, isActive=active,
                    hasSharedParams=layer_salt is not None,
                    **({"explicitParameters": explicit} if explicit is not None else {}))

    for i in range(6):
        configs.append(experiment(f"exp_{i}", active=(i != 3), targeting=(plain[i] if i % 2 else None)))

    for li in range(3):
        lname = f"layer_{li}"
        lsalt = g.uid("lsalt")
        names = [f"layer_{li}_exp_{k}" for k in range(2)]
        layers_map[lname] = names
        layer_rules = [rule(g, [cond("pass_gate", None, "global_holdout")], pct=100,
                            return_value={"button": "layer_default", "size": 0, "theme": "light"})]
        allocation = [list(range(0, 400)), list(range(400, 700))]
        for k, ename in enumerate(names):
            configs.append(experiment(ename, layer_salt=lsalt, explicit=["button"] if k == 0 else ["button", "size"],
                                      segments=allocation[k], targeting=(nested[li] if k == 1 else None)))
            layer_rules.append(rule(g, [cond("user_bucket", "any", allocation[k], None, "userID", {"salt": lsalt})],
                                    pct=100, return_value={"button": "layer_default", "size": 0, "theme": "light"},
                                    configDelegate=ename))
            layer_rules[-1]["id"] = layer_rules[-1]["name"] = "experimentAssignment"
        layers_out.append(spec(g, lname, "dynamic_config", "layer", layer_rules,
                               {"button": "layer_default", "size": 0, "theme": "light"}, salt=lsalt))

    experiment_group_specs(g, gates, configs)

    # Unsupported after a nested gate: the core SDK answers what the walk held by then.
    after_nested = [cond("pass_gate", None, "nested_14"), cond("user_field", "glob", ["*"], "email")]
    gates.append(spec(g, "unsupported_after_nested", "feature_gate", "feature_gate",
                      [rule(g, copy.deepcopy(after_nested), pct=100)], False))
    configs.append(spec(g, "config_unsupported_after_nested", "dynamic_config", "dynamic_config",
                        [rule(g, copy.deepcopy(after_nested), pct=100, return_value={"a": 1})], {"a": 0}))

    # Layers evaluated the newer way (`useNewLayerEval`): every passing rule adds the
    # parameters not yet set, the first allocated experiment whose parameters are all unset
    # is taken, the default fills the rest.
    for li in range(2):
        lname = f"layer_new_eval_{li}"
        lsalt = g.uid("lsalt")
        names = [f"{lname}_exp_{k}" for k in range(2)]
        layers_map[lname] = names
        plain_rules = [
            rule(g, [cond("user_field", "any", ["gold", "Silver"], "plan")], return_value={"theme": "dark"}),
            rule(g, [cond("pass_gate", None, r.choice(plain))], pct=50, return_value={"button": "gated"}),
            rule(g, [cond("pass_gate", None, "global_holdout")], pct=100, return_value={"button": "holdout", "size": 0}),
        ]
        delegates = []
        allocation = [list(range(0, 400)), list(range(300, 800))]  # overlapping: some users pass both
        for k, ename in enumerate(names):
            configs.append(experiment(ename, layer_salt=lsalt, explicit=["button"] if k == 0 else ["button", "size"],
                                      segments=allocation[k], targeting=(nested[li + 4] if k == 1 else None)))
            delegates.append(rule(g, [cond("user_bucket", "any", allocation[k], None, "userID", {"salt": lsalt})],
                                  pct=100, return_value={}, configDelegate=ename))
        rules = plain_rules + delegates if li == 0 else delegates + plain_rules
        layers_out.append(spec(g, lname, "dynamic_config", "layer", rules,
                               {"button": "layer_default", "size": 0, "theme": "light", "banner": "none"},
                               salt=lsalt, useNewLayerEval=True))

    overrides, override_rules = config_mapping_specs(g, gates, configs, layers_out, layers_map)

    # An unknown nested gate leaves no exposure, before or after a known one.
    gates.append(spec(g, "unknown_nested_after_known", "feature_gate", "feature_gate",
                      [rule(g, [cond("pass_gate", None, "gate_2"), cond("fail_gate", None, "no_such_gate")], pct=100),
                       rule(g, [cond("pass_gate", None, "no_such_gate")], pct=100)], False))

    return {
        "dynamic_configs": configs,
        "feature_gates": gates,
        "layer_configs": layers_out,
        "layers": layers_map,
        "overrides": overrides,
        "override_rules": override_rules,
        "has_updates": True,
        "time": TIME,
        "id_lists": {},
        "app_id": APP_ID,
        "default_environment": "production",
        "diagnostics": {},
        "sdk_configs": {"sampling_mode": "none"},
        "param_stores": param_stores(),
        "response_format": "dcs-v1",
    }


def param_stores():
    """Parameter stores: static values of every type and references to a gate, a config, an
    experiment and a layer of the ruleset; one store only for the target app APP_ID."""
    def static(param_type, value):
        return {"ref_type": "static", "param_type": param_type, "value": value}

    return {
        "checkout_params": {"parameters": {
            "title": static("string", "Checkout"),
            "max_items": static("number", 12),
            "express": static("boolean", True),
            "theme": static("object", {"color": "blue"}),
            "steps": static("array", ["cart", "pay"]),
            "banner": {"ref_type": "gate", "param_type": "string", "gate_name": "gate_6",
                       "pass_value": "new", "fail_value": "old"},
            "color": {"ref_type": "dynamic_config", "param_type": "string", "config_name": "config_1",
                      "param_name": "color"},
            "button": {"ref_type": "experiment", "param_type": "string", "experiment_name": "exp_0",
                       "param_name": "button"},
            "size": {"ref_type": "layer", "param_type": "number", "layer_name": "layer_0",
                     "param_name": "size"},
        }},
        "web_params": {"targetAppIDs": [APP_ID], "parameters": {
            "greeting": static("string", "hello"),
            "new_nav": {"ref_type": "gate", "param_type": "boolean", "gate_name": "gate_15",
                        "pass_value": True, "fail_value": False},
        }},
    }


def experiment_group_specs(g, gates, configs):
    """`experiment_group` conditions (the user's group in another experiment, compared by the
    operator): plain and layered experiments, a group-less config, a missing experiment, a
    condition without a field, an experiment targeted on another's groups, and a chain."""
    reads = [
        ("any", ["Test", "Control"], "exp_0"),
        ("any", ["test 2"], "exp_1"),
        ("none", ["Test"], "exp_2"),
        ("any_case_sensitive", ["control"], "exp_3"),
        ("eq", "Control", "exp_4"),
        ("neq", "Test", "exp_5"),
        ("str_starts_with_any", ["Test"], "layer_0_exp_0"),
        ("none", ["Control", "Test", "Test 2"], "layer_1_exp_1"),
        ("any", ["Control"], "config_0"),
        ("none", ["Control"], "no_such_experiment"),
        ("any", ["Control"], None),
        ("eq", None, "exp_0"),
    ]
    for i, (op, target, experiment) in enumerate(reads):
        gates.append(spec(g, f"gate_exp_group_{i}", "feature_gate", "feature_gate",
                          [rule(g, [cond("experiment_group", op, target, experiment)],
                                pct=50 if i == 5 else 100)], False))
    # Targeted on exp_0's groups (mutually exclusive experiments are set up this way).
    targeted = experiment_group_experiment(g, "exp_group_targeted",
                                           cond("experiment_group", "none", ["Test"], "exp_0"))
    configs.append(targeted)
    gates.append(spec(g, "gate_exp_group_chain", "feature_gate", "feature_gate",
                      [rule(g, [cond("experiment_group", "any", ["Test", "Test 2"], "exp_group_targeted"),
                                cond("fail_gate", None, "global_holdout")],
                            pct=100)], False))
    configs.append(spec(g, "exp_group_config", "dynamic_config", "dynamic_config",
                        [rule(g, [cond("experiment_group", "any", ["Control"], "layer_2_exp_1")],
                              return_value={"color": "green"}),
                         rule(g, [cond("experiment_group", "neq", "Control", "exp_group_targeted")],
                              return_value={"color": "violet"})],
                        {"color": "grey"}))


def config_mapping_specs(g, gates, configs, layers_out, layers_map):
    """Config mappings (`overrides` naming `override_rules`): users who pass a mapping rule get
    another spec's answer. Mappings that apply, wait for their start time, split by pass
    percentage, name a missing target, read a nested gate, or hold an unsupported condition;
    names no spec has; nested and repeated mapped gates; a layer delegating to a mapped
    experiment. Every name involved contains `mapped`."""
    plan = cond("user_field", "any", ["gold", "Silver"], "plan")
    override_rules = {
        "cm_plan": rule(g, [plan], pct=100),
        "cm_country_half": rule(g, [cond("user_field", "any", ["US", "ca", "Fr"], "country")], pct=50),
        "cm_nested": rule(g, [cond("pass_gate", None, "nested_3"), cond("user_field", "any", [1, 2, 3, "4"], "level")],
                          pct=100),
        "cm_unsupported": rule(g, [cond("user_field", "glob", ["*"], "email")], pct=100),
        "cm_stable": rule(g, [cond("public")], pct=30, id_type="stableID"),
        "cm_public": rule(g, [cond("public")], pct=100),
    }

    def to(target, *rules, start=None):
        return {"new_config_name": target,
                "rules": [{"rule_name": r, **({"start_time": start} if start else {})} for r in rules]}

    overrides = {
        "mapped_gate_0": [to("gate_5", "cm_public", start=FUTURE_MS), to("gate_5", "cm_plan", start=PAST_MS),
                          to("gate_7", "cm_country_half")],
        "mapped_gate_1": [to("no_such_gate", "cm_plan", "cm_public"), to("gate_9", "cm_unsupported", "cm_nested"),
                          to("nested_2", "no_such_rule", "cm_stable")],
        "mapped_gate_ghost": [to("gate_11", "cm_stable"), to("nested_4", "cm_plan")],
        "mapped_gate_chain": [to("mapped_gate_ghost", "cm_country_half"), to("gate_3", "cm_plan")],
        "config_mapped": [to("config_3", "cm_plan"), to("config_5", "cm_stable")],
        "config_mapped_ghost": [to("config_7", "cm_country_half")],
        "exp_mapped": [to("exp_2", "cm_country_half")],
        "layer_mapped": [to("layer_1", "cm_plan")],
    }
    own = [rule(g, [cond("user_field", "any", ["US"], "country")], pct=100)]
    gates.append(spec(g, "mapped_gate_0", "feature_gate", "feature_gate", copy.deepcopy(own), False))
    gates.append(spec(g, "mapped_gate_1", "feature_gate", "feature_gate", copy.deepcopy(own), False))
    gates.append(spec(g, "mapped_gate_chain", "feature_gate", "feature_gate", [], False))
    gates.append(spec(g, "mapped_gate_parent", "feature_gate", "feature_gate", [
        rule(g, [cond("pass_gate", None, "mapped_gate_0"), cond("fail_gate", None, "mapped_gate_ghost"),
                 cond("pass_gate", None, "gate_2")], pct=100),
        rule(g, [cond("fail_gate", None, "mapped_gate_0"), cond("pass_gate", None, "mapped_gate_1")], pct=100),
    ], False))
    configs.append(spec(g, "config_mapped", "dynamic_config", "dynamic_config",
                        [rule(g, [cond("public")], pct=50, return_value={"mapped": False})], {"mapped": "default"}))
    configs.append(experiment_group_experiment(g, "exp_mapped", cond("public")))
    layers_map["layer_mapped_delegate"] = ["exp_mapped"]
    layers_out.append(spec(g, "layer_mapped_delegate", "dynamic_config", "layer",
                           [rule(g, [cond("public")], pct=100, return_value={}, configDelegate="exp_mapped")],
                           {"button": "layer_default"}))
    layers_out.append(spec(g, "layer_mapped", "dynamic_config", "layer", [],
                           {"button": "layer_default", "size": 0, "theme": "light"}))
    return overrides, override_rules


def unlisted_names(v1):
    """Names only config mappings have (no spec), each with the table of its first target."""
    tables = {t: {s["name"] for s in v1[t]} for t in ("feature_gates", "dynamic_configs", "layer_configs")}
    out = {}
    for name, mappings in v1.get("overrides", {}).items():
        if any(name in names for names in tables.values()):
            continue
        for m in mappings:
            table = next((t for t, names in tables.items() if m["new_config_name"] in names), None)
            if table:
                out[name] = table
                break
    return out


def experiment_group_experiment(g, name, targeting):
    salt = g.uid("salt")
    rules = [rule(g, [targeting], pct=100, return_value={"button": "default"})]
    rules[0]["id"] = rules[0]["name"] = "targetingGate"
    for bound, group in ((500, "Control"), (1000, "Test")):
        rules.append(rule(g, [cond("user_bucket", "lt", bound, None, "userID", {"salt": salt})], pct=100,
                          return_value={"button": group.lower()}, group_name=group, isExperimentGroup=True))
    return spec(g, name, "dynamic_config", "experiment", rules, {"button": "default"}, salt=salt,
                isActive=True, hasSharedParams=False)


def to_v2(v1):
    """The dcs-v2 shape: maps keyed by name, conditions interned into `condition_map`, and
    disabled specs stripped of their rules (as Statsig's own v2 generator writes them)."""
    condition_map = {}

    def intern(ru):
        ids = []
        for c in ru["conditions"]:
            c = dict(c)
            c.pop("isDeviceBased", None)
            cid = str(int(hashlib.sha256(json.dumps(c, sort_keys=True).encode()).hexdigest()[:8], 16))
            condition_map[cid] = c
            ids.append(cid)
        ru["conditions"] = ids

    def convert(specs):
        out = {}
        for s in specs:
            s = copy.deepcopy(s)
            name = s.pop("name")
            s.pop("isDeviceBased", None)
            if not s["enabled"]:
                s["rules"] = []
            for ru in s["rules"]:
                intern(ru)
            out[name] = s
        return out

    def convert_rules(rules):
        out = copy.deepcopy(rules)
        for ru in out.values():
            intern(ru)
        return out

    v2 = {k: v for k, v in v1.items()
          if k not in ("feature_gates", "dynamic_configs", "layer_configs", "layers", "override_rules")}
    v2["feature_gates"] = convert(v1["feature_gates"])
    v2["dynamic_configs"] = convert(v1["dynamic_configs"])
    v2["layer_configs"] = convert(v1["layer_configs"])
    v2["experiment_to_layer"] = {e: l for l, es in v1["layers"].items() for e in es}
    if "override_rules" in v1:
        v2["override_rules"] = convert_rules(v1["override_rules"])
    v2["condition_map"] = condition_map
    v2["response_format"] = "dcs-v2"
    return v2


UAS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 10_3_1 like Mac OS X) AppleWebKit/603.1.30 (KHTML, like Gecko) Version/10.0 Mobile/14E304 Safari/602.1",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36",
    "",
]
IPS = ["1.0.0.0", "8.8.8.8", "81.2.69.160", "2.16.0.1", "127.0.0.1", "not-an-ip"]


def users(seed=11, n=1200):
    r = random.Random(seed)
    out = []
    for i in range(n):
        u = {}
        if r.random() < 0.9:
            u["userID"] = r.choice([f"u{i}", f"u{r.randint(0, 10)}", "42", "", "ünïcødé-🚀", f"user-{r.random()}"])
        if r.random() < 0.7:
            u["email"] = r.choice([f"admin{i}@example.com", f"test+qa{i}@statsig.io", f"zed{i}@spam.net",
                                   "", "ALICE@EXAMPLE.COM", f"m{i}@bot.org"])
        if r.random() < 0.6:
            u["country"] = r.choice(["US", "us", "CA", "fr", "DE", ""])
        if r.random() < 0.4:
            u["ip"] = r.choice(IPS)
        if r.random() < 0.5:
            u["userAgent"] = r.choice(UAS)
        if r.random() < 0.6:
            u["appVersion"] = r.choice(["1.2.3", "2.0.0", "2.0", "1.10.3", "1.9.9-rc1", "3", "0.1", "abc", "10.0.1"])
        if r.random() < 0.5:
            u["locale"] = r.choice(["en_US", "fr_FR", "de_DE", "zh_123", ""])
        custom = {}
        for key, values in [
            ("plan", ["gold", "Gold", "silver", "Silver", "platinum", "", None]),
            ("level", [1, 2, 5, 7, "7", "5", 3.5, "abc", 10, -1]),
            ("LEVEL", [6, "9"]),
            ("score", [7, 7.5, "6", None]),
            ("beta", [True, False, "true"]),
            ("signup", [PAST_MS, 1704067200000, 1704100000000, "2024-01-01T10:00:00Z", "2022-05-05 10:00:00",
                        "1704067200000", "garbage", 1704067200]),
            ("tags", [["a", "b"], ["a", "c", "d"], ["spam"], [], "a", ["A", "c"]]),
            ("nums", [[1, 3], [2.0], ["1"], [5]]),
            ("nickname", ["", "bob", None]),
            ("os_name", ["iOS", "android", "Windows"]),
        ]:
            if r.random() < 0.4:
                custom[key] = r.choice(values)
        if custom:
            u["custom"] = custom
        if r.random() < 0.2:
            u["privateAttributes"] = {"vip": r.choice(["secret", "no"]), "plan": r.choice(["gold", "bronze"])}
        if r.random() < 0.5:
            cids = {}
            if r.random() < 0.7:
                cids[r.choice(["companyID", "companyid", "CompanyID"])] = r.choice(["c1", "c2", "C2", "c3", "c9", "u1"])
            if r.random() < 0.7:
                cids["stableID"] = r.choice(["s-1", "s-2", "s-3", f"s-{i}"])
            u["customIDs"] = cids
        if r.random() < 0.5:
            u["statsigEnvironment"] = {"tier": r.choice(["production", "staging", "development", "Production"])}
        out.append(u)
    return out
