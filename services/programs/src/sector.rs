//! The SectorReportService adapter: a sector agency's yearly figures for a
//! unit (the labour department's training and jobs, the social insurance
//! office's health-insurance cards), one live report per unit, year and
//! kind. What a valid report holds and which reports a summary adds up are
//! the domain's (`sustain_domain::sector`).

use chrono::Datelike;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use sustain_domain::Violations;
use sustain_domain::admin::{self, Level};
use sustain_domain::poverty::Rate;
use sustain_domain::sector::{self, Figures, Labour, Placed};
use sustain_platform::Caller;
use sustain_platform::api::{new_id, now, text, today};
use sustain_platform::crypto::FieldCipher;
use sustain_platform::error::{ServiceError, checked};
use sustain_platform::journal::{self, IdempotencyKey};
use sustain_platform::placement::Placement;
use sustain_proto::programs::v1 as pb;
use tonic::{Request, Response, Status};

use crate::WRITE;
use crate::convert::{ACTIVE, MAX_NAME_CHARS, meta};
use crate::model::sector_report as report;
use crate::records::{self, record};
use crate::store;
use crate::store::Narrow;

record!(sector_report, "sector_report");

const PATHS: &[&str] = &["source", "labour", "health_insurance"];
const LABOUR: &str = "labour";
const HEALTH_INSURANCE: &str = "health_insurance";

fn kind_code(k: pb::SectorReportKind) -> Option<&'static str> {
    match k {
        pb::SectorReportKind::Labour => Some(LABOUR),
        pb::SectorReportKind::HealthInsurance => Some(HEALTH_INSURANCE),
        pb::SectorReportKind::Unspecified => None,
    }
}

fn kind_of(code: &str) -> pb::SectorReportKind {
    match code {
        LABOUR => pb::SectorReportKind::Labour,
        HEALTH_INSURANCE => pb::SectorReportKind::HealthInsurance,
        _ => pb::SectorReportKind::Unspecified,
    }
}

fn labour_of(l: &pb::LabourFigures) -> Labour {
    Labour {
        vocational_trainees: l.vocational_trainees,
        workforce: l.workforce,
        trained_workers: l.trained_workers,
        new_jobs: l.new_jobs,
        workers_abroad: l.workers_abroad,
    }
}

struct Fields {
    placement: Placement,
    year: i32,
    source: String,
    figures: Figures,
}

impl Fields {
    fn kind(&self) -> &'static str {
        match self.figures {
            Figures::Labour(_) => LABOUR,
            Figures::Cards(_) => HEALTH_INSURANCE,
        }
    }
}

fn fields(r: &pb::SectorReport, v: &mut Violations) -> Option<Fields> {
    let before = v.len();
    let today = today();
    sector::check_year(r.year, today.year(), "report.year", v);
    let source = text(&r.source, "report.source", MAX_NAME_CHARS, true, v);
    let unit = r.unit_code.trim();
    let mut placement = None;
    if unit.is_empty() {
        v.add("report.unit_code", "is required");
    } else if Level::of_code(unit) == Some(Level::District) && admin::reported_after_reform(r.year)
    {
        v.add(
            "report.unit_code",
            "is a district, abolished on 1 July 2025: a year after the reform is reported by its communes or the province",
        );
    } else {
        placement = Placement::of_unit(unit, admin::period_end(r.year, today), today)
            .map_err(|e| v.add("report.unit_code", e))
            .ok();
    }
    let figures = match &r.figures {
        Some(pb::sector_report::Figures::Labour(l)) => {
            let l = labour_of(l);
            l.check("report.labour", v);
            Some(Figures::Labour(l))
        }
        Some(pb::sector_report::Figures::HealthInsurance(h)) => {
            sector::check_count(h.cards_issued, "report.health_insurance.cards_issued", v);
            Some(Figures::Cards(h.cards_issued))
        }
        None => {
            v.add("report.figures", "is required: labour or health_insurance");
            None
        }
    };
    if v.len() > before {
        return None;
    }
    Some(Fields {
        placement: placement?,
        year: r.year,
        source,
        figures: figures?,
    })
}

fn apply(row: &mut report::Model, f: Fields) {
    row.kind = f.kind().to_owned();
    let p = f.placement;
    row.unit_code = p.unit_code;
    row.province_code = p.province_code;
    row.district_code = p.district_code;
    row.commune_code = p.commune_code;
    row.current_commune_code = p.current_commune_code;
    row.year = f.year;
    row.source = f.source;
    let (labour, cards) = match f.figures {
        Figures::Labour(l) => (l, 0),
        Figures::Cards(n) => (Labour::default(), n),
    };
    row.vocational_trainees = labour.vocational_trainees;
    row.workforce = labour.workforce;
    row.trained_workers = labour.trained_workers;
    row.new_jobs = labour.new_jobs;
    row.workers_abroad = labour.workers_abroad;
    row.cards_issued = cards;
}

