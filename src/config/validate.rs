//! `Config::validate`, a function per section: every message names the
//! field to fix and how.

use std::net::SocketAddr;

use super::url::validate_table_name;
use super::{
    problem, BackendConfig, BackendUrl, Config, ConfigError, MemcacheAuth, PolicyConfig,
    RouteConfig, Users,
};

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_listen()?;
        Users::load(&self.auth)?;
        self.validate_memcache_auth()?;
        self.validate_tls()?;
        self.validate_limits()?;
        for (name, backend) in &self.backends {
            backend.validate(name)?;
        }
        for (name, policy) in &self.policies {
            self.validate_policy(name, policy)?;
        }
        if self.routes.is_empty() {
            return Err(problem(
                "routes",
                "no routes; add at least one [[routes]] with glob = \"*\"",
            ));
        }
        for (i, route) in self.routes.iter().enumerate() {
            self.validate_route(i, route)?;
        }
        self.validate_coherence()
    }

    /// Users guard the RESP listener; a TCP memcached listener beside it
    /// must either ask for them too or be declared open on purpose.
    fn validate_memcache_auth(&self) -> Result<(), ConfigError> {
        let auth = &self.auth;
        if auth.users.is_empty() && auth.memcache == Some(MemcacheAuth::Ascii) {
            return Err(problem(
                "auth.memcache",
                "\"ascii\" needs users to check; add [[auth.users]] or remove auth.memcache",
            ));
        }
        if auth.memcache == Some(MemcacheAuth::Certificate)
            && !self.requires_client_certificates(super::ListenerName::Memcache)
        {
            return Err(problem(
                "auth.memcache",
                "\"certificate\" needs the memcached listener to require client \
                 certificates: set [tls] client_ca_file and list \"memcache\" in \
                 tls.listeners",
            ));
        }
        if !auth.users.is_empty() && auth.memcache.is_none() {
            if let Some(address) = &self.listen.memcache {
                return Err(problem(
                    "auth.memcache",
                    format!(
                        "[[auth.users]] guard the RESP listener, but listen.memcache ({address}) \
                         would serve the same keys with no credential; set auth.memcache = \"ascii\" \
                         (memcached's ASCII authentication: a client's first command is \
                         `set <any> 0 0 <n>` with `<user> <password>` as its data), \
                         auth.memcache = \"certificate\" (mutual TLS: [tls] client_ca_file, the \
                         credential Django's memcached clients can send) or \
                         auth.memcache = \"open\" to serve it unauthenticated on purpose, \
                         or use listen.memcache_socket (guarded by its file mode) instead"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_listen(&self) -> Result<(), ConfigError> {
        let listen = &self.listen;
        if listen.memcache.is_none()
            && listen.resp.is_none()
            && listen.memcache_socket.is_none()
            && listen.resp_socket.is_none()
        {
            return Err(problem(
                "listen",
                "no listener configured; set listen.memcache and/or listen.resp (or a *_socket path)",
            ));
        }
        for (name, path) in [
            ("listen.memcache_socket", &listen.memcache_socket),
            ("listen.resp_socket", &listen.resp_socket),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(problem(
                    name,
                    "empty path; write e.g. \"/run/keyway/memcache.sock\"",
                ));
            }
        }
        if listen.memcache_socket.is_some() && listen.memcache_socket == listen.resp_socket {
            return Err(problem(
                "listen.resp_socket",
                "the same path as listen.memcache_socket; each protocol needs its own socket",
            ));
        }
        for (name, addr) in [
            ("listen.memcache", &self.listen.memcache),
            ("listen.resp", &self.listen.resp),
            ("listen.admin", &self.listen.admin),
            ("listen.sentinel", &self.listen.sentinel),
        ] {
            if let Some(addr) = addr {
                addr.parse::<SocketAddr>().map_err(|_| {
                    problem(
                        name,
                        format!("{addr:?} is not an address; write e.g. \"127.0.0.1:6379\""),
                    )
                })?;
            }
        }
        self.validate_admin_exposure()?;
        self.validate_sentinel()
    }

    /// The sentinel listener hands out the RESP listener's address, so
    /// that must be one a client can reach.
    fn validate_sentinel(&self) -> Result<(), ConfigError> {
        let sentinel = &self.sentinel;
        if sentinel.master_name.is_empty() || sentinel.master_name.contains(char::is_whitespace) {
            return Err(problem(
                "sentinel.master_name",
                "must be one word, e.g. \"mymaster\" (kolla-ansible: \"kolla\")",
            ));
        }
        if let Some(announce) = &sentinel.announce {
            let port = announce
                .rsplit_once(':')
                .map(|(host, port)| (host, port.parse::<u16>()));
            if !matches!(port, Some((host, Ok(_))) if !host.is_empty()) {
                return Err(problem(
                    "sentinel.announce",
                    format!("{announce:?} is not host:port; write e.g. \"10.0.0.5:6379\""),
                ));
            }
        }
        if self.listen.sentinel.is_none() {
            return Ok(());
        }
        let Some(resp) = &self.listen.resp else {
            return Err(problem(
                "listen.sentinel",
                "the sentinel listener hands out the RESP listener's address; set listen.resp too",
            ));
        };
        let unspecified = resp
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_unspecified());
        if unspecified && sentinel.announce.is_none() {
            return Err(problem(
                "sentinel.announce",
                format!(
                    "listen.resp ({resp}) listens on every interface, which is no address to hand \
                     out; set sentinel.announce to the host:port clients reach it at"
                ),
            ));
        }
        Ok(())
    }

    /// `/config` and `/metrics` describe every backend and route: off
    /// loopback they need a token. (The file itself is read when the server
    /// starts, so a configuration can be checked where the secret is not.)
    fn validate_admin_exposure(&self) -> Result<(), ConfigError> {
        let Some(addr) = &self.listen.admin else {
            return Ok(());
        };
        let loopback = addr
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback());
        if !loopback && self.listen.admin_token_file.is_none() {
            return Err(problem(
                "listen.admin",
                format!(
                    "{addr} is reachable from other hosts; set listen.admin_token_file to a file \
                     holding a bearer token (then /metrics and /config need \
                     `Authorization: Bearer <token>`; /healthz and /readyz stay open for probes), \
                     or listen on 127.0.0.1"
                ),
            ));
        }
        Ok(())
    }

    /// `[tls]`'s files, and which backends may take `tls`.
    fn validate_tls(&self) -> Result<(), ConfigError> {
        if let Some(tls) = &self.tls {
            if tls.client_user == super::ClientUser::Cn && tls.client_ca_file.is_none() {
                return Err(problem(
                    "tls.client_user",
                    "\"cn\" reads the client certificate's common name, but no client \
                     certificate is asked for; set tls.client_ca_file",
                ));
            }
            crate::tls::acceptor(&tls.cert_file, &tls.key_file, tls.client_ca_file.as_deref())
                .map_err(|why| problem("tls", why))?;
        }
        for (name, backend) in &self.backends {
            let client_cert = backend.tls_cert_file.is_some() || backend.tls_key_file.is_some();
            if client_cert && !backend.uses_tls() {
                return Err(problem(
                    format!("backends.{name}.tls_cert_file"),
                    "a client certificate is presented over TLS only; set tls = true (or a rediss:// URL)",
                ));
            }
            if backend.uses_tls() {
                if backend.is_durable() || backend.url.starts_with("memory://") {
                    return Err(problem(
                        format!("backends.{name}.tls"),
                        "only memcached and redis backends take tls; SQL URLs take sslmode= (PostgreSQL) or ssl-mode= (MySQL)",
                    ));
                }
                backend
                    .tls_connector("localhost")
                    .map_err(|why| problem(format!("backends.{name}"), why))?;
            }
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        if self.limits.max_connections == 0 {
            return Err(problem("limits.max_connections", "must be at least 1"));
        }
        if self.limits.max_pipeline == 0 {
            return Err(problem("limits.max_pipeline", "must be at least 1"));
        }
        if self.limits.client_write_timeout_seconds == 0 {
            return Err(problem(
                "limits.client_write_timeout_seconds",
                "must be at least 1",
            ));
        }
        if self.limits.item_size.0 < 1024 {
            return Err(problem("limits.item_size", "must be at least 1KiB"));
        }
        Ok(())
    }

    fn validate_policy(&self, name: &str, policy: &PolicyConfig) -> Result<(), ConfigError> {
        if self.backends.contains_key(name) {
            return Err(problem(
                format!("policies.{name}"),
                "a backend has the same name; give the policy another",
            ));
        }
        let members = policy.members();
        if members.len() < 2 {
            return Err(problem(
                format!("policies.{name}"),
                "needs at least two members",
            ));
        }
        if members
            .iter()
            .enumerate()
            .any(|(i, (_, a))| members[..i].iter().any(|(_, b)| a == b))
        {
            return Err(problem(
                format!("policies.{name}"),
                "names the same member twice",
            ));
        }
        if let PolicyConfig::Shadow { fraction, .. } = policy {
            if !(0.0..=1.0).contains(fraction) {
                return Err(problem(
                    format!("policies.{name}.fraction"),
                    "must be between 0.0 and 1.0",
                ));
            }
        }
        if let PolicyConfig::Failover {
            failures_to_mark_down,
            probe_interval_ms,
            ..
        } = policy
        {
            if *failures_to_mark_down == 0 || *probe_interval_ms == 0 {
                return Err(problem(
                    format!("policies.{name}"),
                    "failures_to_mark_down and probe_interval_ms must be at least 1",
                ));
            }
        }
        for (field, member) in &members {
            if !self.backends.contains_key(*member) && !self.policies.contains_key(*member) {
                return Err(problem(
                    format!("policies.{name}.{field}"),
                    format!("no backend or policy named {member:?}"),
                ));
            }
        }
        self.check_not_recursive(name, &members)?;
        Ok(())
    }

    /// Members of members, breadth first: a policy must not contain itself.
    fn check_not_recursive(
        &self,
        name: &str,
        members: &[(String, &str)],
    ) -> Result<(), ConfigError> {
        let mut seen = vec![name];
        let mut next: Vec<&str> = members.iter().map(|(_, m)| *m).collect();
        while let Some(member) = next.pop() {
            if member == name {
                return Err(problem(
                    format!("policies.{name}"),
                    format!("it contains itself (through {})", seen[1..].join(" -> ")),
                ));
            }
            if seen.contains(&member) {
                continue; // a cycle elsewhere: reported under its own policy
            }
            if let Some(inner) = self.policies.get(member) {
                seen.push(member);
                next.extend(inner.members().into_iter().map(|(_, m)| m));
            }
        }
        Ok(())
    }

    fn validate_route(&self, i: usize, route: &RouteConfig) -> Result<(), ConfigError> {
        let matchers = [&route.prefix, &route.glob, &route.regex, &route.django]
            .iter()
            .filter(|m| m.is_some())
            .count();
        if matchers != 1 {
            return Err(problem(
                format!("routes[{i}]"),
                "needs exactly one of prefix, glob, regex or django",
            ));
        }
        if route.key_prefix.is_some() && route.django.is_none() {
            return Err(problem(
                format!("routes[{i}].key_prefix"),
                "only goes with django = \"...\"",
            ));
        }
        if let (Some(min), Some(max)) = (route.min_ttl_seconds, route.max_ttl_seconds) {
            if min > max {
                return Err(problem(
                    format!("routes[{i}].min_ttl_seconds"),
                    "is above max_ttl_seconds",
                ));
            }
        }
        if route.max_ttl_seconds == Some(0) || route.min_ttl_seconds == Some(0) {
            return Err(problem(
                format!("routes[{i}]"),
                "min_ttl_seconds and max_ttl_seconds must be at least 1",
            ));
        }
        if let Some(regex) = &route.regex {
            regex::bytes::Regex::new(regex)
                .map_err(|e| problem(format!("routes[{i}].regex"), e.to_string()))?;
        }
        match (&route.backend, &route.policy) {
            (Some(backend), None) if !self.backends.contains_key(backend) => {
                let known: Vec<&str> = self.backends.keys().map(String::as_str).collect();
                Err(problem(
                    format!("routes[{i}].backend"),
                    format!(
                        "no backend named {backend:?} (defined: {})",
                        known.join(", ")
                    ),
                ))
            }
            (None, Some(policy)) if !self.policies.contains_key(policy) => {
                let known: Vec<&str> = self.policies.keys().map(String::as_str).collect();
                Err(problem(
                    format!("routes[{i}].policy"),
                    format!("no policy named {policy:?} (defined: {})", known.join(", ")),
                ))
            }
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(problem(
                format!("routes[{i}]"),
                "needs exactly one of backend or policy",
            )),
        }
    }
}

impl BackendConfig {
    fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let backend = self;
        let url = backend
            .endpoint()
            .map_err(|why| problem(format!("backends.{name}.url"), why))?;
        if matches!(url, BackendUrl::Sql(_)) {
            validate_table_name(&backend.table)
                .map_err(|why| problem(format!("backends.{name}.table"), why))?;
        } else if backend.encryption_key_file.is_some() {
            return Err(problem(
                format!("backends.{name}.encryption_key_file"),
                "only SQL backends encrypt values at rest; remove it here",
            ));
        }
        if backend.connections == Some(0) {
            return Err(problem(
                format!("backends.{name}.connections"),
                "must be at least 1",
            ));
        }
        if backend.connect_timeout_ms == 0 || backend.request_timeout_ms == 0 {
            return Err(problem(
                format!("backends.{name}"),
                "connect_timeout_ms and request_timeout_ms must be at least 1",
            ));
        }
        if backend.capacity.0 < 1024 * 1024 {
            return Err(problem(
                format!("backends.{name}.capacity"),
                "must be at least 1MiB",
            ));
        }
        Ok(())
    }
}

impl Config {
    /// Whether `listener` speaks TLS and asks each client for a certificate
    /// from `[tls] client_ca_file`.
    pub fn requires_client_certificates(&self, listener: super::ListenerName) -> bool {
        (self.tls.as_ref())
            .is_some_and(|tls| tls.client_ca_file.is_some() && tls.listeners.contains(&listener))
    }

    /// Whether a client certificate's common name may name the user it
    /// authenticates as (`[tls] client_user = "cn"`).
    pub fn certificate_names_user(&self) -> bool {
        (self.tls.as_ref()).is_some_and(|tls| tls.client_user == super::ClientUser::Cn)
    }

    /// What each listener asks of a client, in words: `check-config` prints
    /// these so the choice is seen where it is made.
    pub fn access_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.listen.sentinel.is_some() {
            notes.push(match (self.sentinel.auth, self.auth.users.is_empty()) {
                (_, true) => "listen.sentinel: open (no [[auth.users]])".to_string(),
                (super::SentinelAuth::Open, false) => {
                    "listen.sentinel: open (sentinel.auth = \"open\", as a Sentinel without \
                     requirepass): clients ask it for the master's address with no credential \
                     (kolla-ansible's current template); an AUTH sent anyway is checked against \
                     [[auth.users]]. It reveals the master's address and its own status, never \
                     a key or a value; the master (listen.resp) still asks for AUTH"
                        .to_string()
                }
                (super::SentinelAuth::Users, false) => {
                    "listen.sentinel: AUTH with a [[auth.users]] password first \
                     (sentinel.auth = \"users\"; clients need SENTINEL_KWARGS with the password)"
                        .to_string()
                }
            });
        }
        if let Some(address) = &self.listen.memcache {
            let note = match self.auth.memcache {
                Some(MemcacheAuth::Certificate) => {
                    "a client certificate from tls.client_ca_file (auth.memcache = \"certificate\")"
                }
                Some(MemcacheAuth::Ascii) => {
                    "memcached's ASCII authentication (auth.memcache = \"ascii\")"
                }
                _ if self.requires_client_certificates(super::ListenerName::Memcache) => {
                    "a client certificate from tls.client_ca_file"
                }
                _ => "no credential",
            };
            notes.push(format!("listen.memcache ({address}): {note}"));
        }
        if let Some(tls) = &self.tls {
            if tls.client_ca_file.is_some() {
                let listeners: Vec<&str> = tls.listeners.iter().map(|l| l.as_str()).collect();
                notes.push(format!(
                    "tls: the {} listener(s) require a client certificate from client_ca_file{}",
                    listeners.join(", "),
                    if self.certificate_names_user() {
                        "; one whose common name is a [[auth.users]] name authenticates as that user"
                    } else {
                        ""
                    }
                ));
            }
        }
        notes
    }
}
