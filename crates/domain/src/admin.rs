//! Administrative units as data: every GSO unit as of 1 March 2025, and Lạng Sơn's
//! units after the 1 July 2025 reform with the old → new succession. A unit is a
//! code plus a validity period, because the reform reused codes: 05977 was Phường
//! Vĩnh Trại until 30 June 2025 and is Phường Đông Kinh from 1 July 2025.
//!
//! Only Lạng Sơn's reform is bundled; units of other provinces stay as they were on
//! 1 March 2025 with no end date until their succession data is loaded.

use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

const UNITS_2025_03: &str = include_str!("../data/vn-admin-units-2025-03-01.csv");
const LANG_SON_2025_07: &str = include_str!("../data/lang-son-communes-2025-07-01.csv");
const LANG_SON_SUCCESSION: &str =
    include_str!("../data/lang-son-commune-succession-2025-07-01.csv");

/// The day the two-level local government took effect.
pub fn reform_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 7, 1).unwrap_or_default()
}

/// The last day of `year`: the day whose units a year's figures are reported by.
pub fn year_end(year: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, 12, 31)
}

/// The last day of a period ending in `to`, or `today` while it runs.
pub fn period_end(to: i32, today: NaiveDate) -> NaiveDate {
    year_end(to).map_or(today, |end| end.min(today))
}

/// Whether `year` is reported by the units of the two-level government: its
/// end falls after the reform, when districts no longer operate, so its
/// figures roll up by the communes in force at its end.
pub fn reported_after_reform(year: i32) -> bool {
    year_end(year).is_some_and(|end| end >= reform_date())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Province,
    District,
    Commune,
}

