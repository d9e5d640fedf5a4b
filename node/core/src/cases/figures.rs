//! Supervision figures, as the essays publish them (Shanghai Baoshan, 2016: 437,300 cases, 94.8%
//! handled on time, 100% closed): per group of cases, how many were received, handled on time,
//! overdue, closed and reopened, with the on-time and closure rates.
//!
//! A case is handled on time when its result was reported by its deadline; overdue when the
//! result came after it, or none has come and the deadline has passed. A case with no deadline,
//! or whose deadline has not yet come, is neither.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{FixedOffset, TimeZone};

use super::CaseError;
use super::state::{Case, tier_of};

/// What figures are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    /// The unit where the case was raised.
    Unit,
    /// That unit's tier.
    Tier,
    /// The case class.
    Class,
    /// The intake channel.
    Channel,
    /// The month raised, `YYYY-MM` in the calendar's zone.
    Period,
}

impl FromStr for Dimension {
    type Err = CaseError;
    fn from_str(s: &str) -> Result<Self, CaseError> {
        Ok(match s {
            "unit" => Dimension::Unit,
            "tier" => Dimension::Tier,
            "class" => Dimension::Class,
            "channel" => Dimension::Channel,
            "period" => Dimension::Period,
            _ => {
                return Err(CaseError::Invalid(format!(
                    "figures are grouped by unit, tier, class, channel or period, not {s:?}"
                )));
            }
        })
    }
}

/// One group's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FiguresRow {
    /// The group's values, in the order of the dimensions asked for.
    pub group: Vec<String>,
    /// Cases received.
    pub received: u64,
    /// Results reported by their deadline.
    pub on_time: u64,
    /// Results reported after their deadline, or none yet and the deadline passed.
    pub overdue: u64,
    /// Cases closed (answered included).
    pub closed: u64,
    /// Cases reopened at least once.
    pub reopened: u64,
}

impl FiguresRow {
    /// `on_time / (on_time + overdue)`, 0 when neither.
    pub fn on_time_rate(&self) -> f64 {
        ratio(self.on_time, self.on_time + self.overdue)
    }

    /// `closed / received`, 0 when none received.
    pub fn closure_rate(&self) -> f64 {
        ratio(self.closed, self.received)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn value(case: &Case, by: Dimension, zone: &FixedOffset) -> String {
    match by {
        Dimension::Unit => case.raised_by.to_string(),
        Dimension::Tier => tier_of(&case.raised_by).as_str().to_owned(),
        Dimension::Class => case.class.clone(),
        Dimension::Channel => case.channel.clone(),
        Dimension::Period => zone
            .timestamp_micros(case.raised_at_micros)
            .single()
            .map(|t| t.format("%Y-%m").to_string())
            .unwrap_or_default(),
    }
}

/// The figures of `cases` grouped `by` (in that order), groups sorted, as they stand at
/// `now_micros`; months are counted in `zone`.
pub fn figures<'a>(
    cases: impl IntoIterator<Item = &'a Case>,
    by: &[Dimension],
    zone: &FixedOffset,
    now_micros: i64,
) -> Vec<FiguresRow> {
    let mut groups: BTreeMap<Vec<String>, FiguresRow> = BTreeMap::new();
    for case in cases {
        let group: Vec<String> = by.iter().map(|d| value(case, *d, zone)).collect();
        let row = groups.entry(group.clone()).or_insert_with(|| FiguresRow {
            group,
            ..FiguresRow::default()
        });
        row.received += 1;
        match case.late(now_micros) {
            Some(false) if case.reported_at_micros.is_some() || case.status.is_closed() => {
                row.on_time += 1
            }
            Some(true) => row.overdue += 1,
            _ => {}
        }
        row.closed += u64::from(case.status.is_closed());
        row.reopened += u64::from(case.reopened > 0);
    }
    groups.into_values().collect()
}
