//! One row of the combined table `cargo xtask bench` prints at the end:
//! every benchmark adds its headline numbers to its JSON document as
//! `"summary": [row, ...]`, each with the baseline it was measured against
//! in the same run and the target, if the project set one. xtask only
//! collects, judges and renders them, so a benchmark's numbers and its
//! targets stay in one place: the benchmark.

use serde_json::{Value, json};

/// What a value counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Nanoseconds (a latency or a time per operation): lower is better.
    Nanos,
    /// Per second (a throughput): higher is better.
    PerSecond,
}

impl Unit {
    const fn tag(self) -> &'static str {
        match self {
            Self::Nanos => "ns",
            Self::PerSecond => "/s",
        }
    }
}

/// A performance target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The value must not exceed this (in the row's unit).
    AtMost(f64),
    /// The value must reach this (in the row's unit).
    AtLeast(f64),
    /// value / baseline must not exceed this.
    RatioAtMost(f64),
}

/// One measured number with its same-run baseline.
#[derive(Debug, Clone)]
pub struct Row {
    pub benchmark: String,
    pub measure: String,
    pub value: f64,
    pub unit: Unit,
    /// (what, value in the same unit), measured in the same run.
    pub baseline: Option<(String, f64)>,
    pub target: Option<Target>,
    /// The smallest and largest sample behind a median value.
    pub spread: Option<(f64, f64)>,
}

impl Row {
    pub fn new(benchmark: &str, measure: &str, value: f64, unit: Unit) -> Self {
        Self {
            benchmark: benchmark.to_owned(),
            measure: measure.to_owned(),
            value,
            unit,
            baseline: None,
            target: None,
            spread: None,
        }
    }

    #[must_use]
    pub fn against(mut self, baseline: &str, value: f64) -> Self {
        self.baseline = Some((baseline.to_owned(), value));
        self
    }

    /// The smallest and largest sample of a median `value`.
    #[must_use]
    pub const fn spread(mut self, min: f64, max: f64) -> Self {
        self.spread = Some((min, max));
        self
    }

    #[must_use]
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// value / baseline, when there is a baseline.
    #[must_use]
    pub fn ratio(&self) -> Option<f64> {
        self.baseline.as_ref().map(|(_, b)| self.value / b)
    }

    /// The row as the JSON object xtask reads (`xtask/src/summary.rs`).
    #[must_use]
    pub fn json(&self) -> Value {
        let baseline = self
            .baseline
            .as_ref()
            .map_or(Value::Null, |(name, v)| json!({"name": name, "value": v}));
        let target = match self.target {
            None => Value::Null,
            Some(Target::AtMost(v)) => json!({"kind": "max", "value": v}),
            Some(Target::AtLeast(v)) => json!({"kind": "min", "value": v}),
            Some(Target::RatioAtMost(v)) => json!({"kind": "max_ratio", "value": v}),
        };
        let spread = self
            .spread
            .map_or(Value::Null, |(min, max)| json!({"min": min, "max": max}));
        json!({
            "spread": spread,
            "benchmark": self.benchmark,
            "measure": self.measure,
            "value": self.value,
            "unit": self.unit.tag(),
            "baseline": baseline,
            "ratio": self.ratio(),
            "target": target,
        })
    }
}

/// The rows as the `summary` array of a benchmark's JSON document.
#[must_use]
pub fn rows_json(rows: &[Row]) -> Value {
    Value::Array(rows.iter().map(Row::json).collect())
}

/// The `q` quantile (0..=1) of `sorted` by nearest rank; `None` when empty.
#[must_use]
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short sample vector"
    )]
    let i = ((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    sorted.get(i).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_carries_its_baseline_ratio_and_target() {
        let row = Row::new("kernel hooks", "open+close, governed", 300.0, Unit::Nanos)
            .against("no programs", 200.0)
            .target(Target::RatioAtMost(1.10));
        let v = row.json();
        assert_eq!(v["unit"], "ns");
        assert_eq!(v["baseline"]["name"], "no programs");
        assert_eq!(v["ratio"], 1.5);
        assert_eq!(v["target"]["kind"], "max_ratio");
        assert_eq!(v["target"]["value"], 1.10);
        assert!(v["spread"].is_null());
        let spread = Row::new("b", "m", 2.0, Unit::Nanos).spread(1.0, 3.0).json();
        assert_eq!(
            (
                spread["spread"]["min"].as_f64(),
                spread["spread"]["max"].as_f64()
            ),
            (Some(1.0), Some(3.0))
        );
        let bare = Row::new("authz", "rate", 5.0, Unit::PerSecond).json();
        assert!(bare["baseline"].is_null() && bare["ratio"].is_null() && bare["target"].is_null());
        assert_eq!(bare["unit"], "/s");
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(51.0));
        assert_eq!(quantile(&v, 0.95), Some(95.0));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&[7.0], 0.95), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
