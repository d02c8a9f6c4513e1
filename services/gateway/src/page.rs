//! The report page of a unit: the dashboard's figures as HTML with charts
//! drawn on the server as SVG, readable without JavaScript. Every number on
//! the page is one the owning service answered; the page only lays it out.

use chrono::Datelike;
use std::fmt::Write;

use sustain_domain::lang_son;
use sustain_proto::gateway::v1 as pb;
use sustain_proto::ledger::v1 as ledger;
use sustain_proto::programs::v1 as programs;

/// Text for HTML: `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Groups of three digits, Vietnamese style: 1.149.180.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A horizontal bar chart: one labelled bar per item, its value written
/// beside it.
fn bars(title: &str, items: &[(String, f64, String)], colour: &str) -> String {
    let max = items.iter().map(|(_, v, _)| *v).fold(0.0_f64, f64::max);
    // Nothing to draw: say so, rather than an empty frame.
    if max <= 0.0 {
        return format!(
            r#"<p class="empty" title="{}">không có dữ liệu</p>"#,
            escape(title)
        );
    }
    let row = 26.0;
    let height = 10.0 + row * items.len() as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" width="800" height="{height}" viewBox="0 0 800 {height}"><title>{}</title>"#,
        escape(title)
    );
    for (i, (label, value, shown)) in items.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        let width = if max > 0.0 { 340.0 * value / max } else { 0.0 };
        let _ = write!(
            svg,
            r#"<text x="0" y="{ty}" font-size="13">{label}</text><rect x="330" y="{y}" width="{width:.1}" height="18" fill="{colour}"/><text x="{tx:.1}" y="{ty}" font-size="13">{shown}</text>"#,
            ty = y + 14.0,
            label = escape(label),
            tx = 336.0 + width,
            shown = escape(shown),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A rate the Vietnamese way, two decimals always, so a column lines up:
/// "12,20 %" for the service's "12.2". Text that is not a number is kept.
pub fn percent_vi(percent: &str) -> String {
    match percent.trim().parse::<f64>() {
        Ok(p) => format!("{} %", format!("{p:.2}").replace('.', ",")),
        Err(_) => percent.to_owned(),
    }
}

/// A rate as the page shows it: "12,20 %", or, for a year with no certified
/// review yet, words rather than a bare "%" or a 0 that reads as "no poor".
fn shown_rate(households_reviewed: i64, percent: &str) -> String {
    if households_reviewed == 0 || percent.is_empty() {
        "chưa có rà soát được công nhận".to_owned()
    } else {
        percent_vi(percent)
    }
}

fn unavailable(section: &str, why: &Option<pb::Unavailable>) -> Option<String> {
    why.as_ref().map(|u| {
        format!(
            r#"<p class="unavailable">{}: chưa có số liệu ({} — {})</p>"#,
            escape(section),
            escape(&u.code),
            escape(&u.reason)
        )
    })
}

fn model_type(t: i32) -> &'static str {
    match programs::ModelType::try_from(t) {
        Ok(programs::ModelType::Livestock) => "Chăn nuôi",
        Ok(programs::ModelType::Crop) => "Trồng trọt",
        Ok(programs::ModelType::Forestry) => "Lâm nghiệp",
        _ => "Khác",
    }
}

fn source_name(s: i32) -> &'static str {
    use sustain_domain::ledger::FundingSource as F;
    match ledger::FundingSource::try_from(s) {
        Ok(ledger::FundingSource::CentralInvestment) => F::CentralInvestment.label(),
        Ok(ledger::FundingSource::CentralRecurrent) => F::CentralRecurrent.label(),
        Ok(ledger::FundingSource::LocalBudget) => F::LocalBudget.label(),
        Ok(ledger::FundingSource::SocialContribution) => F::SocialContribution.label(),
        Ok(ledger::FundingSource::Enterprise) => F::Enterprise.label(),
        Ok(ledger::FundingSource::HouseholdContribution) => F::HouseholdContribution.label(),
        Ok(ledger::FundingSource::PolicyCredit) => F::PolicyCredit.label(),
        _ => "Khác",
    }
}

const MILLION: i64 = 1_000_000;

/// The sector agencies' yearly figures: training, jobs, work abroad, cards.
fn sector_table(sector: &programs::SectorFigures) -> String {
    let mut html =
        String::from("<h2>Học nghề, việc làm và thẻ bảo hiểm y tế (số liệu của ngành)</h2>");
    if sector.years.is_empty() {
        html.push_str("<p>không có dữ liệu</p>");
        return html;
    }
    html.push_str("<table><tr><th>Năm</th><th>Người học nghề</th><th>Tỷ lệ lao động qua đào tạo</th><th>Việc làm mới</th><th>Đi làm việc ở nước ngoài</th><th>Thẻ BHYT cấp</th></tr>");
    for y in &sector.years {
        let labour = |n: i64| {
            if y.labour_reported {
                thousands(n)
            } else {
                "chưa có".to_owned()
            }
        };
        let trained = if y.trained_percent.is_empty() {
            "chưa có".to_owned()
        } else {
            percent_vi(&y.trained_percent)
        };
        let cards = if y.health_insurance_reported {
            thousands(y.insurance_cards)
        } else {
            "chưa có".to_owned()
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            y.year,
            labour(y.vocational_trainees),
            escape(&trained),
            labour(y.new_jobs),
            labour(y.workers_abroad),
            cards
        );
    }
    html.push_str("</table>");
    html
}

