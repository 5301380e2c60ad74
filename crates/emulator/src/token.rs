//! Entra ID client-credential token endpoints (v1 and v2) and bearer validation (spec §2, §12.1-2).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::Rng as _;
use serde_json::{Value, json};

use crate::config::{ClientCredential, Role};

/// Audiences (resources) that the Defender API accepts.
pub(crate) const API_AUDIENCES: &[&str] = &[
    "https://api.securitycenter.microsoft.com",
    "https://securitycenter.onmicrosoft.com/windowsatpservice",
    "https://api.security.microsoft.com",
    "https://securitycenter.onmicrosoft.us/windowsatpservice",
    "https://api-gcc.securitycenter.microsoft.us",
    "https://api-gov.securitycenter.microsoft.us",
];

/// Other resources Entra will mint tokens for, which the Defender API must reject (wrong audience).
const OTHER_AUDIENCES: &[&str] = &["https://graph.microsoft.com", "https://management.azure.com"];

/// What the server remembers about an issued token (validated by lookup, never by parsing).
#[derive(Debug, Clone)]
pub(crate) struct TokenInfo {
    pub client_id: String,
    pub role: Role,
    pub audience: String,
    pub expires: DateTime<Utc>,
    pub revoked: bool,
}

#[derive(Debug)]
pub(crate) struct Tokens {
    issued: Mutex<HashMap<String, TokenInfo>>,
    lifetime: Mutex<Duration>,
}

/// An Entra token-endpoint failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntraFailure {
    pub status: u16,
    pub error: &'static str,
    pub code: u32,
    pub description: String,
}

fn fail(status: u16, error: &'static str, code: u32, description: impl Into<String>) -> EntraFailure {
    EntraFailure { status, error, code, description: description.into() }
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BearerError {
    Unauthorized(String),
    Forbidden(String),
}

/// Form fields of a token request, already decoded.
pub(crate) struct TokenRequest<'a> {
    pub form: &'a HashMap<String, String>,
    pub tenant_ok: bool,
    pub tenant: &'a str,
    pub v2: bool,
    /// Absolute URLs this token endpoint accepts as a client assertion `aud`.
    pub endpoint_urls: &'a [String],
    /// The emulator base URL, also accepted as a resource (`{base}/.default`).
    pub base_url: &'a str,
    pub now: DateTime<Utc>,
    /// Who holds hunting permissions; their roles go into the token's `roles` claim.
    pub hunting_grants: &'a crate::hunting::HuntingGrants,
}

impl Tokens {
    pub(crate) fn new(lifetime: Duration) -> Self {
        Self { issued: Mutex::new(HashMap::new()), lifetime: Mutex::new(lifetime) }
    }

    pub(crate) fn set_lifetime(&self, lifetime: Duration) {
        *self.lifetime.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = lifetime;
    }

    pub(crate) fn expire_all(&self) {
        let mut g = self.issued.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for t in g.values_mut() {
            t.revoked = true;
        }
    }

    /// Handles one token request; returns the JSON body on success.
    pub(crate) fn issue(
        &self,
        req: &TokenRequest<'_>,
        clients: &[ClientCredential],
    ) -> Result<Value, EntraFailure> {
        let form = req.form;
        if !req.tenant_ok {
            return Err(fail(
                400,
                "invalid_request",
                90002,
                format!(
                    "AADSTS90002: Tenant '{}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.",
                    req.tenant
                ),
            ));
        }
        match form.get("grant_type").map(String::as_str) {
            Some("client_credentials") => {}
            None => {
                return Err(fail(
                    400,
                    "invalid_request",
                    900144,
                    "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
                ));
            }
            Some(other) => {
                return Err(fail(
                    400,
                    "unsupported_grant_type",
                    70003,
                    format!("AADSTS70003: The app requested an unsupported grant type '{other}'."),
                ));
            }
        }
        let Some(client_id) = form.get("client_id").filter(|s| !s.is_empty()) else {
            return Err(fail(
                400,
                "invalid_request",
                900144,
                "AADSTS900144: The request body must contain the following parameter: 'client_id'.",
            ));
        };
        let Some(client) = clients.iter().find(|c| &c.client_id == client_id) else {
            return Err(fail(
                400,
                "unauthorized_client",
                700016,
                format!(
                    "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant.",
                    req.tenant
                ),
            ));
        };
        self.authenticate_client(client, req)?;
        let audience = resource_audience(req)?;
        let lifetime = *self.lifetime.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = req.now;
        let expires = crate::clock::add_std(now, lifetime);
        // A Graph token carries only Graph roles; a Defender token the TI role and AdvancedQuery.Read.All.
        let mut roles: Vec<&str> = if audience == crate::hunting::GRAPH_AUDIENCE {
            Vec::new()
        } else {
            client.role.claim().into_iter().collect()
        };
        roles.extend(req.hunting_grants.roles_for(&client.client_id, &audience));
        let token = mint_jwt(&audience, req.tenant, &client.client_id, &roles, now, expires);
        self.issued.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(
            token.clone(),
            TokenInfo {
                client_id: client.client_id.clone(),
                role: client.role,
                audience: audience.clone(),
                expires,
                revoked: false,
            },
        );
        let secs = lifetime.as_secs();
        Ok(if req.v2 {
            json!({"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": token})
        } else {
            json!({
                "token_type": "Bearer",
                "expires_in": secs.to_string(),
                "ext_expires_in": secs.to_string(),
                "expires_on": expires.timestamp().to_string(),
                "not_before": now.timestamp().to_string(),
                "resource": audience,
                "access_token": token,
            })
        })
    }

