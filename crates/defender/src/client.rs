//! The Defender Indicators API client: token handling, pacing, retries, paging, batching.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use iocsync_core::pacing::{CallFamily, CallStamp, Pacer};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use secrecy::zeroize::Zeroize as _;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::Mutex;
use url::Url;

use crate::config::{ClientConfig, RetryPolicy, parse_secure_url, scope_for};
use crate::error::{Error, ErrorKind};
use crate::stats::{CallStats, Counters};
use crate::token::{AccessToken, CachedToken, EntraError, PreparedCredential, TokenResponse, refresh_after};
use crate::wire::{
    BatchDeleteRequest, ErrorEnvelope, FailureOrigin, ImportItem, ImportOutcome, ImportRequest,
    ImportResponse, Indicator, ListPage, parse_row,
};

/// Maximum items per import and ids per BatchDelete (spec §3 E4/E6).
pub const MAX_BATCH: usize = 500;
/// Page size requested when listing (spec §3 E1: `$top` max 10,000).
pub const PAGE_SIZE: usize = 10_000;
/// Most rows a listing may bring: the 15,000 tenant cap plus 5,000 of slack for expired rows not
/// yet cleaned up and deleted rows still holding their slot. More means the server is not paging
/// the way it says (or the cap changed): the listing fails rather than grow without bound.
pub const MAX_LISTED_ROWS: usize = 15_000 + 5_000;
/// Pages allowed beyond what [`MAX_LISTED_ROWS`] needs at the first page's size.
const PAGE_SLACK: usize = 2;
/// At most this many ids are re-checked one by one after a BatchDelete 404; more are checked by listing.
const GET_RECOVERY_MAX: usize = 5;
/// Rounds of "BatchDelete, 404, find the ids still there" before giving up.
const DELETE_ROUNDS: usize = 3;
/// Hosts a `@odata.nextLink` may point to besides the configured API origin.
const DEFENDER_HOST_SUFFIXES: [&str; 5] = [
    "securitycenter.microsoft.com",
    "security.microsoft.com",
    "securitycenter.windows.com",
    "securitycenter.microsoft.us",
    "security.microsoft.us",
];

/// What a BatchDelete achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchDeleteOutcome {
    /// Ids this call deleted.
    pub deleted: Vec<String>,
    /// Ids that were already gone (deleted earlier, e.g. by a run killed mid-apply, or expired).
    pub already_gone: Vec<String>,
    /// Ids Defender refused with a 400 even when sent alone (e.g. malformed), with its text:
    /// retrying them unchanged cannot help.
    pub rejected: Vec<(String, String)>,
    /// Ids not sent because the split budget ran out while isolating refused ids: still present,
    /// the next run retries them.
    pub not_attempted: Vec<String>,
}

/// Client for one (tenant, app): Entra token source plus the Defender Indicators API.
///
/// Cheap to clone (an `Arc` inside); every clone shares the token cache, the pacer (so the
/// documented per-app limits hold across concurrent tasks) and the call counters.
#[derive(Clone)]
pub struct DefenderClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    client_id: String,
    tenant_id: String,
    api_base: Url,
    token_url: String,
    scope: String,
    credential: PreparedCredential,
    retry: RetryPolicy,
    token: Mutex<Option<CachedToken>>,
    generation: AtomicU64,
    pacer: Mutex<Pacer>,
    counters: Counters,
    split_budget: AtomicU32,
    max_response_bytes: usize,
}

impl std::fmt::Debug for DefenderClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefenderClient")
            .field("tenant_id", &self.inner.tenant_id)
            .field("client_id", &self.inner.client_id)
            .field("api_base", &self.inner.api_base.as_str())
            .field("token_url", &self.inner.token_url)
            .finish_non_exhaustive()
    }
}

/// A complete HTTP answer (body read in full, so a reset mid-body is a retryable failure).
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn check_id_like(what: &str, value: &str) -> Result<(), Error> {
    let ok = !value.trim().is_empty() && value.len() <= 200 && !value.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!("{what} {value:?} is empty, too long or contains control characters")))
    }
}

