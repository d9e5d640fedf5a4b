use std::path::Path;

use chrono::{DateTime, NaiveDate};

use super::{Calendar, CalendarError, Due, parse_year};

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// Microseconds since the epoch of an RFC 3339 time, e.g. `2026-02-13T10:00:00+08:00`.
fn micros(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_micros()
}

fn shipped() -> Calendar {
    Calendar::load(None).unwrap()
}

/// The deadline's last day, checking that it ends at the local midnight after that day.
fn due_date(cal: &Calendar, from: &str, working_days: u32) -> Due {
    let due = cal.due(micros(from), working_days);
    let midnight = format!("{}T00:00:00+08:00", due.date.succ_opt().unwrap());
    assert_eq!(due.at_micros, micros(&midnight), "{due:?}");
    due
}

#[test]
fn the_shipped_2026_is_the_state_councils_arrangement() {
    let cal = shipped();
    assert_eq!(cal.zone().local_minus_utc(), 8 * 3600);
    assert!(cal.covers(2026) && !cal.covers(2027));
    let off: Vec<NaiveDate> = date("2026-01-01")
        .iter_days()
        .take_while(|d| *d <= date("2026-12-31"))
        .filter(|d| !cal.is_working_day(*d))
        .collect();
    // 365 days, 104 weekend days, 6 worked weekends, 33 holiday days of which 14 on weekends.
    assert_eq!(off.len(), 104 - 6 + 33 - 14);
    for worked in [
        "2026-01-04",
        "2026-02-14",
        "2026-02-28",
        "2026-05-09",
        "2026-09-20",
        "2026-10-10",
    ] {
        assert!(cal.is_working_day(date(worked)), "{worked}");
    }
    for holiday in [
        "2026-01-02",
        "2026-02-16",
        "2026-04-06",
        "2026-05-05",
        "2026-06-19",
        "2026-09-25",
        "2026-10-07",
    ] {
        assert!(!cal.is_working_day(date(holiday)), "{holiday}");
    }
    assert!(cal.is_working_day(date("2026-10-08")));
    assert!(
        !cal.is_working_day(date("2026-03-07")),
        "an ordinary Saturday"
    );
}

#[test]
fn a_deadline_across_the_spring_festival_counts_its_worked_saturdays() {
    let cal = shipped();
    // Friday 13 February: Saturday 14th is worked (1), 15th–23rd are off, Tuesday 24th (2),
    // Wednesday 25th (3).
    let due = due_date(&cal, "2026-02-13T10:00:00+08:00", 3);
    assert_eq!(due.date, date("2026-02-25"));
    assert!(!due.provisional);
    // Late in the evening is still the same local day, though UTC has moved on.
    assert_eq!(
        due_date(&cal, "2026-02-13T23:30:00+08:00", 3).date,
        date("2026-02-25")
    );
    // Thursday 26th: Friday 27th (1), Saturday 28th worked (2).
    assert_eq!(
        due_date(&cal, "2026-02-26T09:00:00+08:00", 2).date,
        date("2026-02-28")
    );
    // From inside the holiday, the first working day after it is day 1.
    assert_eq!(
        due_date(&cal, "2026-02-17T09:00:00+08:00", 1).date,
        date("2026-02-24")
    );
}

#[test]
fn a_deadline_across_national_day_counts_20_september_and_10_october() {
    let cal = shipped();
    // Friday 18 September: Sunday 20th is worked (1), then Monday to Thursday (2–5).
    assert_eq!(
        due_date(&cal, "2026-09-18T16:00:00+08:00", 5).date,
        date("2026-09-24")
    );
    // Wednesday 30 September: 1–7 October off, Thursday 8th (1), Friday 9th (2), Saturday 10th
    // worked (3), then Monday 12th (4).
    let from = "2026-09-30T11:00:00+08:00";
    assert_eq!(due_date(&cal, from, 2).date, date("2026-10-09"));
    assert_eq!(due_date(&cal, from, 3).date, date("2026-10-10"));
    assert_eq!(due_date(&cal, from, 4).date, date("2026-10-12"));
}

