//! The CatalogService adapter: the programme structure of Decision 90/QĐ-TTg,
//! seeded read-only at start-up, and the items a province adds under it.

use sea_orm::{ConnectionTrait, DatabaseConnection, IntoActiveModel};
use sustain_domain::Violations;
use sustain_domain::programme::{self, DECISION_90, ItemLevel};
use sustain_platform::Caller;
use sustain_platform::api::{Page, now, page_size, text, today};
use sustain_platform::crypto::FieldCipher;
use sustain_platform::error::{ServiceError, checked};
use sustain_platform::journal::{self, Change, IdempotencyKey};
use sustain_platform::placement::Placement;
use sustain_proto::programs::v1 as pb;
use tonic::{Request, Response, Status};

use crate::convert::{
    ACTIVE, ARCHIVED, MAX_NAME_CHARS, MAX_REASON_CHARS, archived, check, mask_paths, meta, stale,
};
use crate::model::programme_item;
use crate::store;
use crate::{READ, WRITE_CATALOG};

/// Longest catalog code.
pub const MAX_CODE_CHARS: usize = 40;
const ITEM_PATHS: &[&str] = &["name"];

/// A catalog code: letters, digits, '.' and '-', not starting or ending with '.'.
pub fn check_code(raw: &str, field: &str, v: &mut Violations) -> String {
    let code = raw.trim();
    if code.is_empty() {
        v.add(field, "is required");
    } else if code.len() > MAX_CODE_CHARS
        || !code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        || code.starts_with('.')
        || code.ends_with('.')
    {
        v.add(
            field,
            format!(
                "must be at most {MAX_CODE_CHARS} letters, digits, '.' or '-', not starting or ending with '.'"
            ),
        );
    }
    code.to_owned()
}

fn level_code(level: ItemLevel) -> &'static str {
    match level {
        ItemLevel::Programme => "programme",
        ItemLevel::Project => "project",
        ItemLevel::SubProject => "sub_project",
        ItemLevel::Activity => "activity",
    }
}

fn level_from_proto(level: pb::ItemLevel) -> Option<ItemLevel> {
    match level {
        pb::ItemLevel::Programme => Some(ItemLevel::Programme),
        pb::ItemLevel::Project => Some(ItemLevel::Project),
        pb::ItemLevel::SubProject => Some(ItemLevel::SubProject),
        pb::ItemLevel::Activity => Some(ItemLevel::Activity),
        pb::ItemLevel::Unspecified => None,
    }
}

fn level_rank(code: &str) -> u8 {
    match code {
        "programme" => 0,
        "project" => 1,
        "sub_project" => 2,
        _ => 3,
    }
}

fn level_to_proto(code: &str) -> pb::ItemLevel {
    match code {
        "programme" => pb::ItemLevel::Programme,
        "project" => pb::ItemLevel::Project,
        "sub_project" => pb::ItemLevel::SubProject,
        "activity" => pb::ItemLevel::Activity,
        _ => pb::ItemLevel::Unspecified,
    }
}

/// Puts the decision's structure in place; items already there are left alone.
pub async fn seed(conn: &impl ConnectionTrait) -> Result<(), ServiceError> {
    let at = now();
    let rows = DECISION_90.iter().map(|item| {
        programme_item::Model {
            code: item.code.to_owned(),
            parent_code: item.parent.map(str::to_owned),
            level: level_code(item.level).to_owned(),
            name: item.name.to_owned(),
            owner_unit: String::new(),
            seeded: true,
            project_code: programme::project_of(item.code),
            state: ACTIVE.to_owned(),
            archive_reason: None,
            version: 1,
            created_at: at,
            updated_at: at,
        }
        .into_active_model()
    });
    store::catalog::seed(conn, rows.collect()).await
}

pub async fn find(
    conn: &impl ConnectionTrait,
    code: &str,
) -> Result<Option<programme_item::Model>, ServiceError> {
    store::catalog::item(conn, code).await
}