/// The whole page.
pub fn render(d: &pb::Dashboard) -> String {
    let poverty = d.poverty.clone().unwrap_or_default();
    let name = poverty
        .years
        .first()
        .map(|y| y.unit_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| d.unit_code.clone());
    let mut html = format!(
        r#"<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>Báo cáo giảm nghèo — {name}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th:first-child,td:first-child{{text-align:left}}.unavailable{{color:#a00}}</style></head><body>
<h1>Báo cáo giảm nghèo bền vững — {name}</h1><p>Giai đoạn {from}–{to}. Số liệu của hệ thống đăng ký hộ, chương trình và sổ cái tài chính.</p>"#,
        name = escape(&name),
        from = d.from_year,
        to = d.to_year,
    );

    html.push_str("<h2>Tỷ lệ hộ nghèo theo năm</h2>");
    if let Some(notice) = unavailable("Hộ nghèo", &poverty.unavailable) {
        html.push_str(&notice);
    } else {
        let items: Vec<(String, f64, String)> = poverty
            .years
            .iter()
            .map(|y| {
                let poor = y.poor.clone().unwrap_or_default();
                (
                    format!("Năm {}", y.year),
                    poor.percent.parse().unwrap_or(0.0),
                    shown_rate(y.households_reviewed, &poor.percent),
                )
            })
            .collect();
        html.push_str(&bars("Tỷ lệ hộ nghèo theo năm", &items, "#c0392b"));
        html.push_str("<table><tr><th>Năm</th><th>Hộ được rà soát</th><th>Hộ nghèo</th><th>Tỷ lệ hộ nghèo</th><th>Hộ cận nghèo</th><th>Tỷ lệ hộ cận nghèo</th></tr>");
        for y in &poverty.years {
            let poor = y.poor.clone().unwrap_or_default();
            let near = y.near_poor.clone().unwrap_or_default();
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                y.year,
                thousands(y.households_reviewed),
                thousands(poor.count),
                escape(&shown_rate(y.households_reviewed, &poor.percent)),
                thousands(near.count),
                escape(&shown_rate(y.households_reviewed, &near.percent))
            );
        }
        html.push_str("</table>");
        if let Some(first) = poverty.years.first() {
            let _ = write!(
                html,
                "<h2>Hộ nghèo, cận nghèo thiếu hụt theo chỉ số ({})</h2>",
                first.year
            );
            let items: Vec<(String, f64, String)> = first
                .deprivations
                .iter()
                .map(|x| {
                    let n = x.poor + x.near_poor;
                    (x.indicator_name.clone(), n as f64, thousands(n))
                })
                .collect();
            html.push_str(&bars("Thiếu hụt theo chỉ số", &items, "#2c7fb8"));
        }
    }

    html.push_str("<h2>Mô hình sinh kế theo loại</h2>");
    let programmes = d.programmes.clone().unwrap_or_default();
    if let Some(notice) = unavailable("Chương trình", &programmes.unavailable) {
        html.push_str(&notice);
    } else {
        let summary = programmes.summary.unwrap_or_default();
        let models = summary.models.clone().unwrap_or_default();
        let items: Vec<(String, f64, String)> = models
            .by_type
            .iter()
            .map(|t| {
                (
                    model_type(t.r#type).to_owned(),
                    t.models as f64,
                    thousands(t.models),
                )
            })
            .collect();
        html.push_str(&bars("Mô hình theo loại", &items, "#31a354"));
        let _ = write!(
            html,
            "<p>{} mô hình, {} hộ tham gia, {} việc làm.</p>",
            thousands(models.models),
            thousands(models.enrolled_households),
            thousands(models.jobs_created)
        );
        html.push_str(&sector_table(&summary.sector.unwrap_or_default()));
    }

    html.push_str("<h2>Nguồn vốn: kế hoạch, phân bổ, giải ngân (triệu đồng)</h2>");
    let funding = d.funding.clone().unwrap_or_default();
    if let Some(notice) = unavailable("Tài chính", &funding.unavailable) {
        html.push_str(&notice);
    } else {
        let summary = funding.summary.unwrap_or_default();
        let mut items = vec![];
        for s in &summary.by_source {
            let f = s.figures.clone().unwrap_or_default();
            let label = source_name(s.source);
            for (what, v) in [
                ("kế hoạch", f.planned_vnd),
                ("phân bổ", f.allocated_vnd),
                ("giải ngân", f.disbursed_vnd),
            ] {
                if v > 0 {
                    items.push((format!("{label}: {what}"), v as f64, thousands(v / MILLION)));
                }
            }
        }
        html.push_str(&bars("Nguồn vốn", &items, "#756bb1"));
        let total = summary.total.unwrap_or_default();
        // A district receives allocations against a plan the province holds.
        if total.planned_vnd == 0 && total.allocated_vnd > 0 {
            let province = sustain_domain::admin::catalog()
                .province_of(&d.unit_code)
                .unwrap_or(PROVINCE)
                .to_owned();
            let _ = write!(
                html,
                r#"<p class="note">Kế hoạch vốn của đơn vị này do tỉnh giữ: xem <a href="/reports?unit_code={p}&amp;from_year={from}&amp;to_year={to}">báo cáo của tỉnh</a>; ở đây là vốn được phân bổ về và đã giải ngân.</p>"#,
                p = escape(&province),
                from = d.from_year,
                to = d.to_year,
            );
        }
        let _ = write!(
            html,
            "<table><tr><th>Tổng</th><th>Kế hoạch</th><th>Phân bổ</th><th>Giải ngân</th><th>Tỷ lệ giải ngân</th></tr><tr><td>Triệu đồng</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
            thousands(total.planned_vnd / MILLION),
            thousands(total.allocated_vnd / MILLION),
            thousands(total.disbursed_vnd / MILLION),
            escape(&if total.disbursement_percent.is_empty() {
                "chưa có vốn phân bổ".to_owned()
            } else {
                percent_vi(&total.disbursement_percent)
            })
        );
    }
    html.push_str(&downloads(d));
    html.push_str("</body></html>");
    html
}