    fn authenticate_client(
        &self,
        client: &ClientCredential,
        req: &TokenRequest<'_>,
    ) -> Result<(), EntraFailure> {
        let form = req.form;
        if let Some(assertion) = form.get("client_assertion") {
            if form.get("client_assertion_type").map(String::as_str)
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            {
                return Err(fail(
                    400,
                    "invalid_request",
                    50027,
                    "AADSTS50027: client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
                ));
            }
            return verify_assertion(assertion, client, req);
        }
        match (form.get("client_secret"), &client.secret) {
            (Some(given), Some(expected)) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => {
                Ok(())
            }
            (Some(_), _) => Err(fail(
                401,
                "invalid_client",
                7000215,
                format!(
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    client.client_id
                ),
            )),
            (None, _) => Err(fail(
                401,
                "invalid_client",
                7000218,
                "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )),
        }
    }

    /// Finds the token of `Authorization: Bearer ...` and checks it is live; the audience and roles are
    /// the caller's to check.
    pub(crate) fn lookup(&self, header: Option<&str>, now: DateTime<Utc>) -> Result<TokenInfo, BearerError> {
        let Some(h) = header else {
            return Err(BearerError::Unauthorized(
                "Authorization header is missing. Send 'Authorization: Bearer <token>'.".into(),
            ));
        };
        let token = match h.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => {
                return Err(BearerError::Unauthorized(
                    "Authorization header must use the Bearer scheme.".into(),
                ));
            }
        };
        let info = self
            .issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned()
            .ok_or_else(|| BearerError::Unauthorized("The access token is invalid.".into()))?;
        if info.revoked || info.expires <= now {
            return Err(BearerError::Unauthorized(
                "The access token has expired. Request a new token.".into(),
            ));
        }
        Ok(info)
    }

    /// Validates `Authorization: Bearer ...` by lookup.
    pub(crate) fn validate(
        &self,
        header: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<TokenInfo, BearerError> {
        let info = self.lookup(header, now)?;
        if !API_AUDIENCES.contains(&info.audience.as_str())
            && !info.audience.starts_with("http://127.0.0.1")
            && !info.audience.starts_with("http://[::1]")
            && !info.audience.starts_with("http://localhost")
        {
            return Err(BearerError::Unauthorized(format!(
                "The access token audience '{}' is not valid for this API; request scope https://api.securitycenter.microsoft.com/.default.",
                info.audience
            )));
        }
        if info.role.claim().is_none() {
            return Err(BearerError::Forbidden(
                "The application does not have any of the required permissions (Ti.ReadWrite, Ti.ReadWrite.All) to access the resource.".into(),
            ));
        }
        Ok(info)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn resource_audience(req: &TokenRequest<'_>) -> Result<String, EntraFailure> {
    let known = |r: &str| {
        let r = r.trim_end_matches('/');
        API_AUDIENCES.contains(&r) || OTHER_AUDIENCES.contains(&r) || r == req.base_url.trim_end_matches('/')
    };
    if req.v2 {
        let Some(scope) = req.form.get("scope").filter(|s| !s.trim().is_empty()) else {
            return Err(fail(
                400,
                "invalid_request",
                900144,
                "AADSTS900144: The request body must contain the following parameter: 'scope'.",
            ));
        };
        let scope = scope.trim();
        match scope.strip_suffix("/.default") {
            Some(resource) if known(resource) => Ok(resource.trim_end_matches('/').to_owned()),
            _ => Err(fail(
                400,
                "invalid_scope",
                70011,
                format!(
                    "AADSTS70011: The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
                ),
            )),
        }
    } else {
        let Some(resource) = req.form.get("resource").filter(|s| !s.trim().is_empty()) else {
            return Err(fail(
                400,
                "invalid_request",
                900144,
                "AADSTS900144: The request body must contain the following parameter: 'resource'.",
            ));
        };
        if known(resource) {
            Ok(resource.trim().trim_end_matches('/').to_owned())
        } else {
            Err(fail(
                400,
                "invalid_resource",
                500011,
                format!(
                    "AADSTS500011: The resource principal named {resource} was not found in the tenant named {}.",
                    req.tenant
                ),
            ))
        }
    }
}

fn mint_jwt(
    aud: &str,
    tid: &str,
    client_id: &str,
    roles: &[&str],
    now: DateTime<Utc>,
    exp: DateTime<Utc>,
) -> String {
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "iocsync-emulator"});
    let claims = json!({
        "aud": aud,
        "iss": format!("https://sts.windows.net/{tid}/"),
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "exp": exp.timestamp(),
        "appid": client_id,
        "azp": client_id,
        "tid": tid,
        "roles": roles,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let mut sig = [0u8; 64];
    rand::rng().fill_bytes(&mut sig);
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

fn bad_assertion(code: u32, msg: impl Into<String>) -> EntraFailure {
    fail(401, "invalid_client", code, msg)
}

/// Verifies a client assertion: PS256 (RSASSA-PSS SHA-256) with `x5t#S256` or RS256 (PKCS#1 v1.5
/// SHA-256) with `x5t`, then aud, iss/sub, nbf/exp. Signatures are checked with `ring` (through
/// rustls-webpki) against the registered SPKI public key.
fn verify_assertion(
    assertion: &str,
    client: &ClientCredential,
    req: &TokenRequest<'_>,
) -> Result<(), EntraFailure> {
    use rustls_pki_types::SubjectPublicKeyInfoDer;
    use rustls_pki_types::pem::PemObject as _;

    let Some(pem) = client.certificate_public_key_pem.as_deref() else {
        return Err(bad_assertion(
            700027,
            format!(
                "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application {}.",
                client.client_id
            ),
        ));
    };
    let parts: Vec<&str> = assertion.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        return Err(bad_assertion(50027, "AADSTS50027: JWT token is invalid or malformed."));
    };
    let decode = |x: &str| -> Result<Value, EntraFailure> {
        let bytes = URL_SAFE_NO_PAD
            .decode(x)
            .map_err(|_| bad_assertion(50027, "AADSTS50027: JWT token is invalid or malformed."))?;
        serde_json::from_slice(&bytes)
            .map_err(|_| bad_assertion(50027, "AADSTS50027: JWT token is invalid or malformed."))
    };
    let header = decode(h)?;
    let claims = decode(p)?;
    let (algorithm, thumbprint_header, expected) = match header.get("alg").and_then(Value::as_str) {
        Some("PS256") => (
            webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            "x5t#S256",
            client.certificate_thumbprint_x5t_s256.as_deref(),
        ),
        Some("RS256") => {
            (webpki::ring::RSA_PKCS1_2048_8192_SHA256, "x5t", client.certificate_thumbprint_x5t.as_deref())
        }
        _ => {
            return Err(bad_assertion(
                5002738,
                "AADSTS5002738: The client assertion must be signed with PS256 or RS256.",
            ));
        }
    };
    if let Some(expected) = expected
        && header.get(thumbprint_header).and_then(Value::as_str) != Some(expected)
    {
        return Err(bad_assertion(
            700027,
            format!(
                "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application {}. ({thumbprint_header} mismatch)",
                client.client_id
            ),
        ));
    }
    let unreadable =
        || bad_assertion(700027, "AADSTS700027: The registered certificate key could not be read.");
    let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()).map_err(|_| unreadable())?;
    let key = webpki::RawPublicKeyEntity::try_from(&spki).map_err(|_| unreadable())?;
    let sig_bytes = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad_assertion(50027, "AADSTS50027: JWT token is invalid or malformed."))?;
    let signed = &assertion[..h.len() + 1 + p.len()];
    key.verify_signature(algorithm, signed.as_bytes(), &sig_bytes).map_err(|_| {
        bad_assertion(700027, "AADSTS700027: Client assertion contains an invalid signature.")
    })?;
    let aud = claims.get("aud").and_then(Value::as_str).unwrap_or_default();
    if !req.endpoint_urls.iter().any(|u| u == aud) {
        return Err(bad_assertion(
            700016,
            format!(
                "AADSTS700016: Invalid audience '{aud}' in the client assertion; expected the token endpoint URL."
            ),
        ));
    }
    let iss = claims.get("iss").and_then(Value::as_str);
    let sub = claims.get("sub").and_then(Value::as_str);
    if iss != Some(client.client_id.as_str()) || sub != Some(client.client_id.as_str()) {
        return Err(bad_assertion(
            700021,
            "AADSTS700021: Client assertion iss and sub must both equal the client id.",
        ));
    }
    if claims.get("jti").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(bad_assertion(50027, "AADSTS50027: Client assertion has no jti claim."));
    }
    let now = req.now.timestamp();
    let skew = 300;
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp + skew > now => {}
        Some(_) => {
            return Err(bad_assertion(
                700024,
                "AADSTS700024: Client assertion is not within its valid time range (expired).",
            ));
        }
        None => return Err(bad_assertion(50027, "AADSTS50027: Client assertion has no exp claim.")),
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
        && nbf - skew > now
    {
        return Err(bad_assertion(
            700024,
            "AADSTS700024: Client assertion is not within its valid time range (not yet valid).",
        ));
    }
    Ok(())
}