/// The catalog item `code` a record of the caller's may be filed under: an
/// active one, seeded or the caller's province's own; else `field` is named.
pub async fn usable(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    code: &str,
    field: &str,
) -> Result<programme_item::Model, ServiceError> {
    match find(conn, code).await? {
        Some(item) if item.state == ACTIVE && visible(caller, &item) => Ok(item),
        _ => Err(ServiceError::invalid(
            field,
            "is not an active item of the programme catalog",
        )),
    }
}

/// Seeded items are everyone's; a province's own are for callers near it.
fn visible(caller: &Caller, item: &programme_item::Model) -> bool {
    item.seeded || caller.scope.overlaps_unit(&item.owner_unit)
}

pub fn item_to_proto(row: &programme_item::Model) -> pb::ProgrammeItem {
    pb::ProgrammeItem {
        code: row.code.clone(),
        parent_code: row.parent_code.clone().unwrap_or_default(),
        level: level_to_proto(&row.level) as i32,
        name: row.name.clone(),
        owner_unit_code: row.owner_unit.clone(),
        seeded: row.seeded,
        project_code: row.project_code.clone().unwrap_or_default(),
        meta: Some(meta(
            &row.state,
            row.version,
            row.archive_reason.as_deref(),
            row.created_at,
            row.updated_at,
        )),
    }
}

fn change(row: &programme_item::Model, action: &'static str) -> Change {
    Change {
        record_type: "programme_item".into(),
        record_id: row.code.clone(),
        owner_unit: row.owner_unit.clone(),
        version: row.version,
        action: action.into(),
        state: journal::state_json(row),
    }
}

#[derive(Debug, Clone)]
pub struct CatalogApi {
    pub db: DatabaseConnection,
    pub cipher: FieldCipher,
}

impl CatalogApi {
    async fn visible_item(
        &self,
        conn: &impl ConnectionTrait,
        caller: &Caller,
        code: &str,
    ) -> Result<programme_item::Model, ServiceError> {
        match find(conn, code).await? {
            Some(row) if visible(caller, &row) => Ok(row),
            _ => Err(ServiceError::NotFound {
                resource: "programme item",
                id: code.to_owned(),
            }),
        }
    }

    /// A province's own item, for a change: not seeded, in scope, not archived,
    /// at the etag sent.
    async fn own_item(
        &self,
        conn: &impl ConnectionTrait,
        caller: &Caller,
        code: &str,
        etag: &str,
    ) -> Result<programme_item::Model, ServiceError> {
        let row = self.visible_item(conn, caller, code).await?;
        if row.seeded {
            return Err(ServiceError::FailedPrecondition {
                reason: "SEEDED_ITEM",
                message: format!("{code} is part of Decision 90/QĐ-TTg and cannot be changed"),
            });
        }
        let placement = Placement::of_unit(&row.owner_unit, today(), today())
            .map_err(|e| ServiceError::Internal(format!("item {code} owner: {e}")))?;
        caller.require_placement(&placement)?;
        if row.state == ARCHIVED {
            return Err(archived("programme item", code));
        }
        if etag != sustain_platform::api::etag(row.version) {
            return Err(stale("programme item", code));
        }
        Ok(row)
    }
}

/// A catalog item to add, as sent: every field checked, every bad one named.
struct NewItem {
    code: String,
    name: String,
    level: ItemLevel,
    placement: Placement,
    parent_code: Option<String>,
}

impl NewItem {
    fn checked(item: &pb::ProgrammeItem) -> Result<NewItem, ServiceError> {
        let mut v = Violations::new();
        let code = check_code(&item.code, "item.code", &mut v);
        let name = text(&item.name, "item.name", MAX_NAME_CHARS, true, &mut v);
        let level = pb::ItemLevel::try_from(item.level)
            .ok()
            .and_then(level_from_proto);
        if level.is_none() {
            v.add(
                "item.level",
                "must be PROGRAMME, PROJECT, SUB_PROJECT or ACTIVITY",
            );
        }
        let placement = Placement::of_unit(item.owner_unit_code.trim(), today(), today())
            .map_err(|e| v.add("item.owner_unit_code", e))
            .ok();
        let parent_code = (!item.parent_code.trim().is_empty())
            .then(|| check_code(&item.parent_code, "item.parent_code", &mut v));
        if parent_code.is_none() && level.is_some_and(|l| l != ItemLevel::Programme) {
            v.add("item.parent_code", "is required below programme level");
        }
        let (level, placement) = checked(level.zip(placement), v)?;
        Ok(NewItem {
            code,
            name,
            level,
            placement,
            parent_code,
        })
    }
}

