//! `gatehouse analyze`: one experiment or gate over a date range of the Parquet tables.
//!
//! - A unit enters at its first exposure to the entity; its group is the experiment group
//!   (`group_name`, else the rule id), or pass/fail for a gate. Units exposed in more than
//!   one group are counted and excluded.
//! - Sample-ratio mismatch: Pearson's chi-square of units per group against the expected
//!   split (equal unless given); warn below p = 0.01, alert below 0.001.
//! - A metric for one event name, over each exposed unit: converted (1 if the unit has an
//!   event at or after its first exposure, else 0) and value (sum of `value_number` of those
//!   events, 0 when none). Per group: mean and sample variance; versus control: absolute
//!   lift with Welch's t interval and test, relative lift with a delta-method interval
//!   (`Var(m_t/m_c) ≈ v_t/(n_t m_c²) + m_t² v_c/(n_c m_c⁴)`) using the same t quantile.
//!   Events join exposures on (unit_id_type, unit_id). An event counts once however many
//!   copies the table holds: an SDK resending a batch writes copies under one `event_id`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ahash::{AHashMap as HashMap, AHashSet as HashSet};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use serde::Serialize;

use crate::stats::{chi_square_sf, t_quantile_two_sided, t_two_sided_p};

/// What to analyze.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// The sink's data directory.
    pub root: PathBuf,
    /// Experiment, config or gate name (`entity_name`).
    pub entity: String,
    /// First day (`YYYY-MM-DD`, UTC, inclusive); `None`: from the start.
    pub from: Option<String>,
    /// Last day (inclusive); `None`: to the end.
    pub to: Option<String>,
    /// Event name for the metric; `None`: exposures and SRM only.
    pub event: Option<String>,
    /// Control group; default `Control` if present, `fail` for gates, else the first group.
    pub control: Option<String>,
    /// Expected split (group → weight); default equal.
    pub split: Option<Vec<(String, f64)>>,
}

/// The analysis result (also the `--json` output).
#[derive(Debug, Serialize)]
pub struct Report {
    /// The entity.
    pub entity: String,
    /// `gate`, `config` or `layer`.
    pub kind: String,
    /// Date range (inclusive), as given.
    pub from: Option<String>,
    /// Date range end.
    pub to: Option<String>,
    /// The unit id type of the exposures.
    pub unit_id_type: String,
    /// Per group, in name order.
    pub groups: Vec<GroupReport>,
    /// Units exposed in more than one group (excluded everywhere).
    pub mixed_units: u64,
    /// Sample-ratio-mismatch check.
    pub srm: Srm,
    /// The metric, when an event was named.
    pub metric: Option<Metric>,
}

/// One group's exposure counts.
#[derive(Debug, Serialize)]
pub struct GroupReport {
    /// Group name.
    pub name: String,
    /// Exposure rows (all units).
    pub exposures: u64,
    /// Units whose only group is this one.
    pub units: u64,
}

/// Sample-ratio mismatch.
#[derive(Debug, Serialize)]
pub struct Srm {
    /// Expected share per group.
    pub expected_share: BTreeMap<String, f64>,
    /// Pearson's chi-square.
    pub chi_square: f64,
    /// Degrees of freedom.
    pub df: u64,
    /// p-value.
    pub p_value: f64,
    /// `ok`, `warn` (p < 0.01) or `alert` (p < 0.001).
    pub status: String,
}

/// The metric of one event.
#[derive(Debug, Serialize)]
pub struct Metric {
    /// Event name.
    pub event: String,
    /// The control group.
    pub control: String,
    /// Per group.
    pub groups: Vec<MetricGroup>,
}

/// One group's metric.
#[derive(Debug, Serialize)]
pub struct MetricGroup {
    /// Group name.
    pub name: String,
    /// Units.
    pub units: u64,
    /// Units with an event at or after their first exposure.
    pub converted: u64,
    /// Conversion: mean and variance of the 0/1 per-unit value.
    pub conversion: Summary,
    /// Value per exposed unit.
    pub value: Summary,
    /// Versus control (absent for the control group).
    pub conversion_vs_control: Option<Lift>,
    /// Versus control.
    pub value_vs_control: Option<Lift>,
}

/// Mean and sample variance of a per-unit quantity.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    /// Mean over units.
    pub mean: f64,
    /// Sample variance (n - 1).
    pub variance: f64,
}

