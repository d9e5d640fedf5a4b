//! What a response reveals of each item once everything it sends is taken together, and the
//! rule every decision meets.
//!
//! An item's own action reveals some of it (a mask some characters, `year` a date's first four
//! digits, a row scope a code's first digits); the catalog's embedded parts then carry what is
//! known from item to item until nothing changes: a clear birth date gives an ID number's
//! characters 7-14, an ID number's 17th character gives the sex, a check character is computed
//! from the others (and, with all but one of them, gives the missing one: a check character
//! catches any single wrong character, so exactly one fits). Items of a declared fixed width
//! (and dates, as their 8 digits) are followed character by character; others are known whole
//! or not.
//!
//! **The rule.** A decision leaks, and is refused, when
//! (a) an item not sent in clear becomes wholly known, or, for an item of a fixed width sent
//! masked or generalised, is narrowed to fewer than [`FEW_CANDIDATES`] values and to fewer than
//! its own action alone leaves (see [`Reveal::candidates`]: a withheld day of birth has its own 31 values, and a
//! generalisation its own coarseness; what other items or the row scope add is what counts), or
//! (b) an item sent hashed (or the record key, when keys travel hashed) is guessable: fewer
//! than [`GUESSABLE_BELOW`] possible values, or some of its characters known from another item
//! or the row scope, so the hash only has to cover the rest.

use std::fmt;

use regex_syntax::hir::{Class, Hir, HirKind};

use super::decide::Decision;
use super::model::{Action, Generalisation, RowScope};
use crate::catalog::{Catalog, DataType, InformationItem, PartAs, ValueCheck};

/// Values below which a keyed hash hides nothing from a member: 2^32. Every member holds the
/// federation's hash key, so it can hash each candidate value and compare. One core of the
/// project's 2-core build machine, shared with other builds, ran short values through
/// `Redactor::apply(Hash, ..)` at 13 to 24 million a second (medians of three runs: 15.5 million
/// dates, 22.4 million phone numbers, 13.5 million ID numbers; 8 to 10 million a second with a
/// lookup among the hashes received; `cargo bench -p tierlink-sandbox --bench hash_guessing`).
/// So 2^32 candidates take about five minutes on one core, a minute on five, and a code table,
/// a date (3.7 million values) or a short number well under a second. A mobile phone number
/// (7 × 10^9 values) passes, and takes a member minutes more: a keyed hash is for joins, and
/// hides a value from members only as well as its value space does.
pub const GUESSABLE_BELOW: f64 = 4_294_967_296.0;

/// Candidates below which a value not sent in clear counts as rebuilt: 1,000. A reader who
/// can check a candidate against one more fact it holds or can look up — an address, an age, a
/// household's members, a phone call — gets through a handful, or a few hundred with some
/// patience, for every record it cares about: `mask:6:4` beside a birth date's year and month
/// leaves the two day digits, which GB 11643's check digit narrows to about 3. At 1,000 and
/// more such checks per record, rebuilding is a real search again: `mask:6:0` beside a clear
/// birth date leaves the three sequence digits, 1,000 (the check digit follows from them; with
/// the sex in clear, digit 17's parity is known too, and 500 are too few), `mask:6:1` beside
/// the year and month about 2,800 (1,400 with the sex).
pub const FEW_CANDIDATES: f64 = 1_000.0;

/// The positions (0-based) of a GB 11643 number's region: the address code of the county where
/// it was issued (GB 11643-1999 §5.1, codes of GB/T 2260). A mask that hides it hides next to
/// nothing: a reader knows which unit the records come from, and most of a unit's residents
/// carry its own county's code, so the first value tried is right for most records (all 5,000
/// of the demo street's). Counted as one value for [`FEW_CANDIDATES`] and, in a hashed number's
/// value space, for [`GUESSABLE_BELOW`].
pub const GB11643_REGION: std::ops::Range<usize> = 0..6;

/// Birth dates a GB 11643 number of a living resident can carry: a century of days.
const GB11643_BIRTH_DATES: f64 = 36_525.0;

/// The written position (0-based) of each of a date's 8 digits, `YYYY-MM-DD`.
const DATE_DIGITS: [usize; 8] = [0, 1, 2, 3, 5, 6, 8, 9];

/// What is known of one item.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Known {
    /// Per character of a fixed-width item (a date's 8 digits).
    Chars(Vec<bool>),
    /// An item of no fixed width: known whole, or not.
    Whole(bool),
}

impl Known {
    fn whole(&self) -> bool {
        match self {
            Known::Chars(c) => c.iter().all(|k| *k),
            Known::Whole(w) => *w,
        }
    }

    fn any(&self) -> bool {
        match self {
            Known::Chars(c) => c.iter().any(|k| *k),
            Known::Whole(w) => *w,
        }
    }

    fn at(&self, n: usize) -> bool {
        match self {
            Known::Chars(c) => c.get(n).copied().unwrap_or(false),
            Known::Whole(w) => *w,
        }
    }
}

/// Knowledge that reached item `to` from item `from` through part `part` of item `embedder`
/// (which is one of the two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Flow {
    to: usize,
    from: usize,
    embedder: usize,
    part: usize,
}