fn figures_of(row: &report::Model) -> Figures {
    if row.kind == LABOUR {
        Figures::Labour(Labour {
            vocational_trainees: row.vocational_trainees,
            workforce: row.workforce,
            trained_workers: row.trained_workers,
            new_jobs: row.new_jobs,
            workers_abroad: row.workers_abroad,
        })
    } else {
        Figures::Cards(row.cards_issued)
    }
}

fn to_proto(row: &report::Model) -> pb::SectorReport {
    let figures = match figures_of(row) {
        Figures::Labour(l) => pb::sector_report::Figures::Labour(pb::LabourFigures {
            vocational_trainees: l.vocational_trainees,
            workforce: l.workforce,
            trained_workers: l.trained_workers,
            new_jobs: l.new_jobs,
            workers_abroad: l.workers_abroad,
        }),
        Figures::Cards(n) => {
            pb::sector_report::Figures::HealthInsurance(pb::HealthInsuranceFigures {
                cards_issued: n,
            })
        }
    };
    pb::SectorReport {
        id: row.id.clone(),
        kind: kind_of(&row.kind) as i32,
        unit_code: row.unit_code.clone(),
        year: row.year,
        source: row.source.clone(),
        figures: Some(figures),
        meta: Some(meta(
            &row.state,
            row.version,
            row.archive_reason.as_deref(),
            row.created_at,
            row.updated_at,
        )),
    }
}

/// ALREADY_EXISTS naming the live report of the same unit, year and kind.
async fn refuse_second(
    conn: &impl ConnectionTrait,
    unit: &str,
    year: i32,
    kind: &str,
) -> Result<(), ServiceError> {
    store::sector::lock(conn).await?;
    let existing = store::sector::live_report(conn, unit, year, kind).await?;
    match existing {
        Some(r) => Err(ServiceError::AlreadyExists {
            reason: "SECTOR_REPORT_EXISTS",
            message: format!(
                "unit {unit} already has a {kind} report for {year} ({}): update it, or archive it first",
                r.id
            ),
            metadata: vec![("report_id", r.id)],
        }),
        None => Ok(()),
    }
}

/// The stored report with the sent paths applied: a report keeps its kind,
/// and a path of figures the request does not carry is an error.
fn changed(
    stored: report::Model,
    sent: pb::SectorReport,
    paths: &[String],
) -> Result<report::Model, ServiceError> {
    let mut merged = to_proto(&stored);
    let mut v = Violations::new();
    for path in paths {
        match (path.as_str(), &sent.figures) {
            ("source", _) => merged.source = sent.source.clone(),
            ("labour", Some(pb::sector_report::Figures::Labour(_)))
            | ("health_insurance", Some(pb::sector_report::Figures::HealthInsurance(_))) => {
                merged.figures = sent.figures;
            }
            (other, _) => v.add(format!("report.{other}"), "is required by the update mask"),
        }
    }
    let fields = fields(&merged, &mut v);
    if let Some(f) = &fields
        && f.kind() != stored.kind
    {
        v.add(
            "update_mask",
            format!(
                "a {} report keeps its kind: archive it and create a {} report",
                stored.kind,
                f.kind()
            ),
        );
    }
    let fields = checked(fields, v)?;
    let mut row = stored;
    apply(&mut row, fields);
    Ok(row)
}

#[derive(Debug, Clone)]
pub struct SectorReportApi {
    pub db: DatabaseConnection,
    pub cipher: FieldCipher,
}

