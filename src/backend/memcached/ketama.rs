//! Ketama consistent hashing, compatible with libmemcached and twemproxy
//! (`hash: md5`, `distribution: ketama`), so that Keyway, twemproxy and
//! libmemcached clients put every key on the same server of a pool and an
//! operator can put Keyway in front of an existing pool without a cold cache.
//!
//! Each server gets 160 points scaled by its share of the total weight (as
//! twemproxy computes it, in single-precision floats), 4 points per md5 of
//! `"<name>-<i>"`, where the name is `host` when the port is 11211 and
//! `host:port` otherwise. A key goes to the first point at or after the
//! first 4 bytes (little-endian) of its md5, wrapping around.

use md5::{Digest, Md5};

const POINTS_PER_SERVER: f32 = 160.0;
const POINTS_PER_HASH: u32 = 4;
/// libmemcached leaves the port out of the hashed name on the default port.
const DEFAULT_PORT: u16 = 11211;

pub use crate::config::MemcachedServer as Server;

impl Server {
    /// The name hashed onto the continuum.
    fn ketama_name(&self) -> String {
        if self.port == DEFAULT_PORT {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The points of every server, sorted: `(point, server index)`.
#[derive(Debug, Clone)]
pub struct Continuum {
    points: Vec<(u32, usize)>,
}

fn md5_word(digest: &[u8], word: usize) -> u32 {
    u32::from_le_bytes(
        digest[word * 4..word * 4 + 4]
            .try_into()
            .expect("md5 has 4 words"),
    )
}

/// The 32-bit hash twemproxy's `hash_md5` gives a key.
pub fn hash_key(key: &[u8]) -> u32 {
    md5_word(&Md5::digest(key), 0)
}

impl Continuum {
    pub fn new(servers: &[Server]) -> Self {
        let total_weight: u32 = servers.iter().map(|s| s.weight).sum();
        let count = servers.len() as f32;
        let mut points = Vec::new();
        for (index, server) in servers.iter().enumerate() {
            let share = server.weight as f32 / total_weight as f32;
            // twemproxy: floorf(pct * 160 / 4 * nlive + 1e-10) * 4, in f32.
            let hashes = (share * POINTS_PER_SERVER / 4.0 * count + 0.000_000_000_1).floor() as u32;
            let name = server.ketama_name();
            for i in 0..hashes {
                let digest = Md5::digest(format!("{name}-{i}").as_bytes());
                for word in 0..POINTS_PER_HASH as usize {
                    points.push((md5_word(&digest, word), index));
                }
            }
        }
        // Equal points keep server order, as qsort on twemproxy's data does
        // not guarantee; ties are vanishingly rare with 32-bit points.
        points.sort_by_key(|&(point, index)| (point, index));
        Self { points }
    }

    /// The index (into the `servers` given to `new`) of the server for `key`.
    pub fn server_for(&self, key: &[u8]) -> usize {
        let hash = hash_key(key);
        let at = self.points.partition_point(|&(point, _)| point < hash);
        self.points.get(at).unwrap_or(&self.points[0]).1
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(host: &str, port: u16, weight: u32) -> Server {
        Server {
            host: host.into(),
            port,
            weight,
        }
    }

    #[test]
    fn points_scale_with_weight() {
        let continuum = Continuum::new(&[server("a", 11211, 1), server("b", 11212, 1)]);
        assert_eq!(continuum.len(), 320);
        let weighted = Continuum::new(&[server("a", 11211, 1), server("b", 11212, 3)]);
        assert_eq!(weighted.points.iter().filter(|p| p.1 == 1).count(), 240);
        assert_eq!(weighted.points.iter().filter(|p| p.1 == 0).count(), 80);
    }

    #[test]
    fn keys_spread_and_stay_put_when_a_server_joins() {
        let three = [
            server("10.0.0.1", 11211, 1),
            server("10.0.0.2", 11211, 1),
            server("10.0.0.3", 11211, 1),
        ];
        let before = Continuum::new(&three);
        let mut counts = [0; 3];
        for i in 0..3000 {
            counts[before.server_for(format!("key{i}").as_bytes())] += 1;
        }
        assert!(counts.iter().all(|&c| c > 700), "{counts:?}");
        let mut four = three.to_vec();
        four.push(server("10.0.0.4", 11211, 1));
        let after = Continuum::new(&four);
        let moved = (0..3000)
            .filter(|i| {
                let key = format!("key{i}");
                let (b, a) = (
                    before.server_for(key.as_bytes()),
                    after.server_for(key.as_bytes()),
                );
                b != a && a != 3
            })
            .count();
        // Consistent hashing: keys only ever move to the new server.
        assert_eq!(moved, 0);
    }
}
