//! The HTTP server: routing, authentication, rate limiting, fault injection and the six API handlers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::{
    BatchDeleteMode, Behaviour, ClientCredential, EmulatorConfig, ForeignDeleteStatus, Role,
};
use crate::fault::{Fault, Faults};
use crate::hunting::{GRAPH_AUDIENCE, Hunting, HuntingApi, HuntingOutcome};
use crate::limits::Limiter;
use crate::store::{Caller, SeedIndicator, Store};
use crate::token::{BearerError, TokenRequest, Tokens};
use crate::validate::{ApiError, binding_error, check_keys, parse_indicator};
use crate::wire::{ImportResult, Indicator};
use crate::{CallRecord, Emulator, EmulatorError, EndpointFamily, Notification};

const MAX_BODY: usize = 32 * 1024 * 1024;
const MAX_BATCH: usize = 500;
const MAX_TOP: usize = 10_000;
const ODATA_CONTENT_TYPE: &str =
    "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8";

/// Shared server state.
pub(crate) struct App {
    pub tenant_id: String,
    pub base_url: String,
    clients: Vec<ClientCredential>,
    page_size: usize,
    capacity: usize,
    clock: Arc<dyn Clock>,
    pub behaviour: RwLock<Behaviour>,
    store: Mutex<Store>,
    pub tokens: Tokens,
    pub limiter: Limiter,
    pub faults: Faults,
    pub calls: Mutex<Vec<CallRecord>>,
    /// What end users saw in block notifications (`Behaviour::notification_log`).
    pub notifications: Mutex<Vec<Notification>>,
    /// Advanced hunting: events, grants, query log (spec §13.13).
    pub hunting: Hunting,
    state_file: Option<PathBuf>,
    save_notify: Arc<Notify>,
    save_lock: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) async fn start(config: EmulatorConfig) -> Result<Emulator, EmulatorError> {
    if !config.listen.ip().is_loopback() {
        return Err(EmulatorError::NonLoopback(config.listen));
    }
    if config.tenant_id.trim().is_empty() {
        return Err(EmulatorError::Config("tenant_id is empty".into()));
    }
    if config.page_size == 0 {
        return Err(EmulatorError::Config("page_size must be at least 1".into()));
    }
    let store = match &config.state_file {
        Some(path) => {
            Store::load(path).map_err(|message| EmulatorError::State { path: path.clone(), message })?
        }
        None => Store::new(),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| EmulatorError::Bind { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| EmulatorError::Bind { addr: config.listen, source })?;
    let save_notify = Arc::new(Notify::new());
    let app = Arc::new(App {
        tenant_id: config.tenant_id.clone(),
        base_url: format!("http://{addr}"),
        clients: config.clients.clone(),
        page_size: config.page_size,
        capacity: config.capacity,
        clock: config.clock.clone(),
        behaviour: RwLock::new(config.behaviour.clone()),
        store: Mutex::new(store),
        tokens: Tokens::new(config.token_lifetime),
        limiter: Limiter::new(config.rate_limits),
        faults: Faults::new(config.fault_seed),
        calls: Mutex::new(Vec::new()),
        notifications: Mutex::new(Vec::new()),
        hunting: Hunting::new(config.hunting.clone()),
        state_file: config.state_file.clone(),
        save_notify: save_notify.clone(),
        save_lock: Mutex::new(()),
    });
    if app.state_file.is_some() {
        tokio::spawn(saver(Arc::downgrade(&app), save_notify));
    }
    let router = axum::Router::new().fallback(dispatch).with_state(app.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stop_rx.await;
        });
        if let Err(e) = served.await {
            tracing::error!(error = %e, "emulator server stopped with an error");
        }
    });
    tracing::info!(%addr, "emulator listening");
    Ok(Emulator { addr, app, stop: Some(stop_tx), task: Some(task) })
}

/// Debounced background writer of the state file.
async fn saver(app: Weak<App>, notify: Arc<Notify>) {
    loop {
        notify.notified().await;
        let Some(app) = app.upgrade() else { break };
        let result = tokio::task::spawn_blocking(move || app.save_state()).await;
        match result {
            Ok(Err(e)) => tracing::warn!(error = %e, "emulator: could not save state file"),
            Err(e) => tracing::warn!(error = %e, "emulator: state saver task failed"),
            Ok(Ok(())) => {}
        }
    }
}

impl App {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn behaviour(&self) -> Behaviour {
        self.behaviour.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn purge(&self) {
        let lag = self.behaviour().expiry_cleanup_lag;
        let removed = lock(&self.store).purge_expired(self.now(), lag);
        if removed > 0 {
            self.mutated();
        }
    }