#[test]
fn zero_working_days_is_the_day_itself_or_the_next_working_day() {
    let cal = shipped();
    assert_eq!(
        due_date(&cal, "2026-10-03T15:00:00+08:00", 0).date,
        date("2026-10-08"),
        "on a holiday: the next working day"
    );
    assert_eq!(
        due_date(&cal, "2026-10-08T15:00:00+08:00", 0).date,
        date("2026-10-08")
    );
    assert_eq!(
        due_date(&cal, "2026-10-10T08:00:00+08:00", 0).date,
        date("2026-10-10"),
        "a worked Saturday"
    );
}

#[test]
fn a_promised_date_ends_at_its_midnight() {
    let cal = shipped();
    let due = cal.due_on(date("2026-06-19"));
    assert_eq!(due.at_micros, micros("2026-06-20T00:00:00+08:00"));
    assert!(!due.provisional);
    // Wednesday 17 June: Thursday 18th is a working day, Friday 19th is 端午.
    let left = cal.remaining(micros("2026-06-17T10:00:00+08:00"), &due);
    assert_eq!((left.working_days, left.overdue), (1, false));
}

#[test]
fn remaining_time_counts_down_and_goes_negative_when_overdue() {
    let cal = shipped();
    let from = micros("2026-03-30T10:00:00+08:00"); // Monday
    let due = cal.due(from, 3);
    assert_eq!(due.date, date("2026-04-02"));
    let at = |time: i64| {
        let r = cal.remaining(time, &due);
        assert!(!r.provisional);
        (r.working_days, r.overdue)
    };
    assert_eq!(at(from), (3, false));
    assert_eq!(at(due.at_micros - 1), (0, false), "the last day itself");
    assert_eq!(at(due.at_micros), (-1, true), "from its midnight on");
    // Friday 3 April is a working day; 4–6 April (清明) are not, so on them the case is as late
    // as it will be on Tuesday 7th.
    assert_eq!(at(micros("2026-04-03T12:00:00+08:00")), (-1, true));
    assert_eq!(at(micros("2026-04-05T12:00:00+08:00")), (-2, true));
    assert_eq!(at(micros("2026-04-07T12:00:00+08:00")), (-2, true));
    assert_eq!(at(micros("2026-04-08T12:00:00+08:00")), (-3, true));
}

#[test]
fn a_year_without_a_file_is_counted_monday_to_friday_and_provisional() {
    let cal = shipped();
    let inside = cal.due(micros("2026-12-28T10:00:00+08:00"), 2);
    assert!(!inside.provisional);
    assert!(cal.uncovered(date("2026-12-28"), inside.date).is_none());
    // Thursday 31 December 2026: Friday 1 January 2027 is counted as a working day.
    let across = due_date(&cal, "2026-12-31T10:00:00+08:00", 1);
    assert_eq!(across.date, date("2027-01-01"));
    assert!(across.provisional);
    let left = cal.remaining(micros("2026-12-31T10:00:00+08:00"), &across);
    assert!(left.provisional);
    let promised = cal.due_on(date("2027-03-01"));
    assert!(
        cal.remaining(micros("2027-02-26T10:00:00+08:00"), &promised)
            .provisional
    );
    assert!(
        !cal.remaining(
            micros("2026-06-01T10:00:00+08:00"),
            &cal.due_on(date("2026-06-03"))
        )
        .provisional
    );
    let warning = cal
        .uncovered(date("2026-12-31"), across.date)
        .expect("2027 has no file");
    assert_eq!(warning.years, vec![2027]);
    let text = warning.to_string();
    assert!(
        text.contains("no calendar for 2027") && text.contains("add 2027.toml"),
        "{text}"
    );
}

const YEAR_2027: &str = r#"
year = 2027
zone = "+08:00"
holidays = ["2027-01-01"]
working_weekends = []
"#;