/// What a response under a decision reveals of each item of a catalog.
#[derive(Debug)]
pub struct Reveal<'a> {
    catalog: &'a Catalog,
    actions: Vec<Action>,
    rows: Option<RowScope>,
    known: Vec<Known>,
    /// Something short of the whole is known of an item of no fixed width (a mask, a
    /// generalisation, the row scope).
    partial: Vec<bool>,
    flows: Vec<Flow>,
    /// The actions of the other grants the same reader holds on the catalog: what they send is
    /// known too, since records join on their key.
    alongside: Vec<Vec<Action>>,
}

/// A decision's width of item `n`: a date's 8 digits, a fixed-width item's length, else none.
fn width(catalog: &Catalog, item: &InformationItem) -> Option<usize> {
    match item.data_type {
        DataType::Date => Some(DATE_DIGITS.len()),
        _ if item.fixed_width(catalog) => Some(item.max_length() as usize),
        _ => None,
    }
}

/// Written characters (0-based) of a value of `written` characters that `action` keeps.
fn kept(action: Action, written: usize) -> Vec<bool> {
    (0..written)
        .map(|n| match action {
            Action::Clear => true,
            Action::Withhold | Action::Hash => false,
            Action::Mask { first, last } => {
                let (first, last) = (first as usize, last as usize);
                first + last < written && (n < first || n >= written - last)
            }
            Action::Generalise(Generalisation::Year) => n < 4,
            Action::Generalise(Generalisation::YearMonth) => n < 7,
            Action::Generalise(Generalisation::Prefix(k)) => n < k as usize,
            Action::Generalise(Generalisation::Band(_)) => false,
        })
        .collect()
}

/// Written characters as positions of an item of `width`: a date's digits, else the same.
fn chars(item: &InformationItem, width: usize, written: Vec<bool>) -> Vec<bool> {
    if item.data_type == DataType::Date {
        DATE_DIGITS.iter().map(|&n| written[n]).collect()
    } else {
        written.into_iter().take(width).collect()
    }
}

/// `1-6, 15-18` for the set positions (shown from 1).
fn ranges(set: &[bool]) -> String {
    let mut out = Vec::new();
    let mut n = 0;
    while n < set.len() {
        if !set[n] {
            n += 1;
            continue;
        }
        let start = n;
        while n < set.len() && set[n] {
            n += 1;
        }
        out.push(if n - start == 1 {
            format!("{}", start + 1)
        } else {
            format!("{}-{}", start + 1, n)
        });
    }
    out.join(", ")
}

/// `17th`.
fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// `about 4`, `about 3.7 million`, for a count of values.
fn about(values: f64) -> String {
    match values {
        v if v < 1e4 => format!("about {v:.0}"),
        v if v < 1e6 => format!("about {:.0} thousand", v / 1e3),
        v if v < 1e9 => format!("about {:.1} million", v / 1e6),
        v => format!("about {:.1} billion", v / 1e9),
    }
}

/// How many values an item can take, and why so few when they are few: `None` for an item
/// the catalog marks guessable.
fn value_space(item: &InformationItem) -> (Option<f64>, String) {
    if item.guessable {
        return (None, "the catalog marks it guessable".into());
    }
    if item.check == Some(ValueCheck::Gb11643) {
        // The region guessed (GB11643_REGION), a century of birth dates, three sequence digits;
        // the check digit follows from the rest.
        return (
            Some(GB11643_BIRTH_DATES * 1000.0),
            "a GB 11643 number: the region a reader guesses from the unit, a century of birth dates and 1,000 sequence numbers, the check digit following".into(),
        );
    }
    if let Some(table) = &item.code_table {
        return (
            Some(table.len() as f64),
            format!("a code table of {} codes", table.len()),
        );
    }
    let length = item.max_length() as i32;
    match item.data_type {
        DataType::Boolean => (Some(2.0), "true or false".into()),
        // 10,000 years of days; a century of seconds.
        DataType::Date => (Some(3_652_425.0), "a date".into()),
        DataType::Datetime => (
            Some(3.16e9),
            "a date and time (a century of seconds)".into(),
        ),
        DataType::Timestamp => (Some(3.16e9), "a timestamp (a century of seconds)".into()),
        DataType::Number => (
            Some(10f64.powi(length)),
            format!("numbers of at most {length} digits"),
        ),
        DataType::Binary => (Some(256f64.powi(length)), "binary".into()),
        DataType::String => {
            // Any character of the Basic Multilingual Plane, at every length up to the item's.
            let text = series(65_536.0, 1, Some(length as u32));
            match item.pattern.as_deref().and_then(|p| {
                regex_syntax::Parser::new()
                    .parse(p)
                    .ok()
                    .map(|hir| (p, language(&hir)))
            }) {
                Some((pattern, count)) if count < text => {
                    (Some(count), format!("its pattern {pattern} allows no more"))
                }
                _ => (Some(text), format!("text of at most {length} characters")),
            }
        }
    }
}

/// Σ c^k for k from `min` to `max` (unbounded: infinite unless c ≤ 1).
fn series(c: f64, min: u32, max: Option<u32>) -> f64 {
    let Some(max) = max else {
        return if c > 1.0 { f64::INFINITY } else { 1.0 };
    };
    let mut sum = 0.0;
    for k in min..=max {
        sum += c.powi(k as i32);
        if !sum.is_finite() {
            return f64::INFINITY;
        }
    }
    sum
}

