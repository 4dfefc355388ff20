//! The dashboard's token: made from the system's random source, carried as `?token=` or
//! `Authorization: Bearer`, compared in constant time.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use thiserror::Error;

use crate::api::error;

/// Random bytes in a token (printed as twice as many hex digits).
const TOKEN_BYTES: usize = 32;

/// The secret that opens a dashboard. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// Why no token could be made or taken.
#[derive(Debug, Error)]
pub enum TokenError {
    #[error("cannot read the system's random source: {0}")]
    Random(String),
    #[error("a token must be 32 to 128 characters from [A-Za-z0-9_-]")]
    Malformed,
}

impl Token {
    /// A new token of 256 random bits.
    pub fn generate() -> Result<Token, TokenError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
        Ok(Token(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// A token given by the caller (for a job that hands its own token to its dashboard).
    pub fn new(text: &str) -> Result<Token, TokenError> {
        let good = (32..=128).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if good {
            Ok(Token(text.to_owned()))
        } else {
            Err(TokenError::Malformed)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this token, in time that does not depend on where they differ.
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        if a.len() != b.len() {
            // The length of a token is no secret.
            return false;
        }
        let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
        std::hint::black_box(diff) == 0
    }

    /// Whether a request carries this token, in its Authorization header or its query.
    pub(crate) fn admits(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        if bearer.is_some_and(|t| self.matches(t)) {
            return true;
        }
        query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|pair| pair.strip_prefix("token="))
            .any(|t| self.matches(t))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// The middleware in front of every route: 401 without the token.
pub(crate) async fn require_token(
    State(state): State<Arc<crate::State>>,
    request: Request,
    next: Next,
) -> Response {
    if state
        .config
        .token
        .admits(request.headers(), request.uri().query())
    {
        return next.run(request).await;
    }
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "this dashboard needs its token: open the URL `mpicr dashboard` printed (it ends in \
         ?token=…) or send the header `Authorization: Bearer TOKEN`",
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"mpicr\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let t = Token::generate().expect("a token");
        assert_eq!(t.as_str().len(), 64);
        assert!(t.matches(t.as_str()));
        assert!(!t.matches(""));
        assert!(!t.matches(&t.as_str()[1..]));
        let mut other = t.as_str().to_owned();
        other.replace_range(63.., if other.ends_with('0') { "1" } else { "0" });
        assert!(!t.matches(&other));
        assert_ne!(Token::generate().expect("a token"), t);
        assert_eq!(format!("{t:?}"), "Token(…)");
        assert!(Token::new("short").is_err());
        assert!(Token::new(&"x".repeat(32)).is_ok());
        assert!(Token::new(&"x y".repeat(16)).is_err());
    }

    #[test]
    fn requests() {
        let t = Token::new(&"a".repeat(40)).expect("a token");
        let mut headers = HeaderMap::new();
        assert!(!t.admits(&headers, None));
        assert!(!t.admits(&headers, Some("token=b")));
        assert!(t.admits(&headers, Some(&format!("x=1&token={}", "a".repeat(40)))));
        headers.insert(
            header::AUTHORIZATION,
            format!("bearer {}", "a".repeat(40))
                .parse()
                .expect("a value"),
        );
        assert!(t.admits(&headers, None));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().expect("a value"));
        assert!(!t.admits(&headers, None));
    }
}
