//! A minimal W3C WebDriver client over reqwest: the dozen commands the console's browser tests
//! use. fantoccini would pull `webdriver` (MPL-2.0) and http 0.2, both refused by deny.toml.

use base64::Engine as _;
use serde_json::{Value, json};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session.
pub struct Session {
    http: reqwest::Client,
    base: String,
}

/// One element of the current page.
pub struct Element<'a> {
    session: &'a Session,
    id: String,
}

/// A WebDriver error: the command and what the driver said.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, Error> {
    let mut req = http.request(method.clone(), url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.map_err(|e| Error(format!("{method} {url}: {e}")))?;
    let status = resp.status();
    let v: Value = resp.json().await.map_err(|e| Error(format!("{method} {url}: {e}")))?;
    if !status.is_success() {
        return Err(Error(format!("{method} {url}: {} {}", v["value"]["error"], v["value"]["message"])));
    }
    Ok(v["value"].clone())
}

impl Session {
    /// Opens a session on the driver at `driver` (e.g. `http://127.0.0.1:9515`), with the
    /// given `goog:chromeOptions`, and an implicit wait so finds wait for the next page.
    pub async fn new(driver: &str, chrome_options: Value) -> Result<Session, Error> {
        let http = iocsync_defender::tls::http_client_builder()
            .map_err(|e| Error(e.to_string()))?
            .build()
            .map_err(|e| Error(e.to_string()))?;
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": chrome_options}}});
        let v = call(&http, reqwest::Method::POST, &format!("{driver}/session"), Some(caps)).await?;
        let id = v["sessionId"].as_str().ok_or_else(|| Error(format!("no session id: {v}")))?;
        let s = Session { http, base: format!("{driver}/session/{id}") };
        s.post("/timeouts", json!({"implicit": 10_000, "pageLoad": 30_000})).await?;
        Ok(s)
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, Error> {
        call(&self.http, reqwest::Method::POST, &format!("{}{path}", self.base), Some(body)).await
    }

    async fn get(&self, path: &str) -> Result<Value, Error> {
        call(&self.http, reqwest::Method::GET, &format!("{}{path}", self.base), None).await
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> Result<(), Error> {
        self.post("/url", json!({"url": url})).await.map(drop)
    }

    /// The current page's URL.
    pub async fn current_url(&self) -> Result<String, Error> {
        Ok(self.get("/url").await?.as_str().unwrap_or_default().to_owned())
    }

    /// The first element matching the CSS selector (waiting up to the implicit wait).
    pub async fn find(&self, css: &str) -> Result<Element<'_>, Error> {
        let v = self.post("/element", json!({"using": "css selector", "value": css})).await?;
        let id = v[ELEMENT].as_str().ok_or_else(|| Error(format!("no element reference: {v}")))?;
        Ok(Element { session: self, id: id.to_owned() })
    }

    /// Whether an element matches right now (no implicit wait).
    pub async fn exists_now(&self, css: &str) -> Result<bool, Error> {
        self.post("/timeouts", json!({"implicit": 0})).await?;
        let found = self.post("/elements", json!({"using": "css selector", "value": css})).await;
        self.post("/timeouts", json!({"implicit": 10_000})).await?;
        Ok(found?.as_array().is_some_and(|a| !a.is_empty()))
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>, Error> {
        let b64 = self.get("/screenshot").await?;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .map_err(|e| Error(format!("screenshot: {e}")))
    }

    /// Accepts the open `confirm()` dialog, waiting up to 10 s for it to open.
    pub async fn accept_alert(&self) -> Result<(), Error> {
        let mut last = Error("no dialog".to_owned());
        for _ in 0..100 {
            match self.post("/alert/accept", json!({})).await {
                Ok(_) => return Ok(()),
                Err(e) => last = e,
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(last)
    }

    /// Ends the session (the browser closes).
    pub async fn close(&self) -> Result<(), Error> {
        call(&self.http, reqwest::Method::DELETE, &self.base, None).await.map(drop)
    }
}

impl Element<'_> {
    fn path(&self, what: &str) -> String {
        format!("/element/{}/{what}", self.id)
    }

    /// Its rendered text.
    pub async fn text(&self) -> Result<String, Error> {
        Ok(self.session.get(&self.path("text")).await?.as_str().unwrap_or_default().to_owned())
    }

    /// Clicks it.
    pub async fn click(&self) -> Result<(), Error> {
        self.session.post(&self.path("click"), json!({})).await.map(drop)
    }

    /// Empties an input.
    pub async fn clear(&self) -> Result<(), Error> {
        self.session.post(&self.path("clear"), json!({})).await.map(drop)
    }

    /// Whether the page it was on is gone (a navigation happened since it was found).
    pub async fn is_stale(&self) -> bool {
        match self.session.get(&self.path("name")).await {
            Ok(_) => false,
            Err(e) => e.0.contains("stale element"),
        }
    }

    /// Types `text` into it.
    pub async fn send_keys(&self, text: &str) -> Result<(), Error> {
        self.session.post(&self.path("value"), json!({"text": text})).await.map(drop)
    }
}
