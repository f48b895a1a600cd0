//! `[auth]`: the users clients authenticate as: RESP clients with AUTH or
//! HELLO ... AUTH, memcached clients (with `memcache = "ascii"`) with
//! memcached's ASCII authentication.
//! A password is written in the file, or read from a file or an environment
//! variable when the configuration is loaded (and again on every reload, so
//! rotating one is a SIGHUP). Passwords are never logged, and `/config`
//! shows them as `***`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::permissions::Permissions;
use super::{problem, ConfigError};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// With none, RESP clients need no AUTH (as a redis without requirepass).
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// What the memcached listeners ask of a client when `users` is set:
    /// `"ascii"` (memcached's `-Y`: a first `set` carrying `<user> <password>`)
    /// or `"open"` (no credential, chosen on purpose). Unset with users and a
    /// TCP memcached listener is a configuration error: the listener would
    /// otherwise serve the keys the RESP listener guards.
    pub memcache: Option<MemcacheAuth>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemcacheAuth {
    Ascii,
    Open,
    /// A client certificate from `[tls] client_ca_file` on the TLS
    /// memcached listener (the one credential Django's memcached clients
    /// can send: pymemcache's `tls_context`).
    Certificate,
}

impl Auth {
    /// Whether memcached-protocol clients must authenticate first.
    pub fn memcache_required(&self) -> bool {
        !self.users.is_empty() && self.memcache == Some(MemcacheAuth::Ascii)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// `default` is the user `AUTH <password>` (one argument) authenticates as.
    pub name: String,
    /// Exactly one of `password`, `password_file`, `password_env`.
    #[serde(default, serialize_with = "redacted")]
    pub password: Option<Secret>,
    /// A file holding the password (one trailing newline is ignored).
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    pub password_env: Option<String>,
    /// What the user may run on the RESP listener, in redis's ACL words:
    /// e.g. `"+@all -@dangerous -@scripting"` or `"+@read +@write ~app:*"`
    /// (see [`Permissions`]). Unset: every command and key. Also read as
    /// `acl`, the word redis's `ACL SETUSER` users know it by.
    #[serde(alias = "acl")]
    pub permissions: Option<String>,
}

/// A password: shown as `***` by Debug and by `/config`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

fn redacted<S: Serializer>(secret: &Option<Secret>, serializer: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_str("***"),
        None => serializer.serialize_none(),
    }
}

impl UserConfig {
    /// The password, from wherever this user's configuration says.
    fn resolve(&self) -> Result<Vec<u8>, String> {
        let password = match (&self.password, &self.password_file, &self.password_env) {
            (Some(Secret(password)), None, None) => password.clone().into_bytes(),
            (None, Some(file), None) => {
                let mut text = std::fs::read(file)
                    .map_err(|e| format!("password_file {}: {e}", file.display()))?;
                if text.last() == Some(&b'\n') {
                    text.pop();
                    if text.last() == Some(&b'\r') {
                        text.pop();
                    }
                }
                text
            }
            (None, None, Some(variable)) => std::env::var_os(variable)
                .ok_or_else(|| format!("password_env: ${variable} is not set"))?
                .into_encoded_bytes(),
            _ => return Err("set exactly one of password, password_file, password_env".to_string()),
        };
        if password.is_empty() {
            return Err("the password is empty".into());
        }
        Ok(password)
    }
}

/// The users, with their passwords resolved, as connections check them.
#[derive(Default)]
pub struct Users {
    users: Vec<User>,
}

struct User {
    name: Vec<u8>,
    /// The SHA-256 of the password: comparing digests in constant time
    /// reveals neither the password nor its length through timing.
    digest: [u8; 32],
    /// `None`: every command and key.
    permissions: Option<Arc<Permissions>>,
}

