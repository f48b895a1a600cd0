//! Building a redis backend from its URL: one server, the master a Sentinel
//! names, or a Cluster; its pools and what each new connection says first
//! (HELLO, AUTH, SELECT).

use std::net::ToSocketAddrs;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use keyway_protocol::resp::Version;
use sha1::{Digest, Sha1};

use super::batch::command;
use super::{
    cluster, sentinel, text, RedisBackend, Servers, DEFAULT_CONNECTIONS, MAX_REPLY,
    WRITE_IF_UNCHANGED,
};
use crate::backend::pipeline::{Pool, PoolOptions};
use crate::config::{BackendConfig, RedisUrl};

impl RedisBackend {
    pub fn new(url: &RedisUrl, config: &BackendConfig) -> std::result::Result<Self, String> {
        let (locator, addr) = locate(url, config)?;
        let handshake = |version| handshake(url, version);
        let tls = config
            .uses_tls()
            .then(|| config.tls_connector(&url.host))
            .transpose()?;
        let options = |version| PoolOptions {
            connections: config.connections.unwrap_or(DEFAULT_CONNECTIONS),
            connect_timeout: config.connect_timeout(),
            request_timeout: config.request_timeout(),
            max_value: MAX_REPLY,
            handshake: handshake(version),
            tls: tls.clone(),
            follow: Some(url.host.clone()),
            locate: locator
                .clone()
                .map(|locator| locator as Arc<dyn crate::backend::pipeline::Locate>),
        };
        let script_sha = hex::encode(Sha1::digest(WRITE_IF_UNCHANGED.as_bytes()));
        if let Some(seeds) = &url.cluster {
            if tls.is_some() {
                return Err(
                    "TLS to a Redis Cluster is not built yet; drop the tls settings \
                            or reach the cluster over a private network"
                        .into(),
                );
            }
            return Ok(Self::cluster(url, config, seeds, script_sha));
        }
        let pool = Arc::new(Pool::new(addr, options(Version::Resp3)));
        let pool2 = Arc::new(Pool::new(addr, options(Version::Resp2)));
        if let Some(locator) = &locator {
            locator.watch(vec![Arc::downgrade(&pool)]);
            locator.watch(vec![Arc::downgrade(&pool2)]);
        }
        crate::backend::pipeline::follow_names(
            vec![Arc::downgrade(&pool)],
            config.resolve_interval(),
        );
        crate::backend::pipeline::follow_names(
            vec![Arc::downgrade(&pool2)],
            config.resolve_interval(),
        );
        Ok(Self {
            servers: Servers::One { pool, pool2 },
            base_db: url.db,
            script_sha,
        })
    }

    /// A backend over a Redis Cluster: a pool pair per node, made as the
    /// slot map names nodes.
    fn cluster(
        url: &RedisUrl,
        config: &BackendConfig,
        seeds: &[(String, u16)],
        script_sha: String,
    ) -> Self {
        let (connections, connect_timeout, request_timeout) = (
            config.connections.unwrap_or(DEFAULT_CONNECTIONS),
            config.connect_timeout(),
            config.request_timeout(),
        );
        let (handshake3, handshake2) = (
            handshake(url, Version::Resp3),
            handshake(url, Version::Resp2),
        );
        let node_options = move |version| PoolOptions {
            connections,
            connect_timeout,
            request_timeout,
            max_value: MAX_REPLY,
            handshake: match version {
                Version::Resp3 => handshake3.clone(),
                Version::Resp2 => handshake2.clone(),
            },
            tls: None,
            follow: None,
            locate: None,
        };
        let make_node = move |addr| cluster::Node {
            addr,
            pool: Pool::new(addr, node_options(Version::Resp3)),
            pool2: Pool::new(addr, node_options(Version::Resp2)),
        };
        Self {
            servers: Servers::Cluster(Arc::new(cluster::Cluster::new(
                seeds.to_vec(),
                config.request_timeout(),
                make_node,
            ))),
            base_db: 0,
            script_sha,
        }
    }
}

/// What a new connection says first, and how many replies that earns:
/// HELLO 3 (with AUTH) or AUTH on RESP2, then SELECT of the URL's database.
fn handshake(url: &RedisUrl, version: Version) -> Option<(Bytes, usize)> {
    let mut request = BytesMut::new();
    let mut replies = 0;
    let user = url.user.as_deref().unwrap_or("default").as_bytes();
    match (version, &url.password) {
        (Version::Resp3, Some(password)) => command(
            &mut request,
            &[b"HELLO", b"3", b"AUTH", user, password.as_bytes()],
        ),
        (Version::Resp3, None) => command(&mut request, &[b"HELLO", b"3"]),
        (Version::Resp2, Some(password)) => {
            command(&mut request, &[b"AUTH", user, password.as_bytes()])
        }
        (Version::Resp2, None) => {}
    }
    if !request.is_empty() {
        replies += 1;
    }
    if url.db != 0 {
        command(&mut request, &[b"SELECT", &text(url.db)]);
        replies += 1;
    }
    (replies > 0).then(|| (request.freeze(), replies))
}

/// Where the server is: a Sentinel locator (the master's address is known
/// once a sentinel answers) or the URL's host, resolved now.
fn locate(
    url: &RedisUrl,
    config: &BackendConfig,
) -> std::result::Result<(Option<Arc<sentinel::SentinelLocator>>, std::net::SocketAddr), String> {
    let locator = url.sentinel.as_ref().map(|target| {
        Arc::new(sentinel::SentinelLocator {
            sentinels: target.servers.clone(),
            master: target.master.clone(),
            user: url.user.clone(),
            password: url.password.clone(),
            timeout: config.connect_timeout() + config.request_timeout(),
            fenced_until: std::sync::atomic::AtomicU64::new(0),
        })
    });
    let addr = match &locator {
        // Unknown until a sentinel answers (before the first connection).
        Some(_) => std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        None => (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}:{}: {e}", url.host, url.port))?
            .next()
            .ok_or_else(|| format!("{}:{}: no address", url.host, url.port))?,
    };
    Ok((locator, addr))
}
