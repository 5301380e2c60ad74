//! Who is asking: the session cookie (local users) or the proxy's user header (only from the
//! configured proxy addresses), then the CSRF token of every state-changing request, before
//! any handler runs. Also the sign-in and sign-out handlers.

use super::session::{
    LOGIN_COOKIE, SESSION_COOKIE, address_key, credential_fingerprint, random_token, same_token,
};
use super::{Console, CurrentUser, pages};
use crate::config::ConsoleAuth;
use crate::daemon::PeerAddr;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

/// The largest form body accepted (a paste of many values fits; a flood does not).
pub(super) const MAX_FORM_BYTES: usize = 2 * 1024 * 1024;

/// The value of cookie `name` in the request's `Cookie` headers.
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Secure` over TLS; an empty value with
/// `Max-Age=0` clears it.
pub(super) fn set_cookie(name: &str, value: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let clear = if value.is_empty() { "; Max-Age=0" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{clear}"))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    (status, pages::message(title, message)).into_response()
}

/// Authenticates the request and checks its CSRF token; handlers find a [`CurrentUser`] in
/// the request's extensions.
pub(super) async fn authenticate(State(c): State<Arc<Console>>, req: Request, next: Next) -> Response {
    let now = c.clock.now();
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
    let token = cookie(req.headers(), SESSION_COOKIE);
    let mut new_session = None;
    let session = match &c.config.console.auth {
        ConsoleAuth::Local { users_file } => match token.as_deref().and_then(|t| c.sessions.get(t, now)) {
            // A user removed from the file (or given another role) is checked at every request.
            // A users file that does not read refuses the request (the session is kept for when
            // it is fixed); the detail goes to the log, not to the page.
            Some(mut s) => match super::users::UsersFile::load(users_file)
                .inspect_err(|e| tracing::error!("{e:#}"))
                .map(|f| f.users.into_iter().find(|u| u.name == s.user))
            {
                Err(_) => {
                    // Signing out needs no user record: let it through and forget the session.
                    if req.uri().path() == "/logout" {
                        if let Some(t) = token.as_deref() {
                            c.sessions.remove(t);
                        }
                        return Redirect::to("/login").into_response();
                    }
                    return page(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Console unavailable",
                        "The console cannot read its users file: the daemon's log says why. Nothing was changed.",
                    );
                }
                Ok(found) => match found {
                    Some(u) if credential_fingerprint(&u.password_hash) == s.credential => {
                        s.role = u.role;
                        s
                    }
                    found => {
                        if let Some(t) = token.as_deref() {
                            c.sessions.remove(t);
                        }
                        if found.is_some() {
                            return page(
                                StatusCode::UNAUTHORIZED,
                                "Signed out",
                                "The password of this user was changed: sign in again.",
                            );
                        }
                        return page(
                            StatusCode::UNAUTHORIZED,
                            "Signed out",
                            "This user no longer exists in the console's users file.",
                        );
                    }
                },
            },
            None if req.method() == Method::GET || req.method() == Method::HEAD => {
                let next = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let to = format!(
                    "/login?next={}",
                    url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                return Redirect::to(&to).into_response();
            }
            None => {
                return page(
                    StatusCode::UNAUTHORIZED,
                    "Signed out",
                    "Your session has ended (signed out, idle too long, or the daemon restarted). Sign in again at /login; nothing was changed.",
                );
            }
        },
        ConsoleAuth::Proxy { addresses, user_header, roles, default_role } => {
            let peer = peer.map(|ip| ip.to_canonical());
            let from_proxy = peer.is_some_and(|ip| addresses.iter().any(|n| n.contains(&ip)));
            if !from_proxy {
                let who = peer.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
                tracing::warn!(peer = %who, "console request refused: not from a configured proxy");
                return page(
                    StatusCode::FORBIDDEN,
                    "Not through the proxy",
                    &format!(
                        "This console signs users in through a reverse proxy. The request came from {who}, which is not in console.proxy_addresses, so its {user_header} header is not trusted."
                    ),
                );
            }
            if req.headers().get_all(user_header.as_str()).iter().count() > 1 {
                tracing::warn!("console request refused: the {user_header} header was sent more than once");
                return page(
                    StatusCode::BAD_REQUEST,
                    "Ambiguous user",
                    &format!(
                        "The request names a user in more than one {user_header} header: the proxy must replace the header, not append to it."
                    ),
                );
            }
            let Some(name) = req
                .headers()
                .get(user_header.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
            else {
                return page(
                    StatusCode::UNAUTHORIZED,
                    "No user",
                    &format!(
                        "The proxy did not name a user in the {user_header} header: check its configuration."
                    ),
                );
            };
            let role = roles.get(&name).copied().unwrap_or(*default_role);
            match token
                .as_deref()
                .and_then(|t| c.sessions.get(t, now))
                .filter(|s| s.user == name && s.role == role)
            {
                Some(s) => s,
                None => {
                    let (tok, s) = c.sessions.create(&name, role, "", now);
                    super::routes::audit(&c, &name, "login", &serde_json::json!({"via": "proxy"}));
                    new_session = Some(tok);
                    s
                }
            }
        }
    };
    let user = CurrentUser { name: session.user, role: session.role, csrf: session.csrf };
    let mut req = req;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "The form is larger than 2 MiB: send fewer values at once.",
            );
        };
        let sent =
            url::form_urlencoded::parse(&bytes).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned());
        if !sent.is_some_and(|t| same_token(&t, &user.csrf)) {
            tracing::warn!(user = %user.name, path = %parts.uri.path(), "console request refused: missing or stale CSRF token");
            return page(
                StatusCode::FORBIDDEN,
                "Form expired",
                "The form's security token is missing or stale (an old tab, or a request from another site). Reload the page and try again; nothing was changed.",
            );
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(user);
    let mut resp = next.run(req).await;
    if let Some(tok) = new_session {
        resp.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &tok, c.secure_cookies));
    }
    resp
}

/// Query of the sign-in page.
#[derive(Debug, serde::Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

/// `GET /login`.
pub(super) async fn login_page(
    State(c): State<Arc<Console>>,
    q: axum::extract::Query<LoginQuery>,
) -> Response {
    if c.proxied() {
        return page(
            StatusCode::OK,
            "Sign in",
            "This console signs users in through your organisation's proxy: open it through the proxy's address.",
        );
    }
    let token = random_token();
    let mut resp = pages::login(&token, q.next.as_deref().unwrap_or("/"), None).into_response();
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &token, c.secure_cookies));
    resp
}

/// The sign-in form.
#[derive(Debug, serde::Deserialize)]
pub(super) struct LoginForm {
    user: String,
    password: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

/// Where to go after sign-in: a local path only (no open redirect).
fn local_path(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        // Browsers drop tabs and newlines from URLs: "/\t/evil.example" would become "//evil.example".
        && !next.chars().any(char::is_control);
    if local { next } else { "/" }
}

/// `POST /login`.
pub(super) async fn login(
    State(c): State<Arc<Console>>,
    axum::Extension(peer): axum::Extension<PeerAddr>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<LoginForm>,
) -> Response {
    let ConsoleAuth::Local { users_file } = &c.config.console.auth else {
        return page(StatusCode::NOT_FOUND, "Sign in", "This console signs users in through the proxy.");
    };
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|t| same_token(&t, &f.csrf)) {
        return page(
            StatusCode::FORBIDDEN,
            "Form expired",
            "The sign-in form is stale: reload /login and try again.",
        );
    }
    if f.user.is_empty() || f.user.chars().count() > 128 || f.user.chars().any(char::is_control) {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "A user name is 1 to 128 characters without control characters.",
        );
    }
    let now = c.clock.now();
    let keys = vec![format!("user:{}", f.user), address_key(peer.0.ip())];
    let retry = |wait: chrono::Duration| {
        let mins = (wait.num_seconds() + 59) / 60;
        let mut r = page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            &format!("Too many failed sign-ins for this user or address: try again in {mins} minute(s)."),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.num_seconds().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    };
    if let Some(wait) = c.limiter.locked(&keys, now) {
        tracing::warn!(user = ?f.user, peer = %peer.0.ip(), "console sign-in refused: too many failures");
        return retry(wait);
    }
    let users = match super::users::UsersFile::load(users_file) {
        Ok(u) => u,
        Err(e) => {
            // The detail (path, the offending line) goes to the log, not to an unknown visitor.
            tracing::error!("{e:#}");
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign-in unavailable",
                "The console cannot read its users file: the daemon's log says why.",
            );
        }
    };
    // At most two password checks at once (each takes about 19 MiB): more at once get 429.
    let Ok(_permit) = c.verifying.try_acquire() else {
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            "Busy",
            "Other sign-ins are being checked: try again in a moment.",
        );
    };
    let (name, password) = (f.user.clone(), f.password);
    let found = tokio::task::spawn_blocking(move || {
        users
            .verify(&name, &password)
            .map(|u| (u.name.clone(), u.role, credential_fingerprint(&u.password_hash)))
    })
    .await
    .ok()
    .flatten();
    let Some((name, role, credential)) = found else {
        c.limiter.fail(&keys, now);
        tracing::warn!(user = ?f.user, peer = %peer.0.ip(), "console sign-in failed");
        let token = random_token();
        let mut resp =
            (StatusCode::UNAUTHORIZED, pages::login(&token, &f.next, Some("Wrong user name or password.")))
                .into_response();
        resp.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &token, c.secure_cookies));
        return resp;
    };
    c.limiter.succeed(&keys[0]);
    let (token, _) = c.sessions.create(&name, role, &credential, now);
    super::routes::audit(&c, &name, "login", &serde_json::json!({"peer": peer.0.ip().to_string()}));
    let mut resp = Redirect::to(local_path(&f.next)).into_response();
    let h = resp.headers_mut();
    h.append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &token, c.secure_cookies));
    h.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", c.secure_cookies));
    resp
}

/// `POST /logout`: the session is forgotten on the server, not only in the browser.
pub(super) async fn logout(
    State(c): State<Arc<Console>>,
    axum::Extension(user): axum::Extension<CurrentUser>,
    headers: HeaderMap,
) -> Response {
    if let Some(t) = cookie(&headers, SESSION_COOKIE) {
        c.sessions.remove(&t);
    }
    super::routes::audit(&c, &user.name, "logout", &serde_json::Value::Null);
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", c.secure_cookies));
    resp
}