/// The Project an item under `parent_code` belongs to: the parent must be an
/// active item the caller sees, at a level above `level`.
async fn project_under(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    parent_code: Option<&str>,
    level: ItemLevel,
) -> Result<Option<String>, ServiceError> {
    Ok(match parent_code {
        None => None,
        Some(parent_code) => {
            let parent = match find(conn, parent_code).await? {
                Some(p) if visible(caller, &p) && p.state == ACTIVE => p,
                _ => {
                    return Err(ServiceError::invalid(
                        "item.parent_code",
                        "is not an active item of the catalog",
                    ));
                }
            };
            if level_rank(level_code(level)) <= level_rank(&parent.level) {
                return Err(ServiceError::invalid(
                    "item.level",
                    format!("must lie below its parent's level ({})", parent.level),
                ));
            }
            if parent.seeded && parent.level == "project" {
                Some(parent.code.clone())
            } else {
                parent.project_code.clone()
            }
        }
    })
}

/// ALREADY_EXISTS when the catalog has an item `code`.
async fn refuse_taken_code(conn: &impl ConnectionTrait, code: &str) -> Result<(), ServiceError> {
    if find(conn, code).await?.is_some() {
        return Err(ServiceError::AlreadyExists {
            reason: "CODE_TAKEN",
            message: format!("the catalog already has an item {code}"),
            metadata: vec![("code", code.to_owned())],
        });
    }
    Ok(())
}