/// A group versus control.
#[derive(Debug, Serialize)]
pub struct Lift {
    /// Difference of means.
    pub absolute: f64,
    /// 95% interval of the difference.
    pub absolute_ci95: [f64; 2],
    /// Difference over the control mean.
    pub relative: f64,
    /// 95% interval of the relative lift (delta method).
    pub relative_ci95: [f64; 2],
    /// Welch's two-sided p-value.
    pub p_value: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
}

struct Unit {
    first: i64,
    group: usize,
    mixed: bool,
    converted: bool,
    value: f64,
}

/// Runs the analysis over the files under `options.root`.
pub fn analyze(options: &AnalyzeOptions) -> Result<Report, String> {
    let files = table_files(&options.root.join("exposures"), options)?;
    let mut kind = None;
    let mut unit_id_type = None;
    let mut groups: Vec<(String, u64)> = Vec::new();
    let mut units: HashMap<String, Unit> = HashMap::new();
    let columns = [
        "exposure_kind",
        "entity_name",
        "rule_id",
        "group_name",
        "gate_value",
        "unit_id_type",
        "unit_id",
        "event_time",
    ];
    for_each_batch(&files, &columns, |batch| {
        let (kinds, names, rules) = (
            text(batch, "exposure_kind"),
            text(batch, "entity_name"),
            text(batch, "rule_id"),
        );
        let group_names = text(batch, "group_name");
        let gate_values = column(batch, "gate_value").as_boolean();
        let (unit_types, unit_ids) = (text(batch, "unit_id_type"), text(batch, "unit_id"));
        let times = column(batch, "event_time").as_primitive::<TimestampMillisecondType>();
        for row in 0..batch.num_rows() {
            if names.value(row) != options.entity {
                continue;
            }
            let row_kind = kinds.value(row);
            kind.get_or_insert_with(|| row_kind.to_owned());
            unit_id_type.get_or_insert_with(|| unit_types.value(row).to_owned());
            let group = if row_kind == "gate" {
                match gate_values.is_valid(row) && gate_values.value(row) {
                    true => "pass",
                    false => "fail",
                }
            } else if group_names.is_valid(row) {
                group_names.value(row)
            } else {
                rules.value(row)
            };
            let index = match groups.iter().position(|(g, _)| g == group) {
                Some(i) => i,
                None => {
                    groups.push((group.to_owned(), 0));
                    groups.len() - 1
                }
            };
            groups[index].1 += 1;
            let time = times.value(row);
            let unit = units.entry(unit_ids.value(row).to_owned()).or_insert(Unit {
                first: time,
                group: index,
                mixed: false,
                converted: false,
                value: 0.0,
            });
            unit.first = unit.first.min(time);
            unit.mixed |= unit.group != index;
        }
    })?;
    let kind = kind.ok_or_else(|| {
        format!(
            "no exposures of {:?} in {} for the date range",
            options.entity,
            options.root.join("exposures").display()
        )
    })?;
    let unit_id_type = unit_id_type.unwrap_or_default();

    if let Some(event) = &options.event {
        let files = table_files(&options.root.join("events"), options)?;
        let columns = [
            "event_id",
            "event_name",
            "unit_id_type",
            "unit_id",
            "event_time",
            "value_number",
        ];
        // Ids of the events counted so far (those of the metric, for exposed units): as
        // numbers, 16 bytes each, since there may be millions.
        let mut counted: HashSet<u128> = HashSet::default();
        for_each_batch(&files, &columns, |batch| {
            let ids = text(batch, "event_id");
            let names = text(batch, "event_name");
            let (unit_types, unit_ids) = (text(batch, "unit_id_type"), text(batch, "unit_id"));
            let times = column(batch, "event_time").as_primitive::<TimestampMillisecondType>();
            let values = column(batch, "value_number").as_primitive::<Float64Type>();
            for row in 0..batch.num_rows() {
                if names.value(row) != event || unit_types.value(row) != unit_id_type {
                    continue;
                }
                let Some(unit) = units.get_mut(unit_ids.value(row)) else {
                    continue;
                };
                if times.value(row) >= unit.first {
                    let id = ids.value(row);
                    // Any id the door wrote is a UUID; one that is not is counted as it is.
                    if uuid_bits(id).is_some_and(|bits| !counted.insert(bits)) {
                        continue;
                    }
                    unit.converted = true;
                    if values.is_valid(row) {
                        unit.value += values.value(row);
                    }
                }
            }
        })?;
    }

    // Groups in name order.
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by(|a, b| groups[*a].0.cmp(&groups[*b].0));
    let mixed_units = units.values().filter(|u| u.mixed).count() as u64;
    let clean = |g: usize| units.values().filter(move |u| !u.mixed && u.group == g);
    let group_reports: Vec<GroupReport> = order
        .iter()
        .map(|&g| GroupReport {
            name: groups[g].0.clone(),
            exposures: groups[g].1,
            units: clean(g).count() as u64,
        })
        .collect();
    let srm = srm(&group_reports, options.split.as_deref())?;

    let metric = options.event.as_ref().map(|event| {
        let control = options
            .control
            .clone()
            .or_else(|| {
                ["Control", "control", "fail"]
                    .into_iter()
                    .find(|c| group_reports.iter().any(|g| g.name == *c))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| group_reports[0].name.clone());
        let per_group: Vec<(String, Vec<(f64, f64)>)> = order
            .iter()
            .map(|&g| {
                let values = clean(g)
                    .map(|u| (if u.converted { 1.0 } else { 0.0 }, u.value))
                    .collect();
                (groups[g].0.clone(), values)
            })
            .collect();
        metric(event, &control, &per_group)
    });
    let metric = match metric {
        Some(Err(e)) => return Err(e),
        Some(Ok(m)) => Some(m),
        None => None,
    };
    Ok(Report {
        entity: options.entity.clone(),
        kind,
        from: options.from.clone(),
        to: options.to.clone(),
        unit_id_type,
        groups: group_reports,
        mixed_units,
        srm,
        metric,
    })
}

fn srm(groups: &[GroupReport], split: Option<&[(String, f64)]>) -> Result<Srm, String> {
    let weights: Vec<f64> = match split {
        None => vec![1.0; groups.len()],
        Some(split) => groups
            .iter()
            .map(|g| {
                split
                    .iter()
                    .find(|(name, _)| *name == g.name)
                    .map(|(_, w)| *w)
                    .ok_or_else(|| format!("--split has no weight for group {:?}", g.name))
            })
            .collect::<Result<_, _>>()?,
    };
    let total_weight: f64 = weights.iter().sum();
    let n: f64 = groups.iter().map(|g| g.units as f64).sum();
    let mut chi_square = 0.0;
    let mut expected_share = BTreeMap::new();
    for (g, w) in groups.iter().zip(&weights) {
        let share = w / total_weight;
        expected_share.insert(g.name.clone(), share);
        let expected = n * share;
        if expected > 0.0 {
            chi_square += (g.units as f64 - expected).powi(2) / expected;
        }
    }
    let df = groups.len().saturating_sub(1) as u64;
    let p_value = if df == 0 {
        1.0
    } else {
        chi_square_sf(chi_square, df as f64)
    };
    let status = if p_value < 0.001 {
        "alert"
    } else if p_value < 0.01 {
        "warn"
    } else {
        "ok"
    };
    Ok(Srm {
        expected_share,
        chi_square,
        df,
        p_value,
        status: status.into(),
    })
}

fn summary(values: impl Iterator<Item = f64> + Clone) -> (u64, Summary) {
    let n = values.clone().count() as u64;
    let mean = if n == 0 {
        f64::NAN
    } else {
        values.clone().sum::<f64>() / n as f64
    };
    let variance = if n < 2 {
        f64::NAN
    } else {
        values.map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    };
    (n, Summary { mean, variance })
}

fn lift(treatment: (u64, Summary), control: (u64, Summary)) -> Lift {
    let (nt, t) = (treatment.0 as f64, treatment.1);
    let (nc, c) = (control.0 as f64, control.1);
    let (vt, vc) = (t.variance / nt, c.variance / nc);
    let se = (vt + vc).sqrt();
    let df = (vt + vc).powi(2) / (vt.powi(2) / (nt - 1.0) + vc.powi(2) / (nc - 1.0));
    let q = t_quantile_two_sided(0.05, df);
    let absolute = t.mean - c.mean;
    let relative = absolute / c.mean;
    let se_relative = (vt / c.mean.powi(2) + t.mean.powi(2) * vc / c.mean.powi(4)).sqrt();
    Lift {
        absolute,
        absolute_ci95: [absolute - q * se, absolute + q * se],
        relative,
        relative_ci95: [relative - q * se_relative, relative + q * se_relative],
        p_value: t_two_sided_p(absolute / se, df),
        df,
    }
}

fn metric(
    event: &str,
    control: &str,
    groups: &[(String, Vec<(f64, f64)>)],
) -> Result<Metric, String> {
    let find = |name: &str| groups.iter().find(|(g, _)| g == name);
    let (_, control_values) =
        find(control).ok_or_else(|| format!("control group {control:?} has no exposures"))?;
    let control_conv = summary(control_values.iter().map(|v| v.0));
    let control_value = summary(control_values.iter().map(|v| v.1));
    let groups = groups
        .iter()
        .map(|(name, values)| {
            let conv = summary(values.iter().map(|v| v.0));
            let value = summary(values.iter().map(|v| v.1));
            let is_control = name == control;
            MetricGroup {
                name: name.clone(),
                units: conv.0,
                converted: values.iter().filter(|v| v.0 > 0.0).count() as u64,
                conversion: conv.1,
                value: value.1,
                conversion_vs_control: (!is_control).then(|| lift(conv, control_conv)),
                value_vs_control: (!is_control).then(|| lift(value, control_value)),
            }
        })
        .collect();
    Ok(Metric {
        event: event.to_owned(),
        control: control.to_owned(),
        groups,
    })
}

/// The table's files whose `dt=` is in the range (partition pruning by directory name).
fn table_files(table: &Path, options: &AnalyzeOptions) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let days = match fs::read_dir(table) {
        Ok(days) => days,
        Err(_) => return Ok(files),
    };
    for day in days.flatten() {
        let name = day.file_name().to_string_lossy().into_owned();
        let Some(date) = name.strip_prefix("dt=") else {
            continue;
        };
        let after_from = options.from.as_deref().is_none_or(|f| date >= f);
        let before_to = options.to.as_deref().is_none_or(|t| date <= t);
        if !(after_from && before_to) {
            continue;
        }
        for hour in fs::read_dir(day.path())
            .map_err(|e| e.to_string())?
            .flatten()
        {
            for file in fs::read_dir(hour.path())
                .map_err(|e| e.to_string())?
                .flatten()
            {
                let path = file.path();
                if path.extension().is_some_and(|e| e == "parquet") {
                    files.push(path);
                }
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A UUID's 128 bits, from its text.
fn uuid_bits(id: &str) -> Option<u128> {
    let mut bits = 0u128;
    let mut digits = 0;
    for c in id.chars().filter(|c| *c != '-') {
        bits = bits << 4 | u128::from(c.to_digit(16)?);
        digits += 1;
    }
    (digits == 32).then_some(bits)
}

/// A projected column (the projection guarantees it is there).
fn column<'b>(batch: &'b RecordBatch, name: &str) -> &'b ArrayRef {
    batch.column_by_name(name).expect("projected column")
}

/// A projected string column.
fn text<'b>(batch: &'b RecordBatch, name: &str) -> &'b StringArray {
    column(batch, name).as_string::<i32>()
}

