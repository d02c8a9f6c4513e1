//! The report page of a unit: the dashboard's figures as HTML with charts
//! drawn on the server as SVG, readable without JavaScript. Every number on
//! the page is one the owning service answered; the page only lays it out.

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

/// A rate as the page shows it: "12.2%", or, for a year with no certified
/// review yet, words rather than a bare "%" or a 0 that reads as "no poor".
fn shown_rate(households_reviewed: i64, percent: &str) -> String {
    if households_reviewed == 0 || percent.is_empty() {
        "chưa có rà soát được công nhận".to_owned()
    } else {
        format!("{percent}%")
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
        let models = programmes
            .summary
            .and_then(|s| s.models)
            .unwrap_or_default();
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
        let _ = write!(
            html,
            "<table><tr><th>Tổng</th><th>Kế hoạch</th><th>Phân bổ</th><th>Giải ngân</th><th>Tỷ lệ giải ngân</th></tr><tr><td>Triệu đồng</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
            thousands(total.planned_vnd / MILLION),
            thousands(total.allocated_vnd / MILLION),
            thousands(total.disbursed_vnd / MILLION),
            escape(&if total.disbursement_percent.is_empty() {
                "chưa có vốn phân bổ".to_owned()
            } else {
                format!("{}%", total.disbursement_percent)
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
        assert_eq!(find("Tỷ lệ hộ nghèo 2021").found.as_deref(), Some("12.2%"));
        assert_eq!(find("Hộ nghèo 2021").found.as_deref(), Some("23.510"));
        assert_eq!(find("Hộ cận nghèo 2021").found.as_deref(), Some("23.251"));
        assert_eq!(find("Tỷ lệ hộ nghèo 2022").found, None, "no such year");
        assert_eq!(
            find("Mô hình sinh kế (Dự án 2)").found,
            None,
            "section unavailable"
        );
        let page = render_seed(&d);
        assert!(page.contains("<td>Hộ nghèo 2021</td><td>23.510</td><td>23.510</td><td>✓</td>"));
        assert!(page.contains("<td>23.250</td><td>23.251</td><td>≠</td>"));
        assert!(page.contains("<td>249</td><td>chưa có</td>"));
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
        assert!(page.contains("<td>2024</td><td>100</td><td>5</td><td>5%</td>"));
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

/// One figure of the province's 2021–2025 report beside the system's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRow {
    pub label: &'static str,
    pub reported: String,
    /// `None` when the section it comes from is unavailable.
    pub found: Option<String>,
}

/// Lạng Sơn's reported figures (domain brief §1) and where the dashboard
/// holds each: the poverty rates and counts, the deprivations among poor and
/// near-poor households in 2021, the livelihood models and their households,
/// Project 3, training, inspections, communication and the budget.
pub fn seed_rows(d: &pb::Dashboard) -> Vec<SeedRow> {
    let poverty = d.poverty.clone().unwrap_or_default();
    let year = |y: i32| {
        poverty
            .unavailable
            .is_none()
            .then(|| poverty.years.iter().find(|s| s.year == y).cloned())
            .flatten()
    };
    let rate = |y: i32| year(y).map(|s| format!("{}%", s.poor.unwrap_or_default().percent));
    let deprived = |code: &'static str| {
        year(2021).and_then(|s| {
            s.deprivations
                .iter()
                .find(|x| x.indicator_code == code)
                .map(|x| thousands(x.poor_or_near_poor.clone().unwrap_or_default().count))
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
            thousands(
                p.by_type
                    .iter()
                    .filter(|c| c.r#type == t as i32)
                    .map(|c| c.models)
                    .sum(),
            )
        })
    };
    let p2_class = |c: programs::EnrolmentClass| {
        p2.as_ref().map(|p| {
            thousands(
                p.households_by_class
                    .iter()
                    .filter(|x| x.class_at_enrolment == c as i32)
                    .map(|x| x.households)
                    .sum(),
            )
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
        f.map(|f| thousands(pick(&f) / MILLION))
    };
    let row = |label, reported: String, found| SeedRow {
        label,
        reported,
        found,
    };
    let n = |count: u64| thousands(count as i64);
    let rate_of = |y: i32| {
        lang_son::POVERTY_RATES
            .iter()
            .find(|(year, _)| *year == y)
            .map(|(_, r)| format!("{r}%"))
            .unwrap_or_default()
    };
    let deprived_of = |code: &str| {
        lang_son::DEPRIVED_2021
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, count)| n(*count))
            .unwrap_or_default()
    };
    vec![
        row("Tỷ lệ hộ nghèo 2021", rate_of(2021), rate(2021)),
        row("Tỷ lệ hộ nghèo 2022", rate_of(2022), rate(2022)),
        row("Tỷ lệ hộ nghèo 2023", rate_of(2023), rate(2023)),
        row("Tỷ lệ hộ nghèo 2024", rate_of(2024), rate(2024)),
        row(
            "Hộ nghèo 2021",
            n(lang_son::POOR_2021),
            year(2021).map(|s| thousands(s.poor.unwrap_or_default().count)),
        ),
        row(
            "Hộ cận nghèo 2021",
            n(lang_son::NEAR_POOR_2021),
            year(2021).map(|s| thousands(s.near_poor.unwrap_or_default().count)),
        ),
        row(
            "Thiếu nhà tiêu hợp vệ sinh (2021)",
            deprived_of("latrine"),
            deprived("latrine"),
        ),
        row(
            "Thiếu nước sinh hoạt an toàn (2021)",
            deprived_of("domestic_water"),
            deprived("domestic_water"),
        ),
        row(
            "Thiếu tiếp cận thông tin (2021)",
            deprived_of("information_devices"),
            deprived("information_devices"),
        ),
        row(
            "Không thành viên nào dùng internet (2021)",
            deprived_of("telecom_use"),
            deprived("telecom_use"),
        ),
        row(
            "Mô hình sinh kế (Dự án 2)",
            n(lang_son::P2_MODELS.iter().map(|m| u64::from(*m)).sum()),
            p2.as_ref().map(|p| thousands(p.models)),
        ),
        row(
            "… chăn nuôi",
            n(lang_son::P2_MODELS[0].into()),
            p2_type(programs::ModelType::Livestock),
        ),
        row(
            "… trồng trọt",
            n(lang_son::P2_MODELS[1].into()),
            p2_type(programs::ModelType::Crop),
        ),
        row(
            "… lâm nghiệp",
            n(lang_son::P2_MODELS[2].into()),
            p2_type(programs::ModelType::Forestry),
        ),
        row(
            "Hộ nghèo tham gia mô hình",
            n(lang_son::P2_HOUSEHOLDS[0].into()),
            p2_class(programs::EnrolmentClass::Poor),
        ),
        row(
            "Hộ cận nghèo tham gia mô hình",
            n(lang_son::P2_HOUSEHOLDS[1].into()),
            p2_class(programs::EnrolmentClass::NearPoor),
        ),
        row(
            "Hộ mới thoát nghèo tham gia mô hình",
            n(lang_son::P2_HOUSEHOLDS[2].into()),
            p2_class(programs::EnrolmentClass::RecentlyEscaped),
        ),
        row(
            "Dự án hỗ trợ sản xuất (Dự án 3)",
            n(lang_son::P3_PROJECTS.into()),
            models.as_ref().map(|m| thousands(m.project3_models)),
        ),
        row(
            "Học viên đào tạo",
            n(lang_son::P3_TRAINEES.into()),
            training.as_ref().map(|t| thousands(t.trainees)),
        ),
        row(
            "Cuộc kiểm tra, giám sát",
            n(lang_son::INSPECTIONS.into()),
            summary
                .as_ref()
                .and_then(|s| s.inspections)
                .map(|i| thousands(i.inspections)),
        ),
        row(
            "Tin, bài viết",
            n(lang_son::ARTICLES.into()),
            outreach.as_ref().map(|c| thousands(c.articles)),
        ),
        row(
            "Tổng vốn kế hoạch 2021–2025 (triệu đồng)",
            thousands(lang_son::PLAN_MILLION),
            millions(money.as_ref().and_then(|m| m.total.clone()), |f| {
                f.planned_vnd
            }),
        ),
        row(
            "… ngân sách trung ương",
            thousands(lang_son::CENTRAL_MILLION),
            millions(money.as_ref().and_then(|m| m.central_budget.clone()), |f| {
                f.planned_vnd
            }),
        ),
        row(
            "Huy động xã hội (triệu đồng)",
            thousands(lang_son::MOBILISED_MILLION),
            millions(money.as_ref().and_then(|m| m.mobilised.clone()), |f| {
                f.allocated_vnd
            }),
        ),
    ]
}

/// The report's figures beside the system's, for a dashboard of the
/// province over 2021–2025.
pub fn render_seed(d: &pb::Dashboard) -> String {
    let rows = seed_rows(d);
    let same = rows
        .iter()
        .filter(|r| r.found.as_deref() == Some(r.reported.as_str()))
        .count();
    let mut html = format!(
        r#"<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>Lạng Sơn 2021–2025: số liệu báo cáo và số liệu hệ thống</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th:first-child,td:first-child{{text-align:left}}.differs{{color:#a00}}</style></head><body>
<h1>Lạng Sơn 2021–2025: số liệu báo cáo và số liệu hệ thống</h1>
<p>{same} / {total} số liệu khớp với báo cáo của tỉnh.</p>
<table><tr><th>Chỉ tiêu</th><th>Báo cáo</th><th>Hệ thống</th><th></th></tr>"#,
        total = rows.len()
    );
    for r in &rows {
        let (found, mark, class) = match &r.found {
            Some(f) if *f == r.reported => (f.clone(), "✓", ""),
            Some(f) => (f.clone(), "≠", " class=\"differs\""),
            None => ("chưa có".to_owned(), "–", " class=\"differs\""),
        };
        let _ = write!(
            html,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{mark}</td></tr>",
            escape(r.label),
            escape(&r.reported),
            escape(&found)
        );
    }
    html.push_str("</table></body></html>");
    html
}
