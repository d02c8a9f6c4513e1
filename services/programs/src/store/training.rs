//! Courses' trainees: how many each course has, and who attends already.

use std::collections::HashMap;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use sustain_db::in_json_list;
use sustain_platform::error::ServiceError;

use crate::convert::ACTIVE;
use crate::model::trainee;

/// Active trainees and those who completed, per course of `course_ids`.
pub async fn trainee_counts(
    conn: &impl ConnectionTrait,
    course_ids: &[String],
) -> Result<HashMap<String, (i64, i64)>, ServiceError> {
    if course_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i64, i64)> = trainee::Entity::find()
        .select_only()
        .column(trainee::Column::CourseId)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .column_as(
            Expr::cust("CAST(COALESCE(SUM(CASE WHEN completed THEN 1 ELSE 0 END), 0) AS BIGINT)"),
            "done",
        )
        .filter(in_json_list(
            conn.get_database_backend(),
            "course_id",
            course_ids,
        )?)
        .filter(trainee::Column::State.eq(ACTIVE))
        .group_by(trainee::Column::CourseId)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, n, done)| (id, (n, done)))
        .collect())
}

/// Which of `members` already attend `course_id` (in any state).
pub async fn attending(
    conn: &impl ConnectionTrait,
    course_id: &str,
    members: &[String],
) -> Result<Vec<String>, ServiceError> {
    Ok(trainee::Entity::find()
        .select_only()
        .column(trainee::Column::MemberId)
        .filter(trainee::Column::CourseId.eq(course_id))
        .filter(in_json_list(
            conn.get_database_backend(),
            "member_id",
            members,
        )?)
        .into_tuple()
        .all(conn)
        .await?)
}
