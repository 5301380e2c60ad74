//! The one error type of this crate: what went wrong, whether a retry could help, and the
//! identifiers (HTTP status, service error code, request id) an operator needs to follow up.

use std::fmt::Write as _;

/// Broad class of a failure, which the app maps to exit codes and advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Entra ID refused the credentials, or Defender refused the token (401/403).
    Auth,
    /// Defender answered with an error or an unusable response.
    Api,
    /// The request never got a complete answer: connect failure, timeout, reset.
    Network,
    /// The client configuration or a call argument is invalid; nothing was sent.
    Config,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::Auth => "authentication",
            ErrorKind::Api => "Defender API",
            ErrorKind::Network => "network",
            ErrorKind::Config => "configuration",
        })
    }
}

/// Error returned by every fallible call of this crate.
///
/// Never contains a secret or an access token: messages are built from status lines, service
/// error codes and descriptions, never from request bodies or token responses.
#[derive(Debug, thiserror::Error)]
#[error("{rendered}")]
pub struct Error {
    kind: ErrorKind,
    retryable: bool,
    status: Option<u16>,
    code: Option<String>,
    request_id: Option<String>,
    message: String,
    rendered: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind`; `retryable` says whether the same request may succeed later.
    pub(crate) fn new(kind: ErrorKind, retryable: bool, message: impl Into<String>) -> Self {
        let mut e = Error {
            kind,
            retryable,
            status: None,
            code: None,
            request_id: None,
            message: message.into(),
            rendered: String::new(),
            source: None,
        };
        e.render();
        e
    }

    /// A configuration error (permanent): the message should say which setting to fix.
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, false, message)
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self.render();
        self
    }

    pub(crate) fn with_code(mut self, code: Option<String>) -> Self {
        self.code = code.filter(|c| !c.is_empty());
        self.render();
        self
    }

    pub(crate) fn with_request_id(mut self, id: Option<String>) -> Self {
        if id.is_some() {
            self.request_id = id.filter(|c| !c.is_empty());
            self.render();
        }
        self
    }

    pub(crate) fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    fn render(&mut self) {
        let mut s = format!("{} error", self.kind);
        if let Some(status) = self.status {
            let _ = write!(s, " (HTTP {status}");
            if let Some(code) = &self.code {
                let _ = write!(s, " {code}");
            }
            s.push(')');
        } else if let Some(code) = &self.code {
            let _ = write!(s, " ({code})");
        }
        let _ = write!(s, ": {}", self.message);
        if let Some(id) = &self.request_id {
            let _ = write!(s, " [request id {id}]");
        }
        self.rendered = s;
    }

    /// Broad class of the failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True when retrying the same request later may succeed (throttling, 5xx, network).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// HTTP status of the response that caused the error, if there was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Defender `error.code` or Entra `error` value, if the response carried one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// Correlation id to quote to Microsoft support (Defender `error.target`, the
    /// `request-id` header, or Entra `trace_id`/`correlation_id`).
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The human-readable part of the message, without status, code and request id.
    pub fn message(&self) -> &str {
        &self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_carries_status_code_and_request_id() {
        let e = Error::new(ErrorKind::Api, false, "IP address 10.1.2.3 is invalid.")
            .with_status(400)
            .with_code(Some("InvalidIpAddress".into()))
            .with_request_id(Some("abc-123".into()));
        assert_eq!(
            e.to_string(),
            "Defender API error (HTTP 400 InvalidIpAddress): IP address 10.1.2.3 is invalid. [request id abc-123]"
        );
        assert_eq!(e.kind(), ErrorKind::Api);
        assert!(!e.is_retryable());
        assert_eq!(e.code(), Some("InvalidIpAddress"));
        assert_eq!(e.request_id(), Some("abc-123"));
        assert_eq!(e.status(), Some(400));
    }

    #[test]
    fn config_errors_are_permanent() {
        let e = Error::config("api_base must use https");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(!e.is_retryable());
        assert_eq!(e.to_string(), "configuration error: api_base must use https");
    }
}
