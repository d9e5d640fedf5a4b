//! The official working-day calendar (法定节假日 and 调休) and deadlines counted in working days.
//!
//! A calendar is one TOML file per year, `YYYY.toml` (format: `schema/calendar/README.md`): the
//! year, its UTC offset, the `holidays` (whole holiday ranges, weekends inside them included) and
//! the `working_weekends` (调休: a Saturday or Sunday that is worked). The years in
//! `schema/calendar/` are built in ([`SHIPPED`]); an administrator's directory of `YYYY.toml`
//! files replaces those years and adds others ([`Calendar::load`]).
//!
//! A working day is a Monday to Friday that is not a holiday, or a working weekend. A year with no
//! file is counted Monday to Friday, and every answer that looked at one of its days says it is
//! provisional, so callers can warn ([`Calendar::uncovered`]).
//!
//! # Counting
//! As 《行政许可法》 Art. 82 counts 工作日, the day a period starts from is not counted: N working
//! days from a time end at the end (the next local midnight) of the Nth working day after that
//! time's local day. N = 0 ends at the end of that day if it is a working day, else of the next
//! working day. Times are microseconds since the Unix epoch; days are the calendar zone's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{Datelike, FixedOffset, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// The calendar years shipped in `schema/calendar/`, as `(file name, TOML text)`.
pub const SHIPPED: &[(&str, &str)] = &[(
    "2026.toml",
    include_str!("../../../schema/calendar/2026.toml"),
)];

/// Where the shipped years are kept in the source tree, to name them in errors.
const SHIPPED_DIR: &str = "schema/calendar";

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;
/// Days from 0001-01-01 (chrono's day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;

/// One year's file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    year: i32,
    zone: String,
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    working_weekends: Vec<String>,
}

/// One year of the calendar, checked.
#[derive(Clone, Debug)]
struct Year {
    zone: FixedOffset,
    holidays: BTreeSet<NaiveDate>,
    working_weekends: BTreeSet<NaiveDate>,
    /// The file it came from, to name it in errors.
    file: PathBuf,
}

/// A calendar file that could not be used. Every message names the file and says what to change.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// A file or the directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A `.toml` file in the calendar directory is not named after a year.
    #[error(
        "{file}: a calendar file is named after the year it holds (YYYY.toml, e.g. 2027.toml): rename it, or move it out of the calendar directory"
    )]
    FileName {
        /// The file.
        file: PathBuf,
    },
    /// The file is not TOML of the calendar's form.
    #[error("{file}: {message}; schema/calendar/README.md gives the format")]
    Parse {
        /// The file.
        file: PathBuf,
        /// What the TOML reader said.
        message: String,
    },
    /// The file's `year` is not the year in its name.
    #[error(
        "{file}: the file says year = {year}: write the year of its name, or rename the file {year}.toml"
    )]
    YearMismatch {
        /// The file.
        file: PathBuf,
        /// The year it says.
        year: i32,
    },
    /// The zone is not a UTC offset.
    #[error(
        "{file}: zone = \"{zone}\" is not a UTC offset: write it as \"+08:00\" (China Standard Time)"
    )]
    Zone {
        /// The file.
        file: PathBuf,
        /// The zone as written.
        zone: String,
    },
    /// Two years of one calendar give different zones.
    #[error(
        "{file}: zone {zone} differs from {expected} in {other}: the years of a calendar share one zone; write zone = \"{expected}\""
    )]
    ZoneDiffers {
        /// The file with the other zone.
        file: PathBuf,
        /// Its zone.
        zone: FixedOffset,
        /// The zone of the earliest year.
        expected: FixedOffset,
        /// The file of the earliest year.
        other: PathBuf,
    },
    /// A listed value is not a date.
    #[error("{file}: \"{value}\" is not a date: write it as YYYY-MM-DD, e.g. \"2026-10-01\"")]
    Date {
        /// The file.
        file: PathBuf,
        /// The value as written.
        value: String,
    },
    /// A date lies outside the file's year.
    #[error("{file}: {date} is not in {year}: move it to {}.toml", date.year())]
    OutsideYear {
        /// The file.
        file: PathBuf,
        /// The date.
        date: NaiveDate,
        /// The file's year.
        year: i32,
    },
    /// A date is both a holiday and a working weekend.
    #[error(
        "{file}: {date} is both a holiday and a working weekend: remove it from one of the lists"
    )]
    BothLists {
        /// The file.
        file: PathBuf,
        /// The date.
        date: NaiveDate,
    },
    /// A working weekend falls on a weekday.
    #[error(
        "{file}: working weekend {date} ({weekday}) is not a Saturday or Sunday: working_weekends lists only the weekend days that are worked (调休); remove it"
    )]
    NotWeekend {
        /// The file.
        file: PathBuf,
        /// The date.
        date: NaiveDate,
        /// Its day of the week.
        weekday: Weekday,
    },
}

