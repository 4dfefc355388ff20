//! The routes: the page, the JSON API, the event stream and the metrics.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use coord::{ClientError, JobRef, error_chain, job_status, request_checkpoint};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::gather::{self, LiveJob};
use crate::migrate::{self as migrating, MigrateError};
use crate::restart::{self as restarting, RestartError};
use crate::{State as Shared, auth, metrics};

/// The largest request body accepted (a checkpoint request is a few bytes).
pub(crate) const BODY_LIMIT: usize = 4096;
/// How often the event stream sends a new overview.
const EVENT_PERIOD: Duration = Duration::from_secs(1);

type AppState = State<Arc<Shared>>;

pub(crate) fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/overview", get(overview))
        .route("/api/jobs", get(list_jobs))
        .route("/api/job/{job}", get(one_job))
        .route("/api/job/{job}/checkpoint", post(checkpoint))
        .route("/api/job/{job}/migrate", post(migrate))
        .route("/api/restart", post(restart))
        .route("/api/snapshots", get(snapshots))
        .route("/api/events", get(events))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(middleware::map_response(headers))
        .with_state(state)
}

/// `{"error": sentence}` with `status`.
pub(crate) fn error(status: StatusCode, sentence: &str) -> Response {
    (status, json_body(&json!({ "error": sentence }))).into_response()
}

fn json_body(value: &Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{value:#}\n"),
    )
        .into_response()
}

/// Runs blocking work (control sockets, the store) off the async threads.
async fn blocking<T: Send + 'static>(
    state: &Arc<Shared>,
    work: impl FnOnce(&Shared) -> T + Send + 'static,
) -> Result<T, Response> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || work(&state))
        .await
        .map_err(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the dashboard failed while gathering the answer: {e}"),
            )
        })
}

/// Headers on every answer: nothing cached, no referrer (the URL holds the token), nothing
/// loaded from elsewhere, no framing.
async fn headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
        ),
    );
    response
}

async fn page(State(state): AppState) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        state.page.clone(),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "there is nothing at this path; the API is /api/jobs, /api/job/JOB, \
         /api/job/JOB/checkpoint, /api/job/JOB/migrate, /api/restart, /api/snapshots, \
         /api/events, /api/overview and /metrics",
    )
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "this path does not take that method: checkpoints are POSTed to \
         /api/job/JOB/checkpoint, migrations to /api/job/JOB/migrate and restarts to \
         /api/restart, everything else is GET",
    )
}

async fn overview(State(state): AppState) -> Response {
    match blocking(&state, gather::overview).await {
        Ok(value) => json_body(&value),
        Err(response) => response,
    }
}

async fn list_jobs(State(state): AppState) -> Response {
    let answer = blocking(&state, |s| {
        let jobs = gather::jobs(s);
        let snapshots = gather::snapshots(s, &jobs);
        let list: Vec<Value> = jobs
            .iter()
            .map(|j| gather::job_json(s, j, &snapshots))
            .collect();
        Value::Array(list)
    })
    .await;
    match answer {
        Ok(value) => json_body(&value),
        Err(response) => response,
    }
}

/// The job named in the path, or the answer that refuses it (400 for a malformed name, 404 for
/// one this dashboard does not show).
async fn job_ref(
    state: &Arc<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Result<JobRef, Response> {
    let Path(text) = path.map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("the job in the path cannot be read: {}", e.body_text()),
        )
    })?;
    let job: JobRef = text.parse().map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!(
                "`{text}` is neither a job name nor the pid of an `mpicr run`: {}",
                error_chain(&e)
            ),
        )
    })?;
    let checked = job.clone();
    if blocking(state, move |s| gather::allowed(s, &checked)).await? {
        Ok(job)
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            &format!("this dashboard shows only its own job, not the job {job}"),
        ))
    }
}

fn client_error(error_value: &ClientError) -> Response {
    let status = match error_value {
        ClientError::NotRunning(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_GATEWAY,
    };
    error(status, &error_chain(error_value))
}

async fn one_job(State(state): AppState, path: Result<Path<String>, PathRejection>) -> Response {
    let job = match job_ref(&state, path).await {
        Ok(job) => job,
        Err(response) => return response,
    };
    let answer = blocking(&state, move |s| {
        let reply = job_status(&s.config.runtime_dir, &job)?;
        let checkpoints = coord::checkpoint_status(&s.config.runtime_dir, &reply.job);
        let live = LiveJob { reply, checkpoints };
        let snapshots = gather::snapshots(s, std::slice::from_ref(&live));
        Ok::<Value, ClientError>(gather::job_json(s, &live, &snapshots))
    })
    .await;
    match answer {
        Ok(Ok(value)) => json_body(&value),
        Ok(Err(e)) => client_error(&e),
        Err(response) => response,
    }
}

/// The body of a checkpoint request; an empty body means `{"terminate": false}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckpointBody {
    #[serde(default)]
    pub(crate) terminate: bool,
}