/// Links to the same figures as tables (units as rows, years as columns).
fn downloads(d: &pb::Dashboard) -> String {
    let period = format!(
        "unit_code={}&amp;from_year={}&amp;to_year={}",
        escape(&d.unit_code),
        d.from_year,
        d.to_year
    );
    let mut html = String::from("<h2>Tải về</h2><ul class=\"downloads\">");
    for (label, table, breakdown) in [
        ("Hộ nghèo theo đơn vị cấp dưới", "poverty", "children"),
        ("Hộ nghèo theo xã", "poverty", "communes"),
        (
            "Chương trình theo đơn vị cấp dưới",
            "programmes",
            "children",
        ),
        ("Nguồn vốn theo đơn vị cấp dưới", "funding", "children"),
    ] {
        let _ = write!(
            html,
            r#"<li>{label}: <a href="/api/v1/{table}.xlsx?{period}&amp;breakdown={breakdown}">XLSX</a> · <a href="/api/v1/{table}.csv?{period}&amp;breakdown={breakdown}&amp;excel=1">CSV (Excel)</a></li>"#
        );
    }
    html.push_str("</ul>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use sustain_proto::registry::v1 as registry;

    #[test]
    fn text_is_escaped_and_numbers_grouped() {
        assert_eq!(
            escape("<b>\"Tày\" & 'Nùng'</b>"),
            "&lt;b&gt;&quot;Tày&quot; &amp; &#39;Nùng&#39;&lt;/b&gt;"
        );
        assert_eq!(thousands(1_149_180), "1.149.180");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(-23_510), "-23.510");
        assert_eq!(thousands(0), "0");
    }

    #[test]
    fn the_seed_page_marks_what_matches_and_what_is_missing() {
        let share = |count, percent: &str| registry::Share {
            count,
            total: 192_750,
            percent: percent.into(),
        };
        let d = pb::Dashboard {
            unit_code: "20".into(),
            from_year: 2021,
            to_year: 2025,
            poverty: Some(pb::PovertySection {
                years: vec![registry::PovertySummary {
                    year: 2021,
                    poor: Some(share(23_510, "12.2")),
                    near_poor: Some(share(23_251, "12.06")),
                    ..Default::default()
                }],
                unavailable: None,
            }),
            programmes: Some(pb::ProgrammeSection {
                summary: None,
                unavailable: Some(pb::Unavailable {
                    code: "UNAVAILABLE".into(),
                    reason: "down".into(),
                }),
            }),
            funding: Some(pb::FundingSection::default()),
        };
        let rows = seed_rows(&d);
        let find = |label: &str| {
            rows.iter()
                .find(|r| r.label == label)
                .cloned()
                .expect(label)
        };
        assert_eq!(find("Tỷ lệ hộ nghèo 2021").found, Some(12.2));
        assert_eq!(find("Hộ nghèo 2021").found, Some(23_510.0));
        assert_eq!(find("Hộ cận nghèo 2021").found, Some(23_251.0));
        assert_eq!(find("Tỷ lệ hộ nghèo 2022").found, None, "no such year");
        assert_eq!(
            find("Mô hình sinh kế (Dự án 2)").found,
            None,
            "section unavailable"
        );
        let page = render_seed(&d, 1);
        assert!(
            page.contains("<td>Tỷ lệ hộ nghèo 2021</td><td>12,20 %</td><td>12,20 %</td><td>✓</td>")
        );
        assert!(page.contains("<td>Hộ nghèo 2021</td><td>23.510</td><td>23.510</td><td>✓</td>"));
        assert!(page.contains("<td>23.250</td><td>23.251</td><td>≠</td>"));
        assert!(page.contains("<td>249</td><td>chưa có</td>"));
    }

    #[test]
    fn a_district_page_says_its_plan_is_held_at_the_province() {
        let figures = ledger::FundingFigures {
            planned_vnd: 0,
            allocated_vnd: 600 * MILLION,
            ..Default::default()
        };
        let d = pb::Dashboard {
            unit_code: "181".into(),
            from_year: 2023,
            to_year: 2023,
            poverty: Some(pb::PovertySection::default()),
            programmes: Some(pb::ProgrammeSection::default()),
            funding: Some(pb::FundingSection {
                summary: Some(ledger::FundingSummary {
                    total: Some(figures),
                    ..Default::default()
                }),
                unavailable: None,
            }),
        };
        let page = render(&d);
        assert!(
            page.contains("Kế hoạch vốn của đơn vị này do tỉnh giữ"),
            "{page}"
        );
        assert!(
            page.contains(r#"href="/reports?unit_code=20&amp;from_year=2023&amp;to_year=2023""#)
        );
        assert!(page.contains("không có dữ liệu"), "an empty chart says so");
    }

    #[test]
    fn the_start_page_lists_what_the_reader_may_open() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).expect("date");
        let page = render_start(&sustain_platform::Scope::nationwide(), today);
        assert!(page.contains("Tỉnh Lạng Sơn"));
        assert!(
            page.contains(r#"href="/reports?unit_code=20&amp;from_year=2021&amp;to_year=2025""#)
        );
        assert_eq!(
            page.matches("from_year=2021&amp;to_year=2024\">Huyện")
                .count()
                + page
                    .matches("from_year=2021&amp;to_year=2024\">Thành phố")
                    .count(),
            11
        );
        assert_eq!(page.matches("from_year=2025&amp;to_year=2025").count(), 65);
        let district = render_start(&sustain_platform::Scope::new(vec!["181".into()]), today);
        assert!(!district.contains("Tỉnh Lạng Sơn"));
        assert!(district.contains(r#"unit_code=181&amp;"#));
        assert_eq!(district.matches("<li>").count(), 1, "{district}");
    }

    /// At 1/50 of the province the report is divided by 50 and a figure
    /// matches as closely as the division allows; one further off does not.
    #[test]
    fn a_scaled_demo_is_compared_with_the_report_divided() {
        let share = |count, total, percent: &str| registry::Share {
            count,
            total,
            percent: percent.into(),
        };
        let d = pb::Dashboard {
            unit_code: "20".into(),
            from_year: 2021,
            to_year: 2025,
            poverty: Some(pb::PovertySection {
                years: vec![registry::PovertySummary {
                    year: 2021,
                    households_reviewed: 3_855,
                    poor: Some(share(470, 3_855, "12.19")),
                    near_poor: Some(share(467, 3_855, "12.11")),
                    ..Default::default()
                }],
                unavailable: None,
            }),
            programmes: Some(pb::ProgrammeSection::default()),
            funding: Some(pb::FundingSection::default()),
        };
        let rows = seed_rows(&d);
        let find = |label: &str| rows.iter().find(|r| r.label == label).expect(label);
        assert!(
            find("Tỷ lệ hộ nghèo 2021").matches(50),
            "12.19 for 12.2 in 3,855"
        );
        assert!(!find("Tỷ lệ hộ nghèo 2021").matches(1), "not at full scale");
        assert!(
            find("Hộ nghèo 2021").matches(50),
            "470 for 23,510 ÷ 50 = 470.2"
        );
        assert!(
            !find("Hộ cận nghèo 2021").matches(50),
            "467 is not 23,250 ÷ 50 = 465"
        );
        let page = render_seed(&d, 50);
        assert!(page.contains("tỷ lệ 1/50"));
        assert!(
            page.contains(
                "<td>Hộ nghèo 2021</td><td>23.510 ÷ 50 = 470,2</td><td>470</td><td>✓</td>"
            )
        );
        assert_eq!(number_vi(1_149_180.0 / 50.0), "22.983,6");
        // "More than 4,340": reached or passed, at any scale.
        let more = |found| SeedRow {
            label: "x".into(),
            measure: Measure::AtLeast,
            reported: 4_340.0,
            reported_to: 4_340.0,
            found: Some(found),
            share_of: None,
        };
        assert!(more(4_350.0).matches(1) && more(4_340.0).matches(1));
        assert!(!more(4_339.0).matches(1));
        assert!(more(86.0).matches(50) && !more(85.0).matches(50));
    }

    /// The sector figures: a yearly range holds when the year's figure lies
    /// in it (divided by the scale), the trained share is a rate of the
    /// workforce, and the cards are summed over 2021–2024.
    #[test]
    fn sector_figures_are_set_beside_the_reported_ranges() {
        let year = |year, trainees, jobs, workforce, trained, percent: &str| programs::SectorYear {
            year,
            labour_reported: true,
            health_insurance_reported: true,
            vocational_trainees: trainees,
            workforce,
            trained_workers: trained,
            trained_percent: percent.into(),
            new_jobs: jobs,
            workers_abroad: 24,
            insurance_cards: 5_240,
        };
        let d = pb::Dashboard {
            unit_code: "20".into(),
            from_year: 2021,
            to_year: 2025,
            poverty: Some(pb::PovertySection::default()),
            programmes: Some(pb::ProgrammeSection {
                summary: Some(programs::ProgrammeSummary {
                    sector: Some(programs::SectorFigures {
                        years: vec![
                            year(2021, 236, 344, 10_000, 5_720, "57.2"),
                            year(2022, 219, 372, 10_040, 5_880, "58.57"),
                            year(2024, 380, 366, 10_120, 6_400, "63.24"),
                        ],
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                unavailable: None,
            }),
            funding: Some(pb::FundingSection::default()),
        };
        let rows = seed_rows(&d);
        let find = |label: &str| rows.iter().find(|r| r.label == label).expect(label);
        assert!(find("Người học nghề 2021").matches(50), "236 in 220–400");
        assert!(
            find("Người học nghề 2022").matches(50),
            "219 is one short of 220"
        );
        assert!(!find("Người học nghề 2022").matches(1), "not at full scale");
        assert_eq!(
            find("Người học nghề 2023").found,
            None,
            "no report that year"
        );
        assert!(
            !find("Lao động có việc làm mới 2022").matches(50),
            "372 > 370 + 1"
        );
        assert!(find("Tỷ lệ lao động qua đào tạo 2021").matches(50));
        assert!(
            !find("Tỷ lệ lao động qua đào tạo 2024").matches(50),
            "63.24 is not 64"
        );
        assert!(find("Lao động đi làm việc ở nước ngoài 2024").matches(50));
        let cards = find("Thẻ BHYT cấp cho người nghèo, cận nghèo, DTTS 2021–2024");
        assert_eq!(cards.found, Some(15_720.0), "three years reported");
        assert!(!cards.matches(50), "15,720 < 1,000,000 ÷ 50");
        let dashboard = render(&d);
        assert!(
            dashboard.contains("<tr><td>2021</td><td>236</td><td>57,20 %</td><td>344</td><td>24</td><td>5.240</td></tr>"),
            "{dashboard}"
        );
        let page = render_seed(&d, 50);
        assert!(
            page.contains(
                "<td>Người học nghề 2021</td><td>11.000–20.000 ÷ 50 = 220–400</td><td>236</td><td>✓</td>"
            ),
            "{page}"
        );
        assert!(page.contains("<td>Tỷ lệ lao động qua đào tạo 2021</td><td>57,20 %</td>"));
    }

    #[test]
    fn a_year_without_certified_reviews_says_so_rather_than_zero() {
        let year = |year: i32, reviewed: i64, percent: &str| registry::PovertySummary {
            year,
            households_reviewed: reviewed,
            poor: Some(registry::Share {
                count: if reviewed == 0 { 0 } else { 5 },
                total: reviewed,
                percent: percent.into(),
            }),
            ..Default::default()
        };
        let d = pb::Dashboard {
            unit_code: "20".into(),
            from_year: 2024,
            to_year: 2025,
            poverty: Some(pb::PovertySection {
                years: vec![year(2024, 100, "5"), year(2025, 0, "")],
                unavailable: None,
            }),
            programmes: Some(pb::ProgrammeSection::default()),
            funding: Some(pb::FundingSection::default()),
        };
        let page = render(&d);
        assert!(page.contains("<td>2024</td><td>100</td><td>5</td><td>5,00 %</td>"));
        assert!(
            page.contains(
                "<td>2025</td><td>0</td><td>0</td><td>chưa có rà soát được công nhận</td>"
            )
        );
        assert!(!page.contains("<td>%</td>"), "no bare percent sign");
    }

    #[test]
    fn a_missing_section_says_why_and_shows_no_figures() {
        let d = pb::Dashboard {
            unit_code: "20".into(),
            from_year: 2021,
            to_year: 2024,
            poverty: Some(pb::PovertySection::default()),
            programmes: Some(pb::ProgrammeSection {
                summary: None,
                unavailable: Some(pb::Unavailable {
                    code: "UNAVAILABLE".into(),
                    reason: "programs: connection refused".into(),
                }),
            }),
            funding: Some(pb::FundingSection::default()),
        };
        let page = render(&d);
        assert!(page.contains(
            "Chương trình: chưa có số liệu (UNAVAILABLE — programs: connection refused)"
        ));
        assert!(!page.contains("mô hình,"), "no invented model figures");
    }
}

/// The province the start page begins from: the one whose 2025 reform the
/// catalog bundles.
const PROVINCE: &str = lang_son::PROVINCE;

/// Where a reader starts: the province, its districts for the years before
/// the 1 July 2025 reform, its communes and wards after it, each a link to
/// its report; only the units wholly inside the reader's scope.
pub fn render_start(scope: &sustain_platform::Scope, today: chrono::NaiveDate) -> String {
    let catalog = sustain_domain::admin::catalog();
    let before = sustain_domain::admin::reform_date()
        .pred_opt()
        .unwrap_or(today);
    let last = today.year().min(2025);
    let link = |code: &str, name: &str, from: i32, to: i32| {
        format!(
            r#"<a href="/reports?unit_code={code}&amp;from_year={from}&amp;to_year={to}">{name}</a>"#,
            code = escape(code),
            name = escape(name),
        )
    };
    let mut html = String::from(
        r#"<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>Báo cáo giảm nghèo bền vững</title>
<style>body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}ul.units{columns:3}</style></head><body>
<h1>Báo cáo giảm nghèo bền vững</h1><p>Chọn đơn vị và giai đoạn.</p>"#,
    );
    if let Some(province) = catalog
        .province(PROVINCE)
        .filter(|_| scope.contains_unit(PROVINCE))
    {
        let _ = write!(
            html,
            "<h2>{}</h2><ul><li>{}</li><li>{}</li><li><a href=\"/reports/lang-son\">Số liệu báo cáo của tỉnh và số liệu hệ thống</a></li></ul>",
            escape(&province.name),
            link(PROVINCE, "Giai đoạn 2021–2024", 2021, 2024),
            link(PROVINCE, &format!("Giai đoạn 2021–{last}"), 2021, last),
        );
    }
    let districts: Vec<_> = catalog
        .children(Some(PROVINCE), before)
        .into_iter()
        .filter(|u| scope.contains_unit(&u.code))
        .collect();
    if !districts.is_empty() {
        html.push_str("<h2>Huyện, thành phố (đến 30/6/2025)</h2><ul class=\"units\">");
        for d in districts {
            let _ = write!(html, "<li>{}</li>", link(&d.code, &d.name, 2021, 2024));
        }
        html.push_str("</ul>");
    }
    if today >= sustain_domain::admin::reform_date() {
        let mut communes: Vec<_> = catalog
            .communes_under(PROVINCE, today)
            .into_iter()
            .filter(|u| scope.contains_unit(&u.code))
            .collect();
        // In the alphabet's order: Đ after D, not after Z.
        communes.sort_by_cached_key(|u| sustain_domain::text::search_key(&u.name));
        if !communes.is_empty() {
            html.push_str("<h2>Xã, phường (từ 1/7/2025)</h2><ul class=\"units\">");
            for c in communes {
                let _ = write!(html, "<li>{}</li>", link(&c.code, &c.name, 2025, last));
            }
            html.push_str("</ul>");
        }
    }
    html.push_str("</body></html>");
    html
}

/// What a figure counts, which says how it scales and how close is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Households, models, people: divided by the demo's scale.
    Count,
    /// A count the report gives as "more than": the system's must reach it.
    AtLeast,
    /// A rate in percent: the same at any scale.
    Rate,
    /// Million VND: divided by the demo's scale.
    Million,
    /// A count the report gives as a range ("11,000–20,000 a year",
    /// `reported` to `reported_to`): the system's must lie in it.
    Range,
}

/// One figure of the province's 2021–2025 report beside the system's own.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedRow {
    pub label: String,
    pub measure: Measure,
    pub reported: f64,
    /// For a range, its upper end; otherwise `reported`.
    pub reported_to: f64,
    /// `None` when the section it comes from is unavailable.
    pub found: Option<f64>,
    /// For a rate: the households or workers it is a share of, one of whom
    /// is the closest a smaller population can come.
    pub share_of: Option<i64>,
}

impl SeedRow {
    /// The reported figure as a population `scale` times smaller would
    /// show it.
    pub fn expected(&self, scale: u32) -> f64 {
        match self.measure {
            Measure::Rate => self.reported,
            Measure::Count | Measure::AtLeast | Measure::Million | Measure::Range => {
                self.reported / f64::from(scale.max(1))
            }
        }
    }

    /// The upper end of a range at `scale`; [`SeedRow::expected`] otherwise.
    pub fn expected_to(&self, scale: u32) -> f64 {
        match self.measure {
            Measure::Range => self.reported_to / f64::from(scale.max(1)),
            _ => self.expected(scale),
        }
    }

    /// Whether the system's figure is the reported one. At full scale to the
    /// unit the report writes (a household, a million, a hundredth of a
    /// percent); at a smaller scale as close as the division allows: a
    /// count or amount within one of the divided figure, a rate within what
    /// one household of the reviewed ones moves it.
    pub fn matches(&self, scale: u32) -> bool {
        let Some(found) = self.found else {
            return false;
        };
        let expected = self.expected(scale);
        let one = if scale > 1 { 1.0 } else { 0.0 };
        if self.measure == Measure::AtLeast {
            return found + one >= expected - 1e-9;
        }
        if self.measure == Measure::Range {
            return found + one >= expected - 1e-9 && found - one <= self.expected_to(scale) + 1e-9;
        }
        let slack = match (self.measure, scale > 1) {
            (Measure::Rate, false) => 0.005,
            (Measure::Rate, true) => {
                0.005
                    + self
                        .share_of
                        .filter(|n| *n > 0)
                        .map_or(0.0, |n| 100.0 / n as f64)
            }
            (_, false) => 0.5,
            (_, true) => 1.0,
        };
        (found - expected).abs() < slack + 1e-9
    }
}

/// A number the Vietnamese way: `1.149.180`, and one decimal after a comma
/// when it has one (`470,2`).
pub fn number_vi(n: f64) -> String {
    let tenths = (n * 10.0).round() as i64;
    let whole = thousands(tenths / 10);
    match (tenths % 10).abs() {
        0 => whole,
        d => format!("{whole},{d}"),
    }
}

fn shown(measure: Measure, n: f64) -> String {
    match measure {
        Measure::Rate => percent_vi(&n.to_string()),
        Measure::Count | Measure::AtLeast | Measure::Million | Measure::Range => number_vi(n),
    }
}

/// Lạng Sơn's reported figures (domain brief §1) and where the dashboard
/// holds each: the poverty rates and counts, the deprivations among poor and
/// near-poor households in 2021, the livelihood models and their households,
/// Project 3, training, inspections, communication, the budget, and the
/// sector agencies' yearly training, jobs and health-insurance figures.
pub fn seed_rows(d: &pb::Dashboard) -> Vec<SeedRow> {
    let poverty = d.poverty.clone().unwrap_or_default();
    let year = |y: i32| {
        poverty
            .unavailable
            .is_none()
            .then(|| poverty.years.iter().find(|s| s.year == y).cloned())
            .flatten()
    };
    let reviewed = |y: i32| year(y).map(|s| s.households_reviewed);
    let rate =
        |y: i32| year(y).and_then(|s| s.poor.unwrap_or_default().percent.parse::<f64>().ok());
    let deprived = |code: &'static str| {
        year(2021).and_then(|s| {
            s.deprivations
                .iter()
                .find(|x| x.indicator_code == code)
                .map(|x| x.poor_or_near_poor.clone().unwrap_or_default().count as f64)
        })
    };
    let programmes = d.programmes.clone().unwrap_or_default();
    let summary = programmes
        .unavailable
        .is_none()
        .then_some(programmes.summary)
        .flatten();
    let models = summary.as_ref().and_then(|s| s.models.clone());
    let p2 = models.as_ref().and_then(|m| {
        m.projects
            .iter()
            .find(|p| p.project_code == "NTP-SPR.2")
            .cloned()
    });
    let p2_type = |t: programs::ModelType| {
        p2.as_ref().map(|p| {
            p.by_type
                .iter()
                .filter(|c| c.r#type == t as i32)
                .map(|c| c.models)
                .sum::<i64>() as f64
        })
    };
    let p2_class = |c: programs::EnrolmentClass| {
        p2.as_ref().map(|p| {
            p.households_by_class
                .iter()
                .filter(|x| x.class_at_enrolment == c as i32)
                .map(|x| x.households)
                .sum::<i64>() as f64
        })
    };
    let training = summary.as_ref().and_then(|s| s.training.clone());
    let outreach = summary.as_ref().and_then(|s| s.communication);
    let funding = d.funding.clone().unwrap_or_default();
    let money = funding
        .unavailable
        .is_none()
        .then_some(funding.summary)
        .flatten();
    let millions = |f: Option<ledger::FundingFigures>, pick: fn(&ledger::FundingFigures) -> i64| {
        f.map(|f| pick(&f) as f64 / MILLION as f64)
    };
    let count = |label: &str, reported: u64, found: Option<f64>| SeedRow {
        label: label.to_owned(),
        measure: Measure::Count,
        reported: reported as f64,
        reported_to: reported as f64,
        found,
        share_of: None,
    };
    let at_least = |label: &str, reported: u32, found: Option<f64>| SeedRow {
        label: label.to_owned(),
        measure: Measure::AtLeast,
        reported: f64::from(reported),
        reported_to: f64::from(reported),
        found,
        share_of: None,
    };
    // Project 3's projects are recorded under its sub-projects (3.1 …).
    let p3_households = models.as_ref().map(|m| {
        m.projects
            .iter()
            .filter(|p| p.project_code.starts_with("NTP-SPR.3"))
            .map(|p| p.enrolled_households)
            .sum::<i64>() as f64
    });
    let million = |label: &str, reported: i64, found: Option<f64>| SeedRow {
        label: label.to_owned(),
        measure: Measure::Million,
        reported: reported as f64,
        reported_to: reported as f64,
        found,
        share_of: None,
    };
    let percent_in = |rates: &[(i32, &str)], y: i32| {
        rates
            .iter()
            .find(|(year, _)| *year == y)
            .and_then(|(_, r)| r.parse().ok())
            .unwrap_or_default()
    };
    let rate_row = |label: &str, y: i32| SeedRow {
        label: label.to_owned(),
        measure: Measure::Rate,
        reported: percent_in(&lang_son::POVERTY_RATES, y),
        reported_to: percent_in(&lang_son::POVERTY_RATES, y),
        found: rate(y),
        share_of: reviewed(y),
    };
    // The sector agencies' figures, year by year.
    let sector = summary.as_ref().and_then(|s| s.sector.clone());
    let sector_year = |y: i32| {
        sector
            .as_ref()
            .and_then(|s| s.years.iter().find(|x| x.year == y).cloned())
    };
    let labour = |y: i32, pick: fn(&programs::SectorYear) -> i64| {
        sector_year(y)
            .filter(|x| x.labour_reported)
            .map(|x| pick(&x) as f64)
    };
    let range = |label: String, (from, to): (u32, u32), found: Option<f64>| SeedRow {
        label,
        measure: Measure::Range,
        reported: f64::from(from),
        reported_to: f64::from(to),
        found,
        share_of: None,
    };
    let trained_row = |y: i32| SeedRow {
        label: format!("Tỷ lệ lao động qua đào tạo {y}"),
        measure: Measure::Rate,
        reported: percent_in(&lang_son::TRAINED_WORKERS, y),
        reported_to: percent_in(&lang_son::TRAINED_WORKERS, y),
        found: sector_year(y)
            .filter(|x| x.labour_reported)
            .and_then(|x| x.trained_percent.parse().ok()),
        share_of: sector_year(y).map(|x| x.workforce),
    };
    let cards_2021_2024 = sector.as_ref().and_then(|s| {
        let years: Vec<_> = s
            .years
            .iter()
            .filter(|x| (2021..=2024).contains(&x.year) && x.health_insurance_reported)
            .collect();
        (!years.is_empty()).then(|| years.iter().map(|x| x.insurance_cards).sum::<i64>() as f64)
    });
    let deprived_of = |code: &str| {
        lang_son::DEPRIVED_2021
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(0, |(_, count)| *count)
    };
    let mut rows = vec![
        rate_row("Tỷ lệ hộ nghèo 2021", 2021),
        rate_row("Tỷ lệ hộ nghèo 2022", 2022),
        rate_row("Tỷ lệ hộ nghèo 2023", 2023),
        rate_row("Tỷ lệ hộ nghèo 2024", 2024),
        count(
            "Hộ nghèo 2021",
            lang_son::POOR_2021,
            year(2021).map(|s| s.poor.unwrap_or_default().count as f64),
        ),
        count(
            "Hộ cận nghèo 2021",
            lang_son::NEAR_POOR_2021,
            year(2021).map(|s| s.near_poor.unwrap_or_default().count as f64),
        ),
        count(
            "Thiếu nhà tiêu hợp vệ sinh (2021)",
            deprived_of("latrine"),
            deprived("latrine"),
        ),
        count(
            "Thiếu nước sinh hoạt an toàn (2021)",
            deprived_of("domestic_water"),
            deprived("domestic_water"),
        ),
        count(
            "Thiếu tiếp cận thông tin (2021)",
            deprived_of("information_devices"),
            deprived("information_devices"),
        ),
        count(
            "Không thành viên nào dùng internet (2021)",
            deprived_of("telecom_use"),
            deprived("telecom_use"),
        ),
        count(
            "Mô hình sinh kế (Dự án 2)",
            lang_son::P2_MODELS.iter().map(|m| u64::from(*m)).sum(),
            p2.as_ref().map(|p| p.models as f64),
        ),
        count(
            "… chăn nuôi",
            lang_son::P2_MODELS[0].into(),
            p2_type(programs::ModelType::Livestock),
        ),
        count(
            "… trồng trọt",
            lang_son::P2_MODELS[1].into(),
            p2_type(programs::ModelType::Crop),
        ),
        count(
            "… lâm nghiệp",
            lang_son::P2_MODELS[2].into(),
            p2_type(programs::ModelType::Forestry),
        ),
        count(
            "Hộ nghèo tham gia mô hình",
            lang_son::P2_HOUSEHOLDS[0].into(),
            p2_class(programs::EnrolmentClass::Poor),
        ),
        count(
            "Hộ cận nghèo tham gia mô hình",
            lang_son::P2_HOUSEHOLDS[1].into(),
            p2_class(programs::EnrolmentClass::NearPoor),
        ),
        count(
            "Hộ mới thoát nghèo tham gia mô hình",
            lang_son::P2_HOUSEHOLDS[2].into(),
            p2_class(programs::EnrolmentClass::RecentlyEscaped),
        ),
        count(
            "Dự án hỗ trợ sản xuất (Dự án 3)",
            lang_son::P3_PROJECTS.into(),
            models.as_ref().map(|m| m.project3_models as f64),
        ),
        at_least(
            "Hộ được hỗ trợ (Dự án 3)",
            lang_son::P3_HOUSEHOLDS,
            p3_households,
        ),
        count(
            "Lớp đào tạo kỹ thuật (Dự án 3)",
            lang_son::P3_COURSES.into(),
            training.as_ref().map(|t| t.project3_courses as f64),
        ),
        at_least(
            "Học viên đào tạo",
            lang_son::P3_TRAINEES,
            training.as_ref().map(|t| t.trainees as f64),
        ),
        count(
            "Cuộc kiểm tra, giám sát",
            lang_son::INSPECTIONS.into(),
            summary
                .as_ref()
                .and_then(|s| s.inspections)
                .map(|i| i.inspections as f64),
        ),
        count(
            "Tin, bài viết",
            lang_son::ARTICLES.into(),
            outreach.as_ref().map(|c| c.articles as f64),
        ),
        at_least(
            "Tờ rơi",
            lang_son::LEAFLETS,
            outreach.as_ref().map(|c| c.leaflets as f64),
        ),
        count(
            "Người tham gia đối thoại, tập huấn",
            lang_son::PARTICIPANTS.into(),
            outreach
                .as_ref()
                .map(|c| (c.dialogue_participants + c.training_participants) as f64),
        ),
        million(
            "Tổng vốn kế hoạch 2021–2025 (triệu đồng)",
            lang_son::PLAN_MILLION,
            millions(money.as_ref().and_then(|m| m.total.clone()), |f| {
                f.planned_vnd
            }),
        ),
        million(
            "… ngân sách trung ương",
            lang_son::CENTRAL_MILLION,
            millions(money.as_ref().and_then(|m| m.central_budget.clone()), |f| {
                f.planned_vnd
            }),
        ),
        million(
            "Huy động xã hội (triệu đồng)",
            lang_son::MOBILISED_MILLION,
            millions(money.as_ref().and_then(|m| m.mobilised.clone()), |f| {
                f.allocated_vnd
            }),
        ),
    ];
    rows.extend((2021..=2024).map(|y| {
        range(
            format!("Người học nghề {y}"),
            lang_son::VOCATIONAL_TRAINEES_A_YEAR,
            labour(y, |x| x.vocational_trainees),
        )
    }));
    rows.extend(
        lang_son::TRAINED_WORKERS
            .iter()
            .map(|(y, _)| trained_row(*y)),
    );
    rows.extend((2021..=2024).map(|y| {
        range(
            format!("Lao động có việc làm mới {y}"),
            lang_son::NEW_JOBS_A_YEAR,
            labour(y, |x| x.new_jobs),
        )
    }));
    rows.push(count(
        "Lao động đi làm việc ở nước ngoài 2024",
        lang_son::ABROAD_2024.into(),
        labour(2024, |x| x.workers_abroad),
    ));
    rows.push(at_least(
        "Thẻ BHYT cấp cho người nghèo, cận nghèo, DTTS 2021–2024",
        lang_son::INSURANCE_CARDS,
        cards_2021_2024,
    ));
    rows
}

/// The report's figures beside the system's, for a dashboard of the
/// province over 2021–2025, the report divided by `scale` (the demo's: 1,
/// the province itself).
pub fn render_seed(d: &pb::Dashboard, scale: u32) -> String {
    let scale = scale.max(1);
    let rows = seed_rows(d);
    let same = rows.iter().filter(|r| r.matches(scale)).count();
    let scaled = if scale > 1 {
        format!(
            "<p>Dữ liệu mẫu ở tỷ lệ 1/{scale}: số lượng và số tiền của báo cáo được chia cho {scale}; tỷ lệ giữ nguyên. Một số liệu khớp khi lệch không quá một đơn vị sau khi chia (tỷ lệ: không quá một hộ trên số hộ được rà soát, một lao động trên lực lượng lao động).</p>"
        )
    } else {
        String::new()
    };
    let mut html = format!(
        r#"<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>Lạng Sơn 2021–2025: số liệu báo cáo và số liệu hệ thống</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th:first-child,td:first-child{{text-align:left}}.differs{{color:#a00}}</style></head><body>
<h1>Lạng Sơn 2021–2025: số liệu báo cáo và số liệu hệ thống</h1>{scaled}
<p>{same} / {total} số liệu khớp với báo cáo của tỉnh. Học nghề, việc làm và thẻ BHYT là số liệu ngành Lao động và Bảo hiểm xã hội gửi hằng năm (báo cáo ngành); các số liệu khác được đếm từ hồ sơ hộ, chương trình và sổ cái.</p>
<table><tr><th>Chỉ tiêu</th><th>Báo cáo</th><th>Hệ thống</th><th></th></tr>"#,
        total = rows.len()
    );
    for r in &rows {
        let more_than = if r.measure == Measure::AtLeast {
            "> "
        } else {
            ""
        };
        let reported = match r.measure {
            Measure::Rate => shown(r.measure, r.reported),
            Measure::Range if scale > 1 => format!(
                "{}–{} ÷ {scale} = {}–{}",
                number_vi(r.reported),
                number_vi(r.reported_to),
                number_vi(r.expected(scale)),
                number_vi(r.expected_to(scale))
            ),
            Measure::Range => format!("{}–{}", number_vi(r.reported), number_vi(r.reported_to)),
            _ if scale > 1 => format!(
                "{more_than}{} ÷ {scale} = {}",
                number_vi(r.reported),
                number_vi(r.expected(scale))
            ),
            m => format!("{more_than}{}", shown(m, r.reported)),
        };
        let (found, mark, class) = match r.found {
            Some(f) if r.matches(scale) => (shown(r.measure, f), "✓", ""),
            Some(f) => (shown(r.measure, f), "≠", " class=\"differs\""),
            None => ("chưa có".to_owned(), "–", " class=\"differs\""),
        };
        let _ = write!(
            html,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{mark}</td></tr>",
            escape(&r.label),
            escape(&reported),
            escape(&found)
        );
    }
    html.push_str("</table></body></html>");
    html
}
