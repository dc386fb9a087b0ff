//! The mock third-party APIs a run asks for (`--mock llm,telegram`), started in-process on
//! 127.0.0.1:0 on their own thread and runtime, so their work never shares the tester's
//! workers. Their URLs go to the target in its environment; their counters go into the
//! summary.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use soak_mocks::llm::Llm;
use soak_mocks::llm::config::LlmConfig;
use tokio::sync::oneshot;

use crate::error::{SoakError, could_not_run};

/// API key handed to the target for the mock LLM (any key works; this one says where it came from).
pub const LLM_KEY: &str = "sk-soak-mock";

/// The running mocks; dropping this stops them.
#[derive(Default)]
pub struct Mocks {
    /// The mock LLM and where it listens.
    pub llm: Option<(Arc<Llm>, SocketAddr)>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
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
    pub fn start(llm: Option<LlmConfig>) -> Result<Mocks, SoakError> {
        Mocks::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), llm)
    }

    /// Starts the asked-for mocks on `addr` (`soak mock` picks the address).
    pub fn start_on(addr: SocketAddr, llm: Option<LlmConfig>) -> Result<Mocks, SoakError> {
        let Some(config) = llm else {
            return Ok(Mocks::default());
        };
        let fail = |err: std::io::Error| {
            could_not_run(format!("cannot start the mock LLM on {addr}: {err}"))
        };
        let listener = std::net::TcpListener::bind(addr).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        let llm = Arc::new(Llm::new(config));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(fail)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let served = Arc::clone(&llm);
        let thread =
            std::thread::Builder::new()
                .name("soak-mocks".into())
                .spawn(move || {
                    runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                    tokio::select! {
                        _ = soak_mocks::llm::serve(listener, served, std::future::pending()) => {}
                        _ = stopped => {}
                    }
                });
                })
                .map_err(fail)?;
        Ok(Mocks {
            llm: Some((llm, addr)),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The environment a target started by soak gets: where the mocks are.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some((_, addr)) = &self.llm {
            env.push(("OPENAI_BASE_URL".into(), format!("http://{addr}/v1")));
            env.push(("OPENAI_API_KEY".into(), LLM_KEY.into()));
        }
        env
    }
}

impl Drop for Mocks {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