    fn mutated(&self) {
        if self.state_file.is_some() {
            self.save_notify.notify_one();
        }
    }

    pub(crate) fn all_indicators(&self) -> Vec<Indicator> {
        self.purge();
        lock(&self.store).iter().cloned().collect()
    }

    pub(crate) fn seed(&self, seed: SeedIndicator) -> String {
        let ind = lock(&self.store).seed(seed, self.now());
        self.mutated();
        self.notify(&ind);
        ind.id
    }

    /// Records the block-notification text an end user sees for a new indicator (spec §13.1:
    /// `application`, when set, is shown in place of the blocked file or domain).
    fn notify(&self, ind: &Indicator) {
        if !self.behaviour().notification_log {
            return;
        }
        if let Some(text) = &ind.application {
            lock(&self.notifications).push(Notification {
                indicator_id: ind.id.clone(),
                indicator_type: ind.indicator_type.clone(),
                indicator_value: ind.indicator_value.clone(),
                action: ind.action.clone(),
                created_by: ind.created_by.clone(),
                shown: text.clone(),
            });
        }
    }

    /// Writes the state file atomically (temp file in the same directory, then rename).
    pub(crate) fn save_state(&self) -> std::io::Result<()> {
        let Some(path) = &self.state_file else { return Ok(()) };
        let _guard = lock(&self.save_lock);
        let snapshot = lock(&self.store).snapshot();
        let json = snapshot.to_json().map_err(std::io::Error::other)?;
        write_atomic(path, &json)
    }

    fn caller(&self, client_id: &str, role: Role) -> Caller {
        let display_name = self
            .clients
            .iter()
            .find(|c| c.client_id == client_id)
            .map_or_else(|| client_id.to_owned(), |c| c.display_name.clone());
        Caller { client_id: client_id.to_owned(), display_name, role }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        // The snapshot is private to its owner (mode 0600), like every file iocsync writes.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Token { tenant: String, v2: bool },
    List,
    Submit,
    Get(String),
    Delete(String),
    Import,
    BatchDelete,
    Hunting(HuntingApi),
    MethodNotAllowed(&'static str),
    NotFound,
}

impl Route {
    fn family(&self) -> EndpointFamily {
        match self {
            Route::Token { .. } => EndpointFamily::Token,
            Route::List => EndpointFamily::List,
            Route::Submit => EndpointFamily::Submit,
            Route::Get(_) => EndpointFamily::Get,
            Route::Delete(_) => EndpointFamily::Delete,
            Route::Import => EndpointFamily::Import,
            Route::BatchDelete => EndpointFamily::BatchDelete,
            Route::Hunting(HuntingApi::Mde) => EndpointFamily::AdvancedQueries,
            Route::Hunting(HuntingApi::Graph) => EndpointFamily::RunHuntingQuery,
            Route::MethodNotAllowed(_) | Route::NotFound => EndpointFamily::Other,
        }
    }
}

fn route(method: &Method, path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let post_only = |r: Route| if method == Method::POST { r } else { Route::MethodNotAllowed("POST") };
    if segs.len() >= 3 && segs[1] == "oauth2" {
        let tenant = segs[0].to_owned();
        return match &segs[2..] {
            ["v2.0", "token"] => post_only(Route::Token { tenant, v2: true }),
            ["token"] => post_only(Route::Token { tenant, v2: false }),
            _ => Route::NotFound,
        };
    }
    // Graph: /v1.0/security/runHuntingQuery (also under /beta); Graph paths ignore case.
    if let [version, security, op] = segs.as_slice()
        && (version.eq_ignore_ascii_case("v1.0") || version.eq_ignore_ascii_case("beta"))
        && security.eq_ignore_ascii_case("security")
        && op.eq_ignore_ascii_case("runHuntingQuery")
    {
        return post_only(Route::Hunting(HuntingApi::Graph));
    }
    let mut rest = match segs.split_first() {
        Some((first, rest)) if first.eq_ignore_ascii_case("api") => rest,
        _ => return Route::NotFound,
    };
    if rest.first().is_some_and(|s| s.eq_ignore_ascii_case("v1.0")) {
        rest = &rest[1..];
    }
    match rest {
        [ind] if ind.eq_ignore_ascii_case("indicators") => match *method {
            Method::GET => Route::List,
            Method::POST => Route::Submit,
            _ => Route::MethodNotAllowed("GET, POST"),
        },
        [aq, run] if aq.eq_ignore_ascii_case("advancedqueries") && run.eq_ignore_ascii_case("run") => {
            post_only(Route::Hunting(HuntingApi::Mde))
        }
        [ind, op] if ind.eq_ignore_ascii_case("indicators") && op.eq_ignore_ascii_case("import") => {
            post_only(Route::Import)
        }
        [ind, op] if ind.eq_ignore_ascii_case("indicators") && op.eq_ignore_ascii_case("batchdelete") => {
            post_only(Route::BatchDelete)
        }
        [ind, id] if ind.eq_ignore_ascii_case("indicators") => match *method {
            Method::GET => Route::Get((*id).to_owned()),
            Method::DELETE => Route::Delete((*id).to_owned()),
            _ => Route::MethodNotAllowed("GET, DELETE"),
        },
        _ => Route::NotFound,
    }
}

/// The single entry point: every request goes through here so the call log sees everything.
async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    let at = app.now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let headers = req.headers().clone();
    let route = route(&method, uri.path());
    let mut rec = CallRecord {
        at,
        method: method.to_string(),
        path: uri.path().to_owned(),
        family: route.family(),
        status: 0,
        batch_size: None,
        client_id: None,
        throttled: false,
        fault: None,
        written: Vec::new(),
    };
    let resp = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(body) => handle(&app, route, &uri, &headers, &body, &mut rec).await,
        Err(_) => api_error(&ApiError::bad(
            "InvalidRequestBody",
            format!("The request body could not be read or is larger than {MAX_BODY} bytes."),
        )),
    };
    rec.status = resp.status().as_u16();
    rec.throttled = rec.status == 429;
    tracing::debug!(method = %rec.method, path = %rec.path, status = rec.status, "emulator call");
    lock(&app.calls).push(rec);
    resp
}

async fn handle(
    app: &App,
    route: Route,
    uri: &http::Uri,
    headers: &HeaderMap,
    body: &Bytes,
    rec: &mut CallRecord,
) -> Response {
    match route {
        Route::MethodNotAllowed(allow) => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
            return r;
        }
        Route::NotFound => {
            return api_error(&ApiError::new(404, "NotFound", format!("No route matches {}.", uri.path())));
        }
        _ => {}
    }
    let family = route.family();
    let fault = app.faults.check(family);
    rec.fault = fault;
    let mut drop_after = false;
    match fault {
        Some(Fault::Status(code)) => return fault_status(code),
        Some(Fault::Drop) => return dropped(StatusCode::OK),
        Some(Fault::Malformed) => return malformed(),
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::DropAfterCommit) => drop_after = true,
        None => {}
    }
    let resp = handle_route(app, route, uri, headers, body, rec);
    if drop_after { dropped(resp.status()) } else { resp }
}