impl DefenderClient {
    /// Validate the configuration and build the client; nothing is sent yet.
    ///
    /// Refuses non-`https` URLs except for loopback hosts, unparseable keys, empty ids.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let tenant = config.tenant_id.trim();
        if tenant.is_empty() || !tenant.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return Err(Error::config(format!(
                "tenant_id {:?} is not a tenant GUID or domain name",
                config.tenant_id
            )));
        }
        check_id_like("client_id", &config.client_id)?;
        let authority = config.authority.as_deref().unwrap_or(config.cloud.authority());
        let authority = parse_secure_url(authority, "authority")?;
        let api_base =
            parse_secure_url(config.api_base.as_deref().unwrap_or(config.cloud.api_base()), "api_base")?;
        if api_base.cannot_be_a_base() {
            return Err(Error::config("api_base must be an absolute http(s) URL"));
        }
        if let Some(warning) = crate::config::api_host_warning(&api_base) {
            tracing::warn!("{warning}");
        }
        let token_url = format!("{}/{tenant}/oauth2/v2.0/token", authority.as_str().trim_end_matches('/'));
        let scope = config.scope.clone().unwrap_or_else(|| scope_for(config.cloud, &api_base));
        if scope.trim().is_empty() {
            return Err(Error::config("scope is empty"));
        }
        if config.retry.max_attempts == 0 {
            return Err(Error::config("retry.max_attempts must be at least 1"));
        }
        let credential = PreparedCredential::new(&config.credential)?;
        let http = crate::tls::http_client_builder()
            .map_err(|e| Error::config(format!("cannot set up TLS: {e}")))?
            .user_agent(concat!("iocsync/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")).with_source(e))?;
        Ok(DefenderClient {
            inner: Arc::new(Inner {
                http,
                client_id: config.client_id.trim().to_owned(),
                tenant_id: tenant.to_owned(),
                api_base,
                token_url,
                scope,
                credential,
                retry: config.retry,
                token: Mutex::new(None),
                generation: AtomicU64::new(0),
                pacer: Mutex::new(Pacer::new(config.limits)),
                counters: Counters::default(),
                split_budget: AtomicU32::new(config.split_budget),
                max_response_bytes: config.max_response_bytes.max(1),
            }),
        })
    }

    /// The API base URL calls go to.
    pub fn api_base(&self) -> &str {
        self.inner.api_base.as_str().trim_end_matches('/')
    }

    /// The app (client) id this client authenticates as; Defender records it as `createdBy`.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// Snapshot of the HTTP calls made so far.
    pub fn stats(&self) -> CallStats {
        self.inner.counters.snapshot()
    }

    /// Answers so far by endpoint and HTTP status (0: a transport failure).
    pub fn calls_by_status(&self) -> crate::stats::CallsByStatus {
        self.inner.counters.by_status()
    }

    /// The pacer's remembered call stamps, to persist between runs.
    pub async fn export_call_history(&self) -> Vec<CallStamp> {
        self.inner.pacer.lock().await.export()
    }

    /// Merge call stamps persisted by an earlier run, so its calls count against the windows.
    /// Stamps in the future (a clock that was ahead) are clamped to now, so they cannot stall
    /// the client for longer than one window.
    pub async fn load_call_history(&self, stamps: Vec<CallStamp>) {
        let now = now_ms();
        let clamped = stamps.into_iter().map(|s| CallStamp { family: s.family, at_ms: s.at_ms.min(now) });
        self.inner.pacer.lock().await.load(clamped);
    }

    /// Get a token now (or confirm the cached one is fresh): proves the credentials work.
    pub async fn fetch_token(&self) -> Result<(), Error> {
        self.token().await.map(|_| ())
    }

    /// The application roles the token carries (`roles` claim, e.g. `Ti.ReadWrite.All`), read
    /// without verifying the signature (Defender verifies it; this only tells what the app may
    /// see). `None` when the token is not a readable JWT.
    pub async fn token_roles(&self) -> Result<Option<Vec<String>>, Error> {
        Ok(self.token_claims().await?.and_then(|claims| {
            claims
                .get("roles")?
                .as_array()
                .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        }))
    }

    /// The `aud` claim of the access token: which API the token is for (shown by `check`, so a
    /// wrong scope for the cloud or host is visible before any call fails).
    pub async fn token_audience(&self) -> Result<Option<String>, Error> {
        Ok(self.token_claims().await?.and_then(|c| c.get("aud")?.as_str().map(str::to_owned)))
    }

    /// The access token's claims (its middle JWT part), when it is a JWT. Only the claims are
    /// returned, never the token.
    async fn token_claims(&self) -> Result<Option<serde_json::Value>, Error> {
        use base64::Engine as _;
        use secrecy::ExposeSecret as _;
        let (token, _) = self.token().await?;
        Ok(token
            .0
            .expose_secret()
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok()
            })
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()))
    }

    /// Every indicator this app created that carries its marker for `owner_tag`
    /// ([`Indicator::is_owned_by`]), all pages.
    ///
    /// Asks the server to filter on `createdBy` (whether `$filter` works on `externalId` is not
    /// documented, spec §13.2) and checks the marker here; if the server refuses the filter (400
    /// `ODataError`) lists everything. The result is always filtered here too, so a server that
    /// ignores the filter cannot leak foreign indicators in.
    pub async fn list_owned(&self, owner_tag: &str) -> Result<Vec<Indicator>, Error> {
        check_id_like("owner tag", owner_tag)?;
        let filter = format!("createdBy eq '{}'", odata_quote(&self.inner.client_id));
        let rows = match self.list(Some(&filter)).await {
            Ok(rows) => rows,
            Err(e) if e.status() == Some(400) && e.code() == Some("ODataError") => {
                tracing::warn!(error = %e, "the server refused the ownership $filter; listing everything and filtering locally");
                self.list(None).await?
            }
            Err(e) => return Err(e),
        };
        let client_id = &self.inner.client_id;
        Ok(rows.into_iter().filter(|i| i.is_owned_by(client_id, owner_tag)).collect())
    }

    /// Every indicator the app can see (all creators with `Ti.ReadWrite.All`), all pages; the
    /// app needs them to count foreign indicators against the tenant cap. An empty tenant that
    /// answers 404 yields an empty list.
    pub async fn list_all(&self) -> Result<Vec<Indicator>, Error> {
        self.list(None).await
    }

    /// The indicators (every creator the app can see) holding one value, asked with one
    /// `$filter=indicatorValue eq '…'` call; `explain` uses it to show a value's tenant rows
    /// without listing the tenant.
    pub async fn list_value(&self, value: &str) -> Result<Vec<Indicator>, Error> {
        let filter = format!("indicatorValue eq '{}'", odata_quote(value));
        self.list(Some(&filter)).await
    }

    /// One indicator by id; `None` when it does not exist (404).
    pub async fn get(&self, id: &str) -> Result<Option<Indicator>, Error> {
        check_id_like("indicator id", id)?;
        let url = self.endpoint(&["api", "indicators", id])?;
        self.execute(CallFamily::Get, Method::GET, &url, None, |r| match r.status {
            200 => {
                let row = serde_json::from_slice::<serde_json::Value>(&r.body)
                    .map_err(|e| malformed("indicator", &e))?;
                parse_row(row).map(Some).ok_or_else(|| {
                    Error::new(ErrorKind::Api, true, "Defender sent an indicator that is not a JSON object")
                })
            }
            404 => Ok(None),
            _ => Err(api_error(r)),
        })
        .await
    }

    /// Create or update up to 500 indicators in one call; returns one outcome per item, in
    /// the order of `items` (per-item failures such as an invalid value or the tenant cap come
    /// back as `is_failed` with Defender's `failure_reason`).
    ///
    /// A batch Defender refuses as a whole (400: one item fails model binding, spec §13.7) is
    /// split in halves, depth first, until the bad items stand alone: they come back failed with
    /// the server's text and [`FailureOrigin::RequestRefused`], and every other item lands. That
    /// costs at most 2·⌈log2 n⌉ extra calls per bad item, taken from the client's split budget
    /// ([`ClientConfig::split_budget`](crate::ClientConfig)); items left unjudged when it runs out
    /// come back failed with [`FailureOrigin::NotJudged`] (retry next run), never as rejected.
    ///
    /// Retried after throttling, 5xx and dropped connections: import is an upsert keyed on
    /// (type, value, action), so re-sending a batch that may already have landed is safe.
    pub async fn import(&self, items: &[ImportItem]) -> Result<Vec<ImportOutcome>, Error> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        if items.len() > MAX_BATCH {
            return Err(Error::config(format!(
                "import takes at most {MAX_BATCH} items per call, got {}: split the batch",
                items.len()
            )));
        }
        match self.import_once(items).await? {
            Ok(outcomes) => Ok(outcomes),
            Err(refusal) => self.split_import(items, refusal).await,
        }
    }

    /// One import call: `Ok(Ok(outcomes))` on 200, `Ok(Err(refusal))` when Defender refused the
    /// request as a whole (400, 413), `Err` for anything else.
    async fn import_once(&self, items: &[ImportItem]) -> Result<Result<Vec<ImportOutcome>, Error>, Error> {
        let body = Bytes::from(
            serde_json::to_vec(&ImportRequest { indicators: items })
                .map_err(|e| Error::config(format!("cannot encode the import body: {e}")))?,
        );
        let url = self.endpoint(&["api", "indicators", "import"])?;
        self.execute(CallFamily::Import, Method::POST, &url, Some(&body), |r| match r.status {
            200 => serde_json::from_slice::<ImportResponse>(&r.body)
                .map(|b| Ok(match_outcomes(items, b.value)))
                .map_err(|e| malformed("import result", &e)),
            400 | 413 => Ok(Err(api_error(r))),
            _ => Err(api_error(r)),
        })
        .await
    }

    /// Split a refused import until the bad items stand alone (see [`DefenderClient::import`]).
    async fn split_import(&self, items: &[ImportItem], refusal: Error) -> Result<Vec<ImportOutcome>, Error> {
        tracing::warn!(
            items = items.len(),
            error = %refusal,
            "Defender refused the import batch as a whole; splitting it to isolate the bad items"
        );
        let mut out: Vec<Option<ImportOutcome>> = vec![None; items.len()];
        // Depth first, left half first: each bad item is isolated before the next is looked at,
        // so a budget that runs out still leaves every isolated item reported.
        let mut stack = vec![(0..items.len(), refusal)];
        while let Some((range, refusal)) = stack.pop() {
            if range.len() == 1 {
                // This item was sent alone and refused.
                let item = &items[range.start];
                tracing::warn!(value = %item.indicator_value, reason = %refusal.message(), "Defender refuses this item");
                out[range.start] = Some(ImportOutcome {
                    id: None,
                    indicator: item.indicator_value.clone(),
                    is_failed: true,
                    failure_reason: Some(refusal.message().to_owned()),
                    origin: FailureOrigin::RequestRefused,
                });
                continue;
            }
            let mid = range.start + range.len() / 2;
            let mut refused = Vec::new();
            for half in [range.start..mid, mid..range.end] {
                if !self.take_split_call() {
                    tracing::warn!(
                        items = half.len(),
                        "split budget spent: these items are left for the next run"
                    );
                    continue;
                }
                match self.import_once(&items[half.clone()]).await? {
                    Ok(outcomes) => {
                        for (slot, o) in out[half].iter_mut().zip(outcomes) {
                            *slot = Some(o);
                        }
                    }
                    Err(e) => refused.push((half, e)),
                }
            }
            stack.extend(refused.into_iter().rev());
        }
        Ok(out
            .into_iter()
            .zip(items)
            .map(|(o, i)| {
                o.unwrap_or_else(|| ImportOutcome {
                    id: None,
                    indicator: i.indicator_value.clone(),
                    is_failed: true,
                    failure_reason: Some(
                        "not applied: Defender refused its batch as a whole and the split budget ran out before \
                         this item was tried; the next run retries it"
                            .to_owned(),
                    ),
                    origin: FailureOrigin::NotJudged,
                })
            })
            .collect())
    }

    /// Take one call from the split budget; false when it is spent.
    fn take_split_call(&self) -> bool {
        self.inner
            .split_budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_ok()
    }

    /// Create or update one indicator (`POST /api/indicators`); returns the entity Defender
    /// stored, as it answers it. Used for the ownership canary of `iocsync check` and `sync`.
    /// Retried like import: it is an upsert keyed on (type, value, action).
    pub async fn submit(&self, item: &ImportItem) -> Result<Indicator, Error> {
        let body = Bytes::from(
            serde_json::to_vec(item)
                .map_err(|e| Error::config(format!("cannot encode the indicator: {e}")))?,
        );
        let url = self.endpoint(&["api", "indicators"])?;
        self.execute(CallFamily::Submit, Method::POST, &url, Some(&body), |r| match r.status {
            200 | 201 => {
                serde_json::from_slice::<Indicator>(&r.body).map_err(|e| malformed("submitted indicator", &e))
            }
            _ => Err(api_error(r)),
        })
        .await
    }

    /// Delete one indicator by id (`DELETE /api/indicators/{id}`); `false` when it was already
    /// gone (404). Retrying is safe: delete-by-id is idempotent.
    pub async fn delete(&self, id: &str) -> Result<bool, Error> {
        check_id_like("indicator id", id)?;
        let url = self.endpoint(&["api", "indicators", id])?;
        self.execute(CallFamily::Delete, Method::DELETE, &url, None, |r| match r.status {
            200 | 204 => Ok(true),
            404 => Ok(false),
            _ => Err(api_error(r)),
        })
        .await
    }

    /// Delete up to 500 indicators by id.
    ///
    /// A 404 means some id is already gone (e.g. a run killed mid-apply deleted it, or it
    /// expired): the ids still present are found (GET each, or one listing for many) and deleted
    /// again, so the call completes what an interrupted run started. Retrying is safe:
    /// delete-by-id is idempotent.
    ///
    /// A 400 for the whole request (a malformed id) is split like an import: the ids refused
    /// alone come back in `rejected` with the server's text, the others are deleted; ids left
    /// when the split budget runs out come back in `not_attempted`.
    pub async fn batch_delete(&self, ids: &[String]) -> Result<BatchDeleteOutcome, Error> {
        let mut outcome = BatchDeleteOutcome::default();
        if ids.is_empty() {
            return Ok(outcome);
        }
        if ids.len() > MAX_BATCH {
            return Err(Error::config(format!(
                "BatchDelete takes at most {MAX_BATCH} ids per call, got {}: split the batch",
                ids.len()
            )));
        }
        let mut seen = HashSet::new();
        let mut pending = Vec::with_capacity(ids.len());
        for id in ids {
            check_id_like("indicator id", id)?;
            if seen.insert(id.as_str()) {
                pending.push(id.clone());
            }
        }
        // Depth first, left half first (see `split_import`).
        let mut stack = vec![pending];
        while let Some(group) = stack.pop() {
            let Some((group, refusal)) = self.delete_group(group, &mut outcome).await? else {
                continue;
            };
            if group.len() == 1 {
                tracing::warn!(id = %group[0], reason = %refusal.message(), "Defender refuses to delete this id");
                outcome.rejected.push((group[0].clone(), refusal.message().to_owned()));
                continue;
            }
            tracing::warn!(ids = group.len(), error = %refusal, "Defender refused the BatchDelete as a whole; splitting it");
            let (left, right) = group.split_at(group.len() / 2);
            let mut halves = Vec::new();
            for half in [left, right] {
                if self.take_split_call() {
                    halves.push(half.to_vec());
                } else {
                    tracing::warn!(
                        ids = half.len(),
                        "split budget spent: these ids are left for the next run"
                    );
                    outcome.not_attempted.extend(half.iter().cloned());
                }
            }
            stack.extend(halves.into_iter().rev());
        }
        Ok(outcome)
    }

    /// BatchDelete `pending` (with the 404 recovery rounds); `Some((ids, refusal))` when Defender
    /// refused the request for `ids` as a whole (400, 413).
    async fn delete_group(
        &self,
        mut pending: Vec<String>,
        outcome: &mut BatchDeleteOutcome,
    ) -> Result<Option<(Vec<String>, Error)>, Error> {
        enum Answer {
            Deleted,
            SomeMissing,
            Refused(Error),
        }
        let url = self.endpoint(&["api", "indicators", "BatchDelete"])?;
        for _ in 0..DELETE_ROUNDS {
            let body = Bytes::from(
                serde_json::to_vec(&BatchDeleteRequest { indicator_ids: &pending })
                    .map_err(|e| Error::config(format!("cannot encode the BatchDelete body: {e}")))?,
            );
            let answer = self
                .execute(CallFamily::BatchDelete, Method::POST, &url, Some(&body), |r| match r.status {
                    200 | 204 => Ok(Answer::Deleted),
                    404 => Ok(Answer::SomeMissing),
                    400 | 413 => Ok(Answer::Refused(api_error(r))),
                    _ => Err(api_error(r)),
                })
                .await?;
            match answer {
                Answer::Deleted => {
                    outcome.deleted.append(&mut pending);
                    return Ok(None);
                }
                Answer::Refused(e) => return Ok(Some((pending, e))),
                Answer::SomeMissing => {}
            }
            tracing::info!(
                ids = pending.len(),
                "BatchDelete answered 404: checking which ids are still present"
            );
            let present = self.which_exist(&pending).await?;
            let (still, gone): (Vec<String>, Vec<String>) =
                pending.into_iter().partition(|id| present.contains(id));
            outcome.already_gone.extend(gone);
            if still.is_empty() {
                return Ok(None);
            }
            pending = still;
        }
        Err(Error::new(
            ErrorKind::Api,
            true,
            format!(
                "BatchDelete kept answering 404 for {} ids that a fresh lookup still lists; run again later",
                pending.len()
            ),
        )
        .with_status(404))
    }

    /// Which of `ids` exist right now.
    async fn which_exist(&self, ids: &[String]) -> Result<HashSet<String>, Error> {
        let mut present = HashSet::new();
        if ids.len() <= GET_RECOVERY_MAX {
            for id in ids {
                if self.get(id).await?.is_some() {
                    present.insert(id.clone());
                }
            }
        } else {
            let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
            for row in self.list(None).await? {
                if wanted.contains(row.id.as_str()) {
                    present.insert(row.id);
                }
            }
        }
        Ok(present)
    }

    /// All pages of `GET /api/indicators?$top=10000[&$filter=…]`, following nextLink verbatim;
    /// after a full page without nextLink, continues with `$skip` until a short page.
    ///
    /// Built so it can neither loop nor explode, and never returns a partial listing: rows are
    /// de-duplicated by `id` (offsets shift when indicators are created or deleted during the
    /// listing, spec §13.9); a page that brings no new id while more are announced is an error (a
    /// page equal to the first one: the server ignores `$skip`); more than [`MAX_LISTED_ROWS`]
    /// rows, or more pages than those rows need at the first page's size (plus slack), is an
    /// error; every body is capped (`max_response_bytes`); rows are read leniently (a foreign row
    /// with odd field types never fails the page). A 404 on the first page is an empty tenant
    /// only when it carries Defender's error envelope; otherwise (an HTML or proxy page) it is an
    /// error naming `api_base`.
    async fn list(&self, filter: Option<&str>) -> Result<Vec<Indicator>, Error> {
        let mut first = self.endpoint(&["api", "indicators"])?;
        let mut query = format!("$top={PAGE_SIZE}");
        if let Some(f) = filter {
            query.push_str("&$filter=");
            query.extend(url::form_urlencoded::byte_serialize(f.as_bytes()));
        }
        let base_query = query.clone();
        first.set_query(Some(&query));
        let mut url = first.clone();
        let mut out: Vec<Indicator> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut first_ids: Vec<String> = Vec::new();
        let mut visited = HashSet::new();
        let mut received = 0usize;
        let mut max_pages = usize::MAX;
        for page_no in 0.. {
            if page_no >= max_pages {
                return Err(Error::new(
                    ErrorKind::Api,
                    false,
                    format!(
                        "listing needed more than {max_pages} pages, more than {MAX_LISTED_ROWS} indicators allow; \
                         stopping (the server does not page as it says)"
                    ),
                ));
            }
            let page = self
                .execute(CallFamily::List, Method::GET, &url, None, |r| match r.status {
                    200 => serde_json::from_slice::<ListPage>(&r.body)
                        .map(Some)
                        .map_err(|e| malformed("list page", &e)),
                    404 if page_no == 0 && has_error_envelope(r) => Ok(None),
                    404 if page_no == 0 => Err(self.not_the_api(r)),
                    _ => Err(api_error(r)),
                })
                .await?;
            let Some(page) = page else {
                return Ok(out);
            };
            let page_len = page.value.len();
            received += page_len;
            let mut page_ids = Vec::with_capacity(page_len);
            let mut fresh = 0usize;
            for row in page.value {
                let Some(ind) = parse_row(row) else {
                    tracing::warn!(page = page_no + 1, "ignoring a listed row that is not a JSON object");
                    continue;
                };
                page_ids.push(ind.id.clone());
                if ind.id.is_empty() || seen.insert(ind.id.clone()) {
                    fresh += 1;
                    out.push(ind);
                }
            }
            if out.len() > MAX_LISTED_ROWS {
                return Err(Error::new(
                    ErrorKind::Api,
                    false,
                    format!(
                        "listing brought more than {MAX_LISTED_ROWS} indicators, more than the 15,000 cap allows; \
                         stopping rather than plan from a listing that does not end"
                    ),
                ));
            }
            if page_no == 0 {
                max_pages = MAX_LISTED_ROWS.div_ceil(page_len.max(1)) + PAGE_SLACK;
                first_ids.clone_from(&page_ids);
            }
            let full_page = page_len >= PAGE_SIZE;
            let next_link = page.next_link.filter(|l| !l.trim().is_empty());
            let more = next_link.is_some() || full_page;
            if page_no > 0 && fresh < page_len {
                tracing::info!(
                    page = page_no + 1,
                    repeated = page_len - fresh,
                    "list offsets shifted during the listing; repeated ids dropped"
                );
                if fresh == 0 && more {
                    let why = if page_len > 0 && page_ids == first_ids {
                        "repeats the first page: the server ignores $skip"
                    } else {
                        "brings no new indicator"
                    };
                    return Err(Error::new(
                        ErrorKind::Api,
                        false,
                        format!(
                            "list page {} {why}; the listing cannot be completed, so nothing is planned from it",
                            page_no + 1
                        ),
                    ));
                }
            } else if page_no > 0 && page_len == 0 && more {
                return Err(Error::new(
                    ErrorKind::Api,
                    false,
                    format!(
                        "list page {} is empty but announces more; the listing does not advance",
                        page_no + 1
                    ),
                ));
            }
            match next_link {
                // A server that reads `$top` as a total limit (OData's own meaning) sends no
                // nextLink after a full page: ask for the rows after the ones we have.
                None if full_page => {
                    let mut next = first.clone();
                    next.set_query(Some(&format!("{base_query}&$skip={received}")));
                    url = next;
                }
                None => return Ok(out),
                Some(next) => {
                    let next = self.check_next_link(&next)?;
                    if !visited.insert(next.as_str().to_owned()) {
                        return Err(Error::new(
                            ErrorKind::Api,
                            false,
                            "the server sent the same @odata.nextLink twice; stopping to avoid an endless listing",
                        ));
                    }
                    url = next;
                }
            }
        }
        unreachable!("the page loop only ends by returning")
    }

    /// The error for a 404 on the list endpoint without Defender's envelope: not the API.
    fn not_the_api(&self, r: &Reply) -> Error {
        let text: String =
            String::from_utf8_lossy(&r.body).chars().filter(|c| !c.is_control()).take(120).collect();
        let content_type =
            header_str(&r.headers, "content-type").unwrap_or_else(|| "no content type".to_owned());
        Error::new(
            ErrorKind::Api,
            false,
            format!(
                "listing indicators at {} answered 404 without Defender's error envelope ({content_type}: {:?}): \
                 api_base does not look like the Defender API (check api_base and cloud, or a proxy in between)",
                self.inner.api_base.as_str().trim_end_matches('/'),
                text.trim()
            ),
        )
        .with_status(404)
        .with_request_id(header_str(&r.headers, "request-id"))
    }

    /// A nextLink is followed as is, but only to the configured API origin or a Defender host
    /// over https, so a bad link cannot send the bearer token elsewhere.
    fn check_next_link(&self, raw: &str) -> Result<Url, Error> {
        let url = match Url::parse(raw) {
            Ok(u) => u,
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                self.inner.api_base.join(raw).map_err(|e| {
                    Error::new(ErrorKind::Api, false, format!("unusable @odata.nextLink: {e}"))
                })?
            }
            Err(e) => {
                return Err(Error::new(ErrorKind::Api, false, format!("unusable @odata.nextLink: {e}")));
            }
        };
        let base = &self.inner.api_base;
        let same_origin = url.origin() == base.origin();
        let defender_host = url.scheme() == "https"
            && url.host_str().is_some_and(|h| {
                let h = h.to_ascii_lowercase();
                DEFENDER_HOST_SUFFIXES.iter().any(|s| h == *s || h.ends_with(&format!(".{s}")))
            });
        if same_origin || defender_host {
            Ok(url)
        } else {
            Err(Error::new(
                ErrorKind::Api,
                false,
                format!(
                    "@odata.nextLink points to {}, outside the API host {}; refusing to send the token there",
                    url.origin().ascii_serialization(),
                    base.origin().ascii_serialization()
                ),
            ))
        }
    }

    fn endpoint(&self, segments: &[&str]) -> Result<Url, Error> {
        let mut url = self.inner.api_base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::config("api_base cannot carry a path"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    // ---- token ------------------------------------------------------------------------------

    /// The cached token, or a new one when missing or due for refresh.
    async fn token(&self) -> Result<(AccessToken, u64), Error> {
        let mut guard = self.inner.token.lock().await;
        if let Some(c) = guard.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok((c.token.clone(), c.generation));
        }
        let (token, lifetime) = self.request_token().await?;
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *guard = Some(CachedToken {
            token: token.clone(),
            refresh_at: Instant::now() + refresh_after(lifetime),
            generation,
        });
        tracing::debug!(lifetime_s = lifetime.as_secs(), "obtained an access token");
        Ok((token, generation))
    }

    /// Drop the cached token if it is still the one of `generation` (a 401 said it is dead).
    async fn invalidate(&self, generation: u64) {
        let mut guard = self.inner.token.lock().await;
        if guard.as_ref().is_some_and(|c| c.generation == generation) {
            *guard = None;
        }
    }

    /// Call the token endpoint, with the retry policy for throttling, 5xx and network errors.
    async fn request_token(&self) -> Result<(AccessToken, Duration), Error> {
        let inner = &self.inner;
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut form: Vec<(&str, String)> = vec![
                ("grant_type", "client_credentials".to_owned()),
                ("client_id", inner.client_id.clone()),
                ("scope", inner.scope.clone()),
            ];
            match &inner.credential {
                PreparedCredential::Secret(secret) => {
                    form.push(("client_secret", secret.expose_secret().to_owned()));
                }
                PreparedCredential::Certificate(ck) => {
                    let assertion =
                        ck.assertion(&inner.client_id, &inner.token_url, chrono::Utc::now().timestamp())?;
                    form.push((
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                    ));
                    form.push(("client_assertion", assertion.expose_secret().to_owned()));
                }
            }
            Counters::bump(&inner.counters.token);
            let sent =
                inner.http.post(&inner.token_url).header(ACCEPT, "application/json").form(&form).send().await;
            for (_, value) in &mut form {
                value.zeroize();
            }
            let reply = read_reply(sent, inner.max_response_bytes).await;
            inner.counters.answered("token", reply.as_ref().map_or(0, |r| r.status));
            let (err, retry_after) = match reply {
                Ok(reply) if reply.status == 200 => {
                    match serde_json::from_slice::<TokenResponse>(&reply.body) {
                        Ok(TokenResponse { access_token: Some(t), expires_in }) if !t.is_empty() => {
                            let lifetime = Duration::from_secs(expires_in.unwrap_or(300).max(1));
                            return Ok((AccessToken(SecretString::from(t)), lifetime));
                        }
                        // Never echo the body: it may hold a token.
                        _ => (
                            Error::new(
                                ErrorKind::Auth,
                                true,
                                "the token endpoint answered 200 without a usable access_token",
                            )
                            .with_status(200),
                            None,
                        ),
                    }
                }
                Ok(reply) => {
                    if reply.status == 429 {
                        inner.counters.throttled(None);
                    }
                    (entra_error(&reply), retry_after_of(&reply.headers))
                }
                Err(e) => (e, None),
            };
            self.pause_before_retry(err, retry_after, attempt, started, Duration::ZERO).await?;
        }
    }

    /// Runs one advanced-hunting query (`POST {api_base}/{path}` with `{"Query": …}`) and returns
    /// its rows. `path` is `api/advancedqueries/run` on the Defender API, or
    /// `v1.0/security/runHuntingQuery` on a client whose `api_base` is Graph.
    ///
    /// Sent once, paced to the hunting window (45/min, 1,500/h): a 429 (rate or CPU quota) comes
    /// back as a retryable error at once, because the impact check must never hold up the sync.
    pub async fn hunting_query(
        &self,
        path: &[&str],
        query: &str,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, Error> {
        let url = self.endpoint(path)?;
        let body = Bytes::from(
            serde_json::to_vec(&serde_json::json!({ "Query": query }))
                .map_err(|e| Error::config(format!("cannot encode the hunting query: {e}")))?,
        );
        let slot = self.pace(CallFamily::Hunting).await?;
        let (token, generation) = self.token().await?;
        self.count(CallFamily::Hunting);
        let req = self
            .inner
            .http
            .request(Method::POST, url.clone())
            .bearer_auth(token.0.expose_secret())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let result = read_reply(req.send().await, self.inner.max_response_bytes).await;
        self.inner.pacer.lock().await.complete(CallFamily::Hunting, slot, now_ms());
        let reply = result?;
        tracing::debug!(path = url.path(), status = reply.status, "advanced hunting call");
        match reply.status {
            200 => {
                #[derive(serde::Deserialize)]
                struct Rows {
                    // Required: a 200 without rows is a malformed answer, never "no traffic".
                    #[serde(alias = "results", alias = "Results")]
                    rows: Vec<serde_json::Map<String, serde_json::Value>>,
                }
                serde_json::from_slice::<Rows>(&reply.body)
                    .map(|r| r.rows)
                    .map_err(|e| malformed("hunting result", &e))
            }
            401 => {
                self.invalidate(generation).await;
                Err(api_error(&reply))
            }
            429 => {
                self.inner.counters.throttled(Some(CallFamily::Hunting));
                Err(api_error(&reply))
            }
            _ => Err(api_error(&reply)),
        }
    }

    // ---- request execution ------------------------------------------------------------------

    /// Send one API request with pacing, the bearer token, 401 refresh-once and retries.
    ///
    /// `handle` sees every answer except 401, 429 and 500/502/503/504 (handled here); an error
    /// it returns with `is_retryable()` (e.g. a truncated 200 body) is retried like a 5xx.
    async fn execute<T>(
        &self,
        family: CallFamily,
        method: Method,
        url: &Url,
        body: Option<&Bytes>,
        mut handle: impl FnMut(&Reply) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        let mut paced = Duration::ZERO;
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let wait_start = Instant::now();
            let slot = self.pace(family).await?;
            paced += wait_start.elapsed();
            // After pacing, so a long wait for the hourly window cannot outlive the token.
            let (token, generation) = self.token().await?;
            self.count(family);
            let mut req = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.0.expose_secret())
                .header(ACCEPT, "application/json");
            if let Some(b) = body {
                req = req.header(CONTENT_TYPE, "application/json").body(b.clone());
            }
            let t0 = Instant::now();
            let result = read_reply(req.send().await, self.inner.max_response_bytes).await;
            self.inner.counters.answered(family.as_str(), result.as_ref().map_or(0, |r| r.status));
            self.inner.pacer.lock().await.complete(family, slot, now_ms());
            let (err, retry_after) = match result {
                Err(e) => (e, None),
                Ok(reply) => {
                    tracing::debug!(%method, path = url.path(), status = reply.status, ms = t0.elapsed().as_millis() as u64, "Defender API call");
                    match reply.status {
                        401 if !refreshed => {
                            tracing::info!("Defender answered 401; refreshing the access token once");
                            refreshed = true;
                            self.invalidate(generation).await;
                            attempt -= 1;
                            continue;
                        }
                        401 => {
                            let e = api_error(&reply);
                            return Err(Error::new(
                                ErrorKind::Auth,
                                false,
                                format!(
                                    "Defender rejected a freshly issued token ({}); check that the app has the \
                                     WindowsDefenderATP application permission Ti.ReadWrite.All \
                                     with admin consent, and that authority, scope and api_base belong to the same cloud",
                                    e.message()
                                ),
                            )
                            .with_status(401)
                            .with_code(e.code().map(str::to_owned))
                            .with_request_id(e.request_id().map(str::to_owned)));
                        }
                        429 => {
                            self.inner.counters.throttled(Some(family));
                            let wait = retry_after_of(&reply.headers);
                            if let Some(d) = wait.map(|d| d.min(self.inner.retry.max_retry_after)) {
                                let until =
                                    now_ms().saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                                self.inner.pacer.lock().await.block_until(family, until);
                            }
                            (api_error(&reply), wait)
                        }
                        408 | 500 | 502 | 503 | 504 => (api_error(&reply), retry_after_of(&reply.headers)),
                        _ => match handle(&reply) {
                            Ok(v) => return Ok(v),
                            Err(e) => (e, None),
                        },
                    }
                }
            };
            self.pause_before_retry(err, retry_after, attempt, started, paced).await?;
        }
    }

    /// Either sleep before the next attempt or return `err` (permanent, or out of budget).
    async fn pause_before_retry(
        &self,
        err: Error,
        retry_after: Option<Duration>,
        attempt: u32,
        started: Instant,
        paced: Duration,
    ) -> Result<(), Error> {
        let policy = &self.inner.retry;
        if !err.is_retryable() || attempt >= policy.max_attempts {
            return Err(err);
        }
        let delay = match retry_after {
            Some(d) => d.min(policy.max_retry_after),
            None => policy.backoff(attempt),
        };
        let spent = started.elapsed().saturating_sub(paced);
        if spent + delay > policy.max_elapsed {
            return Err(err);
        }
        tracing::warn!(error = %err, attempt, delay_ms = delay.as_millis() as u64, "retrying");
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// Wait for and take a pacing slot for `family`; returns the slot's stamp.
    async fn pace(&self, family: CallFamily) -> Result<i64, Error> {
        loop {
            let now = now_ms();
            let until = match self.inner.pacer.lock().await.try_acquire(family, now) {
                Ok(()) => return Ok(now),
                Err(until) => until,
            };
            if until == i64::MAX {
                return Err(Error::config(format!("the pacing limits allow no {family} call at all")));
            }
            let wait = u64::try_from(until.saturating_sub(now)).unwrap_or(0).max(1);
            if wait >= 5_000 {
                tracing::info!(%family, wait_s = wait / 1_000, "pacing: waiting for the documented rate limit window");
            } else {
                tracing::debug!(%family, wait_ms = wait, "pacing: waiting for a free slot");
            }
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }

    fn count(&self, family: CallFamily) {
        let c = &self.inner.counters;
        match family {
            CallFamily::List => Counters::bump(&c.list),
            CallFamily::Get => Counters::bump(&c.get),
            CallFamily::Import => Counters::bump(&c.import),
            CallFamily::BatchDelete => Counters::bump(&c.batch_delete),
            CallFamily::Submit | CallFamily::Delete | CallFamily::Hunting => {}
        }
    }
}

/// Read the whole answer; transport failures become retryable network errors.
///
/// A body larger than `limit` bytes is refused (not retried) as soon as its length is known.
async fn read_reply(sent: Result<reqwest::Response, reqwest::Error>, limit: usize) -> Result<Reply, Error> {
    let mut resp = sent.map_err(network_error)?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let too_large = || {
        Error::new(
            ErrorKind::Api,
            false,
            format!("the response body (HTTP {status}) is larger than {limit} bytes (max_response_bytes); not reading it"),
        )
        .with_status(status)
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(network_error)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Reply { status, headers, body: Bytes::from(body) })
}

/// True when a body is Defender's error envelope with a code.
fn has_error_envelope(r: &Reply) -> bool {
    serde_json::from_slice::<ErrorEnvelope>(&r.body)
        .is_ok_and(|e| e.error.code.is_some_and(|c| !c.is_empty()))
}

fn network_error(e: reqwest::Error) -> Error {
    let what = if e.is_timeout() { "request timed out" } else { "request failed" };
    let builder = e.is_builder();
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        src = s.source();
    }
    // A host name that does not resolve is a configuration problem (wrong api_base or cloud, no
    // DNS): retrying it for minutes only delays the error.
    let unresolvable = detail.contains("dns error") || detail.contains("failed to lookup address");
    let (kind, retryable) = if builder {
        (ErrorKind::Config, false)
    } else if unresolvable {
        detail.push_str(" (check api_base / authority / cloud and the machine's DNS)");
        (ErrorKind::Network, false)
    } else {
        (ErrorKind::Network, true)
    };
    Error::new(kind, retryable, format!("{what}: {detail}")).with_source(e)
}

