//! Persistence of reviews, and keeping transitions right: a review's transition
//! depends on the household's certified reviews of earlier years, so certifying
//! (or correcting) one year re-derives the chain and moves the tallies of every
//! review whose transition changed.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use sustain_domain::poverty::{self, Class};
use sustain_platform::error::ServiceError;

use super::tally::TallyDelta;
use crate::model::review;

pub const DRAFT: &str = "draft";
pub const APPROVED: &str = "approved";
pub const CERTIFIED: &str = "certified";
pub const SUPERSEDED: &str = "superseded";

pub async fn find(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<review::Model>, ServiceError> {
    Ok(review::Entity::find_by_id(id.to_owned()).one(conn).await?)
}

/// A household's reviews, newest year and revision first; one year when given.
pub async fn of_household(
    conn: &impl ConnectionTrait,
    household_id: &str,
    year: Option<i32>,
) -> Result<Vec<review::Model>, ServiceError> {
    let mut query = review::Entity::find().filter(review::Column::HouseholdId.eq(household_id));
    if let Some(year) = year {
        query = query.filter(review::Column::Year.eq(year));
    }
    Ok(query
        .order_by_desc(review::Column::Year)
        .order_by_desc(review::Column::Revision)
        .all(conn)
        .await?)
}

/// The certified reviews of a household, oldest year first.
pub async fn certified_chain(
    conn: &impl ConnectionTrait,
    household_id: &str,
) -> Result<Vec<review::Model>, ServiceError> {
    Ok(review::Entity::find()
        .filter(review::Column::HouseholdId.eq(household_id))
        .filter(review::Column::State.eq(CERTIFIED))
        .order_by_asc(review::Column::Year)
        .all(conn)
        .await?)
}

/// The transition a review of `year` with `class` has against the certified
/// reviews of earlier years in `chain`.
pub fn transition_against(chain: &[review::Model], year: i32, class: Class) -> poverty::Transition {
    let earlier: Vec<Class> = chain
        .iter()
        .filter(|r| r.year < year)
        .filter_map(|r| Class::from_code(&r.class))
        .collect();
    poverty::transition_after(&earlier, class)
}

/// Inserts a review; `false` when its (household, year, revision) is taken.
pub async fn insert(conn: &impl ConnectionTrait, r: &review::Model) -> Result<bool, ServiceError> {
    match review::Entity::insert(r.clone().into_active_model())
        .exec(conn)
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if sustain_db::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Writes `r` if the stored row is still at `expected_version`.
pub async fn save(
    conn: &impl ConnectionTrait,
    r: &review::Model,
    expected_version: i64,
) -> Result<bool, ServiceError> {
    let mut active = r.clone().into_active_model().reset_all();
    active.id = sea_orm::ActiveValue::NotSet;
    let result = review::Entity::update_many()
        .set(active)
        .filter(review::Column::Id.eq(r.id.clone()))
        .filter(review::Column::Version.eq(expected_version))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Re-derives the transitions of a household's certified reviews. Reviews in
/// `entering` are about to be counted (their tallies are added here with the
/// final transition); the others already are, and move when theirs changes.
/// Returns the reviews whose rows were rewritten.
pub async fn rechain(
    conn: &impl ConnectionTrait,
    household_id: &str,
    entering: &[String],
    now: chrono::DateTime<chrono::Utc>,
    delta: &mut TallyDelta,
) -> Result<Vec<review::Model>, ServiceError> {
    let chain = certified_chain(conn, household_id).await?;
    let classes: Vec<Class> = chain
        .iter()
        .map(|r| {
            Class::from_code(&r.class).ok_or_else(|| {
                ServiceError::Internal(format!("review {} has class {:?}", r.id, r.class))
            })
        })
        .collect::<Result<_, _>>()?;
    let mut rewritten = vec![];
    for (r, t) in chain.into_iter().zip(poverty::transitions(&classes)) {
        let entering_now = entering.contains(&r.id);
        if r.transition == t.code() {
            if entering_now {
                delta.add(&r, 1);
            }
            continue;
        }
        if !entering_now {
            delta.add(&r, -1);
        }
        let expected = r.version;
        let next = review::Model {
            transition: t.code().to_owned(),
            version: r.version + 1,
            updated_at: now,
            ..r
        };
        if !save(conn, &next, expected).await? {
            return Err(ServiceError::Aborted {
                reason: "CONCURRENT_REVIEW",
                message: format!("review {} changed meanwhile; try again", next.id),
            });
        }
        delta.add(&next, 1);
        rewritten.push(next);
    }
    Ok(rewritten)
}

/// Brings a review row up to date in place (used by state changes).
pub async fn update_guarded(
    conn: &impl ConnectionTrait,
    next: &review::Model,
    expected: i64,
) -> Result<(), ServiceError> {
    if save(conn, next, expected).await? {
        Ok(())
    } else {
        Err(ServiceError::Aborted {
            reason: "STALE_ETAG",
            message: format!("review {} changed meanwhile; read it again", next.id),
        })
    }
}

/// The certified reviews of `households` up to `year`: (household, year,
/// class, transition).
pub async fn certified_classes(
    conn: &impl ConnectionTrait,
    households: &[String],
    year: i32,
) -> Result<Vec<(String, i32, String, String)>, ServiceError> {
    Ok(review::Entity::find()
        .select_only()
        .column(review::Column::HouseholdId)
        .column(review::Column::Year)
        .column(review::Column::Class)
        .column(review::Column::Transition)
        .filter(sustain_db::in_json_list(
            conn.get_database_backend(),
            "household_id",
            households,
        )?)
        .filter(review::Column::State.eq(CERTIFIED))
        .filter(review::Column::Year.lte(year))
        .into_tuple()
        .all(conn)
        .await?)
}