#[tonic::async_trait]
impl pb::sector_report_service_server::SectorReportService for SectorReportApi {
    async fn create_sector_report(
        &self,
        request: Request<pb::CreateSectorReportRequest>,
    ) -> Result<Response<pb::CreateSectorReportResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("record sector reports", WRITE)?;
        let request = request.into_inner();
        let key =
            IdempotencyKey::new(&caller, "CreateSectorReport", &request.request_id, &request)?;
        let request_id = request.request_id.clone();
        let mut v = Violations::new();
        let fields = fields(&request.report.unwrap_or_default(), &mut v);
        let fields = checked(fields, v)?;
        caller.require_placement(&fields.placement)?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            refuse_second(
                &txn,
                &fields.placement.unit_code,
                fields.year,
                fields.kind(),
            )
            .await?;
            let at = now();
            let mut row = report::Model {
                id: new_id(),
                kind: String::new(),
                unit_code: String::new(),
                province_code: String::new(),
                district_code: None,
                commune_code: None,
                current_commune_code: None,
                year: 0,
                source: String::new(),
                vocational_trainees: 0,
                workforce: 0,
                trained_workers: 0,
                new_jobs: 0,
                workers_abroad: 0,
                cards_issued: 0,
                state: ACTIVE.to_owned(),
                archive_reason: None,
                version: 1,
                created_at: at,
                updated_at: at,
            };
            apply(&mut row, fields);
            records::insert(&txn, &caller, &request_id, &row).await?;
            Ok((
                pb::CreateSectorReportResponse {
                    report: Some(to_proto(&row)),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn get_sector_report(
        &self,
        request: Request<pb::GetSectorReportRequest>,
    ) -> Result<Response<pb::GetSectorReportResponse>, Status> {
        let row =
            records::fetched::<report::Model, _>(&self.db, &request, "read sector reports").await?;
        Ok(Response::new(pb::GetSectorReportResponse {
            report: Some(to_proto(&row)),
        }))
    }

    async fn list_sector_reports(
        &self,
        request: Request<pb::ListSectorReportsRequest>,
    ) -> Result<Response<pb::ListSectorReportsResponse>, Status> {
        let list = records::list_order(request, "read sector reports")?;
        let filter = &list.filter;
        let mut v = Violations::new();
        let kind = pb::SectorReportKind::try_from(filter.kind)
            .ok()
            .and_then(kind_code);
        if filter.kind != 0 && kind.is_none() {
            v.add("filter.kind", "is not a sector report kind");
        }
        let narrow = Narrow::default().year("year", filter.year).is("kind", kind);
        let (rows, next) = list.page::<report::Model>(&self.db, v, narrow).await?;
        Ok(Response::new(pb::ListSectorReportsResponse {
            reports: rows.iter().map(to_proto).collect(),
            next_page_token: next,
        }))
    }

    async fn update_sector_report(
        &self,
        request: Request<pb::UpdateSectorReportRequest>,
    ) -> Result<Response<pb::UpdateSectorReportResponse>, Status> {
        let order = records::update_order(
            request,
            "record sector reports",
            "UpdateSectorReport",
            PATHS,
        )?;
        let answer = records::update(&self.db, &self.cipher, order, changed, |row| {
            pb::UpdateSectorReportResponse {
                report: Some(to_proto(row)),
            }
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn archive_sector_report(
        &self,
        request: Request<pb::ArchiveSectorReportRequest>,
    ) -> Result<Response<pb::ArchiveSectorReportResponse>, Status> {
        let (caller, key, order) =
            records::archive_order(request, "archive sector reports", "ArchiveSectorReport")?;
        let answer = records::archive::<report::Model, _>(
            &self.db,
            &self.cipher,
            &caller,
            key,
            order,
            |row| pb::ArchiveSectorReportResponse {
                report: Some(to_proto(row)),
            },
        )
        .await?;
        Ok(Response::new(answer))
    }
}

/// The sector figures of `unit` for the years `from`–`to`: year by year, the
/// live reports of the widest units inside it (`sector::Year::of`).
pub async fn figures(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<pb::SectorFigures, ServiceError> {
    let rows = store::sector::reports_under(conn, unit, from, to).await?;
    let mut f = pb::SectorFigures::default();
    for year in from..=to {
        let placed: Vec<Placed> = rows
            .iter()
            .filter(|r| r.year == year)
            .map(|r| Placed {
                unit: r.unit_code.clone(),
                above: [Some(&r.province_code), r.district_code.as_ref()]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect(),
                figures: figures_of(r),
            })
            .collect();
        if placed.is_empty() {
            continue;
        }
        let y = sector::Year::of(&placed);
        let labour = y.labour.unwrap_or_default();
        let cards = y.cards.unwrap_or(0);
        f.vocational_trainees += labour.vocational_trainees;
        f.new_jobs += labour.new_jobs;
        f.workers_abroad += labour.workers_abroad;
        f.insurance_cards += cards;
        f.years.push(pb::SectorYear {
            year,
            labour_reported: y.labour.is_some(),
            health_insurance_reported: y.cards.is_some(),
            vocational_trainees: labour.vocational_trainees,
            workforce: labour.workforce,
            trained_workers: labour.trained_workers,
            trained_percent: if labour.workforce > 0 {
                Rate::new(labour.trained_workers, labour.workforce).to_string()
            } else {
                String::new()
            },
            new_jobs: labour.new_jobs,
            workers_abroad: labour.workers_abroad,
            insurance_cards: cards,
        });
    }
    Ok(f)
}
