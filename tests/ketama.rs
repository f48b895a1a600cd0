//! Keyway's ketama distribution puts every key on the same server as
//! twemproxy (nutcracker, `hash: md5`, `distribution: ketama`) does, for a
//! weighted pool including a server on the default port.

mod common;

use common::{exchange, start_memcached, start_nutcracker};
use keyway::backend::memcached::ketama::{Continuum, Server};

#[tokio::test(flavor = "multi_thread")]
async fn keys_land_where_twemproxy_puts_them() {
    let pool = [start_memcached(), start_memcached(), start_memcached()];
    let weights = [1, 2, 3];
    let specs: Vec<String> = pool
        .iter()
        .zip(weights)
        .map(|(m, w)| format!("{}:{w}", m.addr))
        .collect();
    let (nutcracker, _dir) = start_nutcracker(&specs);

    let keys: Vec<String> = (0..300)
        .map(|i| format!(":1:django.contrib.sessions.cache{i:032}"))
        .collect();
    let mut request = Vec::new();
    for key in &keys {
        request.extend_from_slice(format!("set {key} 0 0 1\r\nx\r\n").as_bytes());
    }
    let reply = exchange_until(nutcracker.addr, &request, keys.len() * 8).await;
    assert_eq!(reply.matches("STORED\r\n").count(), keys.len(), "{reply}");

    let servers: Vec<Server> = pool
        .iter()
        .zip(weights)
        .map(|(m, weight)| Server {
            host: m.addr.ip().to_string(),
            port: m.addr.port(),
            weight,
        })
        .collect();
    let continuum = Continuum::new(&servers);
    let mut per_server = [0; 3];
    for (index, memcached) in pool.iter().enumerate() {
        let mut request = Vec::new();
        for key in &keys {
            request.extend_from_slice(format!("get {key}\r\n").as_bytes());
        }
        request.extend_from_slice(b"quit\r\n");
        let reply = String::from_utf8(exchange(memcached.addr, &request).await).unwrap();
        for line in reply.lines().filter(|l| l.starts_with("VALUE ")) {
            let key = line.split(' ').nth(1).unwrap();
            assert_eq!(
                continuum.server_for(key.as_bytes()),
                index,
                "{key} is on server {index}"
            );
            per_server[index] += 1;
        }
    }
    assert_eq!(per_server.iter().sum::<usize>(), keys.len());
    assert!(per_server.iter().all(|&n| n > 0), "{per_server:?}");
}

/// nutcracker keeps the connection open: read until `len` bytes or a pause.
async fn exchange_until(addr: std::net::SocketAddr, request: &[u8], len: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    let mut chunk = [0u8; 65536];
    while reply.len() < len {
        match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut chunk)).await
        {
            Ok(Ok(n)) if n > 0 => reply.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    String::from_utf8(reply).unwrap()
}
