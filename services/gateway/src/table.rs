//! Reports laid out like the province's tables: units as rows, for each
//! year a group of columns, the unit's own figures last as the totals row.
//! Written as CSV and as XLSX (counts and amounts as numbers, rates as
//! numbers with two decimals, the totals row in bold). Every cell is a
//! figure from a report; the table only places it.

use sustain_proto::gateway::v1 as pb;

/// A cell: a count or amount, or a rate as the service wrote it ("12.2";
/// empty when there is nothing to divide by).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Count(i64),
    Percent(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub code: String,
    pub name: String,
    /// Year by year, each year's measures in order.
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The worksheet's name.
    pub sheet: &'static str,
    /// The download's file name, without extension.
    pub file: String,
    pub years: Vec<i32>,
    /// The columns of one year.
    pub measures: &'static [&'static str],
    /// The breakdown's units, then the totals row.
    pub rows: Vec<Row>,
}

const POVERTY: &[&str] = &[
    "Hộ nghèo",
    "Hộ được rà soát",
    "Tỷ lệ hộ nghèo (%)",
    "Hộ cận nghèo",
    "Tỷ lệ hộ cận nghèo (%)",
];
const PROGRAMMES: &[&str] = &[
    "Mô hình",
    "Hộ tham gia",
    "Kinh phí mô hình (đồng)",
    "Lớp đào tạo",
    "Học viên",
];
const FUNDING: &[&str] = &[
    "Kế hoạch (đồng)",
    "Đã phân bổ (đồng)",
    "Đã giải ngân (đồng)",
    "Tỷ lệ giải ngân (%)",
];

fn poverty_row(r: &pb::PovertyRow) -> Row {
    Row {
        code: r.unit_code.clone(),
        name: r.unit_name.clone(),
        cells: r
            .years
            .iter()
            .flat_map(|y| {
                let poor = y.poor.clone().unwrap_or_default();
                let near = y.near_poor.clone().unwrap_or_default();
                [
                    Cell::Count(poor.count),
                    Cell::Count(y.households_reviewed),
                    Cell::Percent(poor.percent),
                    Cell::Count(near.count),
                    Cell::Percent(near.percent),
                ]
            })
            .collect(),
    }
}

fn programme_row(r: &pb::ProgrammeRow) -> Row {
    Row {
        code: r.unit_code.clone(),
        name: r.unit_name.clone(),
        cells: r
            .years
            .iter()
            .flat_map(|y| {
                [
                    Cell::Count(y.models),
                    Cell::Count(y.enrolled_households),
                    Cell::Count(y.model_budget_vnd),
                    Cell::Count(y.courses),
                    Cell::Count(y.trainees),
                ]
            })
            .collect(),
    }
}

fn funding_row(r: &pb::FundingRow) -> Row {
    Row {
        code: r.unit_code.clone(),
        name: r.unit_name.clone(),
        cells: r
            .years
            .iter()
            .flat_map(|y| {
                let f = y.figures.clone().unwrap_or_default();
                [
                    Cell::Count(f.planned_vnd),
                    Cell::Count(f.allocated_vnd),
                    Cell::Count(f.disbursed_vnd),
                    Cell::Percent(f.disbursement_percent),
                ]
            })
            .collect(),
    }
}

fn rows<R>(units: &[R], total: Option<&R>, row: fn(&R) -> Row) -> Vec<Row> {
    units.iter().chain(total).map(row).collect()
}

/// The download's name: what, where, when, and by what it is broken down,
/// so the two downloads of a page never overwrite each other.
fn file_name(what: &str, unit: &str, from: i32, to: i32, breakdown: pb::Breakdown) -> String {
    let by = match breakdown {
        pb::Breakdown::Communes => "-theo-xa",
        pb::Breakdown::Children => "-theo-don-vi",
        pb::Breakdown::Unspecified => "",
    };
    format!("{what}-{unit}-{from}-{to}{by}")
}

/// The byte-order mark that makes Excel read a CSV as UTF-8.
const BOM: &str = "\u{feff}";

impl Table {
    pub fn poverty(r: &pb::PovertyReport, breakdown: pb::Breakdown) -> Table {
        Table {
            sheet: "Hộ nghèo",
            file: file_name("ho-ngheo", &r.unit_code, r.from_year, r.to_year, breakdown),
            years: (r.from_year..=r.to_year).collect(),
            measures: POVERTY,
            rows: rows(&r.units, r.total.as_ref(), poverty_row),
        }
    }

    pub fn programmes(r: &pb::ProgrammeReport, breakdown: pb::Breakdown) -> Table {
        Table {
            sheet: "Chương trình",
            file: file_name(
                "chuong-trinh",
                &r.unit_code,
                r.from_year,
                r.to_year,
                breakdown,
            ),
            years: (r.from_year..=r.to_year).collect(),
            measures: PROGRAMMES,
            rows: rows(&r.units, r.total.as_ref(), programme_row),
        }
    }

