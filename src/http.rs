//! The monitoring endpoint, `[http] listen`: `GET /healthz` (200 or 503
//! with the verdict of `postdesk_core::health` as JSON) and `GET /metrics`
//! (see `metrics.rs`). Read-only: it never writes to the store and never
//! takes a write lock, so a probe cannot slow intake down.
//!
//! The answers are computed per request from one pooled read connection
//! (SQLite queries on indexes, run off the async workers).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use postdesk_core::health::{self, Health, MailboxPoll};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::desk::Desk;
use crate::metrics::{Metrics, StoreSnapshot};
use crate::store::{Store, StoreError};

/// What the endpoint reads: the running config, the clock, the in-memory
/// counters and when each mailbox started being served.
pub struct Monitor {
    desks: watch::Receiver<Arc<Desk>>,
    clock: Clock,
    metrics: Arc<Metrics>,
    watched_since: Arc<Mutex<HashMap<String, i64>>>,
    store: Mutex<Option<Store>>,
}

impl Monitor {
    pub fn new(
        desks: watch::Receiver<Arc<Desk>>,
        clock: Clock,
        metrics: Arc<Metrics>,
        watched_since: Arc<Mutex<HashMap<String, i64>>>,
    ) -> Monitor {
        Monitor {
            desks,
            clock,
            metrics,
            watched_since,
            store: Mutex::new(None),
        }
    }

    /// Runs `read` on the pooled connection (opened again after a failure).
    fn read<T>(&self, read: impl FnOnce(&Store) -> Result<T, StoreError>) -> anyhow::Result<T> {
        let desk = self.desks.borrow().clone();
        let mut pooled = self
            .store
            .lock()
            .map_err(|_| anyhow::anyhow!("monitor connection lock poisoned"))?;
        let store = match pooled.take() {
            Some(store) => store,
            None => Store::open(&desk.database_path())?,
        };
        let result = read(&store);
        if result.is_ok() {
            *pooled = Some(store);
        }
        Ok(result?)
    }

    pub fn health(&self) -> anyhow::Result<Health> {
        let desk = self.desks.borrow().clone();
        let now = self.clock.now().timestamp();
        let (polls, backlog) = self.read(|s| Ok((s.poll_records()?, s.outbox_backlog()?)))?;
        let since = self
            .watched_since
            .lock()
            .map_err(|_| anyhow::anyhow!("mailbox start times lock poisoned"))?
            .clone();
        let mailboxes: Vec<MailboxPoll> = desk
            .config
            .mailboxes
            .iter()
            .map(|m| {
                let poll = polls.get(&m.name).cloned().unwrap_or_default();
                MailboxPoll {
                    name: m.name.clone(),
                    interval_secs: m.poll_interval_secs,
                    last_ok_at: poll.last_ok_at,
                    last_error: poll.last_error,
                    watched_since: since.get(&m.name).copied().unwrap_or(now),
                }
            })
            .collect();
        let max_age = desk
            .config
            .http
            .as_ref()
            .map_or(15 * 60, |h| h.outbox_max_age_secs);
        Ok(health::assess(now, &mailboxes, backlog, max_age))
    }

    pub fn metrics_page(&self) -> anyhow::Result<String> {
        let desk = self.desks.borrow().clone();
        let mut snapshot = self.read(|s| {
            let polls = s.poll_records()?;
            Ok(StoreSnapshot {
                tickets_by_status: s.tickets_by_status()?,
                outbox_by_status: s.outbox_by_status()?,
                sla_breaches_by_clock: s.sla_breaches_by_clock()?,
                outbox_backlog: s.outbox_backlog()?,
                polls: desk
                    .config
                    .mailboxes
                    .iter()
                    .map(|m| {
                        (
                            m.name.clone(),
                            polls.get(&m.name).cloned().unwrap_or_default(),
                        )
                    })
                    .collect(),
                now: 0,
            })
        })?;
        snapshot.now = self.clock.now().timestamp();
        Ok(self.metrics.render(&snapshot)?)
    }
}

/// Binds the listener (before the daemon starts its tasks, so a taken port
/// is a clear start-up error).
pub async fn bind(listen: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} ([http] listen)"))
}

/// Serves until `stop` turns true.
pub async fn serve(listener: TcpListener, monitor: Arc<Monitor>, mut stop: watch::Receiver<bool>) {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(monitor);
    info!(%address, "serving /healthz and /metrics");
    let shutdown = async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        warn!(error = %e, "the monitoring endpoint stopped");
    }
}

async fn healthz(State(monitor): State<Arc<Monitor>>) -> Response {
    let verdict = tokio::task::spawn_blocking(move || monitor.health()).await;
    match verdict {
        Ok(Ok(health)) => {
            let code = if health.healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let mut body = serde_json::to_value(&health).unwrap_or_default();
            body["status"] = if health.healthy { "ok" } else { "unhealthy" }.into();
            (code, axum::Json(body)).into_response()
        }
        Ok(Err(e)) => unavailable(format!("cannot read the database: {e:#}")),
        Err(e) => unavailable(format!("health check failed: {e}")),
    }
}

fn unavailable(reason: String) -> Response {
    let body = serde_json::json!({ "status": "unhealthy", "healthy": false, "reasons": [reason] });
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

async fn metrics(State(monitor): State<Arc<Monitor>>) -> Response {
    match tokio::task::spawn_blocking(move || monitor.metrics_page()).await {
        Ok(Ok(page)) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            page,
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the database: {e:#}\n"),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}