/// Reads a checkpoint request's body, or the sentence that refuses it.
pub(crate) fn parse_checkpoint_body(body: &[u8]) -> Result<CheckpointBody, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(CheckpointBody::default());
    }
    let refuse = |why: String| {
        format!("the body must be a JSON object like {{\"terminate\": false}} (or empty): {why}")
    };
    // Parsed as a value first: serde would also take a struct from an array.
    let value: Value = serde_json::from_slice(body).map_err(|e| refuse(e.to_string()))?;
    if !value.is_object() {
        return Err(refuse(format!("this is {value}")));
    }
    serde_json::from_value(value).map_err(|e| refuse(e.to_string()))
}

/// A request's body, or the status and sentence that refuse it (413 over [`BODY_LIMIT`]).
fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, (StatusCode, String)> {
    match body {
        Ok(body) => Ok(body),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is longer than {BODY_LIMIT} bytes"),
        )),
        Err(e) => Err((
            e.status(),
            format!("the request body cannot be read: {}", e.body_text()),
        )),
    }
}

/// The answer to an action the job did not carry out: 409 with the job's own sentence when it
/// refused or failed it (the job runs on: a failed migration leaves the rank where it was),
/// 502 when the job ended before `until`.
fn action_failed(job: &JobRef, e: ClientError, until: &str) -> Response {
    match e {
        ClientError::Refused(sentence) => error(StatusCode::CONFLICT, &sentence),
        e @ ClientError::Receive(_) => error(
            StatusCode::BAD_GATEWAY,
            &format!("job {job} ended before {until} ({})", error_chain(&e)),
        ),
        e => client_error(&e),
    }
}

/// The job and body of an action on a live job, or the answer that refuses them.
async fn job_and_body(
    state: &Arc<Shared>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(JobRef, Bytes), Response> {
    let job = job_ref(state, path).await?;
    let body = read_body(body).map_err(|(status, sentence)| error(status, &sentence))?;
    Ok((job, body))
}

async fn checkpoint(
    State(state): AppState,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (job, body) = match job_and_body(&state, path, body).await {
        Ok(both) => both,
        Err(response) => return response,
    };
    let request = match parse_checkpoint_body(&body) {
        Ok(request) => request,
        Err(sentence) => return error(StatusCode::BAD_REQUEST, &sentence),
    };
    let terminate = request.terminate;
    let asked = job.clone();
    let answer = blocking(&state, move |s| {
        let done = request_checkpoint(&s.config.runtime_dir, &asked, terminate)?;
        // What the coordinator recorded in the manifest, read back from the committed snapshot.
        let info = store::Snapshot::open(std::path::Path::new(&done.path))
            .ok()
            .map(|snapshot| snapshot.info(true));
        Ok::<_, ClientError>((done, info))
    })
    .await;
    let counters = &state.counters;
    match answer {
        Ok(Ok((done, info))) => {
            counters.requested.fetch_add(1, Ordering::Relaxed);
            counters.committed.fetch_add(1, Ordering::Relaxed);
            json_body(&json!({
                "name": done.name,
                "path": done.path,
                "epoch": done.epoch,
                "in_transit": done.in_transit,
                "terminate": terminate,
                "size": info.as_ref().map(|i| i.size),
                "duration_ms": info.as_ref().and_then(|i| i.duration_ms),
                "stall_bound_ms": info.as_ref().and_then(|i| i.stall_bound_ms),
            }))
        }
        Ok(Err(e @ ClientError::NotRunning(_))) => client_error(&e),
        Ok(Err(e)) => {
            counters.requested.fetch_add(1, Ordering::Relaxed);
            counters.failed.fetch_add(1, Ordering::Relaxed);
            action_failed(&job, e, "the checkpoint was committed")
        }
        Err(response) => response,
    }
}

/// `POST /api/job/JOB/migrate {"rank": R, "node": NAME}`: waits until the rank computes on
/// NAME, or answers why not.
async fn migrate(
    State(state): AppState,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (job, body) = match job_and_body(&state, path, body).await {
        Ok(both) => both,
        Err(response) => return response,
    };
    let request = match migrating::parse_migrate_body(&body) {
        Ok(request) => request,
        Err(sentence) => return error(StatusCode::BAD_REQUEST, &sentence),
    };
    let asked = job.clone();
    let answer = blocking(&state, move |s| {
        migrating::migrate(&s.config.runtime_dir, &asked, &request)
    })
    .await;
    match answer {
        Ok(Ok(done)) => json_body(&json!({
            "rank": done.rank,
            "from": done.from,
            "to": done.to,
            "total_us": done.total_us,
            "transfer_us": done.transfer_us,
            "bytes": done.bytes,
        })),
        Ok(Err(MigrateError::Job(e))) => action_failed(&job, e, "the migration was over"),
        // The rank or node cannot be right for this job.
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, &error_chain(&e)),
        Err(response) => response,
    }
}