fn handle_route(
    app: &App,
    route: Route,
    uri: &http::Uri,
    headers: &HeaderMap,
    body: &Bytes,
    rec: &mut CallRecord,
) -> Response {
    let base = request_base(app, headers);
    if let Route::Token { tenant, v2 } = &route {
        return token(app, tenant, *v2, body, headers, &base, rec);
    }
    // Authentication and authorization.
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Route::Hunting(api) = route {
        return hunting(app, api, auth, body, rec);
    }
    let info = match app.tokens.validate(auth, app.now()) {
        Ok(info) => info,
        Err(BearerError::Unauthorized(m)) => {
            if app.behaviour().unauthorized_empty_body {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::UNAUTHORIZED;
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                return r;
            }
            return api_error(&ApiError::new(401, "Unauthorized", m));
        }
        Err(BearerError::Forbidden(m)) => return api_error(&ApiError::new(403, "Forbidden", m)),
    };
    rec.client_id = Some(info.client_id.clone());
    if let Err(secs) = app.limiter.check(&info.client_id, route.family(), app.now()) {
        let mut r = api_error(&ApiError::new(
            429,
            "TooManyRequests",
            format!("Rate limit is exceeded. Try again in {secs} seconds."),
        ));
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    app.purge();
    let caller = app.caller(&info.client_id, info.role);
    let result = match route {
        Route::List => list(app, &caller, uri, &base),
        Route::Get(id) => get(app, &caller, &id, &base),
        Route::Submit => submit(app, &caller, body, &base),
        Route::Import => import(app, &caller, body, &base, rec),
        Route::Delete(id) => delete(app, &caller, &id, rec),
        Route::BatchDelete => batch_delete(app, &caller, body, rec),
        Route::Token { .. } | Route::Hunting(_) | Route::MethodNotAllowed(_) | Route::NotFound => {
            Err(ApiError::new(404, "NotFound", "No such route."))
        }
    };
    result.unwrap_or_else(|e| api_error(&e))
}

/// One advanced-hunting call: the token must be for the API's resource (Graph or WindowsDefenderATP)
/// and the app must hold the API's permission; then the rate window, then the query.
fn hunting(app: &App, api: HuntingApi, auth: Option<&str>, body: &Bytes, rec: &mut CallRecord) -> Response {
    let info = match app.tokens.lookup(auth, app.now()) {
        Ok(info) => info,
        Err(BearerError::Unauthorized(m) | BearerError::Forbidden(m)) => {
            return api_error(&ApiError::new(401, "Unauthorized", m));
        }
    };
    rec.client_id = Some(info.client_id.clone());
    let loopback = info.audience.starts_with("http://127.0.0.1") || info.audience.starts_with("http://[::1]");
    let audience_ok = loopback
        || match api {
            HuntingApi::Graph => info.audience == GRAPH_AUDIENCE,
            HuntingApi::Mde => crate::token::API_AUDIENCES.contains(&info.audience.as_str()),
        };
    if !audience_ok {
        let want = match api {
            HuntingApi::Graph => "https://graph.microsoft.com/.default",
            HuntingApi::Mde => "https://api.securitycenter.microsoft.com/.default",
        };
        return api_error(&ApiError::new(
            401,
            "Unauthorized",
            format!(
                "The access token audience '{}' is not valid for this API; request scope {want}.",
                info.audience
            ),
        ));
    }
    if !lock(&app.hunting.grants).allows(&info.client_id, api) {
        return api_error(&ApiError::new(
            403,
            "Forbidden",
            format!(
                "The application does not have the required permission ({}) to access the resource.",
                api.role()
            ),
        ));
    }
    if let Err(secs) = app.limiter.check(&info.client_id, rec.family, app.now()) {
        let mut r = api_error(&ApiError::new(
            429,
            "TooManyRequests",
            format!("Rate limit is exceeded. Try again in {secs} seconds."),
        ));
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return r;
    }
    match app.hunting.run(api, body, app.now()) {
        HuntingOutcome::Ok(v) => json_response(StatusCode::OK, &v),
        HuntingOutcome::Err(status, code, message) => {
            let mut r = api_error(&ApiError::new(status, code, message));
            if status == 429 {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(60u32));
            }
            r
        }
    }
}

