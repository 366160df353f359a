//! [`UserStore`] on PostgreSQL: the `users` table, unique by username and by email.

use async_trait::async_trait;
use ledger_core::{Role, StoreError, User, UserId, UserStore};
use sqlx::postgres::PgRow;

use crate::rows::{self, get, ts};
use crate::{PgStore, db};

const USER_COLUMNS: &str = "id, username, email, password_hash, role, created_at";

fn user(row: &PgRow) -> Result<User, StoreError> {
    let role: String = get(row, "role")?;
    Ok(User {
        id: UserId(get(row, "id")?),
        username: get(row, "username")?,
        email: get(row, "email")?,
        password_hash: get(row, "password_hash")?,
        role: Role::parse(&role).ok_or_else(|| rows::corrupt("role", &role))?,
        created_at: rows::from_ts(get(row, "created_at")?),
    })
}

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(&self, new: User) -> Result<User, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new.id.0)
        .bind(&new.username)
        .bind(&new.email)
        .bind(&new.password_hash)
        .bind(new.role.as_str())
        .bind(ts(new.created_at))
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(new),
            Err(error) => {
                let constraint = error.as_database_error().and_then(|d| d.constraint().map(str::to_owned));
                Err(match constraint.as_deref() {
                    Some("users_username_key") => StoreError::Duplicate("username"),
                    Some("users_email_key") => StoreError::Duplicate("email"),
                    _ => db(error),
                })
            }
        }
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(sql!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(user).transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(sql!("SELECT {USER_COLUMNS} FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(user).transpose()
    }

    async fn set_role(&self, id: UserId, role: Role) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(sql!("UPDATE users SET role = $2 WHERE id = $1 RETURNING {USER_COLUMNS}"))
            .bind(id.0)
            .bind(role.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(user).transpose()
    }
}