/// How many strings a pattern matches: a literal 1, a class its size, a repetition {m,n} the
/// sum of c^k, a concatenation the product, an alternation the sum, anything unbounded infinite.
fn language(hir: &Hir) -> f64 {
    match hir.kind() {
        HirKind::Empty | HirKind::Literal(_) | HirKind::Look(_) => 1.0,
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .map(|r| f64::from(u32::from(r.end()) - u32::from(r.start()) + 1))
            .sum(),
        HirKind::Class(Class::Bytes(c)) => c
            .ranges()
            .iter()
            .map(|r| f64::from(r.end() - r.start()) + 1.0)
            .sum(),
        HirKind::Repetition(r) => series(language(&r.sub), r.min, r.max),
        HirKind::Capture(c) => language(&c.sub),
        HirKind::Concat(parts) => parts.iter().map(language).product(),
        HirKind::Alternation(parts) => parts.iter().map(language).sum(),
    }
}

/// Values each of the `width` positions of a fixed-width item can take. A date's digits 10
/// each (its month and day are counted together, see [`date_fields`]); else from the item's
/// pattern when it is a sequence of classes and literals exactly `width` long (`[0-9]{12}-B[0-9]{4}`:
/// 10 a digit, 1 a literal), else the pattern's language size ^ (1/width) when finite, else 10.
/// A GB 11643 check character takes 11 values (0-9 and X). Overestimates only make the rule
/// more lenient.
fn alphabet(item: &InformationItem, width: usize) -> Vec<f64> {
    let hir = item
        .pattern
        .as_deref()
        .filter(|_| item.data_type != DataType::Date)
        .and_then(|p| regex_syntax::Parser::new().parse(p).ok());
    let mut sizes = match hir {
        Some(hir) => match positions(&hir).filter(|p| p.len() == width) {
            Some(per_position) => per_position,
            None => {
                let each = language(&hir).powf(1.0 / width as f64);
                vec![
                    if each.is_finite() && each > 1.0 {
                        each
                    } else {
                        10.0
                    };
                    width
                ]
            }
        },
        None => vec![10.0; width],
    };
    if let Some(check) = check_position(item).filter(|&k| k < width)
        && item.check == Some(ValueCheck::Gb11643)
    {
        sizes[check] = 11.0;
    }
    sizes
}

/// Per position, the values a pattern allows, when it is a sequence of literals, classes and
/// repetitions of a fixed count; `None` for anything else (alternations, ranges of counts).
fn positions(hir: &Hir) -> Option<Vec<f64>> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Some(Vec::new()),
        HirKind::Literal(l) => Some(vec![1.0; String::from_utf8_lossy(&l.0).chars().count()]),
        HirKind::Class(_) => Some(vec![language(hir)]),
        HirKind::Repetition(r) if Some(r.min) == r.max => {
            let one = positions(&r.sub)?;
            Some(one.repeat(r.min as usize))
        }
        HirKind::Capture(c) => positions(&c.sub),
        HirKind::Concat(parts) => parts.iter().try_fold(Vec::new(), |mut all, p| {
            all.extend(positions(p)?);
            Some(all)
        }),
        _ => None,
    }
}

/// The 0-based position of an item's check character, if it declares one.
fn check_position(item: &InformationItem) -> Option<usize> {
    item.embeds
        .iter()
        .find(|p| p.carries == PartAs::Check)
        .map(|p| p.span().start)
}

/// A date's month and day within an item's positions, as (first of the two digits, values):
/// 12 and 31, for a date item and for each `date` part.
fn date_fields(item: &InformationItem) -> Vec<(usize, f64)> {
    let starts: Vec<usize> = if item.data_type == DataType::Date {
        vec![0]
    } else {
        item.embeds
            .iter()
            .filter(|p| p.carries == PartAs::Date)
            .map(|p| p.span().start)
            .collect()
    };
    starts
        .into_iter()
        .flat_map(|s| [(s + 4, 12.0), (s + 6, 31.0)])
        .collect()
}

impl<'a> Reveal<'a> {
    /// What `actions` (one per catalog item, in order) reveal of `catalog`'s items, within rows
    /// `rows`.
    pub fn new(catalog: &'a Catalog, actions: Vec<Action>, rows: Option<&RowScope>) -> Self {
        Self::alongside(catalog, actions, rows, Vec::new())
    }

    /// What `actions` reveal beside what the other grants the same reader holds send
    /// (`alongside`: one action per catalog item for each).
    pub fn alongside(
        catalog: &'a Catalog,
        actions: Vec<Action>,
        rows: Option<&RowScope>,
        alongside: Vec<Vec<Action>>,
    ) -> Self {
        let mut known = Vec::with_capacity(catalog.items.len());
        let mut partial = Vec::with_capacity(catalog.items.len());
        for (n, (item, &action)) in catalog.items.iter().zip(&actions).enumerate() {
            let every = || std::iter::once(action).chain(alongside.iter().map(|a| a[n]));
            let scoped = rows
                .filter(|r| r.item == item.code)
                .map_or(0, |r| r.within.chars().count());
            match width(catalog, item) {
                Some(width) => {
                    let written = if item.data_type == DataType::Date {
                        10
                    } else {
                        width
                    };
                    let mut own = vec![false; written];
                    for a in every() {
                        for (k, kept) in own.iter_mut().zip(kept(a, written)) {
                            *k |= kept;
                        }
                    }
                    own.iter_mut().take(scoped).for_each(|k| *k = true);
                    known.push(Known::Chars(chars(item, width, own)));
                    partial.push(false);
                }
                None => {
                    // A prefix as long as the item keeps all of any value.
                    let all = every().any(|a| match a {
                        Action::Clear => true,
                        Action::Generalise(Generalisation::Prefix(n)) => n >= item.max_length(),
                        _ => false,
                    });
                    known.push(Known::Whole(all));
                    partial.push(
                        scoped > 0
                            || every()
                                .any(|a| matches!(a, Action::Mask { .. } | Action::Generalise(_))),
                    );
                }
            }
        }
        let mut reveal = Reveal {
            catalog,
            actions,
            rows: rows.cloned(),
            known,
            partial,
            flows: Vec::new(),
            alongside,
        };
        reveal.propagate();
        reveal
    }

