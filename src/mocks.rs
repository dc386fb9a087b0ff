//! The mock third-party APIs a run asks for (`--mock llm,telegram`), started in-process on
//! 127.0.0.1:0 on their own thread and runtime, so their work never shares the tester's
//! workers. Their URLs go to the target in its environment; their counters go into the
//! summary.

use std::net::SocketAddr;
use std::sync::Arc;

use soak_mocks::llm::Llm;
use soak_mocks::llm::config::LlmConfig;
use soak_mocks::telegram::{Telegram, TelegramConfig};

use crate::error::{SoakError, could_not_run};
use crate::own_thread::OwnThread;

/// API key handed to the target for the mock LLM (any key works; this one says where it came from).
pub const LLM_KEY: &str = "sk-soak-mock";

/// The bot token handed to the target for the mock Telegram Bot API (`digits:rest`).
pub const BOT_TOKEN: &str = "7000000001:AAsoak-mock-bot";

/// The running mocks; dropping this stops them.
#[derive(Default)]
pub struct Mocks {
    /// The mock LLM and where it listens.
    pub llm: Option<(Arc<Llm>, SocketAddr)>,
    /// The mock Telegram Bot API and where it listens.
    pub telegram: Option<(Arc<Telegram>, SocketAddr)>,
    /// Stops the mocks when dropped.
    _server: OwnThread,
}

impl std::fmt::Debug for Mocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mocks")
            .field("llm", &self.llm.as_ref().map(|l| l.1))
            .finish()
    }
}

impl Mocks {
    /// Starts the asked-for mocks; clients may connect as soon as this returns.
    pub fn start(
        llm: Option<LlmConfig>,
        telegram: Option<TelegramConfig>,
    ) -> Result<Mocks, SoakError> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Mocks::start_on(any, any, llm, telegram)
    }

    /// Starts the asked-for mocks on the given addresses (`soak mock` picks them).
    pub fn start_on(
        llm_addr: SocketAddr,
        telegram_addr: SocketAddr,
        llm: Option<LlmConfig>,
        telegram: Option<TelegramConfig>,
    ) -> Result<Mocks, SoakError> {
        if llm.is_none() && telegram.is_none() {
            return Ok(Mocks::default());
        }
        let llm = llm
            .map(|c| bind(llm_addr).map(|(l, a)| (Arc::new(Llm::new(c)), a, l)))
            .transpose()?;
        let telegram = telegram
            .map(|c| bind(telegram_addr).map(|(l, a)| (Arc::new(Telegram::new(c)), a, l)))
            .transpose()?;
        let serve_llm = llm.as_ref().map(|(m, _, _)| Arc::clone(m));
        let serve_tg = telegram.as_ref().map(|(m, _, _)| Arc::clone(m));
        let (llm, llm_listener) = split(llm);
        let (telegram, tg_listener) = split(telegram);
        let fail = |err: std::io::Error| could_not_run(format!("cannot start the mocks: {err}"));
        let server = OwnThread::spawn("soak-mocks", move || async move {
            let listen = |l: Option<std::net::TcpListener>| {
                l.and_then(|l| tokio::net::TcpListener::from_std(l).ok())
            };
            if let (Some(m), Some(l)) = (serve_llm, listen(llm_listener)) {
                tokio::spawn(soak_mocks::llm::serve(l, m, std::future::pending()));
            }
            if let (Some(m), Some(l)) = (serve_tg, listen(tg_listener)) {
                tokio::spawn(soak_mocks::telegram::serve(l, m, std::future::pending()));
            }
            std::future::pending::<()>().await;
        })
        .map_err(fail)?;
        Ok(Mocks {
            llm,
            telegram,
            _server: server,
        })
    }

    /// The environment a target started by soak gets: where the mocks are.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some((_, addr)) = &self.llm {
            env.push(("OPENAI_BASE_URL".into(), format!("http://{addr}/v1")));
            env.push(("OPENAI_API_KEY".into(), LLM_KEY.into()));
        }
        if let Some((_, addr)) = &self.telegram {
            env.push(("TELEGRAM_API_URL".into(), format!("http://{addr}")));
            env.push(("TELEGRAM_BOT_TOKEN".into(), BOT_TOKEN.into()));
        }
        env
    }
}

/// A non-blocking listener on `addr`, and the address it got.
fn bind(addr: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), SoakError> {
    let fail = |err: std::io::Error| could_not_run(format!("cannot listen on {addr}: {err}"));
    let listener = std::net::TcpListener::bind(addr).map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    let bound = listener.local_addr().map_err(fail)?;
    Ok((listener, bound))
}

/// A started mock's handle (kept by `Mocks`) apart from its listener (moved to the thread).
fn split<T>(
    mock: Option<(Arc<T>, SocketAddr, std::net::TcpListener)>,
) -> (Option<(Arc<T>, SocketAddr)>, Option<std::net::TcpListener>) {
    match mock {
        Some((m, addr, listener)) => (Some((m, addr)), Some(listener)),
        None => (None, None),
    }
}
