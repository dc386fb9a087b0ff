//! Where a live listener binds: loopback unless another address is written out, and
//! bound before any load so a port in use is a usage error (exit 2) that costs nothing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};

use crate::error::{SoakError, usage};

/// The dashboard's address when `--dashboard` is given without one (k6's port).
pub const DASHBOARD_DEFAULT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5665);

/// Parses a listen address: `PORT` (on 127.0.0.1), `localhost:PORT`, or `IP:PORT`
/// (`[::1]:PORT` for IPv6). Port 0 picks a free port (soak prints the one it got).
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p))
            .map_err(|_| format!("`{text}`: the port must be a number 0-65535"));
    }
    text.parse::<SocketAddr>().map_err(|_| {
        format!("`{text}` is not a listen address: give PORT, localhost:PORT or IP:PORT (e.g. 127.0.0.1:5665)")
    })
}

/// Binds `addr` for the listener named `flag`; a port in use or an address this machine
/// does not have is a usage error. Says on stderr when the address is not loopback.
pub fn bind(flag: &str, addr: SocketAddr) -> Result<TcpListener, SoakError> {
    let listener = TcpListener::bind(addr).map_err(|err| {
        usage(format!(
            "{flag} {addr}: cannot listen there: {err} (pick another port, or stop what holds it)"
        ))
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|err| usage(format!("{flag} {addr}: {err}")))?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "soak: {flag} listens on {addr}, not on loopback: anyone who can reach this machine there sees the run's figures and its configuration (secrets redacted), without a password"
        );
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_loopback_and_bad_ones_say_what_to_give() {
        assert_eq!(parse_listen("9464").unwrap().to_string(), "127.0.0.1:9464");
        assert_eq!(
            parse_listen("localhost:0").unwrap().to_string(),
            "127.0.0.1:0"
        );
        assert_eq!(
            parse_listen("0.0.0.0:9464").unwrap().to_string(),
            "0.0.0.0:9464"
        );
        assert_eq!(parse_listen("[::1]:80").unwrap().to_string(), "[::1]:80");
        for bad in ["", "example.com:80", "localhost:99999", "127.0.0.1", "abc"] {
            let err = parse_listen(bad).unwrap_err();
            assert!(err.contains("PORT") || err.contains("port"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_port_in_use_is_a_usage_error() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let err = bind("--metrics-listen", addr).unwrap_err();
        assert!(matches!(err, SoakError::Usage(_)), "{err}");
        assert!(err.to_string().contains("cannot listen"), "{err}");
    }
}
