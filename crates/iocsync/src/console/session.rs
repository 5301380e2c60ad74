//! Server-side sessions (a random token in an `HttpOnly`, `SameSite=Strict` cookie; logging out
//! forgets it here), their CSRF tokens, and the failed-login limiter.

use crate::config::Role;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "iocsync_session";
/// The cookie that carries the login form's CSRF token before there is a session.
pub const LOGIN_COOKIE: &str = "iocsync_login";

/// A fresh random token: 32 bytes from the thread CSPRNG, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::fill(&mut b);
    hex::encode(b)
}

/// Compares two tokens in constant time.
pub fn same_token(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// One logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    /// User name.
    pub user: String,
    /// Role at login.
    pub role: Role,
    /// The token every form of this session carries.
    pub csrf: String,
    /// A fingerprint of the password hash it signed in with: a password reset ends the session.
    pub credential: String,
    /// Login time.
    pub created: DateTime<Utc>,
    /// Last request.
    pub last_seen: DateTime<Utc>,
}

/// Every live session, by the SHA-256 of its token (a memory dump does not yield cookies).
#[derive(Debug)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
    idle: chrono::Duration,
    max: chrono::Duration,
}

fn key(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// What a session remembers of the password hash it signed in with (not the hash itself).
pub fn credential_fingerprint(password_hash: &str) -> String {
    key(password_hash)
}

/// The limiter's key for a client address: IPv4 (also IPv4-mapped IPv6) as is, other IPv6 by
/// its /64, since one host commonly holds a whole /64.
pub fn address_key(ip: std::net::IpAddr) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        v4 => format!("ip:{v4}"),
    }
}

/// Most keys the login limiter keeps; past it the least recent failures are forgotten first.
pub const MAX_LIMITER_KEYS: usize = 10_000;

impl Sessions {
    /// Sessions that end after `idle` without a request, or `max` after login.
    pub fn new(idle: Duration, max: Duration) -> Sessions {
        Sessions {
            by_token: Mutex::new(HashMap::new()),
            idle: chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::minutes(30)),
            max: chrono::Duration::from_std(max).unwrap_or(chrono::Duration::hours(12)),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_token.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a session; returns its token (for the cookie) and the session. `credential` is
    /// [`credential_fingerprint`] of the user's password hash (empty behind a proxy).
    pub fn create(&self, user: &str, role: Role, credential: &str, now: DateTime<Utc>) -> (String, Session) {
        let token = random_token();
        let s = Session {
            user: user.to_owned(),
            role,
            csrf: random_token(),
            credential: credential.to_owned(),
            created: now,
            last_seen: now,
        };
        let mut map = self.map();
        // Expired sessions are dropped here, so the map cannot grow without bound.
        map.retain(|_, s| !self.expired(s, now));
        map.insert(key(&token), s.clone());
        (token, s)
    }

    fn expired(&self, s: &Session, now: DateTime<Utc>) -> bool {
        now - s.last_seen > self.idle || now - s.created > self.max
    }

    /// The live session of `token`, marked used at `now`; an expired one is forgotten.
    pub fn get(&self, token: &str, now: DateTime<Utc>) -> Option<Session> {
        let k = key(token);
        let mut map = self.map();
        let expired = self.expired(map.get(&k)?, now);
        if expired {
            map.remove(&k);
            return None;
        }
        let s = map.get_mut(&k)?;
        s.last_seen = now;
        Some(s.clone())
    }

    /// Ends the session of `token` (logout); its cookie is worthless from now on.
    pub fn remove(&self, token: &str) -> bool {
        self.map().remove(&key(token)).is_some()
    }

    /// How many sessions are live (for tests and the overview).
    pub fn len(&self, now: DateTime<Utc>) -> usize {
        self.map().values().filter(|s| !self.expired(s, now)).count()
    }

    /// Whether no session is live.
    pub fn is_empty(&self, now: DateTime<Utc>) -> bool {
        self.len(now) == 0
    }
}

/// Counts failed logins per user name and per client address over a sliding window.
#[derive(Debug)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>,
    attempts: usize,
    window: chrono::Duration,
}