/// `http://{Host}` as the client called us (echoed in `@odata.context` / `nextLink`).
fn request_base(app: &App, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
        })
        .map_or_else(|| app.base_url.clone(), |h| format!("http://{h}"))
}

// ---------------------------------------------------------------- responses

fn odata(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ODATA_CONTENT_TYPE));
    h.insert("OData-Version", HeaderValue::from_static("4.0"));
    r
}

fn odata_json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(b) => odata(StatusCode::OK, b),
        Err(e) => api_error(&ApiError::new(500, "InternalServerError", format!("serialization failed: {e}"))),
    }
}

pub(crate) fn api_error(e: &ApiError) -> Response {
    let body =
        json!({"error": {"code": e.code, "message": e.message, "target": uuid::Uuid::new_v4().to_string()}});
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = odata(status, body.to_string().into_bytes());
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
    }
    r
}

fn fault_status(code: u16) -> Response {
    let (code_str, msg) = match code {
        429 => ("TooManyRequests", "Rate limit is exceeded (injected)."),
        500 => ("InternalServerError", "An internal error occurred (injected)."),
        502 => ("BadGateway", "Bad gateway (injected)."),
        503 => ("ServiceUnavailable", "The service is temporarily unavailable (injected)."),
        504 => ("GatewayTimeout", "The gateway timed out (injected)."),
        _ => ("InjectedFault", "Injected fault."),
    };
    let mut r = api_error(&ApiError::new(code, code_str, msg));
    if code == 429 {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// Headers and a partial body, then a body error: hyper aborts the connection mid-response.
fn dropped(status: StatusCode) -> Response {
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"{\"value\":[{\"id\":\"")),
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected connection drop")),
    ];
    let mut r = Response::new(Body::from_stream(futures::stream::iter(chunks)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ODATA_CONTENT_TYPE));
    r
}

fn malformed() -> Response {
    odata(StatusCode::OK, b"{\"@odata.context\":\"http://emulator/api/$metadata#Indicators\",\"value\":[{\"id\":\"1\",\"indicatorValue\":\"".to_vec())
}

