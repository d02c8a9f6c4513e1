//! The import file: a CSV or XLSX sheet with one row per household member and
//! one row per review, grouped by `household_key` (a household's rows are
//! consecutive). Household columns are read from the group's first row. Read as
//! a stream (CSV records, or XLSX cells in document order) so memory does not
//! grow with the file; values are passed to the server as they are and the
//! server names what is wrong with them.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;

use anyhow::{Context, bail};
use calamine::{DataRef, DataType, Reader, Xlsx, open_workbook};
use sustain_proto::registry::v1 as pb;

/// Columns in file order.
pub const COLUMNS: &[&str] = &[
    "household_key",
    "row_type",
    "commune_code",
    "village",
    "residence",
    "registered_on",
    "full_name",
    "sex",
    "birth_date",
    "relation",
    "ethnicity_code",
    "citizen_id",
    "has_disability",
    "health_insurance",
    "year",
    "kind",
    "income_per_person_month",
    "score_a",
    "deprived_indicators",
    "reviewer",
    "reviewed_on",
    "state",
    "decision_number",
    "decision_date",
    "area",
    "area_reason",
];

/// One household read from the file, with the file rows it came from.
#[derive(Debug, Clone)]
pub struct Group {
    pub row: pb::ImportRow,
    /// File row of the group's first line (1-based, header is row 1).
    pub first_line: usize,
    pub member_lines: Vec<usize>,
    pub review_lines: Vec<usize>,
    /// Problems found reading the file; such a group is not sent.
    pub problems: Vec<(usize, String, String)>,
}

impl Group {
    /// The file row and column a server field path points at.
    pub fn locate(&self, field: &str) -> (usize, String) {
        let column = field
            .rsplit('.')
            .next()
            .unwrap_or(field)
            .split('[')
            .next()
            .unwrap_or(field);
        // The file's words where the request's differ.
        let column = match column {
            "external_key" => "household_key",
            "members" => "relation",
            "review" => "year",
            other => other,
        }
        .to_owned();
        let index = |prefix: &str| -> Option<usize> {
            let rest = field.strip_prefix(prefix)?;
            rest.split(']').next()?.parse().ok()
        };
        if let Some(i) = index("household.members[") {
            return (
                self.member_lines.get(i).copied().unwrap_or(self.first_line),
                column,
            );
        }
        if let Some(i) = index("reviews[") {
            return (
                self.review_lines.get(i).copied().unwrap_or(self.first_line),
                column,
            );
        }
        (self.first_line, column)
    }
}

type Record = HashMap<&'static str, String>;

/// Rows of a sheet as column → text, with their 1-based line numbers.
pub struct Rows {
    inner: Box<dyn Iterator<Item = anyhow::Result<(usize, Record)>> + Send>,
    /// Data rows in the file when known up front (XLSX), for a progress bar.
    pub total: Option<u64>,
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows").field("total", &self.total).finish()
    }
}

fn header_map(header: &[String]) -> anyhow::Result<Vec<Option<&'static str>>> {
    let map: Vec<Option<&'static str>> = header
        .iter()
        .map(|h| COLUMNS.iter().find(|c| **c == h.trim()).copied())
        .collect();
    for required in ["household_key", "row_type"] {
        if !map.contains(&Some(required)) {
            bail!(
                "the header has no {required} column; expected columns: {}, separated by commas or semicolons",
                COLUMNS.join(", ")
            );
        }
    }
    Ok(map)
}

fn record(map: &[Option<&'static str>], cells: Vec<String>) -> Record {
    map.iter()
        .zip(cells)
        .filter_map(|(c, v)| c.map(|c| (c, v.trim().to_owned())))
        .collect()
}

/// Opens a .csv or .xlsx file (by extension).
pub fn open(path: &Path) -> anyhow::Result<Rows> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match ext.as_str() {
        "csv" => open_csv(path),
        "xlsx" => open_xlsx(path),
        _ => bail!("{}: expected a .csv or .xlsx file", path.display()),
    }
}

/// The byte-order mark Excel puts before a UTF-8 CSV.
const BOM: &[u8] = "\u{feff}".as_bytes();

/// The separator of a CSV from its header line: Excel under a Vietnamese
/// (or other European) locale writes `;`, elsewhere `,`; a tab is taken too.
fn separator(header: &[u8]) -> u8 {
    [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|sep| header.iter().filter(|b| *b == sep).count())
        .unwrap_or(b',')
}