impl Users {
    /// Reads every user's password; the error names the user's field.
    pub fn load(auth: &Auth) -> Result<Self, ConfigError> {
        let mut users = Vec::new();
        for (i, user) in auth.users.iter().enumerate() {
            let password = user
                .resolve()
                .map_err(|why| problem(format!("auth.users[{i}]"), why))?;
            if users.iter().any(|u: &User| u.name == user.name.as_bytes()) {
                return Err(problem(
                    format!("auth.users[{i}].name"),
                    format!("{:?} is configured twice", user.name),
                ));
            }
            let permissions = match &user.permissions {
                None => None,
                Some(rules) => {
                    Some(Arc::new(Permissions::parse(rules).map_err(|why| {
                        problem(format!("auth.users[{i}].permissions"), why)
                    })?))
                }
            };
            users.push(User {
                name: user.name.clone().into_bytes(),
                digest: digest(&password),
                permissions,
            });
        }
        Ok(Self { users })
    }

    /// Whether `user` is configured, and then what it may run (`None`:
    /// everything). A connection authenticated as a user a reload removed
    /// is closed (see the RESP and memcached sessions).
    pub fn find(&self, user: &[u8]) -> Option<Option<Arc<Permissions>>> {
        self.users
            .iter()
            .find(|u| u.name == user)
            .map(|u| u.permissions.clone())
    }

    /// Whether clients must authenticate.
    pub fn required(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether `password` is `user`'s.
    pub fn check(&self, user: &[u8], password: &[u8]) -> bool {
        let offered = digest(password);
        // Every user is compared, so the time does not say which names exist.
        self.users.iter().fold(false, |found, u| {
            let matches: bool = u.digest.ct_eq(&offered).into();
            found | (u.name == user && matches)
        })
    }
}

/// The admin listener's bearer token (`listen.admin_token_file`), kept as
/// its digest and compared in constant time.
pub struct AdminToken([u8; 32]);

impl AdminToken {
    /// Reads the token file, if one is configured.
    pub fn load(file: Option<&std::path::Path>) -> Result<Option<Self>, ConfigError> {
        let Some(file) = file else {
            return Ok(None);
        };
        let field = "listen.admin_token_file";
        let text =
            std::fs::read(file).map_err(|e| problem(field, format!("{}: {e}", file.display())))?;
        let token = text.trim_ascii();
        if token.len() < 16 {
            return Err(problem(
                field,
                format!(
                    "{} holds {} bytes; write a token of at least 16 (e.g. `openssl rand -hex 32 > {}`)",
                    file.display(),
                    token.len(),
                    file.display()
                ),
            ));
        }
        Ok(Some(Self(digest(token))))
    }

    /// Whether an `Authorization` header value carries the token.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let offered = authorization
            .and_then(|value| value.strip_prefix(b"Bearer "))
            .map(|token| digest(token.trim_ascii()));
        offered.is_some_and(|offered| bool::from(self.0.ct_eq(&offered)))
    }
}

fn digest(password: &[u8]) -> [u8; 32] {
    Sha256::digest(password).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, password: Option<&str>, env: Option<&str>) -> UserConfig {
        UserConfig {
            name: name.into(),
            password: password.map(|p| Secret(p.into())),
            password_file: None,
            password_env: env.map(String::from),
            permissions: None,
        }
    }

    #[test]
    fn passwords_check_per_user() {
        let users = Users::load(&Auth {
            users: vec![
                user("default", Some("s3cret"), None),
                user("app", Some("other"), None),
            ],
            ..Auth::default()
        })
        .unwrap();
        assert!(users.required());
        assert!(users.check(b"default", b"s3cret"));
        assert!(users.check(b"app", b"other"));
        assert!(!users.check(b"app", b"s3cret"));
        assert!(!users.check(b"nobody", b"s3cret"));
        assert!(!users.check(b"default", b"s3cre"));
        assert!(!Users::default().required());
    }

    #[test]
    fn one_source_per_password_and_it_must_resolve() {
        let both = UserConfig {
            password_env: Some("X".into()),
            ..user("a", Some("p"), None)
        };
        let error = Users::load(&Auth {
            users: vec![both],
            ..Auth::default()
        })
        .err()
        .unwrap();
        assert_eq!(error.field, "auth.users[0]");
        let unset = user("a", None, Some("KEYWAY_TEST_SURELY_UNSET_VARIABLE"));
        let error = Users::load(&Auth {
            users: vec![unset],
            ..Auth::default()
        })
        .err()
        .unwrap();
        assert!(error.message.contains("is not set"), "{error}");
        assert_eq!(format!("{:?}", Secret("p".into())), "***");
    }
}