fn entra_error(f: &crate::token::EntraFailure, now: DateTime<Utc>) -> Response {
    let trace = uuid::Uuid::new_v4().to_string();
    let corr = uuid::Uuid::new_v4().to_string();
    let ts = now.format("%Y-%m-%d %H:%M:%SZ").to_string();
    let body = json!({
        "error": f.error,
        "error_description": format!("{}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}", f.description),
        "error_codes": [f.code],
        "timestamp": ts,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": format!("https://login.microsoftonline.com/error?code={}", f.code),
    });
    json_response(StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_REQUEST), &body)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    r
}

// ---------------------------------------------------------------- token

fn token(
    app: &App,
    tenant: &str,
    v2: bool,
    body: &Bytes,
    headers: &HeaderMap,
    base: &str,
    rec: &mut CallRecord,
) -> Response {
    let mut form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    // client_secret_basic: `Authorization: Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
    if let Some((id, secret)) = basic_credentials(headers) {
        form.entry("client_id".into()).or_insert(id);
        form.entry("client_secret".into()).or_insert(secret);
    }
    rec.client_id = form.get("client_id").cloned();
    let mut endpoint_urls = Vec::new();
    for b in [app.base_url.as_str(), base] {
        endpoint_urls.push(format!("{b}/{tenant}/oauth2/v2.0/token"));
        endpoint_urls.push(format!("{b}/{tenant}/oauth2/token"));
    }
    let now = app.now();
    let req = TokenRequest {
        form: &form,
        tenant_ok: tenant.eq_ignore_ascii_case(&app.tenant_id),
        tenant,
        v2,
        endpoint_urls: &endpoint_urls,
        base_url: &app.base_url,
        now,
        hunting_grants: &lock(&app.hunting.grants).clone(),
    };
    match app.tokens.issue(&req, &app.clients) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(f) => entra_error(&f, now),
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let h = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, value) = h.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(value.trim()).ok()?;
    let (id, secret) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
    let decode =
        |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    Some((decode(id), decode(secret)))
}

// ---------------------------------------------------------------- API handlers

#[derive(Serialize)]
struct Entity<'a> {
    #[serde(rename = "@odata.context")]
    context: String,
    #[serde(flatten)]
    indicator: &'a Indicator,
}

