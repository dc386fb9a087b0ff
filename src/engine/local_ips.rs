//! `--local-ips`: source addresses connections are spread over, so one machine opens more
//! connections to one server port than one address's ~28,000 ephemeral ports allow.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpSocket, TcpStream};

/// Most source addresses one run takes.
pub const MAX_LOCAL_IPS: usize = 65_536;

/// `127.0.0.2-127.0.0.7`, `a,b,c` (IPv4 or IPv6) or `127.0.0.0/29` (every address of the
/// block, but its network and broadcast addresses when it has more than two); empty: none.
pub fn parse(text: &str) -> Result<Vec<IpAddr>, String> {
    let mut all = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((from, to)) = part.split_once('-') {
            let (from, to) = (v4(from, part)?, v4(to, part)?);
            if from > to {
                return Err(format!("`{part}`: the range runs backwards"));
            }
            push_range(&mut all, from, to, part)?;
        } else if let Some((net, bits)) = part.split_once('/') {
            let net = v4(net, part)?;
            let bits: u32 = bits
                .trim()
                .parse()
                .ok()
                .filter(|b| *b <= 32)
                .ok_or_else(|| format!("`{part}`: the prefix length must be 0 to 32"))?;
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            let first = net & mask;
            let last = first | !mask;
            let (first, last) = if last - first >= 3 {
                (first + 1, last - 1)
            } else {
                (first, last)
            };
            push_range(&mut all, first, last, part)?;
        } else {
            let ip: IpAddr = part
                .parse()
                .map_err(|_| format!("`{part}` is not an IP address"))?;
            all.push(ip);
        }
        if all.len() > MAX_LOCAL_IPS {
            return Err(format!("more than {MAX_LOCAL_IPS} addresses"));
        }
    }
    all.dedup();
    Ok(all)
}

fn v4(text: &str, part: &str) -> Result<u32, String> {
    text.trim()
        .parse::<Ipv4Addr>()
        .map(u32::from)
        .map_err(|_| format!("`{part}`: ranges and blocks are of IPv4 addresses"))
}

fn push_range(all: &mut Vec<IpAddr>, from: u32, to: u32, part: &str) -> Result<(), String> {
    if (to - from) as usize >= MAX_LOCAL_IPS {
        return Err(format!("`{part}`: more than {MAX_LOCAL_IPS} addresses"));
    }
    all.extend((from..=to).map(|n| IpAddr::V4(Ipv4Addr::from(n))));
    Ok(())
}

/// The source addresses of one target, taken in turn by each connection.
#[derive(Debug)]
pub struct LocalIps {
    ips: Vec<IpAddr>,
    next: AtomicUsize,
}

impl LocalIps {
    /// Checks each address can be bound here and matches the target's family, so a bad one
    /// is one clear error before the run rather than a failed connect per user.
    pub fn new(ips: Vec<IpAddr>, target: SocketAddr) -> Result<LocalIps, String> {
        for ip in &ips {
            if ip.is_ipv4() != target.is_ipv4() {
                return Err(format!(
                    "--local-ips {ip}: the target {target} is of the other IP family"
                ));
            }
            std::net::TcpListener::bind((*ip, 0))
                .map_err(|e| format!("--local-ips {ip}: cannot bind to it on this machine: {e}"))?;
        }
        Ok(LocalIps {
            ips,
            next: AtomicUsize::new(0),
        })
    }

    /// Connects to `addr` from the next source address (the system's when none is set).
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        if self.ips.is_empty() {
            return TcpStream::connect(addr).await;
        }
        let ip = self.ips[self.next.fetch_add(1, Ordering::Relaxed) % self.ips.len()];
        let socket = if ip.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(ip, 0))?;
        socket.connect(addr).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_lists_and_blocks_name_their_addresses() {
        assert_eq!(parse("").unwrap(), Vec::<IpAddr>::new());
        assert_eq!(
            parse("127.0.0.2-127.0.0.4").unwrap(),
            [ip("127.0.0.2"), ip("127.0.0.3"), ip("127.0.0.4")]
        );
        assert_eq!(
            parse("127.0.0.9, ::1").unwrap(),
            [ip("127.0.0.9"), ip("::1")]
        );
        // A /29 without its network and broadcast addresses; a /31 whole.
        let block = parse("127.0.0.0/29").unwrap();
        assert_eq!(block.first(), Some(&ip("127.0.0.1")));
        assert_eq!(block.last(), Some(&ip("127.0.0.6")));
        assert_eq!(block.len(), 6);
        assert_eq!(parse("127.0.0.4/31").unwrap().len(), 2);
        for (bad, says) in [
            ("127.0.0.5-127.0.0.2", "backwards"),
            ("127.0.0.1/33", "prefix length"),
            ("localhost", "not an IP address"),
            ("::1-::2", "IPv4"),
            ("10.0.0.0/8", "more than"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn connections_take_the_addresses_in_turn_and_a_foreign_one_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let local = LocalIps::new(parse("127.0.0.2-127.0.0.4").unwrap(), addr).unwrap();
        let mut seen = Vec::new();
        for _ in 0..6 {
            let _client = local.connect(addr).await.unwrap();
            let (_, peer) = listener.accept().await.unwrap();
            seen.push(peer.ip());
        }
        let want: Vec<IpAddr> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
            .iter()
            .cycle()
            .take(6)
            .map(|s| ip(s))
            .collect();
        assert_eq!(seen, want);
        // An address not on this machine, or of the other family: one clear error.
        let e = LocalIps::new(vec![ip("192.0.2.1")], addr).unwrap_err();
        assert!(e.contains("cannot bind"), "{e}");
        let e = LocalIps::new(vec![ip("::1")], addr).unwrap_err();
        assert!(e.contains("other IP family"), "{e}");
    }
}
