//! Multi-row inserts of whole rows, written straight from the entity's columns.
//!
//! A batch writes a few hundred rows a transaction (three log rows per event, and a
//! payment and a binding per event that creates one). Through `insert_many` each value
//! becomes a node of sea-query's expression tree that is walked to text and then freed:
//! measured at about a fifth of the worker's CPU in a drain
//! (`tests/load/drain-profile.sh`, `PERF=dwarf`). Here the statement's text comes from
//! the same entity definition (table, columns) and the values go to SeaORM's binding
//! as they are, in one pass.
//!
//! SeaORM wraps a value in a cast where its column asks for one (a PostgreSQL enum
//! type): an entity with such a column goes through `insert_many`, which writes it.

use std::fmt::Write;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityName, EntityTrait,
    IdenStatic, Iterable, Statement, Value,
};

/// Bound parameters per statement: under SQLite's 32,766 and PostgreSQL's 65,535.
const PARAMETERS_PER_STATEMENT: usize = 16_000;

/// Inserts `rows`, every column set, in order, in as few statements as the parameter
/// limit allows. A row with a column left unset fails its statement before it is sent
/// (the statement names every column); the caller's transaction undoes the earlier ones.
pub async fn insert_all<C, A>(db: &C, rows: Vec<A>) -> Result<(), DbErr>
where
    C: ConnectionTrait,
    A: ActiveModelTrait,
{
    if rows.is_empty() {
        return Ok(());
    }
    let columns: Vec<_> = <A::Entity as EntityTrait>::Column::iter().collect();
    if !columns.iter().all(casts_nothing) {
        return <A::Entity as EntityTrait>::insert_many(rows)
            .exec_without_returning(db)
            .await
            .map(drop);
    }
    let per_statement = (PARAMETERS_PER_STATEMENT / columns.len().max(1)).max(1);
    let backend = db.get_database_backend();
    let table = A::Entity::default().table_name();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let mut values = Vec::with_capacity(per_statement.min(rows.len()) * columns.len());
        for mut row in rows.by_ref().take(per_statement) {
            for column in &columns {
                let value: Option<Value> = row.take(*column).into_value();
                values.push(value.ok_or_else(|| {
                    DbErr::Custom(format!(
                        "insert into {table}: column {} not set",
                        column.as_str()
                    ))
                })?);
            }
        }
        let sql = statement_text(backend, table, &columns, values.len() / columns.len());
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

/// Whether SeaORM writes a value for `column` as the bare value (no cast).
fn casts_nothing<C: ColumnTrait>(column: &C) -> bool {
    let value = Expr::val(0);
    column.save_as(value.clone()) == value
}

fn statement_text<I: IdenStatic>(
    backend: DbBackend,
    table: &str,
    columns: &[I],
    rows: usize,
) -> String {
    let mut sql = String::with_capacity(64 + columns.len() * (24 + rows * 7));
    let _ = write!(sql, "INSERT INTO \"{table}\" (");
    for (i, column) in columns.iter().enumerate() {
        let _ = write!(
            sql,
            "{}\"{}\"",
            if i == 0 { "" } else { ", " },
            column.as_str()
        );
    }
    sql.push_str(") VALUES ");
    let mut n = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for i in 0..columns.len() {
            n += 1;
            if i > 0 {
                sql.push_str(", ");
            }
            match backend {
                DbBackend::Postgres => {
                    let _ = write!(sql, "${n}");
                }
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, EntityTrait, Iterable};
    use shared::db::entities::livetip_binding::Column;
    use shared::db::entities::{livetip_binding, payment, webhook_log};

    use super::{casts_nothing, statement_text};

    fn written_bare<E: EntityTrait>() -> bool {
        E::Column::iter().all(|c| casts_nothing(&c))
    }

    #[test]
    fn the_batch_tables_take_the_direct_path() {
        assert!(written_bare::<webhook_log::Entity>());
        assert!(written_bare::<payment::Entity>());
        assert!(written_bare::<livetip_binding::Entity>());
    }

    #[test]
    fn placeholders_follow_the_backend_and_columns_their_entity() {
        let columns = [Column::LivetipPaymentId, Column::PaymentId];
        assert_eq!(
            statement_text(DbBackend::Postgres, "livetip_bindings", &columns, 2),
            r#"INSERT INTO "livetip_bindings" ("livetip_payment_id", "payment_id") VALUES ($1, $2), ($3, $4)"#
        );
        assert_eq!(
            statement_text(DbBackend::Sqlite, "livetip_bindings", &columns, 1),
            r#"INSERT INTO "livetip_bindings" ("livetip_payment_id", "payment_id") VALUES (?, ?)"#
        );
    }
}