impl LoginLimiter {
    /// At most `attempts` failures per key within `window`.
    pub fn new(attempts: u32, window: Duration) -> LoginLimiter {
        LoginLimiter {
            failures: Mutex::new(HashMap::new()),
            attempts: attempts as usize,
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::minutes(15)),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<DateTime<Utc>>>> {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When any of `keys` is locked out at `now`: how long until it may try again.
    pub fn locked(&self, keys: &[String], now: DateTime<Utc>) -> Option<chrono::Duration> {
        let mut map = self.map();
        let mut wait = None;
        for k in keys {
            if let Some(q) = map.get_mut(k) {
                while q.front().is_some_and(|t| now - *t > self.window) {
                    q.pop_front();
                }
                if q.len() >= self.attempts
                    && let Some(first) = q.front()
                {
                    let w = *first + self.window - now;
                    wait = Some(wait.map_or(w, |x: chrono::Duration| x.max(w)));
                }
            }
        }
        map.retain(|_, q| !q.is_empty());
        wait
    }

    /// Records one failure for each of `keys`. The map stays under [`MAX_LIMITER_KEYS`]:
    /// failures older than the window go first, then the least recent ones.
    pub fn fail(&self, keys: &[String], now: DateTime<Utc>) {
        let mut map = self.map();
        for k in keys {
            let q = map.entry(k.clone()).or_default();
            q.push_back(now);
            while q.len() > self.attempts {
                q.pop_front();
            }
        }
        if map.len() > MAX_LIMITER_KEYS {
            map.retain(|_, q| q.back().is_some_and(|t| now - *t <= self.window));
        }
        if map.len() > MAX_LIMITER_KEYS {
            // Down to 90 %, so a flood pays for one sort per thousand new keys, not one each.
            let mut last: Vec<(DateTime<Utc>, String)> =
                map.iter().filter_map(|(k, q)| q.back().map(|t| (*t, k.clone()))).collect();
            last.sort();
            for (_, k) in last.iter().take(map.len() - MAX_LIMITER_KEYS * 9 / 10) {
                map.remove(k);
            }
        }
    }

    /// How many keys it holds (tests).
    pub fn keys(&self) -> usize {
        self.map().len()
    }

    /// Forgets the failures of the user who just logged in (not those of the address).
    pub fn succeed(&self, user_key: &str) {
        self.map().remove(user_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(mins: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + chrono::Duration::minutes(mins)
    }

    #[test]
    fn sessions_expire_when_idle_or_old_and_logout_forgets_them() {
        let s = Sessions::new(Duration::from_secs(30 * 60), Duration::from_secs(2 * 3600));
        let (tok, _) = s.create("alice", Role::Analyst, "", t(0));
        assert!(s.get(&tok, t(29)).is_some());
        assert!(s.get(&tok, t(58)).is_some(), "each request renews the idle timer");
        assert!(s.get(&tok, t(89)).is_none(), "31 minutes idle");
        let (tok, _) = s.create("alice", Role::Analyst, "", t(0));
        for m in (20..=120).step_by(20) {
            assert!(s.get(&tok, t(m)).is_some(), "{m}");
        }
        assert!(s.get(&tok, t(121)).is_none(), "past session_max even though used");
        let (tok, _) = s.create("bob", Role::Viewer, "", t(0));
        assert!(s.remove(&tok));
        assert!(s.get(&tok, t(1)).is_none());
        assert!(!same_token("abc", "abd") && same_token("abc", "abc") && !same_token("abc", "abcd"));
    }

    #[test]
    fn limiter_locks_out_after_the_attempts_and_frees_after_the_window() {
        let l = LoginLimiter::new(3, Duration::from_secs(15 * 60));
        let keys = vec!["user:alice".to_owned(), "ip:127.0.0.1".to_owned()];
        for m in 0..3 {
            assert!(l.locked(&keys, t(m)).is_none());
            l.fail(&keys, t(m));
        }
        let wait = l.locked(&keys, t(3)).expect("locked");
        assert_eq!(wait, chrono::Duration::minutes(12));
        assert!(l.locked(&["ip:127.0.0.1".to_owned()], t(10)).is_some(), "the address too");
        assert!(l.locked(&keys, t(16)).is_none(), "the first failure left the window");
    }

    #[test]
    fn the_limiter_stays_bounded_under_a_flood_of_addresses() {
        let l = LoginLimiter::new(5, Duration::from_secs(15 * 60));
        for i in 0..(MAX_LIMITER_KEYS as u32 + 5_000) {
            let ip = std::net::IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.fail(&[address_key(ip)], t(0) + chrono::Duration::milliseconds(i64::from(i)));
        }
        assert!(l.keys() <= MAX_LIMITER_KEYS, "{}", l.keys());
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_key(a), address_key(b), "one /64, one key");
        let mapped: std::net::IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert_eq!(address_key(mapped), "ip:10.0.0.5");
    }
}