#[derive(Serialize)]
struct ListBody<T: Serialize> {
    #[serde(rename = "@odata.context")]
    context: String,
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

fn entity(base: &str, ind: &Indicator) -> Response {
    odata_json(&Entity { context: format!("{base}/api/$metadata#Indicators/$entity"), indicator: ind })
}

/// A row as `Behaviour::odd_foreign_fields` renders another creator's indicator: several keys
/// carry a JSON type the spec does not give them.
fn odd_row(ind: &Indicator) -> Value {
    let mut v = serde_json::to_value(ind).unwrap_or(Value::Null);
    if let Value::Object(obj) = &mut v {
        obj.insert("severity".into(), json!(3));
        obj.insert("rbacGroupNames".into(), json!("x"));
        obj.insert("rbacGroupIds".into(), json!(7));
        obj.insert("expirationTime".into(), json!(12));
        obj.insert("generateAlert".into(), json!("yes"));
        obj.insert("bypassDurationHours".into(), json!("2h"));
        obj.insert("title".into(), json!(42));
        obj.insert("createdByDisplayName".into(), json!({}));
        obj.insert("mitreTechniques".into(), json!([1, {"id": "T1071"}]));
    }
    v
}

/// The HTML page a proxy or a wrong host answers with (`Behaviour::list_404_html`).
fn html_404() -> Response {
    let mut r = Response::new(Body::from(
        "<!DOCTYPE html><html><head><title>404 - Not Found</title></head><body><h1>404 - File or directory not found.</h1></body></html>",
    ));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

fn odata_err(msg: impl Into<String>) -> ApiError {
    ApiError::bad("ODataError", msg)
}

fn list(app: &App, caller: &Caller, uri: &http::Uri, base: &str) -> Result<Response, ApiError> {
    let mut filter_raw: Option<String> = None;
    let mut top: Option<usize> = None;
    let mut skip: usize = 0;
    let mut seen = Vec::new();
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if !k.starts_with('$') {
            continue;
        }
        if seen.contains(&k) {
            return Err(odata_err(format!(
                "Query option '{k}' was specified more than once; it must be specified at most once."
            )));
        }
        seen.push(k.clone());
        match k.as_ref() {
            "$filter" => filter_raw = Some(v.into_owned()),
            "$top" => {
                let n: usize = v.trim().parse().map_err(|_| odata_err(format!("Invalid value '{v}' for $top query option found. The $top query option requires a non-negative integer value.")))?;
                if n > MAX_TOP {
                    return Err(odata_err(format!(
                        "The limit of '{MAX_TOP}' for Top query has been exceeded. The value from the incoming request is '{n}'."
                    )));
                }
                top = Some(n);
            }
            "$skip" => {
                skip = v.trim().parse().map_err(|_| odata_err(format!("Invalid value '{v}' for $skip query option found. The $skip query option requires a non-negative integer value.")))?;
            }
            "$skiptoken" => {
                skip = decode_skip_token(&v)
                    .ok_or_else(|| odata_err(format!("Invalid value '{v}' for $skiptoken.")))?;
            }
            other => {
                return Err(odata_err(format!("Query option '{other}' is not supported by this endpoint.")));
            }
        }
    }
    let filter = match &filter_raw {
        Some(f) => {
            Some(crate::odata::parse(f).map_err(|e| odata_err(format!("Invalid filter clause: {e}.")))?)
        }
        None => None,
    };
    let behaviour = app.behaviour();
    if behaviour.list_404_html {
        return Ok(html_404());
    }
    let store = lock(&app.store);
    let rows: Vec<&Indicator> = store
        .iter()
        .filter(|i| caller.sees(i))
        .filter(|i| filter.as_ref().is_none_or(|f| crate::odata::eval(f, i)))
        .collect();
    // Where this page really starts: `$skip` as asked, or shifted/ignored by a switch.
    let nominal_len = app.page_size.min(top.unwrap_or(usize::MAX)).max(1);
    let start = if behaviour.list_ignores_skip {
        0
    } else {
        skip.saturating_sub(behaviour.list_shift.saturating_mul(skip / nominal_len))
    };
    let after_start = rows.len().saturating_sub(start);
    // Default: `$top` sizes the page and `@odata.nextLink` leads on (what a 15,000-row tenant
    // listed with `$top=10000` in 2 calls implies, spec §3 E1). Strict OData: `$top` caps the total.
    let strict = behaviour.top_limits_total;
    let wanted = if strict { top.map_or(after_start, |t| t.min(after_start)) } else { after_start };
    let page_len = wanted.min(app.page_size).min(top.unwrap_or(usize::MAX));
    let page: Vec<&Indicator> = rows.iter().skip(start).take(page_len).copied().collect();
    if page.is_empty() && behaviour.empty_list_404 {
        return Err(ApiError::new(404, "ResourceNotFound", "No indicators found."));
    }
    // Ignoring `$skip`, the server still believes it pages: more rows lie past `$skip` + this page.
    let more = if behaviour.list_ignores_skip {
        skip.saturating_add(page_len) < rows.len()
    } else {
        page_len < wanted
    };
    let next_link = more.then(|| {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        let mut q = Vec::new();
        if let Some(f) = &filter_raw {
            q.push(format!("$filter={}", utf8_percent_encode(f, NON_ALPHANUMERIC)));
        }
        if let Some(t) = top {
            q.push(format!("$top={}", if strict { t - page_len } else { t }));
        }
        if behaviour.next_link_skip_token {
            q.push(format!("$skiptoken={}", encode_skip_token(skip + page_len)));
        } else {
            q.push(format!("$skip={}", skip + page_len));
        }
        format!("{base}{}?{}", uri.path(), q.join("&"))
    });
    let context = format!("{base}/api/$metadata#Indicators");
    if behaviour.odd_foreign_fields {
        let value = page
            .iter()
            .map(|i| {
                if i.created_by == caller.client_id {
                    serde_json::to_value(i).unwrap_or(Value::Null)
                } else {
                    odd_row(i)
                }
            })
            .collect();
        return Ok(odata_json(&ListBody::<Value> { context, value, next_link }));
    }
    Ok(odata_json(&ListBody { context, value: page, next_link }))
}

/// Opaque paging token (base64url of `skip:N`), used when `next_link_skip_token` is on.
fn encode_skip_token(skip: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("skip:{skip}"))
}

fn decode_skip_token(token: &str) -> Option<usize> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    std::str::from_utf8(&raw).ok()?.strip_prefix("skip:")?.parse().ok()
}

fn parse_id(id: &str) -> Option<u64> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(404, "ResourceNotFound", format!("Indicator {id} was not found."))
}