fn malformed(what: &str, e: &serde_json::Error) -> Error {
    Error::new(ErrorKind::Api, true, format!("Defender sent a malformed {what}: {e}"))
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// `Retry-After` in seconds (integer or decimal); HTTP dates are ignored (backoff applies).
fn retry_after_of(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim().to_owned();
    let secs: f64 = v.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// Build the error for a Defender answer from its envelope and headers.
fn api_error(r: &Reply) -> Error {
    let env = serde_json::from_slice::<ErrorEnvelope>(&r.body).ok().map(|e| e.error);
    let request_id = env
        .as_ref()
        .and_then(|e| e.target.clone())
        .or_else(|| header_str(&r.headers, "request-id"))
        .or_else(|| header_str(&r.headers, "x-ms-request-id"));
    let reason =
        reqwest::StatusCode::from_u16(r.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("error");
    let mut message = env.as_ref().and_then(|e| e.message.clone()).unwrap_or_else(|| {
        let text: String =
            String::from_utf8_lossy(&r.body).chars().filter(|c| !c.is_control()).take(200).collect();
        if text.trim().is_empty() { reason.to_owned() } else { format!("{reason}: {}", text.trim()) }
    });
    let (kind, retryable) = match r.status {
        401 | 403 => (ErrorKind::Auth, false),
        408 | 429 | 500 | 502 | 503 | 504 => (ErrorKind::Api, true),
        _ => (ErrorKind::Api, false),
    };
    if r.status == 403 {
        message.push_str(
            " (the app needs the WindowsDefenderATP application permission Ti.ReadWrite.All with admin consent: \
             Submit, Import, Delete and BatchDelete require it)",
        );
    }
    Error::new(kind, retryable, message)
        .with_status(r.status)
        .with_code(env.and_then(|e| e.code))
        .with_request_id(request_id)
}

/// Build the error for an Entra token-endpoint answer. The body is parsed for its error fields
/// only and never echoed.
fn entra_error(r: &Reply) -> Error {
    let e = serde_json::from_slice::<EntraError>(&r.body).unwrap_or_default();
    let retryable = matches!(r.status, 408 | 429 | 500 | 502 | 503 | 504);
    let description = e
        .error_description
        .as_deref()
        .map(|d| d.lines().next().unwrap_or("").trim().to_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| format!("HTTP {}", r.status));
    let hint = if retryable {
        ""
    } else {
        " (check tenant_id, client_id, the client secret or certificate, and the authority/cloud setting)"
    };
    Error::new(ErrorKind::Auth, retryable, format!("Entra ID refused the token request: {description}{hint}"))
        .with_status(r.status)
        .with_code(e.error)
        .with_request_id(
            e.trace_id.or(e.correlation_id).or_else(|| header_str(&r.headers, "x-ms-request-id")),
        )
}

/// OData string literal body: single quotes doubled.
fn odata_quote(s: &str) -> String {
    s.replace('\'', "''")
}

/// Align Defender's import results with the submitted items: by position when the value
/// matches (case-insensitively), else by value; items left without a result are reported failed.
pub(crate) fn match_outcomes(items: &[ImportItem], results: Vec<ImportOutcome>) -> Vec<ImportOutcome> {
    // Defender may echo a value in another case, or an IPv6 address in another form.
    fn key(v: &str) -> String {
        match v.trim().parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => v.trim().to_ascii_lowercase(),
        }
    }
    let positional = results.len() == items.len()
        && items
            .iter()
            .zip(&results)
            .all(|(i, r)| r.indicator.is_empty() || key(&r.indicator) == key(&i.indicator_value));
    if positional {
        return items
            .iter()
            .zip(results)
            .map(|(i, mut r)| {
                if r.indicator.is_empty() {
                    r.indicator.clone_from(&i.indicator_value);
                }
                r
            })
            .collect();
    }
    let mut by_value: HashMap<String, VecDeque<ImportOutcome>> = HashMap::new();
    for r in results {
        by_value.entry(key(&r.indicator)).or_default().push_back(r);
    }
    items
        .iter()
        .map(|i| {
            by_value.get_mut(&key(&i.indicator_value)).and_then(VecDeque::pop_front).unwrap_or_else(|| {
                ImportOutcome {
                    id: None,
                    indicator: i.indicator_value.clone(),
                    is_failed: true,
                    failure_reason: Some("Defender returned no result for this item".to_owned()),
                    origin: FailureOrigin::NotJudged,
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_match_an_ipv6_echoed_in_full_form() {
        let items: Vec<ImportItem> = ["2001:4860:4860::8888", "b.example"]
            .iter()
            .map(|v| ImportItem { indicator_value: (*v).to_owned(), ..ImportItem::default() })
            .collect();
        let results = vec![
            ImportOutcome { id: Some("2".into()), indicator: "B.EXAMPLE".into(), ..ImportOutcome::default() },
            ImportOutcome {
                id: Some("1".into()),
                indicator: "2001:4860:4860:0:0:0:0:8888".into(),
                ..ImportOutcome::default()
            },
        ];
        let out = match_outcomes(&items, results);
        assert_eq!(out[0].id.as_deref(), Some("1"));
        assert_eq!(out[1].id.as_deref(), Some("2"));
        assert!(out.iter().all(|o| !o.is_failed));
    }
    use crate::wire::Action;

    fn item(v: &str) -> ImportItem {
        ImportItem {
            indicator_value: v.into(),
            indicator_type: "DomainName".into(),
            action: Action::Block,
            ..ImportItem::default()
        }
    }

    fn outcome(id: Option<&str>, v: &str, failed: bool) -> ImportOutcome {
        ImportOutcome {
            id: id.map(str::to_owned),
            indicator: v.into(),
            is_failed: failed,
            failure_reason: failed.then(|| "bad".to_owned()),
            origin: FailureOrigin::ItemResult,
        }
    }

    #[test]
    fn outcomes_match_by_position_case_insensitively() {
        let items = [item("a.example"), item("B.example")];
        let got = match_outcomes(
            &items,
            vec![outcome(Some("1"), "A.EXAMPLE", false), outcome(None, "b.example", true)],
        );
        assert_eq!(got[0].id.as_deref(), Some("1"));
        assert!(got[1].is_failed);
    }

    #[test]
    fn outcomes_fall_back_to_value_and_flag_missing() {
        let items = [item("a.example"), item("b.example"), item("c.example")];
        let got = match_outcomes(
            &items,
            vec![outcome(Some("2"), "b.example", false), outcome(Some("1"), "a.example", false)],
        );
        assert_eq!(got[0].id.as_deref(), Some("1"));
        assert_eq!(got[1].id.as_deref(), Some("2"));
        assert!(got[2].is_failed);
        assert_eq!(got[2].indicator, "c.example");
        assert_eq!(got[2].failure_reason.as_deref(), Some("Defender returned no result for this item"));
    }

    #[test]
    fn odata_literals_are_escaped() {
        assert_eq!(odata_quote("o'brien"), "o''brien");
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after_of(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after_of(&h), None);
        h.insert(RETRY_AFTER, "-3".parse().unwrap());
        assert_eq!(retry_after_of(&h), None);
    }

    #[test]
    fn api_errors_carry_code_target_and_retryability() {
        let r = Reply {
            status: 400,
            headers: HeaderMap::new(),
            body: Bytes::from_static(br#"{"error":{"code":"InvalidIpAddress","message":"IP address 10.1.2.3 is invalid.","target":"t-1"}}"#),
        };
        let e = api_error(&r);
        assert_eq!(
            (e.kind(), e.is_retryable(), e.code(), e.request_id()),
            (ErrorKind::Api, false, Some("InvalidIpAddress"), Some("t-1"))
        );
        let mut h = HeaderMap::new();
        h.insert("request-id", "hdr-1".parse().unwrap());
        let r = Reply { status: 503, headers: h, body: Bytes::from_static(b"<html>busy</html>") };
        let e = api_error(&r);
        assert!(e.is_retryable());
        assert_eq!(e.request_id(), Some("hdr-1"));
        assert!(e.to_string().contains("Service Unavailable"), "{e}");
        let r = Reply { status: 403, headers: HeaderMap::new(), body: Bytes::new() };
        assert_eq!(api_error(&r).kind(), ErrorKind::Auth);
    }

    #[test]
    fn entra_errors_never_echo_the_body() {
        let r = Reply {
            status: 401,
            headers: HeaderMap::new(),
            body: Bytes::from_static(
                br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","trace_id":"tr-1","correlation_id":"co-1","echo":"s3cr3t"}"#,
            ),
        };
        let e = entra_error(&r);
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert_eq!(e.code(), Some("invalid_client"));
        assert_eq!(e.request_id(), Some("tr-1"));
        assert!(!e.to_string().contains("s3cr3t"));
        assert!(e.to_string().contains("AADSTS7000215"));
    }
}