/// `POST /api/restart {"snapshot": NAME}`: runs `mpicr restart NAME` for a job that has ended.
async fn restart(State(state): AppState, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match read_body(body) {
        Ok(body) => body,
        Err((status, sentence)) => return error(status, &sentence),
    };
    let request = match restarting::parse_restart_body(&body) {
        Ok(request) => request,
        Err(sentence) => return error(StatusCode::BAD_REQUEST, &sentence),
    };
    let answer = blocking(&state, move |s| restarting::restart(s, &request.snapshot)).await;
    match answer {
        Ok(Ok(record)) => {
            state.counters.restarts.fetch_add(1, Ordering::Relaxed);
            json_body(&json!({
                "snapshot": record.snapshot,
                "job": record.job,
                "launcher_pid": record.launcher_pid,
                "log": record.log,
            }))
        }
        Ok(Err(e)) => {
            let status = match &e {
                RestartError::UnknownSnapshot(_) => StatusCode::NOT_FOUND,
                RestartError::Disabled(_)
                | RestartError::JobRunning { .. }
                | RestartError::Damaged { .. }
                | RestartError::Ended { .. } => StatusCode::CONFLICT,
                RestartError::Slow { .. } => StatusCode::GATEWAY_TIMEOUT,
                RestartError::Log { .. } | RestartError::Spawn { .. } => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            error(status, &error_chain(&e))
        }
        Err(response) => response,
    }
}

#[derive(Debug, Deserialize)]
struct SnapshotsQuery {
    job: Option<String>,
}

async fn snapshots(
    State(state): AppState,
    query: Result<Query<SnapshotsQuery>, QueryRejection>,
) -> Response {
    let job = match query {
        Ok(Query(q)) => q.job,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the query cannot be read: {}", e.body_text()),
            );
        }
    };
    let answer = blocking(&state, move |s| {
        let jobs = gather::jobs(s);
        let mut list = gather::snapshots(s, &jobs);
        if let Some(job) = &job {
            list.retain(|info| info.job == *job);
        }
        serde_json::to_value(list).unwrap_or(Value::Null)
    })
    .await;
    match answer {
        Ok(value) => json_body(&value),
        Err(response) => response,
    }
}

async fn metrics(State(state): AppState) -> Response {
    match blocking(&state, metrics::render).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(response) => response,
    }
}

/// The server-sent events: an `update` event with the overview at once, then every second.
async fn events(State(state): AppState) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold((state, true), |(state, first)| async move {
        if !first {
            tokio::time::sleep(EVENT_PERIOD).await;
        }
        let value = match blocking(&state, gather::overview).await {
            Ok(value) => value,
            Err(_) => json!({ "error": "the dashboard failed while gathering the overview" }),
        };
        let event = Event::default().event("update").data(value.to_string());
        Some((Ok(event), (state, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_bodies() {
        assert!(!parse_checkpoint_body(b"").expect("empty").terminate);
        assert!(!parse_checkpoint_body(b" \n").expect("blank").terminate);
        assert!(!parse_checkpoint_body(b"{}").expect("{}").terminate);
        assert!(
            parse_checkpoint_body(br#"{"terminate": true}"#)
                .expect("terminate")
                .terminate
        );
        for bad in [
            &b"{"[..],
            br#"{"terminate": "yes"}"#,
            br#"{"terminat": true}"#,
            b"[]",
            b"true",
        ] {
            let sentence = parse_checkpoint_body(bad).expect_err("refused");
            assert!(sentence.starts_with("the body must be"), "{sentence}");
        }
    }
}