fn csv_reader(path: &Path) -> anyhow::Result<csv::Reader<BufReader<File>>> {
    let mut file =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let head = std::io::BufRead::fill_buf(&mut file)?;
    let bom = head.starts_with(BOM);
    let first_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let delimiter = separator(first_line);
    if bom {
        std::io::BufRead::consume(&mut file, BOM.len());
    }
    Ok(csv::ReaderBuilder::new()
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(file))
}

fn open_csv(path: &Path) -> anyhow::Result<Rows> {
    // Counted first, for a progress bar with a total: a read of the file
    // costs little beside importing it.
    let total = csv_reader(path)?.records().count() as u64;
    let mut reader = csv_reader(path)?;
    let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    let map = header_map(&header)?;
    let inner = reader.into_records().enumerate().map(move |(i, r)| {
        let r = r.with_context(|| format!("line {}", i + 2))?;
        Ok((i + 2, record(&map, r.iter().map(str::to_owned).collect())))
    });
    Ok(Rows {
        inner: Box::new(inner),
        total: Some(total),
    })
}

fn cell_text(value: &DataRef<'_>) -> String {
    match value {
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        DataRef::Float(f) => f.to_string(),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_owned(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(_) => value.as_date().map(|d| d.to_string()).unwrap_or_default(),
        DataRef::Error(e) => format!("#{e}"),
        DataRef::Empty => String::new(),
    }
}

/// XLSX rows from the first sheet, streamed cell by cell. The cell reader borrows
/// the workbook, so a thread owns both and hands rows over a bounded channel.
fn open_xlsx(path: &Path) -> anyhow::Result<Rows> {
    let mut workbook: Xlsx<_> =
        open_workbook(path).with_context(|| format!("opening {}", path.display()))?;
    let sheet = workbook
        .sheet_names()
        .first()
        .cloned()
        .context("the workbook has no sheet")?;
    let total = workbook
        .worksheet_cells_reader(&sheet)
        .map(|r| u64::from(r.dimensions().end.0))
        .ok();
    let (tx, rx) = std::sync::mpsc::sync_channel::<anyhow::Result<(usize, Record)>>(1024);
    std::thread::spawn(move || {
        let mut reader = match workbook.worksheet_cells_reader(&sheet) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(e.into()));
                return;
            }
        };
        let mut map: Option<Vec<Option<&'static str>>> = None;
        let mut current_row: Option<u32> = None;
        let mut cells: Vec<String> = vec![];
        let flush =
            |row: u32, cells: &mut Vec<String>, map: &mut Option<Vec<Option<&'static str>>>| {
                let taken = std::mem::take(cells);
                match map {
                    None => match header_map(&taken) {
                        Ok(m) => {
                            *map = Some(m);
                            true
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            false
                        }
                    },
                    Some(m) => {
                        if taken.iter().all(|c| c.trim().is_empty()) {
                            return true;
                        }
                        tx.send(Ok((row as usize + 1, record(m, taken)))).is_ok()
                    }
                }
            };
        loop {
            match reader.next_cell() {
                Ok(Some(cell)) => {
                    let (row, col) = cell.get_position();
                    if current_row != Some(row) {
                        if let Some(r) = current_row
                            && !flush(r, &mut cells, &mut map)
                        {
                            return;
                        }
                        current_row = Some(row);
                    }
                    let col = col as usize;
                    if cells.len() <= col {
                        cells.resize(col + 1, String::new());
                    }
                    cells[col] = cell_text(cell.get_value());
                }
                Ok(None) => {
                    if let Some(r) = current_row {
                        flush(r, &mut cells, &mut map);
                    }
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(e.into()));
                    return;
                }
            }
        }
    });
    Ok(Rows {
        inner: Box::new(rx.into_iter()),
        // The last row's 0-based index: the data rows below the header.
        total,
    })
}

fn parse_number<T: std::str::FromStr>(
    raw: &str,
    line: usize,
    column: &str,
    problems: &mut Vec<(usize, String, String)>,
) -> Option<T> {
    if raw.is_empty() {
        return None;
    }
    let cleaned: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | ',' | '_'))
        .collect();
    match cleaned.parse() {
        Ok(v) => Some(v),
        Err(_) => {
            problems.push((
                line,
                column.to_owned(),
                format!("{raw:?} is not a whole number"),
            ));
            None
        }
    }
}

fn enum_code<T: Copy + Into<i32>>(raw: &str, options: &[(&[&str], T)]) -> i32 {
    let folded = sustain_domain::text::fold(raw);
    options
        .iter()
        .find(|(names, _)| names.iter().any(|n| *n == folded))
        .map(|(_, v)| (*v).into())
        .unwrap_or(0)
}