/// A deadline: the end of its last day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due {
    /// The end of the last day: the local midnight after it, microseconds since the Unix epoch.
    /// A case is overdue from this instant on.
    pub at_micros: i64,
    /// The last day, in the calendar's zone.
    pub date: NaiveDate,
    /// A day counted lies in a year with no calendar file (counted Monday to Friday).
    pub provisional: bool,
}

/// Time left until a [`Due`], in working days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remaining {
    /// Before the deadline, the working days after today up to the last day (0 on the last day
    /// itself). When overdue, minus the working days from the day after the last day through
    /// today, today counted as the next working day when it is not one (so at most -1).
    pub working_days: i64,
    /// The deadline has passed.
    pub overdue: bool,
    /// A day counted, or the deadline's own count, lies in a year with no calendar file.
    pub provisional: bool,
}

/// Years an answer counted without a calendar file; its `Display` is the warning to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uncovered {
    /// The years, in order.
    pub years: Vec<i32>,
    /// The administrator's calendar directory, if the node has one.
    pub dir: Option<PathBuf>,
}

impl fmt::Display for Uncovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let years: Vec<String> = self.years.iter().map(i32::to_string).collect();
        let files: Vec<String> = years.iter().map(|y| format!("{y}.toml")).collect();
        write!(
            f,
            "no calendar for {}: working days there were counted Monday to Friday, without holidays; add {} to ",
            years.join(", "),
            files.join(", ")
        )?;
        match &self.dir {
            Some(dir) => write!(f, "{}", dir.display()),
            None => write!(
                f,
                "a calendar directory named by [cases] calendar in node.toml"
            ),
        }?;
        write!(f, " (format: schema/calendar/README.md)")
    }
}

/// The working-day calendar: the shipped years, replaced or extended by an administrator's files.
#[derive(Clone, Debug)]
pub struct Calendar {
    zone: FixedOffset,
    years: BTreeMap<i32, Year>,
    dir: Option<PathBuf>,
}

