//! Writes that give way to concurrent ones, on a real database: the caller is
//! told ABORTED (send it again), not INTERNAL.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use sustain_db as db;
use sustain_platform::error::ServiceError;
use sustain_testkit::TestDatabase;

async fn table(db: &DatabaseConnection) {
    db.execute_unprepared("CREATE TABLE pair (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
        .await
        .expect("table");
    db.execute_unprepared("INSERT INTO pair (id, v) VALUES (1, 0), (2, 0)")
        .await
        .expect("rows");
}

fn bump(id: i32) -> String {
    format!("UPDATE pair SET v = v + 1 WHERE id = {id}")
}

/// The one integer `sql` selects as `n`.
async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        sql,
    ))
    .await
    .expect("query")
    .expect("row")
    .try_get::<i64>("", "n")
    .expect("n")
}

async fn total(db: &DatabaseConnection) -> i64 {
    scalar(db, "SELECT CAST(SUM(v) AS BIGINT) AS n FROM pair").await
}

fn assert_concurrent(e: DbErr) {
    match ServiceError::from(e) {
        ServiceError::Aborted { reason, message } => {
            assert_eq!(reason, "CONCURRENT_WRITE");
            assert!(message.contains("send it again"), "{message}");
        }
        other => panic!("expected ABORTED, got {other:?}"),
    }
}

#[tokio::test]
async fn a_write_that_gives_way_to_a_concurrent_one_is_aborted_not_internal() {
    let database = TestDatabase::new().await.expect("database");
    let db = db::connect(&database.url).await.expect("connect");
    table(&db).await;
    if database.is_postgres() {
        // Two transactions take the two rows in opposite orders: PostgreSQL
        // breaks the deadlock by failing one of them.
        let a = db::begin_write(&db).await.expect("a");
        let b = db::begin_write(&db).await.expect("b");
        a.execute_unprepared(&bump(1)).await.expect("a takes 1");
        b.execute_unprepared(&bump(2)).await.expect("b takes 2");
        let second = |txn: sea_orm::DatabaseTransaction, id: i32| async move {
            match txn.execute_unprepared(&bump(id)).await {
                Ok(_) => txn.commit().await.map(|()| None),
                Err(e) => {
                    txn.rollback().await?;
                    Ok(Some(e))
                }
            }
        };
        let (a, b) = tokio::join!(second(a, 2), second(b, 1));
        let mut failed: Vec<DbErr> = [a.expect("a"), b.expect("b")]
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(failed.len(), 1, "one of the two gives way: {failed:?}");
        assert_concurrent(failed.remove(0));
        assert_eq!(
            total(&db).await,
            2,
            "the survivor's two writes, none of the other's"
        );
    } else {
        // A second connection that waits at most 50 ms for the write lock,
        // while a writer holds it.
        let mut options = sea_orm::ConnectOptions::new(database.url.clone());
        options.sqlx_logging(false).max_connections(1);
        options.map_sqlx_sqlite_opts(|o| o.busy_timeout(Duration::from_millis(50)));
        let impatient = sea_orm::Database::connect(options).await.expect("connect");
        let holder = db::begin_write(&db).await.expect("holder");
        holder.execute_unprepared(&bump(1)).await.expect("holds");
        let txn = impatient.begin().await.expect("begin");
        let e = txn
            .execute_unprepared(&bump(2))
            .await
            .expect_err("the write lock is held");
        assert_concurrent(e);
        txn.rollback().await.expect("rollback");
        holder.commit().await.expect("commit");
        assert_eq!(total(&db).await, 1, "the holder's write only");
    }
}

/// A bulk writer that commits without checkpointing (`commit_unchecked`) and
/// has a `Checkpointer` checkpoint beside it: everything is committed, the
/// SQLite WAL stays bounded instead of growing with every batch, and each
/// connection checkpoints in its own commits again for other writers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_writer_checkpoints_beside_its_commits_and_the_wal_stays_bounded() {
    let database = TestDatabase::new().await.expect("database");
    let db = db::connect(&database.url).await.expect("connect");
    db.execute_unprepared("CREATE TABLE page_rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .await
        .expect("table");
    // About 1 MiB a batch: 250 rows of 4,000 characters.
    let fill = if database.is_postgres() {
        "INSERT INTO page_rows (id, body) SELECT g + $1, repeat('x', 4000) FROM generate_series(1, 250) g"
    } else {
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250) \
         INSERT INTO page_rows (id, body) SELECT i + ?, printf('%.*c', 4000, 'x') FROM n"
    };
    let checkpointer = db::Checkpointer::new(db.clone());
    let batches = 4 * db::Checkpointer::FULL_EVERY;
    for batch in 0..batches {
        let txn = db::WriteTxn::begin(&db).await.expect("begin");
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            fill,
            [i64::from(batch * 1000).into()],
        ))
        .await
        .expect("fill");
        txn.commit_unchecked().await.expect("commit");
        checkpointer.after_commit().await;
    }
    let rows = scalar(&db, "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM page_rows").await;
    assert_eq!(rows, i64::from(batches) * 250);
    if database.is_postgres() {
        return;
    }
    let path = database
        .url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .expect("path")
        .to_owned();
    let wal = std::fs::metadata(format!("{path}-wal")).expect("wal").len();
    // 16 batches of about 1 MiB: a WAL never copied back would hold them all.
    assert!(wal < 8 << 20, "WAL of {wal} bytes");
    let pool = db.get_sqlite_connection_pool();
    let mut held = vec![];
    for _ in 0..4 {
        let mut conn = pool.acquire().await.expect("connection");
        let every: i64 = sea_orm::sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&mut *conn)
            .await
            .expect("pragma");
        assert_eq!(every, 1000, "a connection left without its own checkpoints");
        held.push(conn);
    }
}