impl Level {
    /// GSO codes have a fixed length per level: 2, 3 and 5 digits.
    pub fn of_code(code: &str) -> Option<Level> {
        if !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        match code.len() {
            2 => Some(Level::Province),
            3 => Some(Level::District),
            5 => Some(Level::Commune),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUnit {
    pub code: String,
    pub name: String,
    pub level: Level,
    pub kind: String,
    pub parent_code: Option<String>,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
    pub successors: Vec<String>,
    pub predecessors: Vec<String>,
}

impl AdminUnit {
    /// A unit with no validity bounds and no succession.
    fn bare(
        code: &str,
        name: String,
        level: Level,
        kind: String,
        parent: Option<String>,
    ) -> AdminUnit {
        AdminUnit {
            code: code.to_owned(),
            name,
            level,
            kind,
            parent_code: parent,
            valid_from: None,
            valid_until: None,
            successors: vec![],
            predecessors: vec![],
        }
    }

    pub fn is_valid_at(&self, date: NaiveDate) -> bool {
        self.valid_from.is_none_or(|from| from <= date)
            && self.valid_until.is_none_or(|until| date <= until)
    }
}

/// Where a household's address sits in the hierarchy, fixed when it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub province_code: String,
    /// `None` for a commune created by the 2025 reform (no district level).
    pub district_code: Option<String>,
    pub commune_code: String,
    /// The commune in force at the reference date that carries the address on.
    pub current_commune_code: String,
}

impl Location {
    /// True when `code` names this location or a unit above it.
    pub fn is_within(&self, code: &str) -> bool {
        self.province_code == code
            || self.district_code.as_deref() == Some(code)
            || self.commune_code == code
            || self.current_commune_code == code
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocateError {
    #[error("is not a GSO commune code (5 digits)")]
    NotACommuneCode,
    #[error("is not a known commune")]
    Unknown,
    #[error("was not a commune in force on {date}{hint}")]
    NotValidAt { date: NaiveDate, hint: String },
}

/// All units, indexed by code; each code maps to its versions in date order.
#[derive(Debug)]
pub struct Catalog {
    units: BTreeMap<String, Vec<AdminUnit>>,
    children: BTreeMap<String, Vec<(String, usize)>>,
}

/// The bundled catalog, parsed once.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(Catalog::bundled)
}

fn rows(csv_text: &str) -> impl Iterator<Item = csv::StringRecord> + '_ {
    csv::Reader::from_reader(csv_text.as_bytes())
        .into_records()
        .filter_map(Result::ok)
}

impl Catalog {
    fn bundled() -> Catalog {
        let reform = reform_date();
        let last_day_before = reform.pred_opt().unwrap_or(reform);
        let reformed: BTreeSet<String> = rows(LANG_SON_2025_07)
            .filter_map(|r| r.get(0).map(str::to_owned))
            .collect();

        let mut units: BTreeMap<String, Vec<AdminUnit>> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for r in rows(UNITS_2025_03) {
            let f = |i: usize| r.get(i).unwrap_or_default().to_owned();
            let (p, d, c) = (f(0), f(3), f(6));
            let ends = reformed.contains(&p).then_some(last_day_before);
            if seen.insert(p.clone()) {
                let province = AdminUnit::bare(&p, f(1), Level::Province, f(2), None);
                units.entry(p.clone()).or_default().push(province);
            }
            if seen.insert(d.clone()) {
                let district = AdminUnit {
                    valid_until: ends,
                    ..AdminUnit::bare(&d, f(4), Level::District, f(5), Some(p.clone()))
                };
                units.entry(d.clone()).or_default().push(district);
            }
            let commune = AdminUnit {
                valid_until: ends,
                ..AdminUnit::bare(&c, f(7), Level::Commune, f(8), Some(d))
            };
            units.entry(c).or_default().push(commune);
        }

        for r in rows(LANG_SON_2025_07) {
            let f = |i: usize| r.get(i).unwrap_or_default().to_owned();
            let code = f(1);
            let name = format!("{} {}", f(3), f(2));
            let commune = AdminUnit {
                valid_from: Some(reform),
                ..AdminUnit::bare(&code, name, Level::Commune, f(3), Some(f(0)))
            };
            units.entry(code).or_default().push(commune);
        }

        for r in rows(LANG_SON_SUCCESSION) {
            let (new, old) = (r.get(0).unwrap_or_default(), r.get(2).unwrap_or_default());
            if let Some(old_unit) = units.get_mut(old).and_then(|v| {
                v.iter_mut()
                    .find(|u| u.valid_until == Some(last_day_before))
            }) {
                old_unit.successors.push(new.to_owned());
            }
            if let Some(new_unit) = units
                .get_mut(new)
                .and_then(|v| v.iter_mut().find(|u| u.valid_from == Some(reform)))
            {
                new_unit.predecessors.push(old.to_owned());
            }
        }

        let mut children: BTreeMap<String, Vec<(String, usize)>> = BTreeMap::new();
        for (code, versions) in &units {
            for (i, u) in versions.iter().enumerate() {
                let parent = u.parent_code.clone().unwrap_or_default();
                children.entry(parent).or_default().push((code.clone(), i));
            }
        }
        Catalog { units, children }
    }

    /// Every version of a code, oldest first.
    pub fn versions(&self, code: &str) -> &[AdminUnit] {
        self.units.get(code).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The codes of which some version was divided between several
    /// successors (Lạng Sơn: 06622 Bính Xá, 06625 Kiên Mộc), by code.
    pub fn split_codes(&self) -> Vec<&str> {
        self.units
            .iter()
            .filter(|(_, versions)| versions.iter().any(|u| u.successors.len() > 1))
            .map(|(code, _)| code.as_str())
            .collect()
    }

    pub fn is_known(&self, code: &str) -> bool {
        self.units.contains_key(code)
    }

    /// The version of a code in force at a date.
    pub fn get(&self, code: &str, date: NaiveDate) -> Option<&AdminUnit> {
        self.versions(code).iter().find(|u| u.is_valid_at(date))
    }

    pub fn province(&self, code: &str) -> Option<&AdminUnit> {
        self.versions(code)
            .iter()
            .find(|u| u.level == Level::Province)
    }

    /// Units in force at `date` whose parent is `parent` (provinces for `None`), by code.
    pub fn children(&self, parent: Option<&str>, date: NaiveDate) -> Vec<&AdminUnit> {
        self.children
            .get(parent.unwrap_or_default())
            .into_iter()
            .flatten()
            .filter_map(|(code, i)| self.units.get(code).and_then(|v| v.get(*i)))
            .filter(|u| u.is_valid_at(date))
            .collect()
    }

    /// Every commune in force at `date` under `parent`, at any depth (a
    /// province's communes through its districts, or directly after the
    /// reform), unordered.
    pub fn communes_under(&self, parent: &str, date: NaiveDate) -> Vec<&AdminUnit> {
        let mut found = vec![];
        let mut frontier = vec![parent.to_owned()];
        while let Some(next) = frontier.pop() {
            for u in self.children(Some(&next), date) {
                if u.level == Level::Commune {
                    found.push(u);
                } else {
                    frontier.push(u.code.clone());
                }
            }
        }
        found
    }

    /// The units in force at `date` that carry `code` on: the unit itself while it is
    /// valid, otherwise its successors, followed as far as needed.
    pub fn successors_at(&self, code: &str, date: NaiveDate) -> Vec<&AdminUnit> {
        if let Some(unit) = self.get(code, date) {
            return vec![unit];
        }
        let mut found: Vec<&AdminUnit> = Vec::new();
        let mut frontier: Vec<String> = self
            .versions(code)
            .iter()
            .flat_map(|u| u.successors.iter().cloned())
            .collect();
        let mut visited = BTreeSet::new();
        while let Some(next) = frontier.pop() {
            if !visited.insert(next.clone()) {
                continue;
            }
            match self.get(&next, date) {
                Some(u) if !found.contains(&u) => found.push(u),
                Some(_) => {}
                None => frontier.extend(
                    self.versions(&next)
                        .iter()
                        .flat_map(|u| u.successors.iter().cloned()),
                ),
            }
        }
        found.sort_by(|a, b| a.code.cmp(&b.code));
        found
    }

    /// The unit in force at `date` that holds a household registered in
    /// commune `code` and placed, since, in `current` (its
    /// `current_commune_code`): the commune itself while it stands, else the
    /// successor carrying it on; of several, the one it was placed in.
    /// `None` for a household of a split commune not yet assigned to one of
    /// its parts (`current` empty: see [`Catalog::locate_commune`]).
    pub fn holding_unit(&self, code: &str, current: &str, date: NaiveDate) -> Option<&AdminUnit> {
        if current.is_empty() && self.split_at(code, date).is_some() {
            return None;
        }
        let successors = self.successors_at(code, date);
        successors
            .iter()
            .find(|u| u.code == current)
            .or(successors.first())
            .copied()
    }

    /// When a version of `code` that had ended by `date` was divided between
    /// several successors, the units in force at `date` that carry its parts
    /// on, by code; `None` when no version of it was split. A split code the
    /// reform reused for one of its parts (06625 Kiên Mộc) is still split:
    /// which part a household joined depends on its village, not its code.
    pub fn split_at(&self, code: &str, date: NaiveDate) -> Option<Vec<&AdminUnit>> {
        let split = self
            .versions(code)
            .iter()
            .find(|u| u.valid_until.is_some_and(|end| end < date) && u.successors.len() > 1)?;
        let mut parts: Vec<&AdminUnit> = split
            .successors
            .iter()
            .flat_map(|s| self.successors_at(s, date))
            .collect();
        parts.sort_by(|a, b| a.code.cmp(&b.code));
        parts.dedup_by(|a, b| a.code == b.code);
        Some(parts)
    }

    /// The parts, in force at `today`, of the commune `code` as it stood on
    /// `registered_on`, when that commune has since been divided between
    /// several successors; `None` when it stands or went whole to one. Which
    /// part a household of it joined depends on its village, which no code
    /// says: it is assigned, never guessed.
    pub fn split_parts(
        &self,
        code: &str,
        registered_on: NaiveDate,
        today: NaiveDate,
    ) -> Option<Vec<&AdminUnit>> {
        let unit = self.get(code, registered_on)?;
        if unit.successors.len() < 2 || unit.valid_until.is_none_or(|end| end >= today) {
            return None;
        }
        let mut parts: Vec<&AdminUnit> = unit
            .successors
            .iter()
            .flat_map(|s| self.successors_at(s, today))
            .collect();
        parts.sort_by(|a, b| a.code.cmp(&b.code));
        parts.dedup_by(|a, b| a.code == b.code);
        Some(parts)
    }

    /// Places a commune code read at `registered_on`, and finds the commune that
    /// carries it on at `today`. A commune since split between successors is
    /// carried on by none of them until its household is assigned by village:
    /// `current_commune_code` is then empty.
    pub fn locate_commune(
        &self,
        code: &str,
        registered_on: NaiveDate,
        today: NaiveDate,
    ) -> Result<Location, LocateError> {
        if Level::of_code(code) != Some(Level::Commune) {
            return Err(LocateError::NotACommuneCode);
        }
        let versions = self.versions(code);
        if !versions.iter().any(|u| u.level == Level::Commune) {
            return Err(LocateError::Unknown);
        }
        let Some(unit) = self.get(code, registered_on) else {
            let hint = versions
                .iter()
                .map(|u| match (u.valid_from, u.valid_until) {
                    (Some(f), _) => format!(" (in force from {f})"),
                    (None, Some(t)) => format!(" (in force until {t})"),
                    (None, None) => String::new(),
                })
                .collect::<String>();
            return Err(LocateError::NotValidAt {
                date: registered_on,
                hint,
            });
        };
        let parent = unit.parent_code.clone().unwrap_or_default();
        let (province_code, district_code) = match Level::of_code(&parent) {
            Some(Level::District) => {
                let province = self
                    .get(&parent, registered_on)
                    .or_else(|| self.versions(&parent).first())
                    .and_then(|d| d.parent_code.clone())
                    .unwrap_or_default();
                (province, Some(parent))
            }
            _ => (parent, None),
        };
        let successors = self.successors_at(code, today);
        let current_commune_code = if self.split_parts(code, registered_on, today).is_some() {
            String::new()
        } else {
            successors
                .iter()
                .find(|u| u.code == code)
                .or(successors.first())
                .map_or_else(|| code.to_owned(), |u| u.code.clone())
        };
        Ok(Location {
            province_code,
            district_code,
            commune_code: code.to_owned(),
            current_commune_code,
        })
    }

    /// The province every version of `code` lies in; `None` when the code is unknown
    /// or its versions disagree. Provinces are stable through the 2025 reform, so
    /// this is exact where [`Catalog::ancestors_or_self`] is deliberately loose.
    pub fn province_of(&self, code: &str) -> Option<&str> {
        let mut province: Option<&str> = None;
        for unit in self.versions(code) {
            let this = match unit.level {
                Level::Province => unit.code.as_str(),
                Level::District => unit.parent_code.as_deref()?,
                Level::Commune => {
                    let parent = unit.parent_code.as_deref()?;
                    match Level::of_code(parent) {
                        Some(Level::District) => {
                            self.versions(parent).first()?.parent_code.as_deref()?
                        }
                        _ => parent,
                    }
                }
            };
            if province.is_some_and(|p| p != this) {
                return None;
            }
            province = Some(this);
        }
        province
    }

    /// True when every version of `code` lies under `ancestor` by its parents alone
    /// (never through the succession): the exact "wholly inside" a scope check needs.
    pub fn lies_within(&self, code: &str, ancestor: &str) -> bool {
        let versions = self.versions(code);
        !versions.is_empty()
            && versions.iter().all(|unit| {
                let mut parent = unit.parent_code.clone();
                while let Some(p) = parent {
                    if p == ancestor {
                        return true;
                    }
                    parent = self
                        .versions(&p)
                        .first()
                        .and_then(|u| u.parent_code.clone());
                }
                false
            })
    }

    /// A code and every code above it, across all versions and the succession: the
    /// old commune 05980 sits under district 178, province 20 and its successor 05977.
    /// A successor is followed as it is once its predecessor has ended: the
    /// reform reused old codes for new communes, and the old commune that bore
    /// 05977 before (under district 183) is not above 05980 of district 178.
    pub fn ancestors_or_self(&self, code: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        // A code, and the day its versions are read at (`None`: every version).
        let mut frontier: Vec<(String, Option<NaiveDate>)> = vec![(code.to_owned(), None)];
        let mut seen: BTreeSet<(String, Option<NaiveDate>)> = BTreeSet::new();
        while let Some((next, at)) = frontier.pop() {
            if !seen.insert((next.clone(), at)) {
                continue;
            }
            out.insert(next.clone());
            let versions = self
                .versions(&next)
                .iter()
                .filter(|u| at.is_none_or(|day| u.is_valid_at(day)));
            for u in versions {
                frontier.extend(u.parent_code.iter().map(|p| (p.clone(), None)));
                let after = u.valid_until.and_then(|until| until.succ_opt());
                frontier.extend(u.successors.iter().map(|s| (s.clone(), after)));
            }
        }
        out
    }

    /// True when one unit contains the other (or they are the same).
    pub fn overlaps(&self, a: &str, b: &str) -> bool {
        self.ancestors_or_self(a).contains(b) || self.ancestors_or_self(b).contains(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    #[test]
    fn bundles_the_whole_country_as_of_march_2025() {
        let c = catalog();
        let before = d(2025, 3, 1);
        assert_eq!(c.children(None, before).len(), 63);
        let lang_son = c.province("20").expect("Lạng Sơn");
        assert_eq!(lang_son.name, "Tỉnh Lạng Sơn");
        assert_eq!(c.children(Some("20"), before).len(), 11);
        let communes: usize = c
            .children(Some("20"), before)
            .iter()
            .map(|district| c.children(Some(&district.code), before).len())
            .sum();
        assert_eq!(communes, 194);
    }

    #[test]
    fn communes_under_a_province_go_through_its_districts_before_the_reform() {
        let c = catalog();
        let before = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap_or_default();
        let after = NaiveDate::from_ymd_opt(2025, 12, 31).unwrap_or_default();
        let old = c.communes_under("20", before);
        assert!(old.len() > 100 && old.iter().all(|u| u.level == Level::Commune));
        assert_eq!(c.communes_under("20", after).len(), 65);
        assert!(
            c.communes_under("181", before)
                .iter()
                .all(|u| u.parent_code.as_deref() == Some("181"))
        );
    }

    #[test]
    fn lang_son_has_65_communes_after_the_reform_and_no_districts() {
        let c = catalog();
        let after = d(2025, 7, 1);
        let units = c.children(Some("20"), after);
        assert_eq!(units.len(), 65);
        assert!(units.iter().all(|u| u.level == Level::Commune));
        assert_eq!(units.iter().filter(|u| u.kind == "Phường").count(), 4);
        assert!(c.get("181", after).is_none(), "Bình Gia district ended");
        assert!(c.get("181", d(2025, 6, 30)).is_some());
    }

    #[test]
    fn a_reused_code_has_two_versions() {
        let c = catalog();
        assert_eq!(
            c.get("05977", d(2024, 1, 1)).map(|u| u.name.as_str()),
            Some("Phường Vĩnh Trại")
        );
        assert_eq!(
            c.get("05977", d(2026, 1, 1)).map(|u| u.name.as_str()),
            Some("Phường Đông Kinh")
        );
        let new = c.get("05977", d(2026, 1, 1)).expect("new");
        assert_eq!(new.predecessors, ["05977", "05980", "05992", "06247"]);
    }

    #[test]
    fn resolves_successors_including_splits() {
        let c = catalog();
        let today = d(2026, 11, 29);
        let merged: Vec<_> = c
            .successors_at("05980", today)
            .iter()
            .map(|u| u.code.clone())
            .collect();
        assert_eq!(merged, ["05977"]);
        let split: Vec<_> = c
            .successors_at("06622", today)
            .iter()
            .map(|u| u.code.clone())
            .collect();
        assert_eq!(split, ["06613", "06625"]);
        // Before the reform a unit is its own successor.
        let same: Vec<_> = c
            .successors_at("05980", d(2024, 1, 1))
            .iter()
            .map(|u| u.code.clone())
            .collect();
        assert_eq!(same, ["05980"]);
    }

    #[test]
    fn locates_old_and_new_communes() {
        let c = catalog();
        let today = d(2026, 11, 29);
        let old = c
            .locate_commune("05980", d(2022, 5, 1), today)
            .expect("old commune");
        assert_eq!(old.province_code, "20");
        assert_eq!(old.district_code.as_deref(), Some("178"));
        assert_eq!(old.current_commune_code, "05977");
        let new = c
            .locate_commune("05977", d(2026, 1, 1), today)
            .expect("new commune");
        assert_eq!(new.district_code, None);
        assert_eq!(new.province_code, "20");
        // A split commune rolls up into none of its parts, not even the one
        // that kept its code: its households are assigned by village.
        let split = c
            .locate_commune("06625", d(2022, 1, 1), today)
            .expect("split");
        assert_eq!(split.current_commune_code, "");
        let parts: Vec<_> = c
            .split_parts("06625", d(2022, 1, 1), today)
            .expect("split")
            .iter()
            .map(|u| u.code.as_str())
            .collect();
        assert_eq!(parts, ["06625", "06637"]);
        assert_eq!(c.split_codes(), ["06622", "06625"]);
        // The new commune that reused the code is not split, nor was the
        // old one before the reform.
        assert!(c.split_parts("06625", d(2026, 1, 1), today).is_none());
        assert!(
            c.split_parts("06625", d(2022, 1, 1), d(2025, 6, 30))
                .is_none()
        );
        let reused = c
            .locate_commune("06625", d(2026, 1, 1), today)
            .expect("new");
        assert_eq!(reused.current_commune_code, "06625");
    }

    #[test]
    fn refuses_communes_out_of_their_validity() {
        let c = catalog();
        let today = d(2026, 11, 29);
        assert!(matches!(
            c.locate_commune("05980", d(2026, 1, 1), today),
            Err(LocateError::NotValidAt { .. })
        ));
        assert_eq!(
            c.locate_commune("99999", today, today),
            Err(LocateError::Unknown)
        );
        assert_eq!(
            c.locate_commune("181", today, today),
            Err(LocateError::NotACommuneCode)
        );
        assert_eq!(
            c.locate_commune("0598a", today, today),
            Err(LocateError::NotACommuneCode)
        );
    }

    #[test]
    fn ancestry_spans_the_reform() {
        let c = catalog();
        let up = c.ancestors_or_self("05980");
        assert!(up.contains("178") && up.contains("20") && up.contains("05977"));
        assert!(c.overlaps("20", "06247"));
        assert!(c.overlaps("06247", "181") == c.ancestors_or_self("06247").contains("181"));
        assert!(!c.overlaps("181", "182"));
        assert!(!c.overlaps("20", "01"));
    }

    #[test]
    fn province_of_is_exact_across_versions() {
        let c = catalog();
        assert_eq!(
            c.province_of("05977"),
            Some("20"),
            "old and new 05977 are both in Lạng Sơn"
        );
        assert_eq!(c.province_of("181"), Some("20"));
        assert_eq!(c.province_of("20"), Some("20"));
        assert_eq!(c.province_of("00001"), Some("01"));
        assert_eq!(c.province_of("99999"), None);
    }

    #[test]
    fn locations_know_what_contains_them() {
        let loc = Location {
            province_code: "20".into(),
            district_code: Some("181".into()),
            commune_code: "06280".into(),
            current_commune_code: "06280".into(),
        };
        assert!(loc.is_within("20") && loc.is_within("181") && loc.is_within("06280"));
        assert!(!loc.is_within("182") && !loc.is_within("2"));
    }
}