fn for_each_batch(
    files: &[PathBuf],
    columns: &[&str],
    mut f: impl FnMut(&RecordBatch),
) -> Result<(), String> {
    for path in files {
        let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let file = fs::File::open(path).map_err(|e| err(&e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| err(&e))?;
        let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
        let reader = builder
            .with_projection(mask)
            .with_batch_size(65_536)
            .build()
            .map_err(|e| err(&e))?;
        for batch in reader {
            f(&batch.map_err(|e| err(&e))?);
        }
    }
    Ok(())
}

/// The report as a terminal table.
pub fn render_text(report: &Report) -> String {
    let mut out = format!(
        "{} {} ({} units), {} to {}\n\n",
        report.kind,
        report.entity,
        report.unit_id_type,
        report.from.as_deref().unwrap_or("start"),
        report.to.as_deref().unwrap_or("end")
    );
    out += &format!(
        "{:<20} {:>12} {:>10} {:>9}\n",
        "group", "exposures", "units", "expected"
    );
    for g in &report.groups {
        out += &format!(
            "{:<20} {:>12} {:>10} {:>8.1}%\n",
            g.name,
            g.exposures,
            g.units,
            100.0 * report.srm.expected_share[&g.name]
        );
    }
    out += &format!(
        "\nunits in more than one group (excluded): {}\nsample ratio: chi-square {:.3}, df {}, p = {:.4} -> {}\n",
        report.mixed_units,
        report.srm.chi_square,
        report.srm.df,
        report.srm.p_value,
        report.srm.status.to_uppercase()
    );
    if let Some(m) = &report.metric {
        out += &format!("\nmetric: {} (control: {})\n", m.event, m.control);
        out += &format!(
            "{:<20} {:>8} {:>10} {:>30} {:>10} {:>30}\n",
            "group", "units", "conv.", "lift [95% CI]", "value/unit", "lift [95% CI]"
        );
        for g in &m.groups {
            let lift = |l: &Option<Lift>| match l {
                Some(l) => format!(
                    "{:+.2}% [{:+.2}%, {:+.2}%]",
                    100.0 * l.relative,
                    100.0 * l.relative_ci95[0],
                    100.0 * l.relative_ci95[1]
                ),
                None => "(control)".into(),
            };
            out += &format!(
                "{:<20} {:>8} {:>9.2}% {:>30} {:>10.3} {:>30}\n",
                g.name,
                g.units,
                100.0 * g.conversion.mean,
                lift(&g.conversion_vs_control),
                g.value.mean,
                lift(&g.value_vs_control)
            );
        }
    }
    out
}

/// The report as one self-contained HTML page with an SVG chart (no scripts, no fetches).
pub fn render_html(report: &Report) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let text = esc(&render_text(report));
    // Bars: units per group; with a metric, conversion per group with its 95% interval.
    let bars: Vec<(String, f64, Option<[f64; 2]>)> = match &report.metric {
        Some(m) => m
            .groups
            .iter()
            .map(|g| {
                let half = g
                    .conversion_vs_control
                    .as_ref()
                    .map(|l| (l.absolute_ci95[1] - l.absolute_ci95[0]) / 2.0);
                let mean = g.conversion.mean;
                (g.name.clone(), mean, half.map(|h| [mean - h, mean + h]))
            })
            .collect(),
        None => report
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.units as f64, None))
            .collect(),
    };
    let max = bars
        .iter()
        .map(|(_, v, ci)| ci.map_or(*v, |c| c[1]).max(*v))
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let (width, row) = (520.0, 34.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="13">"#,
        width + 180.0,
        row * bars.len() as f64 + 10.0
    );
    for (i, (name, value, ci)) in bars.iter().enumerate() {
        let y = 5.0 + row * i as f64;
        let w = width * value / max;
        svg += &format!(
            r##"<text x="0" y="{}">{}</text><rect x="150" y="{y}" width="{w:.1}" height="22" fill="#4c78a8"/>"##,
            y + 16.0,
            esc(name)
        );
        if let Some([lo, hi]) = ci {
            let (x0, x1) = (150.0 + width * lo.max(0.0) / max, 150.0 + width * hi / max);
            svg += &format!(
                r##"<line x1="{x0:.1}" x2="{x1:.1}" y1="{0}" y2="{0}" stroke="#000" stroke-width="2"/>"##,
                y + 11.0
            );
        }
        svg += &format!(
            r#"<text x="{:.1}" y="{}">{:.4}</text>"#,
            155.0 + w,
            y + 16.0,
            value
        );
    }
    svg += "</svg>";
    let caption = if report.metric.is_some() {
        "conversion per group (bars), with the 95% interval of the difference from control centred on the group"
    } else {
        "units per group"
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{} — gatehouse analyze</title>\
         <style>body{{font-family:sans-serif;margin:2em}}pre{{background:#f6f6f6;padding:1em}}</style></head>\
         <body><h1>{} {}</h1><p>SRM: <b>{}</b> (p = {:.4})</p>{svg}<p><small>{caption}</small></p><pre>{text}</pre></body></html>\n",
        esc(&report.entity),
        esc(&report.kind),
        esc(&report.entity),
        report.srm.status.to_uppercase(),
        report.srm.p_value
    )
}

#[cfg(test)]
mod tests {
    use super::uuid_bits;

    #[test]
    fn event_ids_read_as_128_bits_only_when_they_are_uuids() {
        assert_eq!(
            uuid_bits("16358db6-b667-4eb1-ba39-915aa20d26d5"),
            Some(0x16358db6_b667_4eb1_ba39_915aa20d26d5)
        );
        assert_eq!(
            uuid_bits("16358DB6B6674EB1BA39915AA20D26D5"),
            uuid_bits("16358db6-b667-4eb1-ba39-915aa20d26d5")
        );
        for other in [
            "",
            "e1",
            "16358db6-b667-4eb1-ba39-915aa20d26d5ff",
            "16358db6-b667-4eb1-ba39-915aa20d26dz",
        ] {
            assert_eq!(uuid_bits(other), None, "{other}");
        }
    }
}
