//! Every query of the programmes service. Here, for every table alike:
//! guarded updates (the row changes only if it is still at the version read)
//! and pages in key order; in the modules, each record's own reads and
//! writes, the running tallies and the summary's grouped reads.

pub mod catalog;
pub mod livelihood;
pub mod reseal;
pub mod sector;
pub mod summary;
pub mod tally;
pub mod training;

use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};
use sustain_platform::api::Page;
use sustain_platform::error::ServiceError;

/// The row of `E` whose `key_column` is `key`, if there is one.
pub async fn by_key<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    key_column: &str,
    key: &str,
) -> Result<Option<E::Model>, ServiceError> {
    Ok(E::find()
        .filter(Expr::col(Alias::new(key_column)).eq(key))
        .one(conn)
        .await?)
}

/// Writes a new row.
pub async fn insert<M, A>(conn: &impl ConnectionTrait, row: M) -> Result<(), ServiceError>
where
    M: IntoActiveModel<A>,
    A: ActiveModelTrait,
{
    <A::Entity as EntityTrait>::insert(row.into_active_model())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// How many rows `E`'s table holds.
pub async fn count<E>(conn: &impl ConnectionTrait) -> Result<i64, ServiceError>
where
    E: EntityTrait,
    E::Model: Sync,
{
    use sea_orm::PaginatorTrait;
    Ok(E::find().count(conn).await? as i64)
}

/// Writes `row` over the stored one if that is still at `expected` version;
/// `false` when someone else changed it first.
pub async fn save_guarded<E>(
    conn: &impl ConnectionTrait,
    row: E::Model,
    key_column: &str,
    key: &str,
    expected: i64,
) -> Result<bool, ServiceError>
where
    E: EntityTrait,
    E::Model: IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: ActiveModelTrait<Entity = E>,
{
    let active = row.into_active_model().reset_all();
    let result = E::update_many()
        .set(active)
        .filter(Expr::col(Alias::new(key_column)).eq(key))
        .filter(Expr::col(Alias::new("version")).eq(expected))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The `page` of `E`'s rows that `narrow` keeps, in `key_column` order (`key`
/// reads it off a row), and the token for the next page.
pub async fn page<E>(
    conn: &impl ConnectionTrait,
    narrow: Narrow,
    key_column: &str,
    page: &Page,
    key: impl Fn(&E::Model) -> &str,
) -> Result<(Vec<E::Model>, String), ServiceError>
where
    E: EntityTrait,
{
    let column = || Expr::col(Alias::new(key_column));
    let mut query = E::find().filter(narrow.into_condition());
    if let Some(after) = &page.after {
        query = query.filter(column().gt(after.as_str()));
    }
    let rows = query
        .order_by_asc(column())
        .limit(page.limit())
        .all(conn)
        .await?;
    Ok(page.cut(rows, key))
}

/// What a list is narrowed to, field by field: a handler names the checked
/// filter values a list keeps; this turns them into SQL.
#[derive(Debug, Clone)]
pub struct Narrow(Condition);

impl Default for Narrow {
    fn default() -> Narrow {
        Narrow(Condition::all())
    }
}

impl Narrow {
    /// Rows whose `column` is `value`, when one is given.
    pub fn is<V: Into<sea_orm::Value>>(self, column: &str, value: Option<V>) -> Narrow {
        match value {
            Some(v) => Narrow(self.0.add(Expr::col(Alias::new(column)).eq(v.into()))),
            None => self,
        }
    }

    /// Rows of `year` in `column` (0: any year).
    pub fn year(self, column: &str, year: i32) -> Narrow {
        self.is(column, (year != 0).then_some(year))
    }

    /// Rows running in `year` (0: any): from the year in `start` to the one
    /// in `end`.
    pub fn running(self, start: &str, end: &str, year: i32) -> Narrow {
        if year == 0 {
            return self;
        }
        Narrow(
            self.0
                .add(Expr::col(Alias::new(start)).lte(year))
                .add(Expr::col(Alias::new(end)).gte(year)),
        )
    }

    /// Rows filed under the Project `code` or one under it, when one is given.
    pub fn project(self, column: &str, code: Option<&str>) -> Narrow {
        match code {
            Some(code) => Narrow(self.0.add(project_within(column, code))),
            None => self,
        }
    }

    /// Rows whose `column` is positive, when `only`.
    pub fn positive(self, column: &str, only: bool) -> Narrow {
        if only {
            Narrow(self.0.add(Expr::col(Alias::new(column)).gt(0)))
        } else {
            self
        }
    }

    /// Rows that also meet `condition` (a scope, a placement).
    pub fn and(self, condition: Condition) -> Narrow {
        Narrow(self.0.add(condition))
    }

    pub fn into_condition(self) -> Condition {
        self.0
    }
}

/// Rows that are not archived, unless archived ones were asked for.
pub fn live(include_archived: bool) -> Condition {
    if include_archived {
        Condition::all()
    } else {
        Condition::all().add(Expr::col(Alias::new("state")).eq(crate::convert::ACTIVE))
    }
}

/// Rows whose catalog code is `code` or lies under it (`NTP-SPR.3` holds
/// `NTP-SPR.3.1`). `code` has passed `catalog::check_code`: no LIKE wildcards.
pub fn project_within(column: &str, code: &str) -> Condition {
    Condition::any()
        .add(Expr::col(Alias::new(column)).eq(code))
        .add(Expr::col(Alias::new(column)).like(format!("{code}.%")))
}
