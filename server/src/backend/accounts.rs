//! The accounts area's server functions: who is signed in, register, log in,
//! log out (the session cookie travels in the [`Reply`]).

use app::accounts::{Credentials, User};
use app::error::AppError;
use app::serverfn::{BoxFuture, Reply};
use axum::http::request::Parts;

use super::{auth_refused, refused, Services};
use crate::service::{accounts, RequestInfo};

impl app::accounts::AccountsBackend for Services {
    fn current_user(&self, req: Parts) -> BoxFuture<'_, Result<Option<User>, AppError>> {
        Box::pin(async move { Ok(self.user(&req).await?.1.map(|s| s.user)) })
    }

    fn register(
        &self,
        req: Parts,
        creds: Credentials,
    ) -> BoxFuture<'_, Result<Reply<User>, AppError>> {
        Box::pin(async move {
            let info = RequestInfo::from_parts(&req, &self.accounts);
            let (user, cookie) = accounts::register(&self.db, &self.accounts, &info, creds)
                .await
                .map_err(auth_refused)?;
            Ok(Reply {
                value: user,
                set_cookie: Some(cookie.0),
            })
        })
    }

    fn login(
        &self,
        req: Parts,
        creds: Credentials,
    ) -> BoxFuture<'_, Result<Reply<User>, AppError>> {
        Box::pin(async move {
            let info = RequestInfo::from_parts(&req, &self.accounts);
            let (user, cookie) = accounts::login(&self.db, &self.accounts, &info, creds)
                .await
                .map_err(auth_refused)?;
            Ok(Reply {
                value: user,
                set_cookie: Some(cookie.0),
            })
        })
    }

    fn logout(&self, req: Parts) -> BoxFuture<'_, Result<Reply<()>, AppError>> {
        Box::pin(async move {
            let info = RequestInfo::from_parts(&req, &self.accounts);
            let cookie = accounts::logout(&self.db, &self.accounts, &info)
                .await
                .map_err(refused)?;
            Ok(Reply {
                value: (),
                set_cookie: Some(cookie.0),
            })
        })
    }
}