#[tonic::async_trait]
impl pb::catalog_service_server::CatalogService for CatalogApi {
    async fn get_programme_item(
        &self,
        request: Request<pb::GetProgrammeItemRequest>,
    ) -> Result<Response<pb::GetProgrammeItemResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read the programme catalog", READ)?;
        let mut v = Violations::new();
        let code = check_code(&request.get_ref().code, "code", &mut v);
        check(v)?;
        let row = self.visible_item(&self.db, &caller, &code).await?;
        Ok(Response::new(pb::GetProgrammeItemResponse {
            item: Some(item_to_proto(&row)),
        }))
    }

    async fn list_programme_items(
        &self,
        request: Request<pb::ListProgrammeItemsRequest>,
    ) -> Result<Response<pb::ListProgrammeItemsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read the programme catalog", READ)?;
        let request = request.into_inner();
        let mut v = Violations::new();
        let size = page_size(request.page_size, &mut v);
        let parent = (!request.parent_code.trim().is_empty())
            .then(|| check_code(&request.parent_code, "parent_code", &mut v));
        check(v)?;
        let size = size.unwrap_or_default();
        let fingerprint = format!("{}\u{1f}{}", request.parent_code, request.include_archived);
        let list_page = Page::asked(size, &request.page_token, fingerprint.into_bytes())?;
        let narrow = store::catalog::items_visible(&caller.scope, descendants_and_self)
            .and(store::live(request.include_archived))
            .is("parent_code", parent);
        let (rows, next_page_token) =
            store::page::<programme_item::Entity>(&self.db, narrow, "code", &list_page, |r| {
                r.code.as_str()
            })
            .await?;
        Ok(Response::new(pb::ListProgrammeItemsResponse {
            items: rows.iter().map(item_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn create_programme_item(
        &self,
        request: Request<pb::CreateProgrammeItemRequest>,
    ) -> Result<Response<pb::CreateProgrammeItemResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("add to the programme catalog", WRITE_CATALOG)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(
            &caller,
            "CreateProgrammeItem",
            &request.request_id,
            &request,
        )?;
        let request_id = request.request_id.clone();
        let NewItem {
            code,
            name,
            level,
            placement,
            parent_code,
        } = NewItem::checked(&request.item.unwrap_or_default())?;
        caller.require_placement(&placement)?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            let project_code = project_under(&txn, &caller, parent_code.as_deref(), level).await?;
            refuse_taken_code(&txn, &code).await?;
            let at = now();
            let row = programme_item::Model {
                code,
                parent_code,
                level: level_code(level).to_owned(),
                name,
                owner_unit: placement.unit_code.clone(),
                seeded: false,
                project_code,
                state: ACTIVE.to_owned(),
                archive_reason: None,
                version: 1,
                created_at: at,
                updated_at: at,
            };
            store::insert(&txn, row.clone()).await?;
            journal::record(&txn, &caller, &request_id, change(&row, "create")).await?;
            Ok((
                pb::CreateProgrammeItemResponse {
                    item: Some(item_to_proto(&row)),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn update_programme_item(
        &self,
        request: Request<pb::UpdateProgrammeItemRequest>,
    ) -> Result<Response<pb::UpdateProgrammeItemResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("change the programme catalog", WRITE_CATALOG)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(
            &caller,
            "UpdateProgrammeItem",
            &request.request_id,
            &request,
        )?;
        let request_id = request.request_id.clone();
        let item = request.item.clone().unwrap_or_default();
        let paths = mask_paths(request.update_mask.as_ref(), ITEM_PATHS)?;
        let mut v = Violations::new();
        let code = check_code(&item.code, "item.code", &mut v);
        let etag = crate::records::sent_etag(item.meta.as_ref(), "item.meta.etag", &mut v);
        let name = paths
            .contains(&"name")
            .then(|| text(&item.name, "item.name", MAX_NAME_CHARS, true, &mut v));
        check(v)?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            let stored = self.own_item(&txn, &caller, &code, &etag).await?;
            let expected = stored.version;
            let row = programme_item::Model {
                name: name.unwrap_or_else(|| stored.name.clone()),
                version: expected + 1,
                updated_at: now(),
                ..stored
            };
            if !store::save_guarded::<programme_item::Entity>(
                &txn,
                row.clone(),
                "code",
                &code,
                expected,
            )
            .await?
            {
                return Err(stale("programme item", &code));
            }
            journal::record(&txn, &caller, &request_id, change(&row, "update")).await?;
            Ok((
                pb::UpdateProgrammeItemResponse {
                    item: Some(item_to_proto(&row)),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn archive_programme_item(
        &self,
        request: Request<pb::ArchiveProgrammeItemRequest>,
    ) -> Result<Response<pb::ArchiveProgrammeItemResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("change the programme catalog", WRITE_CATALOG)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(
            &caller,
            "ArchiveProgrammeItem",
            &request.request_id,
            &request,
        )?;
        let request_id = request.request_id.clone();
        let mut v = Violations::new();
        let code = check_code(&request.code, "code", &mut v);
        if request.etag.trim().is_empty() {
            v.add("etag", "is required: send the etag you read");
        }
        let reason = text(&request.reason, "reason", MAX_REASON_CHARS, true, &mut v);
        check(v)?;
        let etag = request.etag.trim().to_owned();
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            let stored = self.own_item(&txn, &caller, &code, &etag).await?;
            let expected = stored.version;
            let row = programme_item::Model {
                state: ARCHIVED.to_owned(),
                archive_reason: Some(reason),
                version: expected + 1,
                updated_at: now(),
                ..stored
            };
            if !store::save_guarded::<programme_item::Entity>(
                &txn,
                row.clone(),
                "code",
                &code,
                expected,
            )
            .await?
            {
                return Err(stale("programme item", &code));
            }
            journal::record(&txn, &caller, &request_id, change(&row, "archive")).await?;
            Ok((
                pb::ArchiveProgrammeItemResponse {
                    item: Some(item_to_proto(&row)),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }
}

/// A unit and every unit under it, in any version of the catalog.
fn descendants_and_self(code: &str) -> Vec<String> {
    let catalog = sustain_domain::admin::catalog();
    let mut out = vec![code.to_owned()];
    let mut i = 0;
    while i < out.len() {
        let next = out[i].clone();
        for date in [chrono::NaiveDate::from_ymd_opt(2024, 1, 1), Some(today())]
            .into_iter()
            .flatten()
        {
            for child in catalog.children(Some(&next), date) {
                if !out.contains(&child.code) {
                    out.push(child.code.clone());
                }
            }
        }
        i += 1;
    }
    out
}