    pub fn funding(r: &pb::FundingReport, breakdown: pb::Breakdown) -> Table {
        Table {
            sheet: "Nguồn vốn",
            file: file_name("nguon-von", &r.unit_code, r.from_year, r.to_year, breakdown),
            years: (r.from_year..=r.to_year).collect(),
            measures: FUNDING,
            rows: rows(&r.units, r.total.as_ref(), funding_row),
        }
    }

    /// "Mã đơn vị", "Đơn vị", then each measure of each year: "Hộ nghèo 2021".
    pub fn header(&self) -> Vec<String> {
        let mut h = vec!["Mã đơn vị".to_owned(), "Đơn vị".to_owned()];
        for year in &self.years {
            for m in self.measures {
                h.push(match m.split_once(" (") {
                    Some((name, unit)) => format!("{name} {year} ({unit}"),
                    None => format!("{m} {year}"),
                });
            }
        }
        h
    }

    /// UTF-8 with a byte-order mark, so Excel reads the Vietnamese right.
    /// `excel`: as Excel under a Vietnamese locale opens it with a double
    /// click, semicolons between columns and a decimal comma in rates
    /// ("12,2"); otherwise commas and a decimal point, for programs.
    pub fn csv(&self, excel: bool) -> Result<Vec<u8>, csv::Error> {
        let mut out = csv::WriterBuilder::new()
            .delimiter(if excel { b';' } else { b',' })
            .from_writer(BOM.as_bytes().to_vec());
        out.write_record(self.header())?;
        for r in &self.rows {
            let mut record = vec![r.code.clone(), r.name.clone()];
            record.extend(r.cells.iter().map(|c| match c {
                Cell::Count(n) => n.to_string(),
                Cell::Percent(p) if excel => p.replace('.', ","),
                Cell::Percent(p) => p.clone(),
            }));
            out.write_record(record)?;
        }
        out.into_inner().map_err(|e| e.into_error().into())
    }

    pub fn xlsx(&self) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
        use rust_xlsxwriter::{Format, Workbook};
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        sheet.set_name(self.sheet)?;
        let bold = Format::new().set_bold();
        let plain = Format::new();
        let count = Format::new().set_num_format("#,##0");
        let bold_count = Format::new().set_bold().set_num_format("#,##0");
        let rate = Format::new().set_num_format("0.00");
        let bold_rate = Format::new().set_bold().set_num_format("0.00");
        for (c, h) in self.header().iter().enumerate() {
            sheet.write_string_with_format(0, c as u16, h, &bold)?;
        }
        for (i, r) in self.rows.iter().enumerate() {
            let row = i as u32 + 1;
            let total = i + 1 == self.rows.len();
            let (text, count, rate) = if total {
                (&bold, &bold_count, &bold_rate)
            } else {
                (&plain, &count, &rate)
            };
            sheet.write_string_with_format(row, 0, &r.code, text)?;
            sheet.write_string_with_format(row, 1, &r.name, text)?;
            for (k, cell) in r.cells.iter().enumerate() {
                let col = 2 + k as u16;
                match cell {
                    Cell::Count(n) => sheet.write_number_with_format(row, col, *n as f64, count)?,
                    Cell::Percent(p) => match p.parse::<f64>() {
                        Ok(v) => sheet.write_number_with_format(row, col, v, rate)?,
                        Err(_) => sheet.write_string_with_format(row, col, p, text)?,
                    },
                };
            }
        }
        // Every column as wide as what it holds.
        sheet.autofit();
        sheet.set_freeze_panes(1, 2)?;
        book.save_to_buffer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_downloads_of_a_page_have_their_own_names() {
        let report = pb::PovertyReport {
            unit_code: "20".into(),
            from_year: 2021,
            to_year: 2024,
            ..Default::default()
        };
        let children = Table::poverty(&report, pb::Breakdown::Children).file;
        let communes = Table::poverty(&report, pb::Breakdown::Communes).file;
        assert_eq!(children, "ho-ngheo-20-2021-2024-theo-don-vi");
        assert_eq!(communes, "ho-ngheo-20-2021-2024-theo-xa");
    }

    #[test]
    fn headers_put_the_year_before_the_unit_of_measure() {
        let t = Table {
            sheet: "x",
            file: "x".into(),
            years: vec![2021, 2022],
            measures: &["Hộ nghèo", "Tỷ lệ hộ nghèo (%)"],
            rows: vec![],
        };
        assert_eq!(
            t.header(),
            [
                "Mã đơn vị",
                "Đơn vị",
                "Hộ nghèo 2021",
                "Tỷ lệ hộ nghèo 2021 (%)",
                "Hộ nghèo 2022",
                "Tỷ lệ hộ nghèo 2022 (%)"
            ]
        );
    }
}