fn get(app: &App, caller: &Caller, id: &str, base: &str) -> Result<Response, ApiError> {
    let store = lock(&app.store);
    let ind =
        parse_id(id).and_then(|n| store.get(n)).filter(|i| caller.sees(i)).ok_or_else(|| not_found(id))?;
    if app.behaviour().odd_foreign_fields && ind.created_by != caller.client_id {
        let mut v = odd_row(ind);
        if let Value::Object(obj) = &mut v {
            obj.insert("@odata.context".into(), json!(format!("{base}/api/$metadata#Indicators/$entity")));
        }
        return Ok(odata_json(&v));
    }
    Ok(entity(base, ind))
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad("InvalidRequestBody", "The request body is empty; send a JSON object."));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad("InvalidRequestBody", format!("The request body is not valid JSON: {e}.")))
}

fn submit(app: &App, caller: &Caller, body: &Bytes, base: &str) -> Result<Response, ApiError> {
    let v = parse_body(body)?;
    let behaviour = app.behaviour();
    let now = app.now();
    let input = parse_indicator(&v, &behaviour, now)?;
    let up = lock(&app.store).upsert(input, caller, now, app.capacity, &behaviour)?;
    app.mutated();
    if up.created {
        app.notify(&up.indicator);
    }
    Ok(entity(base, &up.indicator))
}

fn import(
    app: &App,
    caller: &Caller,
    body: &Bytes,
    base: &str,
    rec: &mut CallRecord,
) -> Result<Response, ApiError> {
    let v = parse_body(body)?;
    let items = wrapped_array(&v, "Indicators", "ImportIndicatorsRequest", "an array", "indicators", rec)?;
    let behaviour = app.behaviour();
    let now = app.now();
    if behaviour.whole_request_400 {
        // ASP.NET model binding runs before the handler: one bad item fails the whole request.
        for (n, item) in items.iter().enumerate() {
            if let Some(e) = binding_error(item, &behaviour, now) {
                let value = item.get("indicatorValue").and_then(Value::as_str).unwrap_or_default();
                let value: String = value.chars().take(100).collect();
                return Err(ApiError::bad(
                    "InvalidRequestBody",
                    format!("The request is invalid. Indicators[{n}] ('{value}'): {}", e.message),
                ));
            }
        }
    }
    let mut results = Vec::with_capacity(items.len());
    let mut created = Vec::new();
    {
        let mut store = lock(&app.store);
        for item in items {
            let indicator = item.get("indicatorValue").and_then(Value::as_str).unwrap_or_default().to_owned();
            let outcome = parse_indicator(item, &behaviour, now)
                .and_then(|input| store.upsert(input, caller, now, app.capacity, &behaviour));
            results.push(match outcome {
                Ok(up) => {
                    let id = up.indicator.id.clone();
                    rec.written.push(id.clone());
                    if up.created {
                        created.push(up.indicator);
                    }
                    ImportResult { id: Some(id), indicator, is_failed: false, failure_reason: None }
                }
                Err(e) => {
                    ImportResult { id: None, indicator, is_failed: true, failure_reason: Some(e.message) }
                }
            });
        }
    }
    if results.iter().any(|r| !r.is_failed) {
        app.mutated();
    }
    for ind in &created {
        app.notify(ind);
    }
    let body = if behaviour.import_odata_context {
        json!({"@odata.context": format!("{base}/api/$metadata#Collection(microsoft.windowsDefenderATP.api.ImportIndicatorResult)"), "value": results})
    } else {
        json!({ "value": results })
    };
    Ok(odata_json(&body))
}

fn foreign_error(app: &App, id: &str) -> ApiError {
    match app.behaviour().foreign_delete {
        ForeignDeleteStatus::Forbidden => ApiError::new(
            403,
            "Forbidden",
            format!(
                "Indicator {id} was created by another application; Ti.ReadWrite only allows changing your own indicators."
            ),
        ),
        ForeignDeleteStatus::NotFound => not_found(id),
    }
}