#[test]
fn a_directory_replaces_a_shipped_year_and_adds_others() {
    let dir = tempfile::tempdir().unwrap();
    // A replacement 2026 in which 8 October is also off, and a 2027.
    let replaced = r#"
year = 2026
zone = "+08:00"
holidays = ["2026-10-01", "2026-10-02", "2026-10-08"]
working_weekends = ["2026-10-10"]
"#;
    std::fs::write(dir.path().join("2026.toml"), replaced).unwrap();
    std::fs::write(dir.path().join("2027.toml"), YEAR_2027).unwrap();
    std::fs::write(dir.path().join("README.md"), "not a year").unwrap();
    let cal = Calendar::load(Some(dir.path())).unwrap();
    assert!(!cal.is_working_day(date("2026-10-08")));
    assert!(
        cal.is_working_day(date("2026-10-05")),
        "the shipped holidays are gone"
    );
    assert!(cal.is_working_day(date("2026-10-10")));
    let due = cal.due(micros("2026-12-31T10:00:00+08:00"), 1);
    assert_eq!((due.date, due.provisional), (date("2027-01-04"), false));
    let uncovered = cal
        .uncovered(date("2027-01-01"), date("2028-01-01"))
        .unwrap();
    assert_eq!(uncovered.years, vec![2028]);
    assert!(
        uncovered
            .to_string()
            .contains(&dir.path().display().to_string())
    );
}

/// The error of a year file `name` with `text`.
fn error_of(name: &str, text: &str) -> CalendarError {
    parse_year(Path::new(name), text).unwrap_err()
}

fn year_with(lists: &str) -> String {
    format!("year = 2026\nzone = \"+08:00\"\n{lists}\n")
}

#[test]
fn each_mistake_in_a_file_is_named_with_what_to_do() {
    let cases: Vec<(CalendarError, &str)> = vec![
        (
            error_of("holidays.toml", &year_with("")),
            "named after the year",
        ),
        (
            error_of("2026.toml", &year_with("holiday = [\"2026-01-01\"]")),
            "unknown field",
        ),
        (
            error_of("2027.toml", &year_with("")),
            "rename the file 2026.toml",
        ),
        (
            error_of("2026.toml", "year = 2026\nzone = \"Beijing\""),
            "\"Beijing\" is not a UTC offset",
        ),
        (
            error_of("2026.toml", &year_with("holidays = [\"2026-13-01\"]")),
            "\"2026-13-01\" is not a date",
        ),
        (
            error_of("2026.toml", &year_with("holidays = [\"2027-01-01\"]")),
            "2027-01-01 is not in 2026: move it to 2027.toml",
        ),
        (
            error_of(
                "2026.toml",
                &year_with("holidays = [\"2026-10-10\"]\nworking_weekends = [\"2026-10-10\"]"),
            ),
            "2026-10-10 is both a holiday and a working weekend",
        ),
        (
            error_of(
                "2026.toml",
                &year_with("working_weekends = [\"2026-10-08\"]"),
            ),
            "working weekend 2026-10-08 (Thu) is not a Saturday or Sunday",
        ),
    ];
    for (error, expect) in cases {
        let text = error.to_string();
        assert!(text.contains(expect), "{text}");
        assert!(text.contains(".toml: "), "names the file: {text}");
    }
}

#[test]
fn a_directory_with_a_stray_file_another_zone_or_none_at_all_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("holidays.toml"), YEAR_2027).unwrap();
    let e = Calendar::load(Some(dir.path())).unwrap_err();
    assert!(matches!(e, CalendarError::FileName { .. }), "{e}");
    std::fs::remove_file(dir.path().join("holidays.toml")).unwrap();

    std::fs::write(
        dir.path().join("2027.toml"),
        YEAR_2027.replace("+08:00", "+09:00"),
    )
    .unwrap();
    let e = Calendar::load(Some(dir.path())).unwrap_err().to_string();
    assert!(
        e.contains("2027.toml: zone +09:00 differs from +08:00 in schema/calendar/2026.toml"),
        "{e}"
    );

    let missing = dir.path().join("no-such-directory");
    let e = Calendar::load(Some(&missing)).unwrap_err();
    assert!(
        matches!(e, CalendarError::Io { ref path, .. } if *path == missing),
        "{e}"
    );
}
