//! The admin listener's client side: `keyway sessions ...` asks the running
//! Keyway named by the configuration (its `listen.admin` address and
//! `listen.admin_token_file`), because only that process holds its memory
//! stores and writes its audit lines.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

use crate::config::{Config, ListenerName};

/// Where to ask the running Keyway: its plain-TCP admin listener (on
/// loopback when it listens everywhere); an error that says what to do
/// when there is none, or it speaks TLS.
fn admin_address(config: &Config, method: &Method, path: &str) -> Result<String, String> {
    let Some(address) = &config.listen.admin else {
        return Err(
            "listen.admin is not set: this command asks the running Keyway's admin listener; \
             set it (and --config to the running Keyway's file)"
                .into(),
        );
    };
    if let Some(tls) =
        (config.tls.as_ref()).filter(|tls| tls.listeners.contains(&ListenerName::Admin))
    {
        // With client_ca_file the listener wants a client certificate too.
        let certificate = if tls.client_ca_file.is_some() {
            " --cert <client.pem> --key <client-key.pem>"
        } else {
            ""
        };
        return Err(format!(
            "the admin listener speaks TLS; ask it with curl --cacert <CA>{certificate} -X {method} https://{address}{path}"
        ));
    }
    // A listener on every interface is asked on loopback.
    Ok(address
        .replace("0.0.0.0:", "127.0.0.1:")
        .replace("[::]:", "[::1]:"))
}

/// Sends `method path` to the admin listener of the Keyway `config`
/// describes; the body of a 200 answer, or what went wrong.
pub async fn ask(config: &Config, method: Method, path: &str) -> Result<String, String> {
    let target = admin_address(config, &method, path)?;
    let stream = tokio::net::TcpStream::connect(&target).await.map_err(|e| {
        format!("cannot reach the admin listener at {target} (is Keyway running?): {e}")
    })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("admin listener at {target}: {e}"))?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, target.as_str());
    if let Some(file) = &config.listen.admin_token_file {
        let token = std::fs::read_to_string(file)
            .map_err(|e| format!("listen.admin_token_file {}: {e}", file.display()))?;
        request = request.header(
            hyper::header::AUTHORIZATION,
            format!("Bearer {}", token.trim()),
        );
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("admin listener at {target}: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("admin listener at {target}: {e}"))?
        .to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{status}: {}", body.trim_end()))
    }
}
