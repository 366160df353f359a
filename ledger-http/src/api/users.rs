//! Registration, login, the caller's profile and (admin) roles.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ledger_core::{Role, User, UserId};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::Tag;
use super::dto::time;
use crate::auth::{BearerAuth, hash_password, verify_password};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Users and auth.
pub struct UsersApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// A new user.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct RegisterRequest {
    /// 3 to 64 characters: letters, digits, `.`, `_` or `-`.
    pub username: String,
    /// A contact address.
    pub email: String,
    /// At least 12 characters.
    pub password: String,
}

impl Example for RegisterRequest {
    fn example() -> RegisterRequest {
        RegisterRequest {
            username: "alice".into(),
            email: "alice@example.com".into(),
            password: "correct horse battery".into(),
        }
    }
}

/// A user (never with a password or hash).
#[derive(Object)]
pub struct UserDto {
    /// Its id.
    pub id: Uuid,
    /// Login name.
    pub username: String,
    /// Contact address.
    pub email: String,
    /// `user` or `admin`.
    pub role: String,
    /// When the user registered.
    pub created_at: DateTime<Utc>,
}

impl From<&User> for UserDto {
    fn from(user: &User) -> UserDto {
        UserDto {
            id: user.id.0,
            username: user.username.clone(),
            email: user.email.clone(),
            role: user.role.as_str().to_owned(),
            created_at: time(user.created_at),
        }
    }
}

/// Credentials.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct LoginRequest {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// An access token.
#[derive(Object)]
pub struct TokenDto {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A role change.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct RoleRequest {
    /// `user` or `admin`.
    pub role: String,
}

/// Registration result.
#[derive(ApiResponse)]
pub enum Registered {
    /// The user was created.
    #[oai(status = 201)]
    Created(Json<UserDto>),
}

fn validate_registration(request: &RegisterRequest) -> Result<(), ApiError> {
    let name_ok = (3..=64).contains(&request.username.len())
        && request.username.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !name_ok {
        return Err(ApiError::field("username", "3 to 64 letters, digits, '.', '_' or '-'"));
    }
    let email = &request.email;
    let email_ok = (3..=254).contains(&email.len())
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if !email_ok {
        return Err(ApiError::field("email", "not an email address"));
    }
    if request.password.chars().count() < 12 {
        return Err(ApiError::field("password", "must be at least 12 characters"));
    }
    if request.password.len() > 1024 {
        return Err(ApiError::field("password", "must be at most 1024 bytes"));
    }
    Ok(())
}

#[OpenApi(tag = "Tag::Users")]
impl UsersApi {
    /// Register a user.
    #[oai(path = "/v1/users", method = "post", operation_id = "register_user")]
    async fn register(&self, body: Json<RegisterRequest>) -> ApiResult<Registered> {
        validate_registration(&body)?;
        let hash = hash_password(body.password.clone()).await?;
        let user = User {
            id: self.state.new_id(),
            username: body.username.clone(),
            email: body.email.clone(),
            password_hash: hash,
            role: Role::User,
            created_at: self.state.ledger.now(),
        };
        let user = self.state.store.create_user(user).await.map_err(ApiError::from)?;
        Ok(Registered::Created(Json(UserDto::from(&user))))
    }

    /// Log in: a wrong password and an unknown user get the same answer.
    #[oai(path = "/v1/auth/login", method = "post", operation_id = "login")]
    async fn login(&self, body: Json<LoginRequest>) -> ApiResult<Json<TokenDto>> {
        let user = self.state.store.user_by_username(&body.username).await.map_err(ApiError::from)?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        if !verify_password(hash, body.password.clone()).await? {
            return Err(ApiError::Unauthorized("wrong username or password".into()).into());
        }
        let user = user.expect("verified against an existing user");
        let (token, expires_at) = self.state.auth.issue(user.id, user.role, self.state.ledger.now())?;
        Ok(Json(TokenDto { token, token_type: "Bearer".into(), expires_at: time(expires_at) }))
    }

    /// The caller.
    #[oai(path = "/v1/users/me", method = "get", operation_id = "get_me")]
    async fn me(&self, auth: BearerAuth) -> ApiResult<Json<UserDto>> {
        let user = self.state.store.user(auth.0.user).await.map_err(ApiError::from)?;
        let user = user.ok_or(ApiError::Unauthorized("the token's user no longer exists".into()))?;
        Ok(Json(UserDto::from(&user)))
    }

    /// Change a user's role (admin).
    #[oai(path = "/v1/admin/users/:id/role", method = "post", operation_id = "set_user_role")]
    async fn set_role(&self, auth: BearerAuth, id: Path<Uuid>, body: Json<RoleRequest>) -> ApiResult<Json<UserDto>> {
        self.state.require_admin(&auth.0).await?;
        let role = Role::parse(&body.role).ok_or_else(|| ApiError::field("role", "must be `user` or `admin`"))?;
        let user = self.state.store.set_role(UserId(id.0), role).await.map_err(ApiError::from)?;
        let user = user.ok_or(ApiError::NotFound("user"))?;
        Ok(Json(UserDto::from(&user)))
    }
}

impl poem_openapi::types::Example for LoginRequest {
    fn example() -> LoginRequest {
        LoginRequest { username: "alice".into(), password: "correct horse battery".into() }
    }
}

impl poem_openapi::types::Example for RoleRequest {
    fn example() -> RoleRequest {
        RoleRequest { role: "admin".into() }
    }
}
