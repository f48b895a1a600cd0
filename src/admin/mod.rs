//! The admin listener (`listen.admin`, HTTP/1.1): `/metrics` for Prometheus,
//! `/healthz` (the process answers), `/readyz` (every backend answers) and
//! `/config` (the running configuration, passwords redacted), and
//! `/sessions` (who is signed in) with `POST /sessions/revoke?user=ID`. It reads the
//! current generation of the configuration on every request, so it follows
//! reloads. With `listen.admin_token_file`, everything but the
//! probes needs `Authorization: Bearer <token>`.

pub mod client;
mod prometheus;
pub mod sessions;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ListenerName;
use crate::session::{Current, Shared};

/// How long `/readyz` waits for a backend beyond its own timeouts.
const PROBE_SLACK: Duration = Duration::from_millis(500);

/// Serves admin requests on `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, current: Current, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "admin listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let current = current.clone();
        let stop = stop.clone();
        let tls = current.load().tls_for(ListenerName::Admin).cloned();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, current, stop).await,
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(10), handshake).await
                    {
                        serve_connection(stream, current, stop).await;
                    }
                }
            }
        });
    }
}

/// One HTTP/1.1 connection, until it closes or the listener stops.
async fn serve_connection<S>(stream: S, current: Current, stop: CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let shared = current.load_full();
        async move { Ok::<_, Infallible>(answer(&shared, &request).await) }
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "admin connection failed");
            }
        }
        () = stop.cancelled() => connection.as_mut().graceful_shutdown(),
    }
}

/// 401 when the admin token is set and the request does not carry it.
fn unauthorized(shared: &Shared, request: &Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    let token = shared.admin_token.as_ref()?;
    let authorization = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if token.admits(authorization) {
        return None;
    }
    let mut response = reply(
        StatusCode::UNAUTHORIZED,
        "text/plain",
        "send the token from listen.admin_token_file as `Authorization: Bearer <token>`\n".into(),
    );
    response.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Bearer realm=\"keyway\""),
    );
    Some(response)
}

async fn answer(shared: &Arc<Shared>, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let wanted = if path == "/sessions/revoke" {
        Method::POST
    } else {
        Method::GET
    };
    if request.method() != wanted && !(wanted == Method::GET && request.method() == Method::HEAD) {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            format!("{path} takes {wanted}\n"),
        );
    }
    // Probes stay open (they say only whether Keyway and its backends
    // answer); what describes the deployment needs the token, when set.
    if !matches!(path, "/healthz" | "/readyz") {
        if let Some(refused) = unauthorized(shared, request) {
            return refused;
        }
    }
    match path {
        "/metrics" => reply(
            StatusCode::OK,
            prometheus::CONTENT_TYPE,
            prometheus::render(shared.clone()),
        ),
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => readiness(shared).await,
        "/config" => reply(
            StatusCode::OK,
            "application/toml",
            shared.config.redacted_toml(),
        ),
        "/sessions" => list_sessions(shared, query_user(request)).await,
        "/sessions/revoke" => match query_user(request) {
            Some(user) => json(sessions::revoke(shared, &user).await),
            None => reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "name the user: POST /sessions/revoke?user=ID\n".into(),
            ),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /metrics, /healthz, /readyz, /config or /sessions\n".into(),
        ),
    }
}

/// The `user` query parameter, URL-decoded.
fn query_user(request: &Request<Incoming>) -> Option<String> {
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "user")
        .map(|(_, value)| value.into_owned())
        .filter(|user| !user.is_empty())
}

async fn list_sessions(shared: &Shared, user: Option<String>) -> Response<Full<Bytes>> {
    match user {
        Some(user) => json(sessions::of_user(shared, &user).await),
        None => json(sessions::summary(shared).await),
    }
}

/// A JSON answer, or 503 saying which store could not be listed.
fn json<T: serde::Serialize>(
    result: Result<T, crate::backend::BackendError>,
) -> Response<Full<Bytes>> {
    match result {
        Ok(body) => reply(
            StatusCode::OK,
            "application/json",
            serde_json::to_string(&body).expect("serializable") + "\n",
        ),
        Err(error) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("cannot list the sessions: {error}\n"),
        ),
    }
}

/// Probes every backend at once; 200 when all answer, 503 naming those that
/// do not (and why) otherwise.
async fn readiness(shared: &Shared) -> Response<Full<Bytes>> {
    let leaves = shared.router.targets().filter(|t| t.backend().is_some());
    let probes = leaves.map(|target| {
        let (name, backend) = (target.stats.name(), target.backend().expect("filtered"));
        let limit = shared
            .config
            .backends
            .get(name)
            .map_or(Duration::from_secs(3), |c| {
                c.connect_timeout() + c.request_timeout()
            })
            + PROBE_SLACK;
        async move {
            let result = match tokio::time::timeout(limit, backend.probe()).await {
                Ok(result) => result,
                Err(_) => Err(crate::backend::BackendError::Unavailable {
                    backend: backend.kind().into(),
                    message: format!("no answer within {} ms", limit.as_millis()),
                }),
            };
            // What the probe found is the backend's state too (logged on change).
            target.stats.observe_health(&result);
            (name, result.err().map(|error| error.to_string()))
        }
    });
    let results = futures_util::future::join_all(probes).await;
    let failing: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .filter_map(|(name, why)| Some((name.to_string(), why.clone()?.into())))
        .collect();
    let ready = failing.is_empty();
    let body = serde_json::json!({
        "ready": ready,
        "backends": results.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        "failing": failing,
        "degraded": degraded(shared),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    reply(status, "application/json", format!("{body}\n"))
}

/// Write-through caches that are not current (their change feed lags):
/// Keyway still answers, from the durable store, so this alone does not
/// make it unready.
fn degraded(shared: &Shared) -> serde_json::Map<String, serde_json::Value> {
    use crate::policy::Policy;
    shared
        .router
        .policies()
        .filter_map(|(name, policy)| {
            let Policy::WriteThrough(wt) = policy else {
                return None;
            };
            let coherence = wt.coherence();
            if coherence.trusted() {
                return None;
            }
            let lag = match coherence.lag()? {
                std::time::Duration::MAX => "no change-log poll applied yet".to_string(),
                lag => format!("last change-log poll applied {} ms ago", lag.as_millis()),
            };
            let why = format!(
                "{lag} (max_staleness_ms {}): reads skip the cache and go to the durable store",
                coherence.max_staleness().as_millis()
            );
            Some((format!("policies.{name}"), why.into()))
        })
        .collect()
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
