//! A lean HTTP/1.1 keep-alive client for the load harness (`src/bin/load.rs`).
//!
//! Why not hyper's client: on two shared cores every µs the client spends is taken from the
//! server it measures. hyper's client splits a connection into a request handle and a
//! connection task with a channel between them, and builds a `Request` per call. This client
//! writes a request serialized once and reads each answer into one reused buffer, as wrk and
//! oha do; BENCHMARKS.md has the CPU per request of both.

use std::io::{Error, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A POST request, serialized once and sent as is on every round trip.
pub fn post_request(path: &str, headers: &[(&str, &str)], body: &[u8]) -> Arc<[u8]> {
    let mut head = format!("POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    [head.as_bytes(), body].concat().into()
}

/// One keep-alive connection that sends the same request over and over.
pub struct Connection {
    stream: TcpStream,
    request: Arc<[u8]>,
    /// The response being read; reused, so a round trip does not allocate.
    buf: Vec<u8>,
}

impl Connection {
    /// Connects with Nagle off (the requests are small and latency is what is measured).
    pub async fn open(addr: SocketAddr, request: Arc<[u8]>) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            request,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends the request and reads the whole response; returns its status code. The
    /// response must carry a `content-length` (every server measured here sends one): one
    /// without is an error rather than a guess.
    pub async fn round_trip(&mut self) -> std::io::Result<u16> {
        self.stream.write_all(&self.request).await?;
        self.buf.clear();
        loop {
            if let Some((status, total)) = parse_head(&self.buf)? {
                while self.buf.len() < total {
                    self.read_more().await?;
                }
                if self.buf.len() > total {
                    return Err(Error::new(
                        ErrorKind::InvalidData,
                        "bytes after the response",
                    ));
                }
                return Ok(status);
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> std::io::Result<()> {
        self.buf.reserve(4096);
        match self.stream.read_buf(&mut self.buf).await? {
            0 => Err(Error::new(
                ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )),
            _ => Ok(()),
        }
    }
}

/// The status and the full length (head and body) of the response at the start of `buf`, or
/// `None` while its head is incomplete.
fn parse_head(buf: &[u8]) -> std::io::Result<Option<(u16, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Error::new(ErrorKind::InvalidData, e)),
    };
    let body_len = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        })
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, "response without content-length"))?;
    Ok(Some((response.code.unwrap_or(0), head_len + body_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_complete_only_with_its_whole_body() {
        let response = b"HTTP/1.1 202 Accepted\r\ncontent-length: 16\r\n\r\n{\"success\":true}";
        let head = response.len() - 16;
        assert_eq!(parse_head(&response[..head - 1]).unwrap(), None);
        assert_eq!(
            parse_head(response).unwrap(),
            Some((202, response.len())),
            "the length covers head and body"
        );
    }

    #[test]
    fn a_response_without_content_length_is_an_error() {
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(parse_head(chunked).is_err());
    }

    #[tokio::test]
    async fn round_trips_reuse_one_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let request = post_request("/v1/check_gate", &[("statsig-api-key", "k")], b"{}");
        let expected = request.clone();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            for status in ["200 OK", "503 Service Unavailable"] {
                let mut seen = vec![0; expected.len()];
                socket.read_exact(&mut seen).await.unwrap();
                assert_eq!(seen, &expected[..]);
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\nok");
                // Split in two writes, so the client has to read the body separately.
                let (head, body) = answer.split_at(answer.len() - 2);
                socket.write_all(head.as_bytes()).await.unwrap();
                socket.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                socket.write_all(body.as_bytes()).await.unwrap();
            }
        });
        let mut connection = Connection::open(addr, request).await.unwrap();
        assert_eq!(connection.round_trip().await.unwrap(), 200);
        assert_eq!(connection.round_trip().await.unwrap(), 503);
        server.await.unwrap();
        let closed = connection.round_trip().await;
        assert!(closed.is_err(), "a closed connection is an error");
    }
}