impl Calendar {
    /// The shipped years ([`SHIPPED`]), then every `YYYY.toml` in `dir`, each replacing the
    /// shipped year it names. Other files in `dir` (a README) are left alone.
    ///
    /// # Errors
    /// [`CalendarError`]: `dir` or a file unreadable, a file misnamed, not of the format, or
    /// failing a check (dates inside the year, none in both lists, working weekends on Saturday
    /// or Sunday, one zone for all years).
    pub fn load(dir: Option<&Path>) -> Result<Self, CalendarError> {
        let mut years = BTreeMap::new();
        for (name, text) in SHIPPED {
            let (year, parsed) = parse_year(&Path::new(SHIPPED_DIR).join(name), text)?;
            years.insert(year, parsed);
        }
        if let Some(dir) = dir {
            let io = |source| CalendarError::Io {
                path: dir.to_owned(),
                source,
            };
            for entry in std::fs::read_dir(dir).map_err(io)? {
                let path = entry.map_err(io)?.path();
                if path.extension().is_none_or(|e| e != "toml") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).map_err(|source| CalendarError::Io {
                    path: path.clone(),
                    source,
                })?;
                let (year, parsed) = parse_year(&path, &text)?;
                years.insert(year, parsed);
            }
        }
        let first = years
            .values()
            .next()
            .expect("the shipped years are never empty");
        if let Some(other) = years.values().find(|y| y.zone != first.zone) {
            return Err(CalendarError::ZoneDiffers {
                file: other.file.clone(),
                zone: other.zone,
                expected: first.zone,
                other: first.file.clone(),
            });
        }
        Ok(Self {
            zone: first.zone,
            years,
            dir: dir.map(Path::to_owned),
        })
    }

    /// The zone days are counted in.
    pub fn zone(&self) -> FixedOffset {
        self.zone
    }

    /// Whether `year` has a calendar file (shipped or the administrator's).
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains_key(&year)
    }

    /// Whether `date` is a working day: a Monday to Friday not among the holidays, or a working
    /// weekend. In a year with no file, Monday to Friday.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        match self.years.get(&date.year()) {
            Some(year) => {
                year.working_weekends.contains(&date)
                    || (!is_weekend(date) && !year.holidays.contains(&date))
            }
            None => !is_weekend(date),
        }
    }

    /// The local day of an instant (microseconds since the Unix epoch), in the calendar's zone;
    /// instants beyond chrono's dates (±262,000 years) give its first or last date.
    pub fn local_date(&self, micros: i64) -> NaiveDate {
        let seconds = micros.div_euclid(MICROS_PER_SECOND) + i64::from(self.zone.local_minus_utc());
        i32::try_from(seconds.div_euclid(SECONDS_PER_DAY) + UNIX_EPOCH_DAYS_FROM_CE)
            .ok()
            .and_then(NaiveDate::from_num_days_from_ce_opt)
            .unwrap_or(if micros < 0 {
                NaiveDate::MIN
            } else {
                NaiveDate::MAX
            })
    }

    /// The end of `date`: the local midnight after it, microseconds since the Unix epoch.
    pub fn end_of(&self, date: NaiveDate) -> i64 {
        let days = i64::from(date.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE + 1;
        (days * SECONDS_PER_DAY - i64::from(self.zone.local_minus_utc()))
            .saturating_mul(MICROS_PER_SECOND)
    }

    /// The deadline `working_days` working days after `from_micros`: the end of the Nth working
    /// day after `from`'s local day, that day not counted; for 0, the end of that day if it is a
    /// working day, else of the next working day.
    pub fn due(&self, from_micros: i64, working_days: u32) -> Due {
        let start = self.local_date(from_micros);
        let mut provisional = false;
        let date = start
            .iter_days()
            .skip(usize::from(working_days > 0))
            .inspect(|d| provisional |= !self.covers(d.year()))
            .filter(|d| self.is_working_day(*d))
            .nth(working_days.saturating_sub(1) as usize)
            .unwrap_or(NaiveDate::MAX);
        Due {
            at_micros: self.end_of(date),
            date,
            provisional,
        }
    }

    /// The deadline of a promised date (承诺件): the end of that day, whatever the calendar says
    /// of it. Nothing is counted, so it is never provisional.
    pub fn due_on(&self, date: NaiveDate) -> Due {
        Due {
            at_micros: self.end_of(date),
            date,
            provisional: false,
        }
    }

    /// Working days left at `now_micros` until `due` (see [`Remaining::working_days`]).
    pub fn remaining(&self, now_micros: i64, due: &Due) -> Remaining {
        let today = self.local_date(now_micros);
        let overdue = now_micros >= due.at_micros;
        let mut provisional = due.provisional;
        let mut counted = |d: &NaiveDate| provisional |= !self.covers(d.year());
        let working_days = if overdue {
            due.date
                .iter_days()
                .skip(1)
                .inspect(&mut counted)
                .filter(|d| self.is_working_day(*d))
                .position(|d| d >= today)
                .map_or(i64::MIN, |late| -(late as i64) - 1)
        } else {
            today
                .iter_days()
                .skip(1)
                .take_while(|d| *d <= due.date)
                .inspect(&mut counted)
                .filter(|d| self.is_working_day(*d))
                .count() as i64
        };
        Remaining {
            working_days,
            overdue,
            provisional,
        }
    }

    /// The years from `first` to `last` (dates, inclusive) that have no calendar file, as the
    /// warning to show beside a provisional answer; `None` when every one has its file.
    pub fn uncovered(&self, first: NaiveDate, last: NaiveDate) -> Option<Uncovered> {
        let years: Vec<i32> = (first.year()..=last.year())
            .filter(|y| !self.covers(*y))
            .collect();
        (!years.is_empty()).then(|| Uncovered {
            years,
            dir: self.dir.clone(),
        })
    }
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Reads and checks one year's file, named `YYYY.toml`.
fn parse_year(file: &Path, text: &str) -> Result<(i32, Year), CalendarError> {
    let file = file.to_owned();
    let named: i32 = file
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CalendarError::FileName { file: file.clone() })?;
    let raw: YearFile = toml::from_str(text).map_err(|e| CalendarError::Parse {
        file: file.clone(),
        message: e.to_string(),
    })?;
    if raw.year != named {
        return Err(CalendarError::YearMismatch {
            file,
            year: raw.year,
        });
    }
    let zone = raw
        .zone
        .parse::<FixedOffset>()
        .map_err(|_| CalendarError::Zone {
            file: file.clone(),
            zone: raw.zone.clone(),
        })?;
    let dates = |values: &[String]| -> Result<BTreeSet<NaiveDate>, CalendarError> {
        values
            .iter()
            .map(|value| {
                let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
                    CalendarError::Date {
                        file: file.clone(),
                        value: value.clone(),
                    }
                })?;
                if date.year() != raw.year {
                    return Err(CalendarError::OutsideYear {
                        file: file.clone(),
                        date,
                        year: raw.year,
                    });
                }
                Ok(date)
            })
            .collect()
    };
    let holidays = dates(&raw.holidays)?;
    let working_weekends = dates(&raw.working_weekends)?;
    if let Some(date) = working_weekends.intersection(&holidays).next() {
        return Err(CalendarError::BothLists { file, date: *date });
    }
    if let Some(date) = working_weekends.iter().find(|d| !is_weekend(**d)) {
        return Err(CalendarError::NotWeekend {
            file,
            date: *date,
            weekday: date.weekday(),
        });
    }
    Ok((
        raw.year,
        Year {
            zone,
            holidays,
            working_weekends,
            file,
        },
    ))
}

#[cfg(test)]
mod tests;