    /// The decision's reveal.
    pub fn of(catalog: &'a Catalog, decision: &Decision) -> Self {
        Self::new(
            catalog,
            decision.items.iter().map(|d| d.action).collect(),
            decision.rows.as_ref(),
        )
    }

    fn index(&self, code: &str) -> Option<usize> {
        self.catalog.item_index(code)
    }

    /// Marks character `n` (or, for an item of no fixed width, the whole) of `to` known from
    /// `from` through part `part` of `embedder`; whether it was news.
    fn learn(
        &mut self,
        to: usize,
        n: Option<usize>,
        from: usize,
        embedder: usize,
        part: usize,
    ) -> bool {
        let news = match (&mut self.known[to], n) {
            (Known::Chars(c), Some(n)) if n < c.len() && !c[n] => {
                c[n] = true;
                true
            }
            (Known::Chars(c), None) if !c.iter().all(|k| *k) => {
                c.iter_mut().for_each(|k| *k = true);
                true
            }
            (Known::Whole(w), _) if !*w => {
                *w = true;
                true
            }
            _ => false,
        };
        let flow = Flow {
            to,
            from,
            embedder,
            part,
        };
        if news && from != to && !self.flows.contains(&flow) {
            self.flows.push(flow);
        }
        news
    }

    /// Carries what is known over the embedded parts until nothing changes.
    fn propagate(&mut self) {
        let catalog = self.catalog;
        loop {
            let mut changed = false;
            for (e, item) in catalog.items.iter().enumerate() {
                for (p, part) in item.embeds.iter().enumerate() {
                    let held = part.holds.as_deref().and_then(|h| self.index(h));
                    let span = part.span();
                    match (part.carries, held) {
                        (PartAs::Same | PartAs::Date, Some(h)) => {
                            for (j, n) in span.enumerate() {
                                if self.known[e].at(n) {
                                    changed |= self.learn(h, Some(j), e, e, p);
                                }
                                if self.known[h].at(j) {
                                    changed |= self.learn(e, Some(n), h, e, p);
                                }
                            }
                        }
                        (PartAs::Parity, Some(h)) if self.known[e].at(span.start) => {
                            changed |= self.learn(h, None, e, e, p);
                        }
                        (PartAs::Check, _) => {
                            let Known::Chars(c) = &self.known[e] else {
                                continue;
                            };
                            let unknown: Vec<usize> =
                                (0..c.len()).filter(|&n| n != span.start && !c[n]).collect();
                            match (c.get(span.start).copied(), unknown.as_slice()) {
                                (Some(false), []) => {
                                    changed |= self.learn(e, Some(span.start), e, e, p)
                                }
                                (Some(true), [missing]) => {
                                    changed |= self.learn(e, Some(*missing), e, e, p)
                                }
                                _ => {}
                            }
                        }
                        _ => {}
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Whether item `n` is wholly known to the reader.
    pub fn whole(&self, n: usize) -> bool {
        self.known[n].whole()
    }

    /// How many values item `n` can still take, for an item of a fixed width (`None` for
    /// others): the product over its unknown positions of the values each can take
    /// ([`alphabet`]; a date's month and day, both digits unknown, 12 and 31), an unknown check
    /// character counting once (the others fix it), divided by the check character's modulus
    /// (11 for GB 11643) when it is known and some other is not, and by 2 for an unknown
    /// character whose parity a known item gives (GB 11643's 17th digit beside a known sex).
    /// A GB 11643 number's region (its first six digits) counts as one value, however many of
    /// its digits are hidden: see [`GB11643_REGION`]. 1 when it is wholly known.
    pub fn candidates(&self, n: usize) -> Option<f64> {
        let Known::Chars(c) = &self.known[n] else {
            return None;
        };
        let item = &self.catalog.items[n];
        let sizes = alphabet(item, c.len());
        let mut count = 1.0;
        let mut counted = vec![false; c.len()];
        if item.check == Some(ValueCheck::Gb11643) {
            for k in GB11643_REGION.filter(|&k| k < c.len()) {
                counted[k] = true;
            }
        }
        for (at, values) in date_fields(item) {
            if at + 1 < c.len() && !c[at] && !c[at + 1] {
                count *= values;
                counted[at] = true;
                counted[at + 1] = true;
            }
        }
        let check = check_position(item);
        for (k, size) in sizes.iter().enumerate() {
            if !c[k] && !counted[k] && Some(k) != check {
                count *= size;
            }
        }
        for part in item.embeds.iter().filter(|p| p.carries == PartAs::Parity) {
            let held = part.holds.as_deref().and_then(|h| self.index(h));
            if !c[part.span().start] && held.is_some_and(|h| self.whole(h)) {
                count /= 2.0;
            }
        }
        if let Some(check) = check
            && c.get(check) == Some(&true)
            && c.iter().any(|k| !k)
        {
            count /= if item.check == Some(ValueCheck::Gb11643) {
                11.0
            } else {
                sizes[check]
            };
        }
        Some(count.max(1.0))
    }

    /// Whether all item `n` still hides is a GB 11643 number's region ([`GB11643_REGION`]).
    fn region_alone(&self, n: usize) -> bool {
        let Known::Chars(c) = &self.known[n] else {
            return false;
        };
        self.catalog.items[n].check == Some(ValueCheck::Gb11643)
            && c.iter()
                .enumerate()
                .all(|(k, known)| *known || GB11643_REGION.contains(&k))
    }

    /// Item `n`'s candidates, when what else the response sends (or the row scope) leaves fewer
    /// than its own action alone: `(left, alone)`.
    fn narrowing(&self, n: usize) -> Option<(f64, f64)> {
        let left = self.candidates(n)?;
        let mut own = vec![Action::Withhold; self.actions.len()];
        own[n] = self.actions[n];
        let alone = Reveal::new(self.catalog, own, None).candidates(n)?;
        (left < alone).then_some((left, alone))
    }

    /// Candidates left of item `n`, not sent in clear and not wholly known, when rule (a)'s
    /// second half refuses it: fewer than [`FEW_CANDIDATES`], and fewer than its own action
    /// alone leaves.
    fn narrowed(&self, n: usize) -> Option<f64> {
        // A withheld item is not sent: what other items give of it is theirs to give (a clear
        // community code narrows a withheld grid code to its community's cells), and only its
        // whole value rebuilt counts. A mask or a generalisation sends the item, and claims
        // to hide the rest of it.
        if !matches!(self.actions[n], Action::Mask { .. } | Action::Generalise(_)) || self.whole(n)
        {
            return None;
        }
        self.narrowing(n)
            .map(|(left, _)| left)
            .filter(|&left| left < FEW_CANDIDATES)
    }

    /// Whether rule (a) refuses item `n`: not sent in clear, and wholly known or narrowed.
    fn exposed(&self, n: usize) -> bool {
        self.actions[n] != Action::Clear && (self.whole(n) || self.narrowed(n).is_some())
    }

    /// Whether record keys travel hashed: some key item is not sent in clear.
    fn key_hashed(&self) -> bool {
        self.catalog
            .items
            .iter()
            .zip(&self.actions)
            .any(|(i, a)| i.primary_key && *a != Action::Clear)
    }

    /// What item `n` effectively reveals, for `explain`: e.g. `reveals 1-14 of 18: birth date
    /// also from birth_date`.
    pub fn describe(&self, n: usize) -> String {
        let item = &self.catalog.items[n];
        let action = self.actions[n];
        let what = match &self.known[n] {
            k if k.whole() => "reveals all of it".to_owned(),
            Known::Chars(c) if c.iter().any(|k| *k) => {
                let unit = if item.data_type == DataType::Date {
                    " digits (YYYYMMDD)"
                } else {
                    ""
                };
                let left = match self.narrowing(n) {
                    Some((left, _)) if action != Action::Clear => {
                        format!(", {} candidates", about(left))
                    }
                    _ => String::new(),
                };
                format!("reveals {} of {}{unit}{left}", ranges(c), c.len())
            }
            _ => match action {
                Action::Hash => {
                    "reveals which records share a value, and the value to a member who can guess it"
                        .to_owned()
                }
                Action::Generalise(Generalisation::Band(w)) => {
                    format!("reveals its band of width {w}")
                }
                Action::Withhold => "reveals nothing".to_owned(),
                _ if self.partial[n] => "reveals part of it".to_owned(),
                Action::Mask { .. } => "reveals only its length".to_owned(),
                _ => "reveals nothing".to_owned(),
            },
        };
        let mut sources: Vec<String> = Vec::new();
        for flow in self.flows.iter().filter(|f| f.to == n) {
            let part = &self.catalog.items[flow.embedder].embeds[flow.part].part;
            let from = &self.catalog.items[flow.from].code;
            let text = if flow.embedder == n {
                format!("{part} also from {from}")
            } else {
                format!("from {from}'s {part}")
            };
            if !sources.contains(&text) {
                sources.push(text);
            }
        }
        if let Some(rows) = self.rows.as_ref().filter(|r| r.item == item.code) {
            sources.push(format!(
                "the first {} from the row scope",
                rows.within.chars().count()
            ));
        }
        if sources.is_empty() {
            what
        } else {
            format!("{what}: {}", sources.join(", "))
        }
    }

    /// Everything the decision lets a reader rebuild or guess, one message per item, each naming
    /// the items involved and what to change. Empty when the decision meets the rule.
    pub fn leaks(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut named = vec![false; self.actions.len()];
        for (n, item) in self.catalog.items.iter().enumerate() {
            let action = self.actions[n];
            // Another grant the reader holds sends it in clear: nothing of it is hidden.
            if self.alongside.iter().any(|a| a[n] == Action::Clear) {
                continue;
            }
            if action != Action::Clear && self.whole(n) {
                problems.push(self.rebuilt(n));
                named[n] = true;
            } else if action == Action::Hash {
                if self.known[n].any() {
                    problems.push(self.hash_half_known(n, None));
                    named[n] = true;
                } else if let Some(message) = self.guessable(item, None) {
                    problems.push(message);
                    named[n] = true;
                }
            } else if self.narrowed(n).is_some() {
                problems.push(self.rebuilt(n));
                named[n] = true;
            }
        }
        if self.key_hashed() {
            let keys: Vec<usize> = (0..self.actions.len())
                .filter(|&n| self.catalog.items[n].primary_key)
                .collect();
            if !keys.iter().any(|&k| named[k]) {
                problems.extend(self.key_guessable(&keys));
            }
        }
        problems
    }

    /// The reveal with item `n`'s action replaced.
    fn with(&self, n: usize, action: Action) -> Reveal<'a> {
        let mut actions = self.actions.clone();
        actions[n] = action;
        Reveal::alongside(
            self.catalog,
            actions,
            self.rows.as_ref(),
            self.alongside.clone(),
        )
    }

    /// The mask of item `who` keeping the most characters, and no more than it keeps now, under
    /// which `fixed` holds.
    fn mask_such_that(&self, who: usize, fixed: impl Fn(&Reveal) -> bool) -> Option<Action> {
        let Known::Chars(c) = &self.known[who] else {
            return None;
        };
        let written = if self.catalog.items[who].data_type == DataType::Date {
            10
        } else {
            c.len()
        };
        let (f_max, l_max) = match self.actions[who] {
            Action::Clear => (written, written),
            Action::Mask { first, last } => (first as usize, last as usize),
            _ => return None,
        };
        let cap = |n: usize| n.min(written).min(u8::MAX as usize);
        let mut candidates: Vec<(usize, usize)> = (0..=cap(f_max))
            .flat_map(|f| (0..=cap(l_max)).map(move |l| (f, l)))
            .filter(|(f, l)| f + l < written)
            .collect();
        candidates.sort_by_key(|(f, l)| std::cmp::Reverse((f + l, *f)));
        candidates
            .into_iter()
            .map(|(f, l)| Action::Mask {
                first: f as u8,
                last: l as u8,
            })
            .find(|&mask| fixed(&self.with(who, mask)))
    }

    /// `id_number mask:6:4`, or `birth_date` when sent in clear.
    fn named(&self, n: usize) -> String {
        match self.actions[n] {
            Action::Clear => self.catalog.items[n].code.clone(),
            a => format!("{} {a}", self.catalog.items[n].code),
        }
    }

    /// `sex is withheld`, `birth_date is sent as year`.
    fn state(&self, n: usize) -> String {
        let code = &self.catalog.items[n].code;
        match self.actions[n] {
            Action::Clear => format!("{code} is sent in clear"),
            Action::Withhold => format!("{code} is withheld"),
            Action::Hash => format!("{code} is hashed"),
            a => format!("{code} is sent as {a}"),
        }
    }

    /// How to stop `flow` from giving away item `to`: hide the part in the embedder, or make the
    /// held item coarser or withhold it.
    fn cut(&self, flow: &Flow, still_leaks: impl Fn(&Reveal) -> bool) -> String {
        let embedder = &self.catalog.items[flow.embedder];
        let part = &embedder.embeds[flow.part];
        let chars = if part.chars() == 1 {
            format!("{} character", ordinal(part.from))
        } else {
            format!("characters {}-{}", part.from, part.to)
        };
        let written = embedder.max_length() as usize;
        let hides_part = |mask| !kept(mask, written)[part.span()].iter().any(|k| *k);
        match self.mask_such_that(flow.embedder, |r| {
            hides_part(r.actions[flow.embedder]) && !still_leaks(r)
        }) {
            Some(mask) => format!("mask {}'s {chars} (e.g. {mask})", embedder.code),
            None => format!("withhold {}", embedder.code),
        }
    }

    /// `withhold or generalise birth_date (year)`: the generalisations of item `who` that reveal
    /// less than its action now and under which `fixed` holds (the longest prefix of a
    /// fixed-width string), or `withhold birth_date` when none does. A number's band is named,
    /// not searched: a band reveals none of its characters.
    fn coarsen(&self, who: usize, fixed: impl Fn(&Reveal) -> bool) -> String {
        let item = &self.catalog.items[who];
        let now = self.actions[who];
        let passes = |g: Generalisation| {
            let a = Action::Generalise(g);
            a != now && a.within(now) && fixed(&self.with(who, a))
        };
        let how = match (item.data_type, &self.known[who]) {
            (DataType::Date | DataType::Datetime, _) => {
                let fit: Vec<String> = [Generalisation::Year, Generalisation::YearMonth]
                    .into_iter()
                    .filter(|&g| passes(g))
                    .map(|g| g.to_string())
                    .collect();
                (!fit.is_empty()).then(|| format!(" ({})", fit.join(" or ")))
            }
            (DataType::Number, _) => Some(" (band:W)".to_owned()),
            (DataType::String, Known::Chars(c)) => (1..c.len() as u32)
                .rev()
                .map(Generalisation::Prefix)
                .find(|&g| passes(g))
                .map(|g| format!(" (e.g. {g})")),
            _ => Some(String::new()),
        };
        match how {
            Some(how) => format!("withhold or generalise {}{how}", item.code),
            None => format!("withhold {}", item.code),
        }
    }

    /// Item `n`, not sent in clear, is rebuilt whole or narrowed to a few candidates: why, and
    /// what to change.
    fn rebuilt(&self, n: usize) -> String {
        let item = &self.catalog.items[n];
        let code = &item.code;
        let narrowed = self.narrowed(n);
        // Empty when the item is rebuilt whole.
        let leaving = |whom: &str| {
            match narrowed {
            None => String::new(),
            Some(_) if self.region_alone(n) => {
                ", leaving only its region (characters 1-6), which a reader guesses from the unit the records come from".to_owned()
            }
            Some(left) => format!(", leaving {} candidates for {whom}", about(left)),
        }
        };
        let Some(flow) = self.flows.iter().find(|f| f.to == n) else {
            return match self.rows.as_ref().filter(|r| &r.item == code) {
                Some(rows) => {
                    let gives = match narrowed {
                        Some(_) => format!("which narrows it{}", leaving("it")),
                        None => "which gives all of it".to_owned(),
                    };
                    format!(
                        "{}, but the rows are limited to {code} within {}, {gives}: send {code} clear, or limit the rows by fewer characters",
                        self.state(n),
                        rows.within
                    )
                }
                None => format!(
                    "{} keeps all of {code}: send it clear, or keep less of it",
                    self.named(n)
                ),
            };
        };
        let leaks_n = |r: &Reveal| r.exposed(n);
        let other = &self.catalog.items[flow.from];
        if flow.embedder == n {
            // n embeds the other item, which fills in what n's action hides.
            let part = &item.embeds[flow.part].part;
            // What the reader gets of the other item: under this grant, or under another it
            // holds.
            let elsewhere = self
                .alongside
                .iter()
                .map(|a| a[flow.from])
                .find(|a| a.is_sent() && *a != Action::Hash);
            let sends = match (self.actions[flow.from], elsewhere) {
                (Action::Clear, _) => "sends in clear".to_owned(),
                (Action::Withhold | Action::Hash, Some(Action::Clear)) => {
                    "sends in clear under another grant the same reader holds".to_owned()
                }
                (Action::Withhold | Action::Hash, Some(a)) => {
                    format!("sends as {a} under another grant the same reader holds")
                }
                (Action::Withhold | Action::Hash, None) => {
                    "gives away (itself rebuilt from what the grant sends)".to_owned()
                }
                (a, _) => format!("sends as {a}"),
            };
            let withheld = self.actions[n] == Action::Withhold;
            let lead = if withheld {
                format!(
                    "{code} is withheld, but its {part} is what {} {sends}",
                    other.code
                )
            } else {
                format!(
                    "{} hides the {part}, which {} {sends}",
                    self.named(n),
                    other.code
                )
            };
            let mut fixes = Vec::new();
            if withheld {
                fixes.push(format!("send {code} clear"));
            }
            fixes.push(self.coarsen(flow.from, |r| !leaks_n(r)));
            if !withheld {
                fixes.push(match self.mask_such_that(n, |r| !leaks_n(r)) {
                    Some(mask) => format!("mask more of {code} (e.g. {mask})"),
                    None => format!("withhold {code}"),
                });
            }
            format!("{lead}{}: {}", leaving(code), fixes.join(", or "))
        } else {
            // The other item embeds n, and sends the part (or some of it) that carries it.
            let part = &other.embeds[flow.part];
            let span = part.span();
            let sent: Vec<bool> = (0..other.max_length() as usize)
                .map(|k| span.contains(&k) && self.known[flow.from].at(k))
                .collect();
            let which = if span.clone().all(|k| sent[k]) {
                format!("its characters {}-{} ({})", part.from, part.to, part.part)
            } else {
                format!(
                    "characters {} of its {} ({}-{})",
                    ranges(&sent),
                    part.part,
                    part.from,
                    part.to
                )
            };
            let carries = match part.carries {
                PartAs::Parity => format!(
                    "sends its {} character, whose parity gives the {}",
                    ordinal(part.from),
                    part.part
                ),
                PartAs::Date => format!("sends {which}, which hold {code} as YYYYMMDD"),
                _ => format!("sends {which}, which hold {code}"),
            };
            let state = self.state(n);
            let send = if self.actions[n] == Action::Withhold {
                format!("send {code}")
            } else {
                format!("send {code} clear")
            };
            format!(
                "{state}, but {} {carries}{}: {send}, or {}",
                self.named(flow.from),
                leaving(code),
                self.cut(flow, leaks_n)
            )
        }
    }

    /// Item `n` is sent hashed (or, with `key`, travels in the hashed record key) while some of
    /// its characters are known: the hash only hides the rest.
    fn hash_half_known(&self, n: usize, key: Option<&str>) -> String {
        let code = &self.catalog.items[n].code;
        let Known::Chars(c) = &self.known[n] else {
            return format!(
                "{code} is hashed, but what else the grant sends gives it away: withhold {code}"
            );
        };
        let lead = match key {
            Some(why) => format!("record keys travel hashed ({why}), but {code}"),
            None => format!("{code} is hashed, but"),
        };
        let hides = |r: &Reveal| !r.known[n].any();
        let fix = match key {
            Some(_) => format!("send {code} clear"),
            None => format!("withhold {code}"),
        };
        match self.flows.iter().find(|f| f.to == n) {
            Some(flow) => {
                let from = &self.catalog.items[flow.from].code;
                let part = &self.catalog.items[flow.embedder].embeds[flow.part].part;
                let cut = if flow.embedder == n {
                    format!("withhold or generalise {from}")
                } else {
                    self.cut(flow, |r| !hides(r))
                };
                format!(
                    "{lead} {from} gives its characters {} ({part}), so the hash only hides the rest: {fix}, or {cut}",
                    ranges(c)
                )
            }
            None => format!(
                "{lead} its characters {} are known from its own action or the row scope, so the hash only hides the rest: {fix}, or drop the row scope",
                ranges(c)
            ),
        }
    }

    /// A message when `item`, sent hashed (or, with `key`, in the hashed record key), has too
    /// few values.
    fn guessable(&self, item: &InformationItem, key: Option<&str>) -> Option<String> {
        let (values, why) = value_space(item);
        let few = values.is_none_or(|v| v < GUESSABLE_BELOW);
        if !few {
            return None;
        }
        let count = values.map_or_else(|| "few".to_owned(), |v| format!("only {}", about(v)));
        let code = &item.code;
        let instead = match item.data_type {
            DataType::Date | DataType::Datetime => " or generalise it (year or year-month)",
            DataType::Number => " or generalise it (band:W)",
            _ => " or send it clear if the reader may see it",
        };
        Some(match key {
            Some(reason) => format!(
                "record keys travel hashed ({reason}), but {code} has {count} possible values ({why}): every member holds the federation's hash key and can hash each one; send {code} clear"
            ),
            None => format!(
                "{code} is hashed, but it has {count} possible values ({why}): every member holds the federation's hash key and can hash each one; withhold {code}{instead}"
            ),
        })
    }

    /// Messages when the hashed record key can be guessed: its items' values together are
    /// few, or some of their characters are known.
    fn key_guessable(&self, keys: &[usize]) -> Option<String> {
        let hidden: Vec<&str> = keys
            .iter()
            .filter(|&&k| self.actions[k] != Action::Clear)
            .map(|&k| self.catalog.items[k].code.as_str())
            .collect();
        let why = format!(
            "{} {} not sent in clear",
            hidden.join(" and "),
            if hidden.len() == 1 { "is" } else { "are" }
        );
        let open: Vec<usize> = keys.iter().copied().filter(|&k| !self.whole(k)).collect();
        if let Some(&k) = open.iter().find(|&&k| self.known[k].any()) {
            return Some(self.hash_half_known(k, Some(&why)));
        }
        match open.as_slice() {
            [] => None,
            [k] => self.guessable(&self.catalog.items[*k], Some(&why)),
            many => {
                let spaces: Vec<Option<f64>> = many
                    .iter()
                    .map(|&k| value_space(&self.catalog.items[k]).0)
                    .collect();
                let total = spaces.iter().try_fold(1.0, |acc, v| v.map(|v| acc * v));
                total.is_none_or(|t| t < GUESSABLE_BELOW).then(|| {
                    format!(
                        "record keys travel hashed ({why}), but the key's items together have {} possible values: every member holds the federation's hash key and can hash each one; send the key items clear",
                        total.map_or_else(|| "few".to_owned(), |t| format!("only {}", about(t)))
                    )
                })
            }
        }
    }
}

/// A decision refused because a reader could rebuild or guess what it hides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaks {
    /// The decision, as it would have been carried out.
    pub decision: Decision,
    /// The other grants the same reader holds on the catalog, taken together with it.
    pub alongside: Vec<String>,
    /// One message per item given away, naming the items involved and what to change.
    pub problems: Vec<String>,
}

impl fmt::Display for Leaks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let together = match self.alongside.as_slice() {
            [] => String::new(),
            [one] => format!(", taken with grant {one}, which the same reader holds,"),
            many => format!(
                ", taken with grants {}, which the same reader holds,",
                many.join(", ")
            ),
        };
        write!(
            f,
            "grant {}{together} lets its reader rebuild what it hides: {}",
            self.decision.grant,
            self.problems.join("; ")
        )
    }
}

impl Decision {
    /// Checks the rule (see the module): the decision itself back as [`Leaks`] when it fails.
    /// The one check behind grants, delegations, approvals and every read.
    pub fn check_reveal(self, catalog: &Catalog) -> Result<Decision, Box<Leaks>> {
        self.check_reveal_alongside(catalog, &[])
    }

    /// Checks the rule with what the other grants the same reader holds on the catalog
    /// (`alongside`) send taken into account: records of two answers join on their key, so an
    /// ID number masked under one grant is rebuilt by a birth date sent under another.
    pub fn check_reveal_alongside(
        self,
        catalog: &Catalog,
        alongside: &[&super::model::Grant],
    ) -> Result<Decision, Box<Leaks>> {
        let others = alongside
            .iter()
            .map(|g| {
                Decision::under(g, catalog)
                    .items
                    .iter()
                    .map(|d| d.action)
                    .collect()
            })
            .collect();
        let problems = Reveal::alongside(
            catalog,
            self.items.iter().map(|d| d.action).collect(),
            self.rows.as_ref(),
            others,
        )
        .leaks();
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(Box::new(Leaks {
                decision: self,
                alongside: alongside.iter().map(|g| g.id.clone()).collect(),
                problems,
            }))
        }
    }
}

#[cfg(test)]
mod tests;