fn delete(app: &App, caller: &Caller, id: &str, rec: &mut CallRecord) -> Result<Response, ApiError> {
    let n = parse_id(id).ok_or_else(|| not_found(id))?;
    let mut store = lock(&app.store);
    let ind = store.get(n).ok_or_else(|| not_found(id))?;
    if !caller.sees(ind) {
        return Err(foreign_error(app, id));
    }
    store.delete(n, app.now());
    drop(store);
    rec.written.push(id.to_owned());
    app.mutated();
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

/// The array inside a one-key wrapper body (`{"Indicators": [...]}`, `{"IndicatorIds": [...]}`),
/// with the errors Defender gives for a wrong shape, a wrong-case key or a missing array. Also
/// records the batch size and refuses an empty or over-500 batch, as E4 and E6 both do.
fn wrapped_array<'a>(
    v: &'a Value,
    key: &str,
    type_name: &str,
    what: &str,
    noun: &str,
    rec: &mut CallRecord,
) -> Result<&'a Vec<Value>, ApiError> {
    let Value::Object(obj) = v else {
        return Err(ApiError::bad(
            "InvalidRequestBody",
            format!("The request body must be a JSON object {{\"{key}\": [...]}}."),
        ));
    };
    check_keys(obj, &[key], &[], type_name)?;
    let items = match obj.get(key) {
        None | Some(Value::Null) => {
            return Err(ApiError::bad("MissingRequiredParameter", format!("Parameter {key} is missing")));
        }
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(ApiError::bad("InvalidRequestBody", format!("Property '{key}' must be {what}.")));
        }
    };
    rec.batch_size = Some(items.len());
    if items.is_empty() {
        return Err(ApiError::bad(
            "BadRequest",
            format!("The {key} list is empty; send between 1 and {MAX_BATCH} {noun}."),
        ));
    }
    if items.len() > MAX_BATCH {
        return Err(ApiError::bad(
            "MaximumBatchSizeExceeded",
            format!("Maximum batch size exceeded. Received: {}, allowed: {MAX_BATCH}", items.len()),
        ));
    }
    Ok(items)
}

fn batch_delete(
    app: &App,
    caller: &Caller,
    body: &Bytes,
    rec: &mut CallRecord,
) -> Result<Response, ApiError> {
    let v = parse_body(body)?;
    let items = wrapped_array(&v, "IndicatorIds", "BatchDeleteRequest", "an array of strings", "ids", rec)?;
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let Some(s) = item.as_str() else {
            return Err(ApiError::bad(
                "InvalidRequestBody",
                format!("IndicatorIds must be strings; got {item}."),
            ));
        };
        let n = parse_id(s).ok_or_else(|| {
            ApiError::bad("InvalidInput", format!("Indicator id '{s}' is invalid: ids are decimal integers."))
        })?;
        ids.push((s.to_owned(), n));
    }
    let mode = app.behaviour().batch_delete;
    let mut store = lock(&app.store);
    let mut missing = Vec::new();
    let mut foreign = Vec::new();
    let mut present = Vec::new();
    for (s, n) in &ids {
        match store.get(*n) {
            None => missing.push(s.clone()),
            Some(i) if !caller.sees(i) => foreign.push(s.clone()),
            Some(_) => present.push(*n),
        }
    }
    let problem = if let Some(f) = foreign.first() {
        Some(match foreign_error(app, f) {
            ApiError { status: 404, .. } => ApiError::new(
                404,
                "ResourceNotFound",
                format!("Indicators not found: {}.", [foreign.clone(), missing.clone()].concat().join(", ")),
            ),
            e => e,
        })
    } else if !missing.is_empty() {
        Some(ApiError::new(404, "ResourceNotFound", format!("Indicators not found: {}.", missing.join(", "))))
    } else {
        None
    };
    if problem.is_none() || mode == BatchDeleteMode::Partial {
        let now = app.now();
        for n in &present {
            store.delete(*n, now);
            rec.written.push(n.to_string());
        }
        drop(store);
        if !present.is_empty() {
            app.mutated();
        }
    }
    if let Some(e) = problem {
        return Err(e);
    }
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route(&Method::GET, "/api/indicators"), Route::List);
        assert_eq!(route(&Method::GET, "/api/v1.0/indicators/"), Route::List);
        assert_eq!(route(&Method::POST, "/api/indicators/import"), Route::Import);
        assert_eq!(route(&Method::POST, "/api/v1.0/indicators/BatchDelete"), Route::BatchDelete);
        assert_eq!(route(&Method::DELETE, "/api/indicators/12"), Route::Delete("12".into()));
        assert_eq!(route(&Method::PUT, "/api/indicators/12"), Route::MethodNotAllowed("GET, DELETE"));
        assert_eq!(route(&Method::GET, "/api/indicators/import"), Route::MethodNotAllowed("POST"));
        assert_eq!(
            route(&Method::POST, "/t/oauth2/v2.0/token"),
            Route::Token { tenant: "t".into(), v2: true }
        );
        assert_eq!(route(&Method::GET, "/t/oauth2/token"), Route::MethodNotAllowed("POST"));
        assert_eq!(route(&Method::GET, "/api/machines"), Route::NotFound);
    }
}