fn yes(raw: &str) -> bool {
    matches!(
        sustain_domain::text::fold(raw).as_str(),
        "yes" | "true" | "1" | "co" | "x"
    )
}

fn get<'a>(r: &'a Record, column: &str) -> &'a str {
    r.get(column).map(String::as_str).unwrap_or("")
}

/// Groups rows into households, in file order.
pub fn groups(rows: Rows) -> impl Iterator<Item = anyhow::Result<Group>> {
    let mut rows = rows.inner.peekable();
    std::iter::from_fn(move || {
        let first = match rows.next()? {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let key = get(&first.1, "household_key").to_owned();
        let mut lines = vec![first];
        while let Some(Ok((_, next))) = rows.peek() {
            if get(next, "household_key") != key {
                break;
            }
            match rows.next() {
                Some(Ok(r)) => lines.push(r),
                Some(Err(e)) => return Some(Err(e)),
                None => break,
            }
        }
        Some(Ok(group(key, lines)))
    })
}

fn group(key: String, lines: Vec<(usize, Record)>) -> Group {
    let (first_line, first) = &lines[0];
    let mut problems = vec![];
    let household = pb::Household {
        address: Some(pb::Address {
            commune_code: get(first, "commune_code").to_owned(),
            village: get(first, "village").to_owned(),
            residence: enum_code(
                get(first, "residence"),
                &[
                    (&["rural", "nong thon"], pb::Residence::Rural),
                    (&["urban", "thanh thi"], pb::Residence::Urban),
                ],
            ),
        }),
        registered_on: get(first, "registered_on").to_owned(),
        ..Default::default()
    };
    let mut row = pb::ImportRow {
        row_number: *first_line as i64,
        external_key: key,
        household: Some(household),
        reviews: vec![],
    };
    let (mut member_lines, mut review_lines) = (vec![], vec![]);
    for (line, r) in &lines {
        match sustain_domain::text::fold(get(r, "row_type")).as_str() {
            "member" => {
                member_lines.push(*line);
                let m = pb::Member {
                    full_name: get(r, "full_name").to_owned(),
                    birth_date: get(r, "birth_date").to_owned(),
                    sex: enum_code(
                        get(r, "sex"),
                        &[
                            (&["male", "nam"], pb::Sex::Male),
                            (&["female", "nu"], pb::Sex::Female),
                        ],
                    ),
                    ethnicity_code: get(r, "ethnicity_code").to_owned(),
                    relation: relation(get(r, "relation")),
                    citizen_id: get(r, "citizen_id").to_owned(),
                    has_disability: yes(get(r, "has_disability")),
                    health_insurance: enum_code(
                        get(r, "health_insurance"),
                        &[
                            (&["insured", "co"], pb::HealthInsurance::Insured),
                            (&["uninsured", "khong"], pb::HealthInsurance::Uninsured),
                        ],
                    ),
                    ..Default::default()
                };
                if let Some(h) = row.household.as_mut() {
                    h.members.push(m);
                }
            }
            "review" => {
                review_lines.push(*line);
                let year =
                    parse_number::<i32>(get(r, "year"), *line, "year", &mut problems).unwrap_or(0);
                let review = pb::ReviewInput {
                    year,
                    kind: enum_code(
                        get(r, "kind"),
                        &[
                            (&["periodic", "dinh ky"], pb::ReviewKind::Periodic),
                            (&["regular", "thuong xuyen"], pb::ReviewKind::Regular),
                        ],
                    ),
                    deprived_indicators: get(r, "deprived_indicators")
                        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    income_per_person_month: parse_number(
                        get(r, "income_per_person_month"),
                        *line,
                        "income_per_person_month",
                        &mut problems,
                    ),
                    score_a: parse_number(get(r, "score_a"), *line, "score_a", &mut problems),
                    score_b: None,
                    reviewer: get(r, "reviewer").to_owned(),
                    reviewed_on: get(r, "reviewed_on").to_owned(),
                    area: {
                        let raw = get(r, "area");
                        let area = enum_code(
                            raw,
                            &[
                                (&["rural", "nong thon"], pb::Residence::Rural),
                                (&["urban", "thanh thi"], pb::Residence::Urban),
                            ],
                        );
                        // A typo must not silently become the default.
                        if area == 0 && !raw.trim().is_empty() {
                            problems.push((
                                *line,
                                "area".to_owned(),
                                format!("{raw:?} is not rural or urban (nông thôn, thành thị); leave it empty for the default"),
                            ));
                        }
                        area
                    },
                    area_reason: get(r, "area_reason").to_owned(),
                };
                row.reviews.push(pb::ImportedReview {
                    review: Some(review),
                    state: enum_code(
                        get(r, "state"),
                        &[
                            (&["draft"], pb::ReviewState::Draft),
                            (&["certified", ""], pb::ReviewState::Certified),
                        ],
                    ),
                    decision_number: get(r, "decision_number").to_owned(),
                    decision_date: get(r, "decision_date").to_owned(),
                });
            }
            other => problems.push((
                *line,
                "row_type".to_owned(),
                format!("{other:?} is neither member nor review"),
            )),
        }
    }
    Group {
        row,
        first_line: *first_line,
        member_lines,
        review_lines,
        problems,
    }
}

fn relation(raw: &str) -> i32 {
    use pb::Relation as R;
    enum_code(
        raw,
        &[
            (&["head", "chu ho"], R::Head),
            (&["spouse", "vo", "chong", "vo/chong"], R::Spouse),
            (&["child", "con"], R::Child),
            (&["parent", "bo", "me", "bo/me"], R::Parent),
            (&["grandchild", "chau"], R::Grandchild),
            (&["grandparent", "ong", "ba", "ong/ba"], R::Grandparent),
            (&["sibling", "anh", "chi", "em", "anh/chi/em"], R::Sibling),
            (&["other_relative", "ho hang"], R::OtherRelative),
            (&["non_relative", "khac"], R::NonRelative),
        ],
    )
}

fn enum_name<T: std::fmt::Debug>(value: Option<T>) -> String {
    let debug = value.map(|v| format!("{v:?}")).unwrap_or_default();
    // CamelCase → snake_case, as the file spells it.
    let mut out = String::new();
    for (i, c) in debug.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Writes households in the file's CSV layout (the demo's `--out`).
#[derive(Debug)]
pub struct CsvWriter<W: Write> {
    inner: csv::Writer<W>,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(out: W) -> anyhow::Result<CsvWriter<W>> {
        let mut inner = csv::Writer::from_writer(out);
        inner.write_record(COLUMNS)?;
        Ok(CsvWriter { inner })
    }

    /// The cells of a row in `COLUMNS` order.
    pub fn lines(row: &pb::ImportRow) -> Vec<Vec<String>> {
        let h = row.household.clone().unwrap_or_default();
        let a = h.address.clone().unwrap_or_default();
        let base = |row_type: &str| -> Vec<String> {
            let mut cells = vec![String::new(); COLUMNS.len()];
            cells[0] = row.external_key.clone();
            cells[1] = row_type.to_owned();
            cells[2] = a.commune_code.clone();
            cells[3] = a.village.clone();
            cells[4] = enum_name(pb::Residence::try_from(a.residence).ok());
            cells[5] = h.registered_on.clone();
            cells
        };
        let mut out = vec![];
        for m in &h.members {
            let mut c = base("member");
            c[6] = m.full_name.clone();
            c[7] = enum_name(pb::Sex::try_from(m.sex).ok());
            c[8] = m.birth_date.clone();
            c[9] = enum_name(pb::Relation::try_from(m.relation).ok());
            c[10] = m.ethnicity_code.clone();
            c[11] = m.citizen_id.clone();
            c[12] = if m.has_disability { "yes" } else { "no" }.to_owned();
            c[13] = enum_name(pb::HealthInsurance::try_from(m.health_insurance).ok());
            out.push(c);
        }
        for r in &row.reviews {
            let input = r.review.clone().unwrap_or_default();
            let mut c = base("review");
            c[14] = input.year.to_string();
            c[15] = enum_name(pb::ReviewKind::try_from(input.kind).ok());
            c[16] = input
                .income_per_person_month
                .map(|i| i.to_string())
                .unwrap_or_default();
            c[17] = input.score_a.map(|a| a.to_string()).unwrap_or_default();
            c[18] = input.deprived_indicators.join(" ");
            c[19] = input.reviewer.clone();
            c[20] = input.reviewed_on.clone();
            c[21] = enum_name(pb::ReviewState::try_from(r.state).ok());
            c[22] = r.decision_number.clone();
            c[23] = r.decision_date.clone();
            if input.area != 0 {
                c[24] = enum_name(pb::Residence::try_from(input.area).ok());
            }
            c[25] = input.area_reason.clone();
            out.push(c);
        }
        out
    }

    pub fn write(&mut self, row: &pb::ImportRow) -> anyhow::Result<()> {
        for line in Self::lines(row) {
            self.inner.write_record(&line)?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> anyhow::Result<()> {
        self.inner.flush()?;
        Ok(())
    }
}
