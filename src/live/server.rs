//! The two live listeners' HTTP routes: the dashboard (`/`, `/events`, `/report`) and
//! `/metrics`. Handlers only hand out what the live thread last rendered, so a scrape or a
//! page load never waits on the run, and a browser that cannot keep up skips to the newest
//! page (a watch channel holds one).

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;
use tokio::sync::watch;

use super::dashboard::{Page, document};

/// The dashboard's current state, as the live thread last rendered it.
#[derive(Debug)]
pub struct Rendered {
    /// The page.
    pub page: Page,
    /// The page as JSON (one `page` event).
    pub json: String,
    /// `report.html`, once the run has written it.
    pub report: Option<PathBuf>,
}

#[derive(Clone)]
struct Dash {
    pages: watch::Receiver<Arc<Rendered>>,
    profile: Arc<str>,
}

/// The dashboard's routes.
pub fn dashboard(pages: watch::Receiver<Arc<Rendered>>, profile: &str) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/events", get(events))
        .route("/report", get(report))
        .route("/report.html", get(report))
        .with_state(Dash {
            pages,
            profile: Arc::from(profile),
        })
}

async fn index(State(d): State<Dash>) -> Html<String> {
    let now = Arc::clone(&d.pages.borrow());
    Html(document(&now.page, &d.profile))
}

/// Server-sent events: the page as it is now, then each new one. After the run the stream
/// stays open (quiet but for keep-alives) so browsers do not reconnect in a loop.
async fn events(State(d): State<Dash>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold((d.pages, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        let now = Arc::clone(&rx.borrow_and_update());
        let event = Event::default().event("page").data(&now.json);
        Some((Ok(event), (rx, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn report(State(d): State<Dash>) -> Response {
    let path = d.pages.borrow().report.clone();
    let Some(path) = path else {
        return (
            StatusCode::NOT_FOUND,
            "report.html is written when the run ends\n",
        )
            .into_response();
    };
    // A small local file, read once per request: the blocking pool keeps it
    // off the listener's reactor.
    let read = tokio::task::spawn_blocking(move || {
        let page = std::fs::read_to_string(&path);
        (path, page)
    })
    .await;
    let Ok((path, page)) = read else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match page {
        Ok(page) => Html(page).into_response(),
        Err(err) => (
            StatusCode::NOT_FOUND,
            format!("cannot read {}: {err}\n", path.display()),
        )
            .into_response(),
    }
}

/// The OpenMetrics media type prometheus-client's text encoder writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics listener's routes.
pub fn metrics(text: watch::Receiver<Arc<str>>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/", get(|| async { "soak: the metrics are at /metrics\n" }))
        .with_state(text)
}

async fn scrape(State(text): State<watch::Receiver<Arc<str>>>) -> Response {
    let now = Arc::clone(&text.borrow());
    ([(header::CONTENT_TYPE, OPENMETRICS)], now.to_string()).into_response()
}
